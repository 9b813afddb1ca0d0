"""Bringing a modem's volatile settings to a known state (playbook §2.2), and keeping them there.

Nothing here relies on `AT&W`: every setting is sent on every (re)init and re-asserted from time
to time, because reboots, brown-outs and other software reset them silently (F23).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from drivers.at.errors import AtFinalError, AtTimeout, ReplyParseError
from drivers.at.replies import parse_cnmi_test, parse_cpms_test
from drivers.modem.link import ModemLink
from drivers.modem.profiles import ModelProfile, profile_for

log = logging.getLogger(__name__)

#: Basic settings, in order: echo on (anchors replies), verbose results, numeric errors.
BASIC_SETTINGS: tuple[str, ...] = ("E1", "V1", "+CMEE=1")
#: Storage preference for all three `+CPMS` parameters: the largest memory first.
STORAGE_PREFERENCE: tuple[str, ...] = ("ME", "MT", "SM")
#: `+CNMI` settings, best first: buffer URCs when busy, store + `+CMTI`, no cell broadcast,
#: no status reports (F11), flush buffered indications.
CNMI_CANDIDATES: tuple[tuple[int, ...], ...] = ((2, 1, 0, 0, 0), (1, 1, 0, 0, 0), (2, 1), (1, 1))
#: Registration URCs with location (`=2`); `+CEREG` only on LTE parts.
REGISTRATION_URC_COMMANDS: tuple[str, ...] = ("+CREG=2", "+CGREG=2")
LTE_REGISTRATION_URC_COMMAND = "+CEREG=2"
#: Numeric operator names in `+COPS?` (MCC+MNC).
NUMERIC_OPERATOR_FORMAT = "+COPS=3,2"

_IMEI = re.compile(r"\b(\d{14,17})\b")


@dataclass(frozen=True, slots=True)
class ModemIdentity:
    """Who made the module and which one it is."""

    manufacturer: str | None
    model: str | None
    revision: str | None
    imei: str | None
    profile: ModelProfile


@dataclass(frozen=True, slots=True)
class SmsSetup:
    """How SMS reception was set up: the memory SMS land in, what to sweep, how to ack `+CMT`."""

    primary: str
    swept: tuple[str, ...]
    cnmi: str | None  # the `+CNMI=` arguments the modem accepted; None: no indications at all
    cnma_needed: bool  # `+CSMS` service 1: a routed `+CMT` must be acknowledged


async def wake(link: ModemLink, attempts: int) -> None:
    """Send `AT` until the modem answers (autobauding, booting or just-unhung modules)."""
    for attempt in range(1, attempts + 1):
        try:
            await link.command("AT", timeout=link.timings.probe_seconds)
            return
        except AtFinalError:
            return  # an ERROR is an answer too
        except AtTimeout:
            log.info("event=wake_silent port=%s attempt=%d", link.port, attempt)
    raise AtTimeout(
        f"modem answers no AT command after {attempts} tries: is ModemManager or another "
        "program holding the port, or is the baud rate wrong?",
        command="AT",
        port=link.port,
    )


async def apply_basics(link: ModemLink) -> None:
    """Echo on, verbose, numeric errors; refusals are tolerated (the engine copes with both)."""
    for setting in BASIC_SETTINGS:
        await link.optional(setting)


def _first_line(lines: list[str], prefix: str) -> str | None:
    for line in lines:
        text = line.strip()
        if text.upper().startswith(prefix.upper() + ":"):
            text = text.split(":", 1)[1].strip()
        text = text.strip('"').strip()
        if text:
            return text
    return None


async def read_identity(link: ModemLink) -> ModemIdentity:
    """Manufacturer, model, revision and IMEI, and the profile they select."""
    values: dict[str, str | None] = {}
    for key, command, prefix in (
        ("manufacturer", "+CGMI", "+CGMI"),
        ("model", "+CGMM", "+CGMM"),
        ("revision", "+CGMR", "+CGMR"),
    ):
        reply = await link.optional(command)
        values[key] = _first_line(reply.lines, prefix) if reply else None
    imei = None
    for command in ("+CGSN", "+GSN"):
        reply = await link.optional(command)
        found = _IMEI.search(" ".join(reply.lines)) if reply else None
        if found:
            imei = found.group(1)
            break
    profile = profile_for(values["manufacturer"], values["model"])
    return ModemIdentity(values["manufacturer"], values["model"], values["revision"], imei, profile)


async def apply_vendor_settings(link: ModemLink, profile: ModelProfile) -> None:
    for command in profile.vendor_init:
        await link.optional(command)


def choose_storage(read: tuple[str, ...], receive: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(memory for all three parameters, memories to sweep): SM is swept too when it is not
    the primary, because class-2 SMS land on the SIM whatever `+CPMS` says."""
    offered = receive or read
    primary = next((mem for mem in STORAGE_PREFERENCE if mem in offered), None)
    if primary is None:
        primary = offered[0] if offered else "SM"
    swept = [primary]
    if primary not in ("SM", "MT") and "SM" in read:
        swept.append("SM")
    return primary, tuple(swept)


def cnmi_candidates(test_line: str | None) -> list[tuple[int, ...]]:
    """The `+CNMI` settings to try, those the `+CNMI=?` ranges allow first."""
    if test_line is None:
        return list(CNMI_CANDIDATES)
    try:
        support = parse_cnmi_test(test_line)
    except ReplyParseError:
        return list(CNMI_CANDIDATES)
    ranges = (support.mode, support.mt, support.bm, support.ds, support.bfr)
    allowed = [
        values
        for values in CNMI_CANDIDATES
        if all(not ranges[at] or value in ranges[at] for at, value in enumerate(values))
    ]
    return allowed + [values for values in CNMI_CANDIDATES if values not in allowed]


async def setup_sms(link: ModemLink, deadline: float, previous: SmsSetup | None = None) -> SmsSetup:
    """PDU mode, storage, indications; `previous` skips the `=?` questions on a re-assert."""
    await link.patient("+CMGF=0", deadline=deadline)
    if previous is None:
        test = await link.optional("+CPMS=?")
        line = test.first("+CPMS:") if test else None
        try:
            support = parse_cpms_test(line) if line else None
        except ReplyParseError:
            support = None
        read = support.read if support else ()
        receive = support.receive if support else ()
        primary, swept = choose_storage(read, receive)
    else:
        primary, swept = previous.primary, previous.swept
    await link.patient(f'+CPMS="{primary}","{primary}","{primary}"', deadline=deadline)
    cnmi = await _set_cnmi(link, previous.cnmi if previous else None)
    cnma_needed = previous.cnma_needed if previous else await _needs_cnma(link)
    return SmsSetup(primary, swept, cnmi, cnma_needed)


async def _set_cnmi(link: ModemLink, known: str | None) -> str | None:
    if known is not None and await link.optional(f"+CNMI={known}") is not None:
        return known
    test = await link.optional("+CNMI=?")
    for values in cnmi_candidates(test.first("+CNMI:") if test else None):
        arguments = ",".join(str(value) for value in values)
        if await link.optional(f"+CNMI={arguments}") is not None:
            return arguments
    log.warning(
        "event=cnmi_refused port=%s detail=%r",
        link.port,
        "modem accepts no +CNMI setting: SMS are found by the periodic sweep only",
    )
    return None


async def _needs_cnma(link: ModemLink) -> bool:
    reply = await link.optional("+CSMS?")
    line = reply.first("+CSMS:") if reply else None
    if line is None:
        return False
    service = line.split(":", 1)[1].split(",", 1)[0].strip()
    return service == "1"


async def setup_network_reports(link: ModemLink, profile: ModelProfile) -> None:
    """Registration URCs with location, numeric operator names."""
    for command in REGISTRATION_URC_COMMANDS:
        await link.optional(command)
    if profile.has_lte:
        await link.optional(LTE_REGISTRATION_URC_COMMAND)
    await link.optional(NUMERIC_OPERATOR_FORMAT)
