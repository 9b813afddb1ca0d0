"""AtEngine over a real pseudo-terminal, with a scripted modem on the master side."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import pytest

from drivers.at.engine import AtEngine, normalize_command
from drivers.at.errors import AtCommandError, AtTimeout, CmeError, CmsError, PortGone
from drivers.at.lines import Urc
from tests.drivers.scripted_modem import ScriptedModem, frame

# Generous for what must happen, short only for what must time out.
SHOULD_HAPPEN_S = 10.0
MUST_TIME_OUT_S = 0.3

CPMS_REPLY = '+CPMS: "ME",3,23,"ME",3,23,"ME",3,23'
CMTI = '+CMTI: "SM",3'


@pytest.fixture
async def pty_pair() -> AsyncIterator[tuple[ScriptedModem, AtEngine]]:
    master, slave = os.openpty()
    modem = ScriptedModem(master)
    modem.start()
    engine = await AtEngine.open(os.ttyname(slave), drain_quiet_s=0.1, drain_max_s=SHOULD_HAPPEN_S)
    os.close(slave)  # the engine holds its own descriptor
    try:
        yield modem, engine
    finally:
        await engine.close()
        modem.close()


def _future() -> asyncio.Future[Urc]:
    return asyncio.get_running_loop().create_future()


def test_command_names() -> None:
    assert normalize_command("+CPMS?") == "AT+CPMS?"
    assert normalize_command("ATI") == "ATI"
    with pytest.raises(ValueError):
        normalize_command("+CMGS=1\r\x1a")


async def test_request_response(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    modem.on("AT+CPMS?", frame(CPMS_REPLY, "OK"))
    reply = await engine.command("+CPMS?", timeout=SHOULD_HAPPEN_S, expect="+CPMS")
    assert reply.lines == [CPMS_REPLY]
    assert reply.final == "OK"
    assert reply.first("+CPMS:") == CPMS_REPLY
    assert modem.commands == ["AT+CPMS?"]


async def test_echoing_modem_reply_has_no_echo_line(
    pty_pair: tuple[ScriptedModem, AtEngine],
) -> None:
    modem, engine = pty_pair
    modem.echo = True
    modem.on("AT+CGMI", frame("Quectel", "OK"))
    reply = await engine.command("AT+CGMI", timeout=SHOULD_HAPPEN_S)
    assert reply.lines == ["Quectel"]


async def test_urc_while_command_waits(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    got = _future()
    engine.on_urc("+CMTI", got.set_result)
    modem.on("AT+CPMS?", frame(CPMS_REPLY, CMTI, "SMS DONE", "OK"))
    reply = await engine.command("+CPMS?", timeout=SHOULD_HAPPEN_S)
    assert reply.lines == [CPMS_REPLY]
    urc = await asyncio.wait_for(got, SHOULD_HAPPEN_S)
    assert urc.name == "+CMTI" and urc.args == '"SM",3'


async def test_two_line_cmt_inside_a_reply(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    got = _future()
    engine.on_urc("+CMT", got.set_result)
    modem.on(
        "AT+CSQ",
        frame(
            "+CSQ: 17,99",
            "+CMT: ,24",
            "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07",
            "OK",
        ),
    )
    reply = await engine.command("+CSQ", timeout=SHOULD_HAPPEN_S)
    assert reply.lines == ["+CSQ: 17,99"]
    urc = await asyncio.wait_for(got, SHOULD_HAPPEN_S)
    assert urc.pdu is not None and urc.pdu.startswith("07911326")


async def test_query_response_is_not_a_urc(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    seen: list[Urc] = []
    engine.add_listener(seen.append)
    got = _future()
    engine.on_urc("+CREG", got.set_result)
    modem.on("AT+CREG?", frame('+CREG: 2,1,"5E25","605F"', "OK"))
    reply = await engine.command("+CREG?", timeout=SHOULD_HAPPEN_S)
    assert reply.lines == ['+CREG: 2,1,"5E25","605F"']
    modem.send(frame('+CREG: 1,"5E25","605F"'))
    urc = await asyncio.wait_for(got, SHOULD_HAPPEN_S)
    assert urc.args == '1,"5E25","605F"'
    assert [u.line for u in seen] == ['+CREG: 1,"5E25","605F"']


async def test_timeout_then_late_reply_does_not_satisfy_next_command(
    pty_pair: tuple[ScriptedModem, AtEngine],
) -> None:
    modem, engine = pty_pair
    modem.on("AT+CSQ", None)  # hangs…

    def late_then_ok(_: str) -> bytes:
        # …and only answers once the engine's recovery `AT` arrives: the late reply first.
        return frame("+CSQ: 10,99", "OK") + frame("OK")

    modem.on("AT", late_then_ok)
    modem.on("AT+CGMI", frame("Quectel", "OK"))
    assert engine.timeouts == 0
    with pytest.raises(AtTimeout) as caught:
        await engine.command("+CSQ", timeout=MUST_TIME_OUT_S)
    assert caught.value.command == "AT+CSQ"
    assert modem.escapes == 1
    assert modem.commands == ["AT+CSQ", "AT"]
    reply = await engine.command("+CGMI", timeout=SHOULD_HAPPEN_S)
    assert reply.lines == ["Quectel"]
    assert engine.timeouts == 1  # the recovery `AT` and the answered command are not counted


def _expect_rx(engine: AtEngine, data: bytes) -> asyncio.Future[None]:
    """A future done once the engine has read `data`, so a test does not race the pty."""
    seen = bytearray()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def hook(direction: str, chunk: bytes) -> None:
        if direction == "rx":
            seen.extend(chunk)
            if data in seen and not done.done():
                done.set_result(None)
                engine.set_transcript(None)

    engine.set_transcript(hook)
    return done


async def test_stale_reply_while_idle_is_discarded(
    pty_pair: tuple[ScriptedModem, AtEngine],
) -> None:
    modem, engine = pty_pair
    modem.on("AT+CGMI", frame("Quectel", "OK"))
    stale = frame("+CSQ: 10,99", "OK")  # a reply nobody asked for
    received = _expect_rx(engine, stale)
    modem.send(stale)
    await asyncio.wait_for(received, SHOULD_HAPPEN_S)
    reply = await engine.command("+CGMI", timeout=SHOULD_HAPPEN_S)
    assert reply.lines == ["Quectel"]


async def test_partial_stale_line_does_not_complete_next_command(
    pty_pair: tuple[ScriptedModem, AtEngine],
) -> None:
    modem, engine = pty_pair
    # Half of a late "OK" is in when the next command starts; the rest arrives with the reply.
    received = _expect_rx(engine, b"\r\nO")
    modem.send(b"\r\nO")
    await asyncio.wait_for(received, SHOULD_HAPPEN_S)
    modem.on("AT+CGMI", b"K\r\n" + frame("Quectel", "OK"))
    reply = await engine.command("+CGMI", timeout=SHOULD_HAPPEN_S)
    assert reply.lines == ["Quectel"]


@pytest.mark.parametrize(
    ("final", "error_type", "code"),
    [
        ("+CME ERROR: 10", CmeError, 10),
        ("+CME ERROR: SIM not inserted", CmeError, 10),
        ("+CME ERROR: 14", CmeError, 14),
        ("+CMS ERROR: 321", CmsError, 321),
        ("+CMS ERROR: invalid memory index", CmsError, 321),
        ("+CMS ERROR: 500", CmsError, 500),
        ("ERROR", AtCommandError, None),
        ("COMMAND NOT SUPPORT", AtCommandError, None),
        ("MODEM ERROR: 3", AtCommandError, None),
    ],
)
async def test_error_finals_raise_typed_errors(
    pty_pair: tuple[ScriptedModem, AtEngine], final: str, error_type: type, code: int | None
) -> None:
    modem, engine = pty_pair
    modem.on("AT+CMGR=5", frame(final))
    with pytest.raises(error_type) as caught:
        await engine.command("+CMGR=5", timeout=SHOULD_HAPPEN_S)
    assert caught.value.final_line == final
    if code is not None:
        assert caught.value.code == code
        assert caught.value.text
    # The port stays usable after an error.
    modem.on("AT", frame("OK"))
    assert (await engine.command("AT", timeout=SHOULD_HAPPEN_S)).final == "OK"


async def test_garbage_never_kills_the_reader(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    unexpected: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def on_unexpected(text: str, raw: bytes) -> None:
        if not unexpected.done():
            unexpected.set_result(raw)

    engine.on_unexpected = on_unexpected
    modem.send(b"\r\n\xff\xfe\x00\x80\xc3garbage\r\n")
    assert await asyncio.wait_for(unexpected, SHOULD_HAPPEN_S) == b"\xff\xfe\x00\x80\xc3garbage"
    modem.send(bytes(range(256)) + b"\r\n")
    modem.on("AT", frame("OK"))
    assert (await engine.command("AT", timeout=SHOULD_HAPPEN_S)).final == "OK"


async def test_port_gone_fails_pending_command(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    engine.on_connection_lost = lost.set_result
    modem.on("AT+CMGL=4", None)
    pending = asyncio.create_task(engine.command("+CMGL=4", timeout=SHOULD_HAPPEN_S * 3))
    await modem.wait_for_command("AT+CMGL=4", SHOULD_HAPPEN_S)
    modem.close()
    with pytest.raises(PortGone):
        await asyncio.wait_for(pending, SHOULD_HAPPEN_S)
    await asyncio.wait_for(lost, SHOULD_HAPPEN_S)
    assert not engine.is_open
    with pytest.raises(PortGone):
        await engine.command("AT", timeout=SHOULD_HAPPEN_S)
    with pytest.raises(PortGone):
        await engine.wait_for_urc("+CMTI", timeout=SHOULD_HAPPEN_S)


async def test_close_fails_pending_command(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    modem.on("AT+COPS=?", None)
    pending = asyncio.create_task(engine.command("+COPS=?", timeout=SHOULD_HAPPEN_S * 3))
    await modem.wait_for_command("AT+COPS=?", SHOULD_HAPPEN_S)
    await engine.close()
    with pytest.raises(PortGone):
        await asyncio.wait_for(pending, SHOULD_HAPPEN_S)


async def test_raising_listener_breaks_nothing(
    pty_pair: tuple[ScriptedModem, AtEngine], caplog: pytest.LogCaptureFixture
) -> None:
    modem, engine = pty_pair
    got = _future()

    def broken(urc: Urc) -> None:
        raise RuntimeError("listener bug")

    async def broken_async(urc: Urc) -> None:
        raise RuntimeError("async listener bug")

    engine.add_listener(broken)
    engine.add_listener(broken_async)
    engine.on_urc("RING", got.set_result)
    with caplog.at_level(logging.ERROR, logger="drivers.at.engine"):
        modem.send(frame("RING"))
        assert (await asyncio.wait_for(got, SHOULD_HAPPEN_S)).name == "RING"
        modem.on("AT", frame("OK"))
        assert (await engine.command("AT", timeout=SHOULD_HAPPEN_S)).final == "OK"
    assert "listener bug" in caplog.text
    assert "async listener bug" in caplog.text


async def test_listener_can_be_removed(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    removed: list[Urc] = []
    remove = engine.add_listener(removed.append)
    remove()
    got = _future()
    engine.on_urc("RDY", got.set_result)
    modem.send(frame("RDY"))
    await asyncio.wait_for(got, SHOULD_HAPPEN_S)
    assert removed == []


async def test_wait_for_urc(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    waiting = engine.urc_future(lambda urc: urc.name == "+CMTI" and urc.args.endswith(",7"))
    modem.send(frame('+CMTI: "SM",6', '+CMTI: "SM",7'))
    assert (await asyncio.wait_for(waiting, SHOULD_HAPPEN_S)).args == '"SM",7'
    task = asyncio.create_task(engine.wait_for_urc("+CUSD", timeout=SHOULD_HAPPEN_S))
    modem.on('AT+CUSD=1,"*100#",15', frame("OK") + frame('+CUSD: 0,"Balance 5.00",15'))
    await engine.command('+CUSD=1,"*100#",15', timeout=SHOULD_HAPPEN_S)
    assert (await asyncio.wait_for(task, SHOULD_HAPPEN_S)).args == '0,"Balance 5.00",15'
    with pytest.raises(AtTimeout):
        await engine.wait_for_urc("^BOOT", timeout=MUST_TIME_OUT_S)


async def test_command_with_pdu(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    modem.echo = True
    modem.on_prompt("AT+CMGS=23", lambda body: frame("+CMGS: 12", "OK"))
    body = "0011000B914121436587F90000AA0AE8329BFD4697D9EC37"
    reply = await engine.command_with_pdu("+CMGS=23", body, timeout=SHOULD_HAPPEN_S)
    assert reply.lines == ["+CMGS: 12"]
    assert modem.bodies == [body]


async def test_command_with_pdu_error_instead_of_prompt(
    pty_pair: tuple[ScriptedModem, AtEngine],
) -> None:
    modem, engine = pty_pair
    modem.on("AT+CMGS=23", frame("+CMS ERROR: 304"))
    with pytest.raises(CmsError) as caught:
        await engine.command_with_pdu("+CMGS=23", "00", timeout=SHOULD_HAPPEN_S)
    assert caught.value.code == 304
    assert modem.bodies == []


async def test_prompt_timeout_sends_escape(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    modem.on("AT+CMGS=23", None)
    modem.on("AT", frame("OK"))
    with pytest.raises(AtTimeout):
        await engine.command_with_pdu(
            "+CMGS=23", "00", timeout=SHOULD_HAPPEN_S, prompt_timeout=MUST_TIME_OUT_S
        )
    assert modem.escapes == 1
    assert modem.bodies == []
    assert (await engine.command("AT", timeout=SHOULD_HAPPEN_S)).final == "OK"
    assert engine.timeouts == 1  # a prompt that never came counts as a command timeout


async def test_cancelled_command_leaves_port_usable(
    pty_pair: tuple[ScriptedModem, AtEngine],
) -> None:
    modem, engine = pty_pair
    modem.on("AT+CSQ", None)
    task = asyncio.create_task(engine.command("+CSQ", timeout=SHOULD_HAPPEN_S * 3))
    await modem.wait_for_command("AT+CSQ", SHOULD_HAPPEN_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    late = frame("+CSQ: 10,99", "OK")  # the cancelled command's reply
    received = _expect_rx(engine, late)
    modem.send(late)
    await asyncio.wait_for(received, SHOULD_HAPPEN_S)
    modem.on("AT+CGMI", frame("Quectel", "OK"))
    reply = await engine.command("+CGMI", timeout=SHOULD_HAPPEN_S)
    assert reply.lines == ["Quectel"]


async def test_transcript_hook(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    trace: list[tuple[str, bytes]] = []
    engine.set_transcript(lambda direction, data: trace.append((direction, data)))
    modem.on("AT", frame("OK"))
    await engine.command("AT", timeout=SHOULD_HAPPEN_S)
    engine.set_transcript(None)
    await engine.command("AT", timeout=SHOULD_HAPPEN_S)
    assert ("tx", b"AT\r") in trace
    assert b"".join(data for direction, data in trace if direction == "rx") == b"\r\nOK\r\n"


async def test_commands_are_serialised(pty_pair: tuple[ScriptedModem, AtEngine]) -> None:
    modem, engine = pty_pair
    modem.on("AT+CGMI", frame("Quectel", "OK"))
    modem.on("AT+CGMM", frame("EC25", "OK"))
    modem.on("AT+CGSN", frame("867962041234567", "OK"))
    replies = await asyncio.wait_for(
        asyncio.gather(
            engine.command("+CGMI", timeout=SHOULD_HAPPEN_S),
            engine.command("+CGMM", timeout=SHOULD_HAPPEN_S),
            engine.command("+CGSN", timeout=SHOULD_HAPPEN_S),
        ),
        SHOULD_HAPPEN_S,
    )
    assert [r.lines for r in replies] == [["Quectel"], ["EC25"], ["867962041234567"]]


async def test_open_missing_port_raises_port_gone() -> None:
    with pytest.raises(PortGone):
        await AtEngine.open("/nonexistent/tty-for-test")
