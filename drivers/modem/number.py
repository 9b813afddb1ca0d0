"""The SIM's own number: the discovery ladder of playbook §2.7, and number normalisation.

Rungs, in order: `+CNUM`; the `ON` phonebook; the configured ICCID -> number mapping; a USSD
code per home network (MCC+MNC). Some operators answer that USSD with an SMS instead: then the
ladder returns an `SmsNumberWait`, and the driver checks the SMS it hands over in that window.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import phonenumbers
from stdnum import imsi as stdnum_imsi

from drivers.at.commands import (
    CANCEL_USSD,
    READ_FIRST_BOOK_ENTRY,
    READ_OWN_NUMBERS,
    SELECT_OWN_NUMBER_BOOK,
    SEND_USSD,
)
from drivers.at.errors import AtFinalError, ReplyParseError, UnparsedReply
from drivers.at.replies import parse_cusd
from drivers.modem.link import ModemLink
from drivers.modem.settings import DriverSettings, UssdRule

log = logging.getLogger(__name__)

#: `+CUSD` statuses: 1 = the network wants an answer (we cancel the session).
USSD_FURTHER_ACTION = 1
USSD_DCS_GSM7 = 15


@dataclass(frozen=True, slots=True)
class NumberFound:
    number: str  # digits with country code, no "+"
    source: str  # cnum | phonebook | config | ussd


@dataclass(frozen=True, slots=True)
class SmsNumberWait:
    """The operator will answer the USSD by SMS: match SMS texts against `pattern` until then."""

    pattern: str
    deadline: float  # loop time


def region_of_imsi(imsi: str | None) -> str | None:
    """ISO region (e.g. "DE") of the SIM's home network, from the IMSI's MCC."""
    if not imsi:
        return None
    try:
        country = stdnum_imsi.info(imsi).get("cc")
    except Exception:  # an IMSI the table does not know
        return None
    return country.upper() if isinstance(country, str) and len(country) == 2 else None


def normalise_number(raw: str, imsi: str | None) -> str | None:
    """Digits with country code, or None when `raw` is no phone number we can be sure of.

    A national form is read with the IMSI's country; digits without "+" that start with that
    country's calling code are first tried as an international number. No country code is
    ever prepended on a guess: only forms that phonenumbers calls valid are accepted.
    """
    text = re.sub(r"[\s\-().]", "", raw.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if not re.fullmatch(r"\+?\d{3,17}", text):
        return None
    if text.startswith("+"):
        return _valid_e164(text, None)
    region = region_of_imsi(imsi)
    if region is None:
        return _valid_e164("+" + text, None)
    calling_code = str(phonenumbers.country_code_for_region(region))
    candidates = [(text, region), ("+" + text, None)]
    if text.startswith(calling_code):
        candidates.reverse()
    for number, hint in candidates:
        found = _valid_e164(number, hint)
        if found is not None:
            return found
    return None


def _valid_e164(number: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


def number_from_text(text: str, pattern: str, imsi: str | None) -> str | None:
    """The number the operator's reply carries, by the configured regex's first group."""
    try:
        match = re.search(pattern, text)
    except re.error as error:
        log.error("event=ussd_pattern_invalid pattern=%r error=%r", pattern, str(error))
        return None
    if match is None:
        return None
    raw = match.group(1) if match.groups() else match.group(0)
    return normalise_number(raw, imsi)


async def discover_number(
    link: ModemLink,
    settings: DriverSettings,
    *,
    iccid: str,
    imsi: str | None,
    mccmnc: str | None,
    registered: bool,
) -> NumberFound | SmsNumberWait | None:
    """Climb the ladder; None when no rung knows the number."""
    for source, rung in (("cnum", _from_cnum), ("phonebook", _from_phonebook)):
        raw = await rung(link)
        number = normalise_number(raw, imsi) if raw else None
        if number is not None:
            return NumberFound(number, source)
        if raw:
            log.warning("event=number_unusable port=%s source=%s raw=%r", link.port, source, raw)
    configured = settings.known_number(iccid)
    if configured:
        number = normalise_number(configured, imsi)
        if number is not None:
            return NumberFound(number, "config")
        log.warning("event=number_unusable port=%s source=config raw=%r", link.port, configured)
    rule = settings.ussd.get(mccmnc) if mccmnc else None
    if rule is None or not registered:
        return None
    return await _from_ussd(link, rule, imsi)


async def _from_cnum(link: ModemLink) -> str | None:
    try:
        entries = await link.run_optional(READ_OWN_NUMBERS)
    except UnparsedReply as error:
        log.info("event=cnum_unparsed port=%s lines=%r", link.port, error.lines)
        return None
    return entries[0].number if entries else None


async def _from_phonebook(link: ModemLink) -> str | None:
    if not await link.accepts(SELECT_OWN_NUMBER_BOOK):
        return None
    entry = await link.run_optional(READ_FIRST_BOOK_ENTRY)
    return (entry.number or None) if entry is not None else None


async def _from_ussd(
    link: ModemLink, rule: UssdRule, imsi: str | None
) -> NumberFound | SmsNumberWait | None:
    """Send the operator's code; read the number from the `+CUSD` reply (or wait for an SMS)."""
    timings = link.timings
    loop = asyncio.get_running_loop()
    answer = link.engine.urc_future("+CUSD")
    try:
        line = await link.run(SEND_USSD.at(code=rule.code, dcs=USSD_DCS_GSM7))
        if rule.reply_by_sms:
            log.info("event=ussd_sent port=%s code=%s answer=sms", link.port, rule.code)
            return SmsNumberWait(rule.pattern, loop.time() + timings.ussd_sms_window_seconds)
        if line is None:
            async with asyncio.timeout(timings.ussd_seconds):
                line = (await answer).line
    except TimeoutError:
        log.warning("event=ussd_no_answer port=%s code=%s", link.port, rule.code)
        await link.accepts(CANCEL_USSD)
        return None
    except AtFinalError as error:
        log.warning("event=ussd_refused port=%s code=%s final=%r", link.port, rule.code, error)
        return None
    finally:
        answer.cancel()  # no-op when it came; the engine forgets the waiter either way
    try:
        parsed = parse_cusd(line)
    except ReplyParseError:
        log.warning("event=ussd_unparsed port=%s line=%r", link.port, line)
        return None
    if parsed.status == USSD_FURTHER_ACTION:
        await link.accepts(CANCEL_USSD)
    number = number_from_text(parsed.text, rule.pattern, imsi)
    if number is None:
        log.warning(
            "event=ussd_no_number port=%s code=%s status=%d decoding=%s",
            link.port,
            rule.code,
            parsed.status,
            parsed.decoding,
        )
        return None
    return NumberFound(number, "ussd")
