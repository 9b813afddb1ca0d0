"""Pure pieces of the simulator: AT line syntax, ICCID helpers, GSM-7 packing, storage, profiles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.simulator import PROFILES, iccid_is_valid, iccid_to_ef, make_iccid, profile_by_name
from drivers.simulator.at_syntax import AtSyntaxError, Op, parse_command_line
from drivers.simulator.sim_card import SimCard
from drivers.simulator.storage import InvalidIndex, MessageStat, MessageStorage
from drivers.simulator.ussd import (
    decode_ussd_request,
    pack_septets,
    to_septets,
    unpack_septets,
)


def test_command_line_forms() -> None:
    assert parse_command_line("AT") == []
    basic = parse_command_line("ate0v1")
    assert [(c.name, c.op, c.args) for c in basic] == [("E", Op.SET, ["0"]), ("V", Op.SET, ["1"])]
    (cusd,) = parse_command_line('AT+CUSD=1,"*111#;x",15')
    assert cusd.args == ["1", "*111#;x", "15"]  # ';' inside quotes does not split
    both = parse_command_line("AT+CFUN=0;+CFUN=1")
    assert [c.args for c in both] == [["0"], ["1"]]
    assert parse_command_line("AT^ICCID?")[0].op is Op.READ
    assert parse_command_line("AT+CNMI=?")[0].op is Op.TEST
    assert parse_command_line("AT&F")[0].name == "&F"
    for bad in ("XYZ", 'AT+CUSD=1,"open', "AT+CSQ!", "AT@"):
        with pytest.raises(AtSyntaxError):
            parse_command_line(bad)


@given(st.binary(max_size=64))
def test_any_bytes_either_parse_or_raise_the_syntax_error(data: bytes) -> None:
    try:
        parse_command_line("AT" + data.decode("latin-1"))
    except AtSyntaxError:
        pass


def test_iccid_helpers() -> None:
    iccid = make_iccid("894902000012345678")
    assert len(iccid) == 19 and iccid_is_valid(iccid)
    assert not iccid_is_valid(iccid[:-1] + str((int(iccid[-1]) + 1) % 10))
    assert iccid_to_ef("89490200001234567892") == "98942000002143658729"
    assert iccid_to_ef(iccid).endswith("F" + iccid[-1])
    with pytest.raises(ValueError):
        make_iccid("12")
    with pytest.raises(ValueError):
        SimCard(iccid="123", imsi="262020000000001")


def test_gsm7_packing_matches_the_known_ussd_vector() -> None:
    assert pack_septets(to_septets("*100#")).hex().upper() == "AA180C3602"
    assert decode_ussd_request("AA180C3602") == "*100#"
    assert decode_ussd_request("*100#") == "*100#"


@given(st.text(alphabet="0123456789*#ABCabc xyz@$", max_size=80))
def test_septets_round_trip(text: str) -> None:
    septets = to_septets(text)
    assert unpack_septets(pack_septets(septets))[: len(septets)] == septets


def test_storage_slots() -> None:
    store = MessageStorage("SM", 2, base=0)
    assert store.store("00AA", MessageStat.REC_UNREAD, 0.0) == 0
    assert store.store("00BB", MessageStat.REC_UNREAD, 1.0) == 1
    assert store.store("00CC", MessageStat.REC_UNREAD, 2.0) is None and store.full
    assert store.used_settled(1.5, lag_seconds=1.0) == 1
    assert store.delete(0) and not store.delete(0)
    with pytest.raises(InvalidIndex):
        store.get(2)


def test_profiles_are_consistent() -> None:
    for profile in PROFILES.values():
        assert profile.default_storage in profile.storages
        assert len(profile.imei) == 15 and profile.imei.isdigit()
        assert profile_by_name(profile.name.upper()) is profile
    with pytest.raises(KeyError, match="unknown modem profile"):
        profile_by_name("nokia")
