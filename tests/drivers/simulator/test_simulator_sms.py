"""SMS in the simulated modems: injection, indications, reading, listing, deleting, full storage."""

from __future__ import annotations

from dataclasses import replace

import pytest

from drivers.simulator import E303, E3372, EC25, SIM800, SimState, make_sim, running_modem

pdu = pytest.importorskip("drivers.sms.pdu", reason="the PDU codec is not there yet")

SENDER = "+4917612345678"
REPLY_TIMEOUT_S = 3.0


def sim_card(**fields: object):
    return make_sim(21, number="4915100000021", **fields)  # type: ignore[arg-type]


def pdu_pairs(lines: list[str], prefix: str) -> list[tuple[str, str]]:
    """(header, PDU) pairs of a +CMGR/+CMGL/+CMT reply."""
    return [(lines[i], lines[i + 1]) for i, line in enumerate(lines) if line.startswith(prefix)]


async def test_inject_announce_read_delete_on_sim800() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        assert modem.deliver_sms(SENDER, "Code 12345") == [1]
        assert (await probe.read_line(REPLY_TIMEOUT_S)) == '+CMTI: "SM",1'
        reply = await probe.command("AT+CMGR=1")
        ((header, body),) = pdu_pairs(reply.lines, "+CMGR:")
        assert header == f"+CMGR: 0,,{pdu.tpdu_length(body)}"
        message = pdu.decode_pdu(body)
        assert message.text == "Code 12345" and message.sender == SENDER
        assert (await probe.command("AT+CMGR=1")).lines[0].startswith("+CMGR: 1,,")  # now read
        assert (await probe.command("AT+CMGD=1")).ok
        empty = await probe.command("AT+CMGR=1")
        assert empty.ok and empty.lines == []  # SIM800: an empty slot reads as bare OK
        assert (await probe.command("AT+CPMS?")).lines == ['+CPMS: "SM",0,30,"SM",0,30,"SM",0,30']


async def test_e3372_zero_based_indexes_and_lagging_cpms() -> None:
    profile = replace(E3372, noise_interval_seconds=3600.0)
    async with running_modem(profile, sim_card()) as (modem, probe):
        assert (await probe.command("AT+CMEE=1")).ok
        modem.cpms_lag_seconds = 3600.0
        assert modem.deliver_sms(SENDER, "Hallo") == [0]
        await probe.wait_for('+CMTI: "SM",0', REPLY_TIMEOUT_S)
        assert (await probe.command("AT+CPMS?")).lines[0].startswith('+CPMS: "SM",0,50')
        listing = await probe.command("AT+CMGL=4")
        ((header, _),) = pdu_pairs(listing.lines, "+CMGL:")
        assert header.startswith("+CMGL: 0,0,,")
        modem.cpms_lag_seconds = 0.0
        assert (await probe.command("AT+CPMS?")).lines[0].startswith('+CPMS: "SM",1,50')
        assert (await probe.command("AT+CMGR=0")).ok
        assert (await probe.command("AT+CMGD=0")).ok
        assert (await probe.command("AT+CMGR=0")).final == "+CMS ERROR: 321"


async def test_cmgl_in_pdu_and_text_mode() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        for text in ("one", "two", "three"):
            modem.deliver_sms(SENDER, text)
        for index in range(3):
            await probe.wait_for(f'+CMTI: "ME",{index}', REPLY_TIMEOUT_S)
        unread = await probe.command("AT+CMGL=0")
        pairs = pdu_pairs(unread.lines, "+CMGL:")
        assert [h.split(",")[:2] for h, _ in pairs] == [
            ["+CMGL: 0", "0"],
            ["+CMGL: 1", "0"],
            ["+CMGL: 2", "0"],
        ]
        assert [pdu.decode_pdu(body).text for _, body in pairs] == ["one", "two", "three"]
        assert all(h.endswith(f",,{pdu.tpdu_length(b)}") for h, b in pairs)
        assert (await probe.command("AT+CMGL=0")).lines == []  # listing marked them read
        assert len(pdu_pairs((await probe.command("AT+CMGL=4")).lines, "+CMGL:")) == 3
        assert (await probe.command("AT+CMGF=1")).ok
        text_listing = await probe.command('AT+CMGL="ALL"')
        headers = [ln for ln in text_listing.lines if ln.startswith("+CMGL:")]
        assert headers[0].startswith(f'+CMGL: 0,"REC READ","{SENDER}"')
        assert text_listing.lines[1] == "one"
        modem.deliver_sms(SENDER, "Привет")
        await probe.wait_for('+CMTI: "ME",3', REPLY_TIMEOUT_S)
        assert (await probe.command("AT+CMGR=3")).lines[1] == "??????"  # IRA cannot show it
        assert (await probe.command('AT+CSCS="UCS2"')).ok
        reply = await probe.command("AT+CMGR=3")
        assert reply.lines[0].startswith('+CMGR: "REC READ","+4917612345678",,"')
        assert bytes.fromhex(reply.lines[1]).decode("utf-16-be") == "Привет"
        assert (await probe.command("AT+CMGL=4")).final.startswith("+CMS ERROR")


async def test_cmgd_forms_and_invalid_index() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.deliver_sms(SENDER, "a")
        modem.deliver_sms(SENDER, "b")
        modem.deliver_sms(SENDER, "c")
        assert (await probe.command("AT+CMGR=2")).ok  # 2 is read now, 1 and 3 unread
        assert (await probe.command("AT+CMGD=?")).lines == ["+CMGD: (1,2,3),(0-4)"]
        assert (await probe.command("AT+CMGD=1,1")).ok  # delflag 1: read ones only
        assert (await probe.command("AT+CMGD=?")).lines == ["+CMGD: (1,3),(0-4)"]
        assert (await probe.command("AT+CMGD=1,0")).ok
        assert (await probe.command("AT+CMGD=99")).final == "+CMS ERROR: 321"
        assert (await probe.command("AT+CMGD=0")).final == "+CMS ERROR: 321"  # 1-based
        assert (await probe.command("AT+CMGD=1,4")).ok
        assert (await probe.command("AT+CMGD=?")).lines == ["+CMGD: (),(0-4)"]


async def test_full_storage_holds_sms_until_a_delete() -> None:
    async with running_modem(replace(SIM800, storages={"SM": 2}), sim_card()) as (modem, probe):
        assert modem.deliver_sms(SENDER, "first") == [1]
        assert modem.deliver_sms(SENDER, "second") == [2]
        assert modem.deliver_sms(SENDER, "third") == []
        assert modem.held_sms == 1
        await probe.wait_for('+CMTI: "SM",2', REPLY_TIMEOUT_S)
        assert await probe.read_for(0.1) == b""  # no indication for the held one
        reply = await probe.command("AT+CMGD=1")
        assert reply.ok
        assert (await probe.read_line(REPLY_TIMEOUT_S)) == '+CMTI: "SM",1'  # after the OK
        assert modem.held_sms == 0
        ((_, body),) = pdu_pairs((await probe.command("AT+CMGR=1")).lines, "+CMGR:")
        assert pdu.decode_pdu(body).text == "third"


async def test_routed_cmt_under_mt2_is_not_stored() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        assert (await probe.command("AT+CSMS=1;+CNMI=2,2,0,0,0")).ok
        assert modem.deliver_sms(SENDER, "routed") == []
        header, _ = await probe.wait_for("+CMT:", REPLY_TIMEOUT_S)
        body = await probe.read_line(REPLY_TIMEOUT_S)
        assert header == f"+CMT: ,{pdu.tpdu_length(body)}"
        assert pdu.decode_pdu(body).text == "routed"
        assert (await probe.command("AT+CNMA")).ok
        assert (await probe.command("AT+CNMA")).final == "+CMS ERROR: 340"
        assert (await probe.command("AT+CPMS?")).lines[0].startswith('+CPMS: "ME",0,')


async def test_no_indication_under_mt0_but_stored() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        assert (await probe.command("AT+CNMI=2,0,0,0,0")).ok
        assert modem.deliver_sms(SENDER, "quiet") == [0]
        reply = await probe.command("AT+CPMS?")
        assert reply.lines == ['+CPMS: "ME",1,255,"ME",1,255,"ME",1,255']


async def test_multipart_out_of_order() -> None:
    text = "Ihr Bestaetigungscode lautet 482913. " * 6
    async with running_modem(EC25, sim_card()) as (modem, probe):
        indexes = modem.deliver_sms(SENDER, text, order=[1, 0], ref=77)
        assert indexes == [0, 1]
        listing = await probe.command("AT+CMGL=4")
        parts = [pdu.decode_pdu(body) for _, body in pdu_pairs(listing.lines, "+CMGL:")]
        assert [p.concat.seq for p in parts] == [2, 1]
        assert {p.concat.ref for p in parts} == {77}
        assert "".join(p.text for p in sorted(parts, key=lambda p: p.concat.seq)) == text


async def test_class2_sms_goes_to_the_sim_even_when_routing() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        assert (await probe.command("AT+CNMI=2,2,0,0,0")).ok
        assert modem.deliver_sms(SENDER, "to the SIM", class2=True) == [0]
        assert (await probe.read_line(REPLY_TIMEOUT_S)) == '+CMTI: "SM",0'
        assert (await probe.command('AT+CPMS="SM"')).lines == ["+CPMS: 1,50,0,255,0,255"]


async def test_cmti_lands_inside_another_commands_reply() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        modem.deliver_sms(SENDER, "inside", inside_next_reply=True)
        reply = await probe.command("AT+CSQ")
        assert reply.raw.endswith(b'\r\n+CSQ: 20,99\r\n\r\n+CMTI: "ME",0\r\n\r\nOK\r\n')


async def test_huawei_e303_routes_and_stores_the_same_sms() -> None:
    profile = replace(E303, noise_interval_seconds=3600.0, default_cnmi=(2, 1, 0, 0, 0))
    async with running_modem(profile, sim_card()) as (modem, probe):
        assert modem.deliver_sms(SENDER, "twice") == [0]
        await probe.wait_for("+CMT:", REPLY_TIMEOUT_S)
        routed = await probe.read_line(REPLY_TIMEOUT_S)
        assert (await probe.read_line(REPLY_TIMEOUT_S)) == '+CMTI: "SM",0'
        ((_, stored),) = pdu_pairs((await probe.command("AT+CMGR=0")).lines, "+CMGR:")
        assert routed == stored


async def test_hinted_index_fails_once() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.fail_hinted_reads = True
        modem.deliver_sms(SENDER, "flaky")
        await probe.wait_for('+CMTI: "SM",1', REPLY_TIMEOUT_S)
        assert (await probe.command("AT+CMGR=1")).final == "+CMS ERROR: 321"
        assert pdu_pairs((await probe.command("AT+CMGR=1")).lines, "+CMGR:")


async def test_sms_waits_in_the_network_while_unregistered() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.set_registration(SimState.NOT_REGISTERED)
        assert modem.deliver_sms(SENDER, "later") == []
        assert modem.held_sms == 1
        modem.set_registration(SimState.READY)
        await probe.wait_for('+CMTI: "SM",1', REPLY_TIMEOUT_S)


async def test_deliver_raw_pdu_and_reject_garbage() -> None:
    raw = pdu.encode_deliver("VK", "Code 99999")[0]
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        assert modem.deliver_pdu(raw) == 1
        await probe.wait_for('+CMTI: "SM",1', REPLY_TIMEOUT_S)
        with pytest.raises(pdu.PduError):
            modem.deliver_pdu("ZZ")
        assert modem.held_sms == 0
