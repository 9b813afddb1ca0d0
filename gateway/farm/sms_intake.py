"""From PDUs read off a modem to complete SMS in the pool.

Single-part SMS go straight to the pool. Parts of a multipart SMS are kept on disk until their
group is complete (then joined in order) or until the multipart timeout passes (then what
arrived is joined, with a mark where parts are missing). Either way the driver's callback
returns only once the PDU is on disk, so the modem may delete its copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

from drivers.events import ReceivedPdu
from gateway.pool.pool import Pool
from gateway.pool.records import IncomingSms, SmsPart, StoredSms

log = logging.getLogger(__name__)

#: Stands where a part of a flushed multipart SMS never arrived.
MISSING_PART = "[…]"
#: Sender recorded for a PDU that could not be decoded at all.
UNKNOWN_SENDER = "unknown"
#: Longest pause between two looks for multipart groups that timed out.
MAX_FLUSH_INTERVAL_SECONDS = 5.0


class SmsIntake:
    """Turns the driver's PDUs into stored SMS; joins multipart groups durably."""

    def __init__(
        self,
        pool: Pool,
        *,
        multipart_timeout_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.store = pool.store
        self.multipart_timeout = multipart_timeout_seconds
        self.clock = clock

    async def received(self, pdu: ReceivedPdu) -> StoredSms | None:
        """Persist one PDU; returns the stored SMS when this PDU completed one."""
        deliver = pdu.deliver
        if deliver is None:
            # Never dropped: kept raw with the reason, for an operator to look at.
            sms = IncomingSms(
                iccid=pdu.iccid,
                fingerprint=pdu.fingerprint,
                sender=UNKNOWN_SENDER,
                text="",
                pdus=(pdu.pdu,),
                received_at=pdu.received_at,
                decode_error=pdu.decode_error or "not an SMS-DELIVER",
            )
            return await self.pool.sms_received(sms)
        concat = deliver.concat
        if concat is None or concat.total <= 1:
            sms = IncomingSms(
                iccid=pdu.iccid,
                fingerprint=pdu.fingerprint,
                sender=deliver.sender,
                text=deliver.text,
                pdus=(pdu.pdu,),
                received_at=pdu.received_at,
            )
            return await self.pool.sms_received(sms)
        part = SmsPart(
            fingerprint=pdu.fingerprint,
            group_key=f"{pdu.iccid}|{deliver.sender}|{concat.ref_bits}|{concat.ref}|{concat.total}",
            iccid=pdu.iccid,
            sender=deliver.sender,
            seq=concat.seq,
            total=concat.total,
            text=deliver.text,
            pdu=pdu.pdu,
            received_at=pdu.received_at,
        )
        waiting = await self.store.save_part(part)
        if waiting is None:
            return None  # this very part was stored before (a re-read copy)
        if {p.seq for p in waiting} >= set(range(1, part.total + 1)):
            return await self._join(waiting, complete=True)
        return None

    async def flush_stale(self) -> int:
        """Join every group that has waited longer than the multipart timeout."""
        groups = await self.store.stale_part_groups(self.clock() - self.multipart_timeout)
        for parts in groups:
            await self._join(parts, complete=False)
        return len(groups)

    async def run(self) -> None:
        """Flush timed-out groups until cancelled."""
        interval = min(MAX_FLUSH_INTERVAL_SECONDS, max(self.multipart_timeout / 4, 0.05))
        while True:
            try:
                flushed = await self.flush_stale()
                if flushed:
                    log.info("event=multipart_flushed groups=%d", flushed)
            except Exception:
                log.exception("event=multipart_flush_failed")
            await asyncio.sleep(interval)

    async def _join(self, parts: list[SmsPart], *, complete: bool) -> StoredSms:
        by_seq: dict[int, SmsPart] = {}
        for part in parts:
            by_seq.setdefault(part.seq, part)  # a duplicate part with a new fingerprint: first wins
        total = parts[0].total
        text = "".join(
            by_seq[seq].text if seq in by_seq else MISSING_PART for seq in range(1, total + 1)
        )
        fingerprints = tuple(p.fingerprint for p in parts)
        group_fingerprint = hashlib.sha256("|".join(sorted(fingerprints)).encode()).hexdigest()[:32]
        sms = IncomingSms(
            iccid=parts[0].iccid,
            fingerprint=f"multipart:{group_fingerprint}",
            sender=parts[0].sender,
            text=text,
            pdus=tuple(by_seq[seq].pdu for seq in sorted(by_seq)),
            received_at=min(p.received_at for p in parts),
            decode_error=None if complete else f"incomplete: {len(by_seq)} of {total} parts",
        )
        stored = await self.pool.sms_received(sms, consumed_parts=fingerprints)
        if not complete:
            log.warning(
                "event=multipart_incomplete sms_id=%d parts=%d total=%d",
                stored.id,
                len(by_seq),
                total,
            )
        return stored
