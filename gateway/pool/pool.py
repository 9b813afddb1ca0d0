"""The number pool: which numbers are live, which are leased, which may be issued for what.

The pool decides in memory and persists before it answers. A decision (pick a number, mark it
leased) is taken synchronously on the event loop, with no await in between, so two requests can
never take the same number; the reply is sent only after the store has committed the lease.
GET_SERVICES is served from counters that every change keeps current, never from a scan.

The farm side is plain data: a SIM came online, went offline, an SMS arrived on a SIM.
The marketplace side is plain data too: the dialect of a particular marketplace lives elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left, insort
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

from gateway.pool.records import ActivationRecord, HistoryEntry, IncomingSms, SimRecord, StoredSms
from gateway.pool.storage import Storage

log = logging.getLogger(__name__)

#: The pseudo-service a rent is counted and issued under.
RENT = "rent"
#: Statuses that bar the number for the service for good (sold; not for this service).
BARRING_STATUSES = frozenset({1, 3})
#: Statuses that free the number and count one cancelled issue (cancelled, refunded, deprecated 2).
ISSUE_STATUSES = frozenset({2, 4, 5})
VALID_STATUSES = BARRING_STATUSES | ISSUE_STATUSES


@dataclass(frozen=True, slots=True)
class OnlineSim:
    """A SIM the farm reports ready, registered, with a known number and a working SMS path."""

    iccid: str
    number: str
    country: str
    operator: str
    imsi: str | None = None
    mccmnc: str | None = None
    signal: int | None = None
    number_source: str | None = None


@dataclass(frozen=True, slots=True)
class NumberRequest:
    """A GET_NUMBER in plain data."""

    country: str
    operator: str
    service: str
    sum: float | None = None
    excluded_prefixes: tuple[str, ...] = ()

    @property
    def rent(self) -> bool:
        return self.service.lower() == RENT


@dataclass(frozen=True, slots=True)
class Issued:
    number: str
    activation_id: int


class NoNumbers(Exception):
    """No number satisfies the request right now."""


class UnknownActivation(Exception):
    """FINISH_ACTIVATION for an id this pool never issued."""


@dataclass(slots=True)
class _LiveNumber:
    """A live SIM as the pool sees it, with the per-service history that decides eligibility."""

    sim: OnlineSim
    last_issued: float
    history: dict[str, HistoryEntry] = field(default_factory=dict)
    history_loaded: bool = False

    @property
    def number(self) -> str:
        return self.sim.number


@dataclass(frozen=True, slots=True)
class PoolRules:
    """What the provider offers, from the configuration's [offer] table."""

    services: tuple[str, ...]
    rent: bool = False
    max_issues_per_service: int = 4
    min_sum: dict[str, float] = field(default_factory=dict)


class Pool:
    """Live numbers, open activations and per-service history; the single source of truth."""

    def __init__(self, store: Storage, rules: PoolRules, clock: Callable[[], float] = time.time):
        self.store = store
        self.rules = rules
        self.clock = clock
        self._offered = frozenset(rules.services)
        self._known_sims: dict[str, SimRecord] = {}
        self._live_by_iccid: dict[str, _LiveNumber] = {}
        self._live_by_number: dict[str, _LiveNumber] = {}
        # Per country, live numbers in issuing order: (last issued, -signal, number), sorted.
        # GET_NUMBER walks it from the front and usually stops at the first entry.
        self._issue_order: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
        self._issue_key: dict[str, tuple[float, int, str]] = {}
        self._open_by_number: dict[str, ActivationRecord] = {}
        self._open_by_id: dict[int, ActivationRecord] = {}
        self._finishing: dict[int, asyncio.Future[None]] = {}
        self._next_id = 1
        # (country, operator) -> service -> numbers issuable right now; includes RENT.
        self._counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        # (country, operator) -> live numbers counted there; the group is reported while > 0.
        self._group_members: Counter[tuple[str, str]] = Counter()
        self._version = 0
        self._listeners: list[Callable[[], None]] = []
        self._push_listeners: list[Callable[[], None]] = []
        self._sms_listeners: list[Callable[[StoredSms, int], None]] = []
        self._change_waiters: list[asyncio.Future[None]] = []

    # --- start-up ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Take the persisted state: known SIMs, open activations, the next activation id."""
        state = await self.store.load_state()
        self._known_sims = dict(state.sims)
        self._next_id = state.next_activation_id
        for activation in state.open_activations:
            self._open_by_number[activation.number] = activation
            self._open_by_id[activation.id] = activation
        log.info(
            "event=pool_loaded sims=%d open_activations=%d next_activation_id=%d",
            len(self._known_sims),
            len(self._open_by_id),
            self._next_id,
        )

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every change that can alter GET_SERVICES."""
        self._listeners.append(listener)

    def on_push_queued(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever an SMS was queued for PUSH_SMS."""
        self._push_listeners.append(listener)

    def on_sms_stored(self, listener: Callable[[StoredSms, int], None]) -> None:
        """Call `listener(stored, parts)` for every SMS handed in (duplicates included)."""
        self._sms_listeners.append(listener)

    # --- what the farm tells the pool -------------------------------------------------------

    async def sim_online(self, sim: OnlineSim) -> bool:
        """Offer a SIM's number. Returns False when the number is live on another SIM."""
        holder = self._live_by_number.get(sim.number)
        if holder is not None and holder.sim.iccid != sim.iccid:
            log.warning(
                "event=number_conflict number=%s iccid=%s live_iccid=%s",
                sim.number,
                sim.iccid,
                holder.sim.iccid,
            )
            return False
        known = self._known_sims.get(sim.iccid)
        record = SimRecord(
            sim.iccid,
            sim.imsi,
            sim.number,
            sim.number_source,
            sim.country,
            sim.operator,
            sim.mccmnc,
            known.last_issued if known else 0.0,
        )
        self._known_sims[sim.iccid] = record
        current = self._live_by_iccid.get(sim.iccid)
        if current is not None:
            same_place = (current.sim.number, current.sim.country, current.sim.operator) == (
                sim.number,
                sim.country,
                sim.operator,
            )
            if same_place:
                self._update(current, lambda entry: setattr(entry, "sim", sim))
                return True
            self._withdraw(current)
        # The entry exists (uncounted) from here on, so a sim_offline() that comes while we
        # wait for the disk withdraws it, and the code below notices.
        entry = _LiveNumber(sim, record.last_issued)
        self._live_by_iccid[sim.iccid] = entry
        self._live_by_number[sim.number] = entry
        self._index(entry)
        # Count nothing until its history is known: never overstate GET_SERVICES.
        try:
            history = await self.store.save_sim(record, self.clock(), self.rules.services)
        except BaseException:
            if self._live_by_iccid.get(sim.iccid) is entry:
                self._withdraw(entry)
            raise
        if self._live_by_iccid.get(sim.iccid) is not entry:
            return True  # went offline (or changed) while the history was loading
        # Finishes that happened meanwhile were applied to the (empty) in-memory history as
        # deltas; the loaded rows predate them (the store runs jobs in order), so merge.
        for service, delta in entry.history.items():
            base = history.get(service, HistoryEntry())
            history[service] = HistoryEntry(base.issues + delta.issues, base.barred or delta.barred)
        entry.history = history
        entry.history_loaded = True
        self._count(entry, +1)
        self._changed()
        log.info(
            "event=sim_online iccid=%s number=%s country=%s operator=%s",
            sim.iccid,
            sim.number,
            sim.country,
            sim.operator,
        )
        return True

    def sim_offline(self, iccid: str) -> None:
        """Withdraw a SIM at once: its number stops counting in GET_SERVICES."""
        entry = self._live_by_iccid.get(iccid)
        if entry is None:
            return
        self._withdraw(entry)
        log.info("event=sim_offline iccid=%s number=%s", iccid, entry.number)

    def sim_signal(self, iccid: str, signal: int | None) -> None:
        entry = self._live_by_iccid.get(iccid)
        if entry is not None and entry.sim.signal != signal:
            self._update(entry, lambda e: setattr(e, "sim", replace(e.sim, signal=signal)))

    async def sms_received(
        self, sms: IncomingSms, consumed_parts: tuple[str, ...] = ()
    ) -> StoredSms:
        """Store an SMS (and queue its push when its number has an open activation).

        Returns once the SMS is on disk: only then may the modem delete its copy.
        """
        known = self._known_sims.get(sms.iccid)
        number = known.number if known else None
        activation = self._open_by_number.get(number) if number else None
        stored = await self.store.store_sms(
            sms,
            number=number,
            activation=activation,
            push_at=self.clock(),
            consumed_parts=consumed_parts,
        )
        if not stored.duplicate and stored.activation_id is not None:
            for listener in self._push_listeners:
                listener()
        for sms_listener in self._sms_listeners:
            sms_listener(stored, len(consumed_parts))
        if not stored.duplicate:
            log.info(
                "event=sms_stored sms_id=%d iccid=%s number=%s activation_id=%s",
                stored.id,
                sms.iccid,
                number,
                stored.activation_id,
            )
        return stored

    # --- what the marketplace asks ----------------------------------------------------------

    def service_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """country -> operator -> service -> numbers issuable now (offered services, plus rent)."""
        services = list(self.rules.services) + ([RENT] if self.rules.rent else [])
        report: dict[str, dict[str, dict[str, int]]] = {}
        for (country, operator), counter in self._counts.items():
            report.setdefault(country, {})[operator] = {s: counter.get(s, 0) for s in services}
        return report

    @property
    def version(self) -> int:
        """Bumped on every change that can alter service_counts(); lets callers cache replies."""
        return self._version

    def issuable(self, request: NumberRequest) -> bool:
        """Whether this provider sells the request at all (service offered, price not too low)."""
        service = RENT if request.rent else request.service
        if request.rent:
            if not self.rules.rent:
                return False
        elif service not in self._offered:
            return False
        floor = self.rules.min_sum.get(service)
        return floor is None or (request.sum is not None and request.sum >= floor)

    async def get_number(self, request: NumberRequest) -> Issued:
        """Lease the least recently issued eligible number; durable before it returns."""
        if not self.issuable(request):
            raise NoNumbers
        entry = self._pick(request)
        if entry is None:
            raise NoNumbers
        now = self.clock()
        activation = ActivationRecord(
            id=self._next_id,
            number=entry.number,
            iccid=entry.sim.iccid,
            service=RENT if request.rent else request.service,
            rent=request.rent,
            country=entry.sim.country,
            operator=entry.sim.operator,
            sum=request.sum,
            created_at=now,
        )
        self._next_id += 1
        previous_issue = entry.last_issued

        def lease(e: _LiveNumber) -> None:
            self._open_by_number[activation.number] = activation
            self._open_by_id[activation.id] = activation
            e.last_issued = now

        self._update(entry, lease)
        try:
            await self.store.open_activation(activation)
        except Exception:
            # Not on disk, so not issued: undo and let the caller answer an error.
            self._close(activation)
            live = self._live_by_number.get(activation.number)
            if live is not None:
                self._update(live, lambda e: setattr(e, "last_issued", previous_issue))
            raise
        known = self._known_sims.get(activation.iccid)
        if known is not None:
            self._known_sims[activation.iccid] = replace(known, last_issued=now)
        log.debug(
            "event=number_issued activation_id=%d number=%s service=%s",
            activation.id,
            activation.number,
            activation.service,
        )
        return Issued(activation.number, activation.id)

    async def finish(self, activation_id: int, status: int, finish_sum: float | None) -> None:
        """Close an activation (idempotent); raises UnknownActivation for ids never issued."""
        if status not in VALID_STATUSES:
            raise ValueError(f"status must be one of {sorted(VALID_STATUSES)}")
        activation = await self._still_open(activation_id)
        if activation is None:
            await self._finish_released(activation_id, status, finish_sum)
            return
        effect = self._history_effect(activation, status)
        # The history changes in memory before the write is queued: a SIM whose history is
        # still loading then merges it as a delta, and one loaded later reads it from disk.
        undo_history = self._apply_history(activation.number, activation.service, effect)
        write = self.store.finish_activation(
            activation_id,
            status=status,
            finish_sum=finish_sum,
            finished_at=self.clock(),
            history_effect=effect,
        )
        await self._close_durably(activation, write, undo_history)
        log.debug(
            "event=activation_finished activation_id=%d number=%s status=%d",
            activation_id,
            activation.number,
            status,
        )

    @staticmethod
    def _history_effect(activation: ActivationRecord, status: int) -> str | None:
        if activation.rent:
            return None
        return "bar" if status in BARRING_STATUSES else "issue"

    async def _finish_released(
        self, activation_id: int, status: int, finish_sum: float | None
    ) -> None:
        """A FINISH for an activation the operator released: its status still counts.

        The operator's release frees the number at once; the marketplace may still report the
        sale afterwards, and a sale bars the number for the service like any other (the double
        sale `release` exists to avoid). Idempotent: only the first status is recorded.
        """
        if activation_id in self._finishing:
            await asyncio.shield(self._finishing[activation_id])
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finishing[activation_id] = future
        try:
            released = await self.store.released_activation(activation_id)
            if released is not None:
                effect = self._history_effect(released, status)
                undo = self._apply_history(released.number, released.service, effect)
                try:
                    recorded = await self.store.finish_activation(
                        activation_id,
                        status=status,
                        finish_sum=finish_sum,
                        finished_at=self.clock(),
                        history_effect=effect,
                        released=True,
                    )
                except BaseException:
                    undo()
                    raise
                if recorded:
                    log.info(
                        "event=released_activation_finished activation_id=%d number=%s status=%d",
                        activation_id,
                        released.number,
                        status,
                    )
                else:
                    undo()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved; concurrent waiters still get it raised
            raise
        else:
            future.set_result(None)
        finally:
            del self._finishing[activation_id]

    async def release(self, activation_id: int) -> ActivationRecord | None:
        """Close an activation the marketplace forgot, on the operator's word.

        No status and no effect on the number's history: the number is free again for every
        service it was free for. Returns the released activation, None when it was no longer
        open; raises UnknownActivation for ids never issued.
        """
        activation = await self._still_open(activation_id)
        if activation is None:
            return None
        write = self.store.release_activation(activation_id, self.clock())
        await self._close_durably(activation, write, lambda: None)
        log.info(
            "event=activation_released_by_operator activation_id=%d number=%s service=%s",
            activation_id,
            activation.number,
            activation.service,
        )
        return activation

    async def _still_open(self, activation_id: int) -> ActivationRecord | None:
        """The open activation with this id; None when it is closed or being closed (after
        waiting for that); UnknownActivation for an id never issued."""
        pending = self._finishing.get(activation_id)
        if pending is not None:
            await asyncio.shield(pending)  # a FINISH (or release) is on its way: it decides
            return None
        activation = self._open_by_id.get(activation_id)
        if activation is None and not await self.store.activation_known(activation_id):
            raise UnknownActivation(activation_id)
        return activation

    async def _close_durably(
        self, activation: ActivationRecord, write: Awaitable[None], undo: Callable[[], None]
    ) -> None:
        """Write an activation's end, then free its number; closers arriving meanwhile wait."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finishing[activation.id] = future
        try:
            await write
        except BaseException as exc:
            undo()
            future.set_exception(exc)
            future.exception()  # marked retrieved; concurrent waiters still get it raised
            raise
        else:
            self._close(activation)
            future.set_result(None)
        finally:
            del self._finishing[activation.id]

    def open_activation_for(self, number: str) -> ActivationRecord | None:
        return self._open_by_number.get(number)

    def open_activations(self) -> list[ActivationRecord]:
        return sorted(self._open_by_id.values(), key=lambda a: a.id)

    def live_numbers(self) -> list[OnlineSim]:
        """SIMs on offer now (online and with their history read, so counted in GET_SERVICES)."""
        return [entry.sim for entry in self._live_by_iccid.values() if entry.history_loaded]

    def known_sim(self, iccid: str) -> SimRecord | None:
        return self._known_sims.get(iccid)

    # --- internals --------------------------------------------------------------------------

    def _pick(self, request: NumberRequest) -> _LiveNumber | None:
        """The first eligible number in issuing order: least recently issued, best signal."""
        service = RENT if request.rent else request.service
        operator = request.operator
        excluded = request.excluded_prefixes
        for _, _, number in self._issue_order.get(request.country, ()):
            entry = self._live_by_number[number]
            if operator != "any" and entry.sim.operator != operator:
                continue
            if excluded and number.startswith(excluded):
                continue
            if self._eligible(entry, service):
                return entry
        return None

    def _index(self, entry: _LiveNumber) -> None:
        key = (entry.last_issued, -(entry.sim.signal or 0), entry.number)
        insort(self._issue_order[entry.sim.country], key)
        self._issue_key[entry.number] = key

    def _unindex(self, entry: _LiveNumber) -> None:
        key = self._issue_key.pop(entry.number, None)
        order = self._issue_order.get(entry.sim.country)
        if key is None or order is None:
            return
        at = bisect_left(order, key)
        if at < len(order) and order[at] == key:
            del order[at]
        if not order:
            del self._issue_order[entry.sim.country]

    def _eligible(self, entry: _LiveNumber, service: str) -> bool:
        if not entry.history_loaded or entry.number in self._open_by_number:
            return False
        if service == RENT:
            return self.rules.rent
        if service not in self._offered:
            return False
        history = entry.history.get(service)
        if history is None:
            return True
        return not history.barred and history.issues < self.rules.max_issues_per_service

    def _services_of(self, entry: _LiveNumber) -> list[str]:
        """The services this number could be issued for right now (what it adds to the counts).

        The same rules as _eligible, computed for all services at once: this runs twice on
        every change to a number, so it is on the hot path of every GET_NUMBER and FINISH.
        """
        if not entry.history_loaded or entry.sim.number in self._open_by_number:
            return []
        history = entry.history
        limit = self.rules.max_issues_per_service
        services = [
            service
            for service in self.rules.services
            if (past := history.get(service)) is None or (not past.barred and past.issues < limit)
        ]
        if self.rules.rent:
            services.append(RENT)
        return services

    def _count(self, entry: _LiveNumber, sign: int) -> None:
        group = (entry.sim.country, entry.sim.operator)
        counter = self._counts[group]
        for service in self._services_of(entry):
            counter[service] += sign
        # A group with live numbers is reported even at zero; an empty one disappears.
        self._group_members[group] += sign
        if self._group_members[group] <= 0:
            del self._group_members[group]
            del self._counts[group]

    def _update(self, entry: _LiveNumber, change: Callable[[_LiveNumber], None]) -> None:
        """Apply a change to a live number, keeping the counters and the issuing order exact."""
        live = self._live_by_iccid.get(entry.sim.iccid) is entry
        counted = live and entry.history_loaded
        if counted:
            self._count(entry, -1)
        if live:
            self._unindex(entry)
        change(entry)
        if live:
            self._index(entry)
        if counted:
            self._count(entry, +1)
        self._changed()

    def _withdraw(self, entry: _LiveNumber) -> None:
        if entry.history_loaded:
            self._count(entry, -1)
        self._unindex(entry)
        self._live_by_iccid.pop(entry.sim.iccid, None)
        if self._live_by_number.get(entry.number) is entry:
            del self._live_by_number[entry.number]
        self._changed()

    def _close(self, activation: ActivationRecord) -> None:
        def unmark(_: _LiveNumber | None = None) -> None:
            self._open_by_id.pop(activation.id, None)
            if self._open_by_number.get(activation.number) is activation:
                del self._open_by_number[activation.number]

        self._change_number(activation.number, unmark)

    def _change_number(self, number: str, change: Callable[..., None]) -> None:
        entry = self._live_by_number.get(number)
        if entry is None:
            change()
            self._changed()
        else:
            self._update(entry, change)

    def _apply_history(self, number: str, service: str, effect: str | None) -> Callable[[], None]:
        """Apply a finish's effect to a live number's history; returns how to undo it."""
        entry = self._live_by_number.get(number)
        if entry is None or effect is None:
            return lambda: None  # not live: the store holds it, read again when it comes back
        before = entry.history.get(service)

        def apply(e: _LiveNumber) -> None:
            old = e.history.get(service, HistoryEntry())
            if effect == "bar":
                e.history[service] = HistoryEntry(old.issues, True)
            else:
                e.history[service] = HistoryEntry(old.issues + 1, old.barred)

        def restore(e: _LiveNumber) -> None:
            if before is None:
                e.history.pop(service, None)
            else:
                e.history[service] = before

        self._update(entry, apply)
        return lambda: self._update(entry, restore)

    def _changed(self) -> None:
        self._version += 1
        for listener in self._listeners:
            listener()
        waiters, self._change_waiters = self._change_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until `predicate()` holds after some change; TimeoutError after `timeout` s."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not predicate():
                waiter = loop.create_future()
                self._change_waiters.append(waiter)
                await waiter


def normalise_prefixes(items: Iterable[int | str]) -> tuple[str, ...]:
    """exceptionPhoneSet items (ints or digit strings) as digit-string prefixes."""
    return tuple(str(item) for item in items)
