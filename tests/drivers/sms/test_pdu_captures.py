"""The PDU codec over real `AT+CMGR`/`AT+CMGL` replies captured from phones and modems.

Known outcomes worth recording:
* `at-sms/04` ends its PDU line with a stray `"`: the reader strips quotes as an AT reply
  parser would, and the SMS decodes.
* `at-sms/20` is an SMS-SUBMIT with the UDHI bit set and no user data: decodes as empty text.
* `at-sms/41` is an SMS-SUBMIT whose UDL (93 septets) claims more than the 79 octets present: a
  truncated PDU, so PduError (the codec does not guess at missing text).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from drivers.sms.pdu import PduError, SmsDeliver, SmsStatusReport, SmsSubmit, decode_pdu
from tests.conftest import gammu_dumps

LISTING_HEADER = re.compile(r"^\s*\+CMG[RL]:")
HEX_LINE = re.compile(r"^[0-9A-Fa-f]+$")
# at-sms holds 36 captures; all but the truncated SUBMIT in 41 decode.
MIN_DECODED_CAPTURES = 35


def pdus_in_dump(path: Path) -> list[str]:
    """The PDU line after each `+CMGR:`/`+CMGL:` header, quotes and whitespace stripped."""
    lines = path.read_bytes().decode("latin-1").splitlines()
    found: list[str] = []
    for header, body in itertools.pairwise(lines):
        if LISTING_HEADER.match(header):
            candidate = body.strip().strip('"').strip()
            if candidate and not candidate.startswith(("OK", "+CM", "ERROR")):
                found.append(candidate)
    return found


def _ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


GOOD_DUMPS = gammu_dumps("at-sms")
FAILING_DUMPS = gammu_dumps("at-sms-failing")


def test_every_capture_decodes_or_raises_pdu_error(gammu_data: Path) -> None:
    dumps = gammu_dumps("at-sms")
    assert dumps, "no captures in at-sms"
    decoded = 0
    kinds: set[type] = set()
    for path in dumps:
        pdus = pdus_in_dump(path)
        assert pdus, f"{path.name}: no PDU found"
        for pdu in pdus:
            try:
                message = decode_pdu(pdu)
            except PduError as exc:
                assert "unexpected" not in str(exc), f"{path.name}: {exc}"
                continue
            decoded += 1
            kinds.add(type(message))
            if isinstance(message, SmsDeliver):
                assert message.sender, path.name
                assert message.timestamp.tzinfo is not None, path.name
                assert isinstance(message.text, str)
                message.text.encode("utf-8")
    assert decoded >= MIN_DECODED_CAPTURES
    assert kinds == {SmsDeliver, SmsSubmit, SmsStatusReport}


@pytest.mark.parametrize("path", FAILING_DUMPS, ids=_ids(FAILING_DUMPS))
def test_every_failing_capture_raises_pdu_error(path: Path, gammu_data: Path) -> None:
    pdus = pdus_in_dump(path)
    assert pdus, f"{path.name}: no PDU found"
    for pdu in pdus:
        with pytest.raises(PduError) as caught:
            decode_pdu(pdu)
        assert "unexpected" not in str(caught.value)


def _decode_capture(gammu_data: Path, name: str) -> SmsDeliver | SmsSubmit | SmsStatusReport:
    [pdu] = pdus_in_dump(gammu_data / "at-sms" / f"{name}.dump")
    return decode_pdu(pdu)


def test_capture_alphanumeric_sender_with_stray_quote(gammu_data: Path) -> None:
    message = _decode_capture(gammu_data, "04")
    assert isinstance(message, SmsDeliver)
    assert message.sender_is_alpha and message.sender.startswith("O2")
    assert message.text.startswith("O2: You now have your Text Anytime 300 UK texts")
    assert message.smsc == "+447802000332"


def test_capture_concatenated_part(gammu_data: Path) -> None:
    message = _decode_capture(gammu_data, "22")
    assert isinstance(message, SmsDeliver)
    assert message.concat is not None
    assert (message.concat.total, message.concat.seq, message.concat.ref_bits) == (2, 1, 8)
    assert message.text.startswith("Ahoj pavle")


def test_capture_wap_push_ports(gammu_data: Path) -> None:
    for name in ("33", "40"):
        message = _decode_capture(gammu_data, name)
        assert isinstance(message, SmsDeliver)
        assert message.encoding == "8bit" and message.text == ""
        assert message.ports == (2948, 9200)
        assert message.data


def test_capture_status_report(gammu_data: Path) -> None:
    report = _decode_capture(gammu_data, "34")
    assert isinstance(report, SmsStatusReport)
    assert report.recipient == "+61439012244"


def test_capture_truncated_submit_is_refused(gammu_data: Path) -> None:
    with pytest.raises(PduError, match="user data"):
        _decode_capture(gammu_data, "41")


def test_capture_udhi_without_user_data(gammu_data: Path) -> None:
    message = _decode_capture(gammu_data, "20")
    assert isinstance(message, SmsSubmit)
    assert message.text == "" and message.udh == ()


def test_reader_finds_pdus_in_listings(tmp_path: Path) -> None:
    dump = tmp_path / "list.dump"
    dump.write_text(
        "AT+CMGL=4\r\n+CMGL: 1,1,,23\r\n0004038109F00000425021010354210548656C6C6F\r\n"
        '+CMGL: 2,1,,23\r\n"0004038109F00000425021010354210548656C6C6F"\r\nOK\r\n'
        "AT+CMGR=9\r\n+CMGR: 0,,0\r\nOK\r\n"
    )
    assert len(pdus_in_dump(dump)) == 2
    assert HEX_LINE.match(pdus_in_dump(dump)[1])
