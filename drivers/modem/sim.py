"""The SIM: waiting until it is ready (busy back-off, one PIN try), and who it is (ICCID, IMSI).

A configured PIN is entered at most once per driver: a wrong PIN is never tried again, because
three wrong tries lock the card behind its PUK (spec §2.3).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from stdnum import imsi as stdnum_imsi

from drivers.at.commands import (
    ENTER_PIN,
    READ_ICCID,
    READ_IMSI,
    READ_MNC_LENGTH,
    READ_PIN_STATE,
    READ_VENDOR_ICCID,
)
from drivers.at.errors import AtFinalError, CmeError, CmsError, ReplyParseError, UnparsedReply
from drivers.modem.link import ModemLink, is_busy
from drivers.modem.profiles import ModelProfile

log = logging.getLogger(__name__)

#: `+CPIN:` states that mean "ask again later".
SIM_NOT_YET = frozenset({"NOT READY"})
#: `+CME ERROR` codes for a SIM that is not there or broken.
CME_NO_SIM = {10: "no SIM in the slot", 13: "the SIM card failed", 15: "wrong SIM"}
CME_LOCKED = {5: "PH-SIM PIN", 11: "SIM PIN", 12: "SIM PUK", 17: "SIM PIN2", 18: "SIM PUK2"}
CMS_NO_SIM = {310: "no SIM in the slot", 313: "the SIM card failed", 315: "wrong SIM"}
#: What an operator should do about each locked state.
LOCKED_DETAIL = {
    "SIM PIN": "the SIM asks for its PIN: set `pin` for this modem in the configuration",
    "SIM PUK": "the SIM is PUK-locked: unlock it in a phone, then put it back",
    "PH-SIM PIN": "the modem is locked to another SIM (PH-SIM PIN): unlock the modem",
    "SIM PIN2": "the SIM asks for PIN2",
    "SIM PUK2": "the SIM asks for PUK2",
}


@dataclass(frozen=True, slots=True)
class SimCheck:
    """Whether the SIM is ready; if not, why, in words an operator can act on."""

    ready: bool
    detail: str | None = None
    pin_rejected: bool = False


@dataclass(frozen=True, slots=True)
class SimIdentity:
    """ICCID (normalised), IMSI and the home network MCC+MNC."""

    iccid: str
    iccid_source: str
    iccid_luhn_valid: bool | None
    imsi: str | None
    mccmnc: str | None


async def wait_for_sim(
    link: ModemLink, *, pin: str | None, pin_allowed: bool, ready_seconds: float
) -> SimCheck:
    """Ask `+CPIN?` until READY, backing off while the SIM is busy (F19); enter `pin` once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ready_seconds
    backoff = link.timings.sim_busy_backoff_seconds
    pin_entered = False
    while True:
        state = await _cpin_state(link)
        if state == "READY":
            return SimCheck(True)
        if state == "SIM PIN" and pin and pin_allowed and not pin_entered:
            pin_entered = True
            try:
                await link.run(ENTER_PIN.at(pin=pin))
                log.info("event=pin_entered port=%s", link.port)
            except AtFinalError as error:
                if not is_busy(error):
                    log.error(
                        "event=pin_rejected port=%s final=%r detail=%r",
                        link.port,
                        error.final_line,
                        "the configured PIN was refused and will not be tried again",
                    )
                    return SimCheck(
                        False,
                        "the SIM refused the configured PIN; fix `pin` and restart "
                        "(it is not retried, to keep the SIM from locking)",
                        pin_rejected=True,
                    )
                pin_entered = False
            continue
        if state in LOCKED_DETAIL:
            return SimCheck(False, LOCKED_DETAIL[state])
        if state.startswith("NO SIM:"):
            return SimCheck(False, state.removeprefix("NO SIM:").strip())
        # busy or NOT READY: ask again after a pause, until the deadline
        if loop.time() + backoff > deadline:
            return SimCheck(False, f"the SIM stays not ready ({state}); is it seated well?")
        log.info("event=sim_not_ready port=%s state=%r retry_in_s=%.2f", link.port, state, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, link.timings.sim_busy_backoff_max_seconds)


async def _cpin_state(link: ModemLink) -> str:
    """`READY`, a locked state, `BUSY`, `NOT READY`, or `NO SIM: <why>`."""
    try:
        code = await link.run(READ_PIN_STATE)
    except CmeError as error:
        if error.code in CME_NO_SIM:
            return f"NO SIM: {CME_NO_SIM[error.code]}"
        if is_busy(error):
            return "BUSY"
        if error.code in CME_LOCKED:
            return CME_LOCKED[error.code]
        return f"NO SIM: the SIM check failed ({error.text})"
    except CmsError as error:
        if error.code in CMS_NO_SIM:
            return f"NO SIM: {CMS_NO_SIM[error.code]}"
        return "BUSY"
    if code is None:
        return "BUSY"
    if code in ("NOT INSERTED", "REMOVED"):
        return "NO SIM: no SIM in the slot"
    return code


async def read_iccid(link: ModemLink, profile: ModelProfile) -> tuple[str, str, bool | None]:
    """(ICCID, the command that gave it, Luhn check): `+CRSM` first, vendor forms after."""
    doubtful: tuple[str, str, bool | None] | None = None
    vendor = (READ_VENDOR_ICCID.at(command=text) for text in profile.iccid_order)
    for command in (READ_ICCID, *vendor):
        iccid = await link.run_optional(command)
        if iccid is None:
            continue
        if iccid.luhn_valid is False:
            doubtful = doubtful or (iccid.value, command.text, False)
            continue
        return iccid.value, command.text, iccid.luhn_valid
    if doubtful is not None:
        log.warning(
            "event=iccid_luhn_failed port=%s iccid=%s detail=%r",
            link.port,
            doubtful[0],
            "every ICCID read failed its check digit; using it anyway",
        )
        return doubtful
    raise ReplyParseError(
        "the modem gives no ICCID by +CRSM or any vendor command; is the SIM seated?",
        port=link.port,
    )


async def read_sim_identity(link: ModemLink, profile: ModelProfile) -> SimIdentity:
    iccid, source, luhn_valid = await read_iccid(link, profile)
    imsi = None
    try:
        imsi = await link.run_optional(READ_IMSI)
    except UnparsedReply as error:
        log.warning("event=imsi_unreadable port=%s lines=%r", link.port, error.lines)
    mccmnc = await _home_network(link, imsi) if imsi else None
    return SimIdentity(iccid, source, luhn_valid, imsi, mccmnc)


async def _home_network(link: ModemLink, imsi: str) -> str | None:
    """MCC+MNC of the IMSI: MNC length from EF_AD, else python-stdnum's table."""
    mnc_length = await link.run_optional(READ_MNC_LENGTH)
    if mnc_length is not None:
        return imsi[: 3 + mnc_length]
    try:
        info = stdnum_imsi.info(imsi)
    except Exception:  # an IMSI the table does not know
        return None
    mcc, mnc = info.get("mcc"), info.get("mnc")
    return f"{mcc}{mnc}" if mcc and mnc else None
