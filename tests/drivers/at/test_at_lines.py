"""The line framer/classifier: ModemManager-style vectors, field failures, and properties."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.at.lines import (
    AtLineClassifier,
    Echo,
    Event,
    Final,
    FinalKind,
    Info,
    Prompt,
    Unexpected,
    UrcEvent,
    command_names,
    final_kind,
    match_urc,
)

PDU = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"


def run(data: bytes, command: str | None = None, chunk: int | None = None) -> list[Event]:
    classifier = AtLineClassifier()
    if command is not None:
        classifier.begin_command(command)
    events: list[Event] = []
    if chunk is None:
        events += classifier.feed(data)
    else:
        for start in range(0, len(data), chunk):
            events += classifier.feed(data[start : start + chunk])
    return events + classifier.flush()


def kinds(events: list[Event]) -> list[str]:
    return [type(event).__name__ for event in events]


def urcs(events: list[Event]) -> list[UrcEvent]:
    return [event for event in events if isinstance(event, UrcEvent)]


def test_ok_followed_by_cmti_in_one_buffer() -> None:
    events = run(b'\r\nOK\r\n\r\n+CMTI: "ME",5\r\n', "AT+CNMI=2,1")
    assert kinds(events) == ["Final", "UrcEvent"]
    final = events[0]
    assert isinstance(final, Final) and final.ok and final.solicited
    urc = urcs(events)[0].urc
    assert (urc.name, urc.args) == ("+CMTI", '"ME",5')


def test_final_result_forms() -> None:
    assert final_kind("OK") is FinalKind.OK
    assert final_kind("ERROR") is FinalKind.ERROR
    assert final_kind("MODEM ERROR: 3") is FinalKind.MODEM_ERROR
    assert final_kind("COMMAND NOT SUPPORT") is FinalKind.COMMAND_NOT_SUPPORT
    assert final_kind("+CME ERROR: 10") is FinalKind.CME_ERROR
    assert final_kind("+CME ERROR: SIM not inserted") is FinalKind.CME_ERROR
    assert final_kind("+CMS ERROR: 321") is FinalKind.CMS_ERROR
    assert final_kind("+CMS ERROR: invalid memory index") is FinalKind.CMS_ERROR
    for word in ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"):
        assert final_kind(word) is not None
    assert final_kind("OKAY") is None
    assert final_kind('+CMTI: "SM",1') is None


def test_modem_error_and_command_not_support_end_a_command() -> None:
    for final in (b"MODEM ERROR: 3", b"COMMAND NOT SUPPORT", b"+CME ERROR: SIM busy"):
        events = run(b"\r\n" + final + b"\r\n", "AT^SYSCFG?")
        assert kinds(events) == ["Final"]
        assert events[0].solicited  # type: ignore[union-attr]


def test_echo_and_crcrlf_line_ends() -> None:
    events = run(
        b'AT+CPMS?\r\r\n+CPMS: "ME",3,23,"ME",3,23,"ME",3,23\r\r\n\r\r\nOK\r\r\n', "AT+CPMS?"
    )
    assert kinds(events) == ["Echo", "Info", "Final"]
    assert isinstance(events[0], Echo) and events[0].text == "AT+CPMS?"


def test_bare_cr_and_lf_line_ends() -> None:
    events = run(b"\r+CSQ: 17,99\rOK\n", "AT+CSQ")
    assert kinds(events) == ["Info", "Final"]


def test_prompt_without_line_end() -> None:
    classifier = AtLineClassifier()
    classifier.begin_command("AT+CMGS=23")
    assert kinds(classifier.feed(b"AT+CMGS=23\r\r\n>")) == ["Echo"]
    assert kinds(classifier.feed(b" ")) == ["Prompt"]
    classifier.expect_echo("0011000B91")
    events = classifier.feed(b"0011000B91\x1a\r\n+CMGS: 12\r\n\r\nOK\r\n")
    assert kinds(events) == ["Echo", "Info", "Final"]


def test_sms_done_between_command_and_reply() -> None:
    """F20: Quectel prints SMS DONE while a command is pending."""
    events = run(b'\r\nSMS DONE\r\n\r\n+CPMS: "SM",0,50\r\n\r\nOK\r\n', "AT+CPMS?")
    assert kinds(events) == ["UrcEvent", "Info", "Final"]
    assert urcs(events)[0].urc.name == "SMS DONE"


def test_cmti_between_info_lines_and_ok() -> None:
    """F2: a +CMTI inside a reply goes out as a URC and the reply stays intact."""
    data = b"\r\n+CMGL: 1,0,,24\r\n" + PDU.encode() + b'\r\n+CMTI: "SM",2\r\n\r\nOK\r\n'
    events = run(data, "AT+CMGL=4")
    assert kinds(events) == ["Info", "Info", "UrcEvent", "Final"]
    assert [e.text for e in events if isinstance(e, Info)] == ["+CMGL: 1,0,,24", PDU]


def test_two_line_cmt_inside_a_reply() -> None:
    data = b"\r\n+CSQ: 17,99\r\n\r\n+CMT: ,24\r\n" + PDU.encode() + b"\r\n\r\nOK\r\n"
    for chunk in (None, 1, 3, 7):
        events = run(data, "AT+CSQ", chunk)
        assert kinds(events) == ["Info", "UrcEvent", "Final"]
        urc = urcs(events)[0].urc
        assert (urc.name, urc.args, urc.pdu) == ("+CMT", ",24", PDU)


def test_cds_two_line_and_cdsi_one_line() -> None:
    events = run(b'\r\n+CDS: 25\r\n0791AB\r\n+CDSI: "SR",8\r\n')
    assert [(u.urc.name, u.urc.pdu) for u in urcs(events)] == [("+CDS", "0791AB"), ("+CDSI", None)]


def test_cmt_header_without_body_before_ok_is_released() -> None:
    events = run(b"\r\n+CMT: ,24\r\nOK\r\n", "AT")
    assert kinds(events) == ["UrcEvent", "Final"]
    assert urcs(events)[0].urc.pdu is None


def test_garbage_and_non_utf8_bytes() -> None:
    """F3: any byte decodes; garbage with nothing pending is unexpected, raw bytes kept."""
    events = run(b"\xff\xfe\x80abc\r\n\x00\x00\r\n\xc3\xa4rger\r\n")
    assert kinds(events) == ["Unexpected", "Unexpected"]
    first, second = events
    assert isinstance(first, Unexpected) and first.raw == b"\xff\xfe\x80abc"
    assert isinstance(second, Unexpected) and second.text == "ärger"


def test_garbage_while_pending_is_info() -> None:
    events = run(b"\r\n\xff\xfe\r\nOK\r\n", "ATI")
    assert kinds(events) == ["Info", "Final"]


def test_query_response_versus_urc_by_context() -> None:
    reply = b'\r\n+CREG: 2,1,"5E25","605F"\r\n\r\nOK\r\n'
    assert kinds(run(reply, "AT+CREG?")) == ["Info", "Final"]
    assert kinds(run(b'\r\n+CREG: 1,"5E25","605F"\r\n')) == ["UrcEvent"]
    # Another command pending: +CREG is a URC even inside that reply.
    assert kinds(run(b"\r\n+CREG: 1\r\n+CSQ: 9,99\r\nOK\r\n", "AT+CSQ")) == [
        "UrcEvent",
        "Info",
        "Final",
    ]
    assert kinds(run(b"\r\n^ICCID: 89860012345678901234\r\nOK\r\n", "AT^ICCID?")) == [
        "Info",
        "Final",
    ]
    assert kinds(run(b"\r\n^RSSI:15\r\n^ICCID: 8986\r\nOK\r\n", "AT^ICCID?")) == [
        "UrcEvent",
        "Info",
        "Final",
    ]
    assert kinds(run(b"\r\n+CPIN: READY\r\nOK\r\n", "AT+CPIN?")) == ["Info", "Final"]
    assert kinds(run(b"\r\n+CPIN: READY\r\n")) == ["UrcEvent"]


def test_expect_names_extra_response_prefix() -> None:
    classifier = AtLineClassifier()
    classifier.begin_command("AT+CRSM=176,12258,0,0,10", expect="+CPIN")
    events = classifier.feed(b"\r\n+CPIN: READY\r\nOK\r\n")
    assert kinds(events) == ["Info", "Final"]


def test_command_names() -> None:
    assert command_names("AT+CBC;+CSQ") == {"+CBC", "+CSQ"}
    assert command_names('AT+CUSD=1,"*100#;",15') == {"+CUSD"}
    assert command_names("ATI") == frozenset()
    assert command_names("AT^SYSINFO") == {"^SYSINFO"}


def test_urc_table() -> None:
    for line, name in [
        ('+CMTI: "SM",3,"MMS PUSH"', "+CMTI"),
        ("RING", "RING"),
        ('+CLIP: "+4915112345678",145', "+CLIP"),
        ("+CGREG: 1", "+CGREG"),
        ("+CEREG: 5", "+CEREG"),
        ("^BOOT:12345,0,0,0,72", "^BOOT"),
        ("^MODE:5,4", "^MODE"),
        ("^SRVST:2", "^SRVST"),
        ("^SIMST:1", "^SIMST"),
        ('^SMMEMFULL:"SM"', "^SMMEMFULL"),
        ("+QIND: SMS DONE", "+QIND"),
        ("+QUSIM: 1", "+QUSIM"),
        ("PB DONE", "PB DONE"),
        ("RDY", "RDY"),
        ("Call Ready", "CALL READY"),
        ("SMS Ready", "SMS READY"),
        ("+CSMINS: 0,1", "+CSMINS"),
        ("+CFUN: 1", "+CFUN"),
        ("UNDER-VOLTAGE WARNNING", "UNDER-VOLTAGE"),
        ("UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE"),
        ("NORMAL POWER DOWN", "NORMAL POWER DOWN"),
    ]:
        found = match_urc(line)
        assert found is not None and found[0] == name, line
    assert match_urc("+CMGS: 12") is None
    assert match_urc("RINGING") is None
    assert match_urc("Quectel") is None


def test_cusd_with_raw_line_breaks_is_one_urc() -> None:
    events = run(b'\r\n+CUSD: 0,"Balance: 5.00\r\nValid until 01.01",15\r\n')
    assert kinds(events) == ["UrcEvent"]
    assert urcs(events)[0].urc.args == '0,"Balance: 5.00\nValid until 01.01",15'


def test_line_started_before_command_is_stale() -> None:
    """F25: half a late OK is buffered when the next command starts; it must not complete it."""
    classifier = AtLineClassifier()
    assert classifier.feed(b"\r\nO") == []
    classifier.begin_command("AT+CGMI")
    events = classifier.feed(b"K\r\n\r\nQuectel\r\n\r\nOK\r\n")
    assert kinds(events) == ["Final", "Info", "Final"]
    assert [e.solicited for e in events if isinstance(e, Final)] == [False, True]


def test_abandoned_command_makes_late_reply_stale() -> None:
    classifier = AtLineClassifier()
    classifier.begin_command("AT+CSQ")
    classifier.end_command()
    events = classifier.feed(b"\r\n+CSQ: 10,99\r\n\r\nOK\r\n")
    assert kinds(events) == ["Unexpected", "Final"]
    assert not events[1].solicited  # type: ignore[union-attr]


def test_overlong_line_is_cut() -> None:
    events = run(b"x" * 20000 + b"\r\n")
    assert all(isinstance(event, Unexpected) for event in events)
    assert sum(len(event.raw) for event in events) == 20000  # type: ignore[union-attr]


# -- properties ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    command: str
    info: tuple[str, ...]
    final: str


SCENARIOS = [
    Scenario("AT+CPMS?", ('+CPMS: "ME",3,23,"ME",3,23,"ME",3,23',), "OK"),
    Scenario("AT+CMGL=4", ("+CMGL: 1,0,,24", PDU, "+CMGL: 2,1,,24", PDU), "OK"),
    Scenario("AT+CSQ", ("+CSQ: 17,99",), "OK"),
    Scenario("ATI", ("Quectel", "EC25", "Revision: EC25EFAR06A03M4G"), "OK"),
    Scenario("AT+CMGR=3", ("+CMGR: 0,,24", PDU), "OK"),
    Scenario("AT+CMGR=9", (), "+CMS ERROR: 321"),
    Scenario("AT+CPIN?", (), "+CME ERROR: SIM not inserted"),
    Scenario("AT^SYSCFG?", (), "COMMAND NOT SUPPORT"),
    Scenario("AT+CNUM", (), "ERROR"),
]

URC_LINES: list[tuple[str, ...]] = [
    ('+CMTI: "SM",1',),
    ('+CMTI: "ME",22,"MMS PUSH"',),
    ("RING",),
    ("SMS DONE",),
    ("^RSSI:15",),
    ('+CREG: 1,"5E25","605F"',),
    ("+QIND: SMS DONE",),
    ("RDY",),
    ('+CUSD: 0,"Balance 5.00",15',),
    ("UNDER-VOLTAGE WARNNING",),
    ("+CMT: ,24", PDU),
    ("+CDS: 25", "0791AB"),
]

line_ends = st.sampled_from([b"\r\n", b"\r", b"\n", b"\r\r\n"])
line_starts = st.sampled_from([b"", b"\r\n", b"\r"])
noise_bytes = st.binary(min_size=0, max_size=20).map(
    lambda data: data.replace(b"\r", b"").replace(b"\n", b"")
)
# Noise lines start with a byte no AT line starts with, so they can never look like one.
noise_line = st.one_of(
    noise_bytes.map(lambda data: b"\xff" + data),
    st.text(alphabet="abcxyz0129 .,:-", max_size=20).map(lambda text: b"#" + text.encode()),
)


@st.composite
def urc_item(draw: st.DrawFn) -> tuple[bytes, tuple[str, ...] | None]:
    """Bytes of one URC and the URC expected out (None when garbage on its line corrupts it)."""
    lines = draw(st.sampled_from(URC_LINES))
    corrupted = draw(st.booleans()) and draw(st.booleans())  # one in four
    data = draw(line_starts)
    if corrupted:
        data += b"\xfe" + draw(noise_bytes)  # unterminated garbage glued to the URC's line
    for line in lines:
        data += line.encode() + draw(line_ends)
    return data, None if corrupted else lines


@st.composite
def noise_item(draw: st.DrawFn) -> tuple[bytes, None]:
    return draw(line_starts) + draw(noise_line) + draw(line_ends), None


extra_item = st.one_of(urc_item(), noise_item())


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[Scenario, list[bytes], list[bytes], list[tuple[str, ...]]]:
    """(scenario, bytes before the command, bytes after it, URCs expected out in order)."""
    scenario = draw(st.sampled_from(SCENARIOS))
    before = draw(st.lists(extra_item, max_size=4))
    body: list[tuple[bytes, tuple[str, ...] | None]] = []
    if draw(st.booleans()):
        body.append((scenario.command.encode() + b"\r", None))  # echo
    for line in (*scenario.info, scenario.final):
        body += draw(st.lists(extra_item, max_size=2))
        body.append((draw(line_starts) + line.encode() + draw(line_ends), None))
    after = draw(st.lists(extra_item, max_size=3))
    expected = [lines for _, lines in (*before, *body, *after) if lines is not None]
    pre = [data for data, _ in before]
    post = [data for data, _ in (*body, *after)]
    return scenario, pre, post, expected


def feed_in_chunks(classifier: AtLineClassifier, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        events += classifier.feed(data[start:end])
    return events


def is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    remaining = iter(seen)
    return all(any(item == candidate for candidate in remaining) for item in wanted)


@settings(max_examples=200, deadline=None)
@given(exchanges(), st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_property_urcs_and_reply_survive_interleaving(
    exchange: tuple[Scenario, list[bytes], list[bytes], list[tuple[str, ...]]],
    cuts: list[int],
) -> None:
    scenario, pre, post, expected = exchange
    classifier = AtLineClassifier()
    events = feed_in_chunks(classifier, b"".join(pre), cuts)
    classifier.begin_command(scenario.command)
    events += feed_in_chunks(classifier, b"".join(post), cuts)
    events += classifier.flush()

    got = [(e.urc.line, e.urc.pdu) for e in events if isinstance(e, UrcEvent)]
    want = [(lines[0], lines[1] if len(lines) > 1 else None) for lines in expected]
    assert got == want
    finals = [e for e in events if isinstance(e, Final) and e.solicited]
    assert [f.text for f in finals] == [scenario.final]
    info = [e.text for e in events if isinstance(e, Info)]
    assert is_subsequence(list(scenario.info), info)
    assert not classifier.pending


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from([b"OK\r\n", b"> ", b"+CMT: ,2\r\n", b'+CUSD: 1,"', b"\r", b"\n"]),
            st.sampled_from(["AT+CSQ", "AT+CUSD=1", None, "end"]),
        ),
        max_size=30,
    )
)
def test_property_never_raises_on_any_bytes(steps: list[bytes | str | None]) -> None:
    classifier = AtLineClassifier()
    for step in steps:
        if isinstance(step, bytes):
            events = classifier.feed(step)
        elif step == "end" or step is None:
            classifier.end_command()
            events = []
        else:
            classifier.begin_command(step)
            events = []
        for event in events:
            assert isinstance(event, (Echo, Info, Final, Prompt, UrcEvent, Unexpected))
    classifier.flush()
