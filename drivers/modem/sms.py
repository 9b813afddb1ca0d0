"""SMS reception: `+CMTI` hints, the periodic storage sweep, read -> persist -> delete.

Every PDU found on the modem is handed to `events.sms_received` and only deleted (`AT+CMGD=<i>`,
one index, never a bulk delete) once that returned. A bounded set of fingerprints of what was
handed over keeps the same message, read via `+CMT`, `+CMGR` and `+CMGL`, from being handed
over twice — also when its delete failed and the next sweep finds it again (F9, F10). Hints are
only hints: an empty slot or `+CMS ERROR: 321` just asks for a sweep (F12), and the sweep lists
every memory in use whatever `+CPMS?` says, so a lagging count loses nothing (F13).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.at.commands import ACK_SMS, DELETE_SMS, LIST_SMS, READ_SMS, SELECT_STORAGE
from drivers.at.errors import AtCommandError, CmeError, CmsError, ReplyParseError
from drivers.at.lines import Urc
from drivers.at.replies import parse_cmti
from drivers.events import DriverEvents, ReceivedPdu, pdu_fingerprint
from drivers.modem.init import SmsSetup
from drivers.modem.link import ModemLink

if TYPE_CHECKING:
    from drivers.sms.pdu import SmsDeliver

log = logging.getLogger(__name__)

#: Fingerprints of handed-over PDUs kept to suppress duplicates (far more than any storage).
RECENT_FINGERPRINTS = 2048
#: Hints (and routed PDUs) waiting for the worker; more are dropped: the sweep finds them.
MAX_PENDING_HINTS = 512
MAX_PENDING_ROUTED = 512
#: Storage alarm thresholds (share of slots used): WARNING on the way up.
STORAGE_HALF = 0.5
CMS_INVALID_INDEX = 321


@dataclass(frozen=True, slots=True)
class Hint:
    memory: str
    index: int
    seen_at: float  # loop time


def decode(pdu_hex: str) -> tuple[SmsDeliver | None, str | None]:
    """(the SMS-DELIVER, None) or (None, why not): never raises, never drops anything."""
    try:
        from drivers.sms import pdu as codec
    except ImportError as error:  # the codec is missing: hand the PDU over raw
        return None, f"PDU codec unavailable: {error}"
    try:
        message = codec.decode_pdu(pdu_hex)
    except codec.PduError as error:
        return None, f"undecodable PDU: {error}"
    except Exception as error:  # a codec bug must not cost the message
        log.exception("event=pdu_decoder_failed")
        return None, f"PDU decoder failed: {type(error).__name__}: {error}"
    if isinstance(message, codec.SmsDeliver):
        return message, None
    kind = type(message).__name__
    what = {"SmsStatusReport": "a status report", "SmsSubmit": "a stored SMS-SUBMIT"}.get(
        kind, kind
    )
    return None, f"not an SMS-DELIVER: {what}"


def storage_level(used: int, total: int) -> int:
    """0 fine, 1 more than half used, 2 full."""
    if total <= 0:
        return 0
    if used >= total:
        return 2
    return 1 if used / total > STORAGE_HALF else 0


class SmsReceiver:
    """One modem's receive path. The driver's single worker task calls the async methods."""

    def __init__(
        self,
        port: str,
        events: DriverEvents,
        *,
        on_delivered: Callable[[SmsDeliver], None] | None = None,
    ) -> None:
        self.port = port
        self.events = events
        self.on_delivered = on_delivered
        self.hints: deque[Hint] = deque()
        self.routed: deque[tuple[str, float]] = deque()  # (PDU, received_at)
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.storage: dict[str, tuple[int, int]] = {}
        self.alarm_levels: dict[str, int] = {}
        self.current_memory: str | None = None
        self.zero_based: bool | None = None
        self.sweep_wanted = False  # a stale hint asks for a sweep soon
        self.last_sms_at: float | None = None
        self.handed_over = 0
        self.wake: Callable[[], None] = lambda: None

    # -- from the reader (listeners: no I/O, just note what happened) -------------------------

    def on_cmti(self, urc: Urc) -> None:
        try:
            indication = parse_cmti(urc.line)
        except ReplyParseError:
            log.warning("event=cmti_unparsed port=%s line=%r", self.port, urc.line)
            self.sweep_wanted = True
            self.wake()
            return
        if len(self.hints) >= MAX_PENDING_HINTS:
            self.sweep_wanted = True
        else:
            loop_time = asyncio.get_running_loop().time()
            self.hints.append(Hint(indication.memory, indication.index, loop_time))
        self._note_index(indication.index)
        self.wake()

    def on_cmt(self, urc: Urc) -> None:
        log.warning(
            "event=sms_routed port=%s detail=%r",
            self.port,
            "the modem routed an SMS (+CMT) instead of storing it; routing mode should be off",
        )
        if urc.pdu is None:
            log.error("event=cmt_without_pdu port=%s line=%r", self.port, urc.line)
            return
        if len(self.routed) >= MAX_PENDING_ROUTED:
            log.error("event=routed_queue_full port=%s", self.port)
            return
        self.routed.append((urc.pdu.strip().upper(), time.time()))
        self.wake()

    def forget_memory_selection(self) -> None:
        """After a reboot or re-init the modem's `+CPMS` memories are unknown."""
        self.current_memory = None

    # -- handing over --------------------------------------------------------------------------

    async def hand_over(
        self, pdu: str, *, iccid: str, storage: str | None, index: int | None, received_at: float
    ) -> bool:
        """True when the PDU is persisted by the farm (now or before); False: keep it."""
        fingerprint = pdu_fingerprint(iccid, pdu)
        if fingerprint in self.recent:
            log.info(
                "event=sms_duplicate port=%s storage=%s index=%s fingerprint=%s",
                self.port,
                storage,
                index,
                fingerprint,
            )
            return True
        deliver, error = decode(pdu)
        sms = ReceivedPdu(self.port, iccid, pdu, storage, index, received_at, deliver, error)
        try:
            await self.events.sms_received(sms)
        except Exception as failure:
            log.warning(
                "event=sms_persist_failed port=%s storage=%s index=%s error=%r detail=%r",
                self.port,
                storage,
                index,
                str(failure),
                "left on the modem; handed over again by a later sweep",
            )
            return False
        self.recent[fingerprint] = None
        while len(self.recent) > RECENT_FINGERPRINTS:
            self.recent.popitem(last=False)
        self.handed_over += 1
        self.last_sms_at = time.time()
        log.info(
            "event=sms_received port=%s storage=%s index=%s sender=%s parts=%s fingerprint=%s%s",
            self.port,
            storage,
            index,
            deliver.sender if deliver is not None else None,
            f"{deliver.concat.seq}/{deliver.concat.total}"
            if deliver is not None and deliver.concat is not None
            else "1/1",
            fingerprint,
            f" decode_error={error!r}" if error else "",
        )
        if deliver is not None:
            log.debug("event=sms_text port=%s index=%s text=%r", self.port, index, deliver.text)
            if self.on_delivered is not None:
                self.on_delivered(deliver)
        return True

    # -- the worker's jobs ---------------------------------------------------------------------

    async def handle_routed(self, link: ModemLink, iccid: str, setup: SmsSetup | None) -> None:
        """Persist routed `+CMT` PDUs, then acknowledge them if the modem expects `+CNMA`."""
        while self.routed:
            pdu, received_at = self.routed[0]
            persisted = await self.hand_over(
                pdu, iccid=iccid, storage=None, index=None, received_at=received_at
            )
            if not persisted:
                return  # kept in memory (and un-acked): retried with the next sweep
            self.routed.popleft()
            if setup is not None and setup.cnma_needed:
                await link.accepts(ACK_SMS)

    async def handle_hints(self, link: ModemLink, iccid: str) -> None:
        """Read each hinted index; an empty slot or CMS 321 turns into a sweep request."""
        while self.hints:
            hint = self.hints.popleft()
            try:
                await self.select_memory(link, hint.memory)
                message = await link.run(READ_SMS.at(index=hint.index))
            except (CmsError, CmeError, AtCommandError) as error:
                log.info(
                    "event=hint_stale port=%s storage=%s index=%d final=%r",
                    self.port,
                    hint.memory,
                    hint.index,
                    str(error),
                )
                self.sweep_wanted = True
                continue
            if message is None:
                log.info(
                    "event=hint_stale port=%s storage=%s index=%d final=empty",
                    self.port,
                    hint.memory,
                    hint.index,
                )
                self.sweep_wanted = True
                continue
            await self._take(link, message.pdu, iccid=iccid, memory=hint.memory, index=hint.index)

    async def sweep(self, link: ModemLink, setup: SmsSetup, iccid: str) -> None:
        """List every memory in use, hand over and delete what is there; update usage."""
        started = asyncio.get_running_loop().time()
        self.sweep_wanted = False
        for memory in setup.swept:
            used, total = await self.select_memory(link, memory, force=True)
            listed = await self._list(link, memory, total)
            removed = 0
            for index, pdu in listed:
                if await self._take(link, pdu, iccid=iccid, memory=memory, index=index):
                    removed += 1
            self._usage(memory, max(used, len(listed)), total, after=len(listed) - removed)
        self.hints = deque(hint for hint in self.hints if hint.seen_at > started)

    # -- pieces --------------------------------------------------------------------------------

    async def select_memory(
        self, link: ModemLink, memory: str, *, force: bool = False
    ) -> tuple[int, int]:
        """Make `memory` the one `+CMGR`/`+CMGL`/`+CMGD` work on; (used, total) when asked."""
        if not force and self.current_memory == memory:
            return self.storage.get(memory, (0, 0))
        counts = await link.run(SELECT_STORAGE.at(memory=memory))
        self.current_memory = memory
        if counts is None:
            return self.storage.get(memory, (0, 0))
        return counts.used, counts.total

    async def _list(self, link: ModemLink, memory: str, total: int) -> list[tuple[int, str]]:
        """(index, PDU) of everything in `memory`: `+CMGL=4`, else a walk with `+CMGR`."""
        try:
            entries = await link.run(LIST_SMS)
        except (AtCommandError, CmeError) as error:
            log.info("event=cmgl_refused port=%s storage=%s final=%r", self.port, memory, error)
            return await self._walk(link, memory, total)
        listed = []
        for header, entry in entries:
            if entry is None:
                log.warning("event=cmgl_entry_unparsed port=%s header=%r", self.port, header)
                continue
            self._note_index(entry.index)
            listed.append((entry.index, entry.pdu))
        return listed

    async def _walk(self, link: ModemLink, memory: str, total: int) -> list[tuple[int, str]]:
        """Read every slot; index 0 is tried too, so 0-based modems (Huawei) are covered (F12)."""
        found = []
        for index in range(0, total + 1):
            try:
                message = await link.run(READ_SMS.at(index=index))
            except (CmsError, CmeError, AtCommandError):
                continue
            if message is not None:
                self._note_index(index)
                found.append((index, message.pdu))
        log.info("event=storage_walked port=%s storage=%s found=%d", self.port, memory, len(found))
        return found

    async def _take(
        self, link: ModemLink, pdu: str, *, iccid: str, memory: str, index: int
    ) -> bool:
        """Hand over, then delete that one index; True when the slot is free afterwards."""
        persisted = await self.hand_over(
            pdu, iccid=iccid, storage=memory, index=index, received_at=time.time()
        )
        if not persisted:
            return False
        try:
            await link.run(DELETE_SMS.at(index=index))
        except (CmsError, CmeError, AtCommandError) as error:
            if isinstance(error, CmsError) and error.code == CMS_INVALID_INDEX:
                return True  # already gone
            log.warning(
                "event=sms_delete_failed port=%s storage=%s index=%d final=%r",
                self.port,
                memory,
                index,
                error.final_line,
            )
            return False
        return True

    def _note_index(self, index: int) -> None:
        if index == 0 and not self.zero_based:
            self.zero_based = True
            log.info("event=zero_based_indexes port=%s", self.port)

    def _usage(self, memory: str, peak: int, total: int, *, after: int) -> None:
        level = storage_level(peak, total)
        if level > self.alarm_levels.get(memory, 0):
            log.warning(
                "event=storage_alarm port=%s storage=%s used=%d total=%d detail=%r",
                self.port,
                memory,
                peak,
                total,
                "storage full: the network holds new SMS back until space is freed"
                if level == 2
                else "storage more than half full",
            )
        self.alarm_levels[memory] = storage_level(after, total)
        self.storage[memory] = (max(after, 0), total)
