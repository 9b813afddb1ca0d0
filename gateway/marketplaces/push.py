"""The PUSH_SMS outbox worker: every queued SMS reaches the marketplace, once.

An SMS is queued in the same transaction that stores it (see the store). This worker sends what
is due, records each outcome, and retries every `push_retry_seconds` until the marketplace says
SUCCESS or refuses for good. It never gives up silently, and after SUCCESS it never sends again;
pending pushes resume after a restart because the queue is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from gateway.marketplaces import onlinesim
from gateway.pool.records import PendingPush
from gateway.pool.storage import SmsStorage, StoreError

log = logging.getLogger(__name__)

#: Pushes taken from the outbox per round.
PUSH_BATCH = 64
#: Pushes in flight at once.
PUSH_CONCURRENCY = 16
#: Longest idle wait between outbox checks when nothing is due (a safety net; wake() is the norm).
IDLE_RECHECK_SECONDS = 30.0
#: Wait between tries while the store fails (locked, full, read-only); a fault costs only time.
STORE_RETRY_SECONDS = 1.0
USER_AGENT = "simfarm/0.1 (+PUSH_SMS)"


@dataclass(frozen=True, slots=True)
class PushSettings:
    key: str
    url: str
    rent_url: str
    retry_seconds: float = 10.0
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the marketplace answered to one push, kept until it is on disk."""

    outcome: str
    detail: str | None
    at: float
    retry_at: float | None


@dataclass(slots=True)
class PushCounters:
    pushed: int = 0
    refused: int = 0
    retried: int = 0


class PushWorker:
    """Drains the durable PUSH_SMS outbox."""

    def __init__(
        self,
        store: SmsStorage,
        settings: PushSettings,
        *,
        clock: Callable[[], float] = time.time,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.counters = PushCounters()
        self._client = client
        self._own_client = client is None
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[int] = set()
        # Answers the store could not record yet: never sent again while they wait here.
        self._unrecorded: dict[int, _Outcome] = {}
        self._store_failing = False
        self._limit = asyncio.Semaphore(PUSH_CONCURRENCY)

    def wake(self) -> None:
        """Something was queued: look at the outbox now rather than at the next due time."""
        self._wake.set()

    @property
    def stop_grace_seconds(self) -> float:
        """How long a stop waits for pushes in flight: their own timeout, and a little more."""
        return self.settings.timeout_seconds + 1

    def request_stop(self) -> None:
        """Ask run() to return once the pushes in flight are answered and recorded."""
        self._stopping = True
        self._wake.set()

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Stop the worker running as `task`, letting pushes in flight finish and be recorded.

        A push the marketplace accepted but we did not record would be sent again after a
        restart; so in-flight requests get up to their own timeout before the task is cancelled.
        """
        self.request_stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_grace_seconds)
        except TimeoutError:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        """Push until stop() or cancellation; a failing store only makes it wait and try again."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_seconds)
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    attempted = await self.push_due()
                    if attempted:
                        continue
                    await self._sleep_until_due()
                except StoreError as exc:
                    self._store_failed(exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), STORE_RETRY_SECONDS)
        finally:
            if self._own_client and self._client is not None:
                await self._client.aclose()
                self._client = None

    async def _sleep_until_due(self) -> None:
        next_at = await self.store.next_push_at()
        delay = IDLE_RECHECK_SECONDS
        if next_at is not None:
            delay = min(delay, max(0.0, next_at - self.clock()))
        if delay <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    def _store_failed(self, exc: StoreError) -> None:
        if not self._store_failing:
            log.warning(
                "event=push_store_failing error=%r unrecorded=%d detail=%r",
                str(exc),
                len(self._unrecorded),
                "pushes wait until the store works again",
            )
        self._store_failing = True

    def _store_works(self) -> None:
        if self._store_failing:
            log.info("event=push_store_back unrecorded=%d", len(self._unrecorded))
        self._store_failing = False

    async def push_due(self) -> int:
        """Send every push that is due now; returns how many were attempted.

        Raises StoreError when the store cannot be read or an earlier answer cannot be recorded.
        """
        await self._record_waiting()
        due = [
            p
            for p in await self.store.due_pushes(self.clock(), PUSH_BATCH)
            if p.sms_id not in self._in_flight and p.sms_id not in self._unrecorded
        ]
        self._store_works()
        if not due:
            return 0
        await asyncio.gather(*(self._push_one(p) for p in due))
        return len(due)

    async def _record_waiting(self) -> None:
        """Record the answers a failing store could not take before (oldest first)."""
        for sms_id, answer in list(self._unrecorded.items()):
            await self._record(sms_id, answer)
            del self._unrecorded[sms_id]

    async def _record(self, sms_id: int, answer: _Outcome) -> None:
        await self.store.record_push(
            sms_id,
            outcome=answer.outcome,
            at=answer.at,
            error=answer.detail,
            retry_at=answer.retry_at,
        )

    async def _push_one(self, push: PendingPush) -> None:
        self._in_flight.add(push.sms_id)
        try:
            async with self._limit:
                outcome, detail = await self._send(push)
            now = self.clock()
            retry_at = now + self.settings.retry_seconds if outcome == "retry" else None
            answer = _Outcome(outcome, detail, now, retry_at)
            try:
                await self._record(push.sms_id, answer)
            except StoreError as exc:
                # Kept in memory and recorded when the store is back; not sent again meanwhile.
                self._unrecorded[push.sms_id] = answer
                self._store_failed(exc)
        finally:
            self._in_flight.discard(push.sms_id)
        if outcome == "pushed":
            self.counters.pushed += 1
        elif outcome == "refused":
            self.counters.refused += 1
        else:
            self.counters.retried += 1
        log.info(
            "event=push sms_id=%d activation_id=%d outcome=%s attempt=%d detail=%s",
            push.sms_id,
            push.activation_id,
            outcome,
            push.attempts + 1,
            detail,
        )

    async def _send(self, push: PendingPush) -> tuple[str, str | None]:
        settings = self.settings
        body = onlinesim.push_sms_body(
            key=settings.key,
            sms_id=push.sms_id,
            number=push.number,
            sender=push.sender,
            text=push.text,
            rent=push.rent,
        )
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Authorization": f"Bearer {settings.key}",
        }
        url = settings.rent_url if push.rent else settings.url
        assert self._client is not None
        try:
            reply = await self._client.post(
                url,
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers=headers,
                timeout=settings.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            return "retry", f"{type(exc).__name__}: {exc}"[:200]
        try:
            payload = reply.json()
        except (ValueError, RecursionError):  # not JSON, or JSON Python cannot hold
            payload = reply.text
        return onlinesim.push_outcome(reply.status_code, payload)
