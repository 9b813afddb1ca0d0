"""Bringing a modem's volatile settings to a known state (playbook §2.2), and keeping them there.

Nothing here relies on `AT&W`: every setting is sent on every (re)init and re-asserted from time
to time, because reboots, brown-outs and other software reset them silently (F23).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from drivers.at.commands import (
    ECHO_ON,
    INDICATION_SUPPORT,
    NUMERIC_ERRORS,
    NUMERIC_OPERATOR_FORMAT,
    PDU_MODE,
    PROBE,
    READ_IMEI,
    READ_IMEI_GSN,
    READ_MANUFACTURER,
    READ_MODEL,
    READ_REVISION,
    REPORT_CEREG,
    REPORT_CGREG,
    REPORT_CREG,
    SET_INDICATIONS,
    SMS_SERVICE,
    STORAGE_SUPPORT,
    USE_STORAGE,
    VENDOR_SETTING,
    VERBOSE_RESULTS,
    Command,
)
from drivers.at.errors import AtFinalError, AtTimeout
from drivers.at.replies import CnmiSupport
from drivers.modem.link import ModemLink
from drivers.modem.profiles import ModelProfile, profile_for

log = logging.getLogger(__name__)

#: Basic settings, in order: echo on (anchors replies), verbose results, numeric errors.
BASIC_SETTINGS: tuple[Command[None], ...] = (ECHO_ON, VERBOSE_RESULTS, NUMERIC_ERRORS)
#: Storage preference for all three `+CPMS` parameters: the largest memory first.
STORAGE_PREFERENCE: tuple[str, ...] = ("ME", "MT", "SM")
#: `+CNMI` settings, best first: buffer URCs when busy, store + `+CMTI`, no cell broadcast,
#: no status reports (F11), flush buffered indications.
CNMI_CANDIDATES: tuple[tuple[int, ...], ...] = ((2, 1, 0, 0, 0), (1, 1, 0, 0, 0), (2, 1), (1, 1))
#: Registration URCs with location (`=2`); `+CEREG` only on LTE parts.
REGISTRATION_URC_COMMANDS: tuple[Command[None], ...] = (REPORT_CREG, REPORT_CGREG)


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
            await link.run(PROBE)
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
        await link.accepts(setting)


async def read_identity(link: ModemLink) -> ModemIdentity:
    """Manufacturer, model, revision and IMEI, and the profile they select."""
    manufacturer = await link.run_optional(READ_MANUFACTURER)
    model = await link.run_optional(READ_MODEL)
    revision = await link.run_optional(READ_REVISION)
    imei = None
    for command in (READ_IMEI, READ_IMEI_GSN):
        imei = await link.run_optional(command)
        if imei:
            break
    profile = profile_for(manufacturer, model)
    return ModemIdentity(manufacturer, model, revision, imei, profile)


async def apply_vendor_settings(link: ModemLink, profile: ModelProfile) -> None:
    for setting in profile.vendor_init:
        await link.accepts(VENDOR_SETTING.at(setting=setting))


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


def cnmi_candidates(support: CnmiSupport | None) -> list[tuple[int, ...]]:
    """The `+CNMI` settings to try, those the `+CNMI=?` ranges allow first."""
    if support is None:
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
    await link.run_patient(PDU_MODE, deadline=deadline)
    if previous is None:
        support = await link.run_optional(STORAGE_SUPPORT)
        read = support.read if support else ()
        receive = support.receive if support else ()
        primary, swept = choose_storage(read, receive)
    else:
        primary, swept = previous.primary, previous.swept
    await link.run_patient(USE_STORAGE.at(memory=primary), deadline=deadline)
    cnmi = await _set_cnmi(link, previous.cnmi if previous else None)
    cnma_needed = previous.cnma_needed if previous else await _needs_cnma(link)
    return SmsSetup(primary, swept, cnmi, cnma_needed)


async def _set_cnmi(link: ModemLink, known: str | None) -> str | None:
    if known is not None and await link.accepts(SET_INDICATIONS.at(arguments=known)):
        return known
    for values in cnmi_candidates(await link.run_optional(INDICATION_SUPPORT)):
        arguments = ",".join(str(value) for value in values)
        if await link.accepts(SET_INDICATIONS.at(arguments=arguments)):
            return arguments
    log.warning(
        "event=cnmi_refused port=%s detail=%r",
        link.port,
        "modem accepts no +CNMI setting: SMS are found by the periodic sweep only",
    )
    return None


async def _needs_cnma(link: ModemLink) -> bool:
    return bool(await link.run_optional(SMS_SERVICE))


async def setup_network_reports(link: ModemLink, profile: ModelProfile) -> None:
    """Registration URCs with location, numeric operator names."""
    for command in REGISTRATION_URC_COMMANDS:
        await link.accepts(command)
    if profile.has_lte:
        await link.accepts(REPORT_CEREG)
    await link.accepts(NUMERIC_OPERATOR_FORMAT)
