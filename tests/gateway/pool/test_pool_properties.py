"""The pool's invariants under random sequences of farm events, marketplace calls and restarts.

A hypothesis state machine drives a real Pool over a real Store on a SQLite file. The test keeps
its own model of what must be true (which numbers are live, which activations are open, each
number's history per service, which SMS are queued for PUSH_SMS) and after every step compares
it with both the pool and the database, read directly with sqlite3.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
)

from gateway.pool.pool import (
    RENT,
    NoNumbers,
    NumberRequest,
    OnlineSim,
    Pool,
    PoolRules,
    UnknownActivation,
)
from gateway.pool.records import IncomingSms
from gateway.pool.sqlite import Store

OFFERED = ("vk", "wa")
MIN_SUM = {"vk": 5.0}
MAX_ISSUES = 2
RULES = PoolRules(services=OFFERED, rent=True, max_issues_per_service=MAX_ISSUES, min_sum=MIN_SUM)

ICCIDS = tuple(f"89490200000000000{n:03d}" for n in range(6))
#: An ICCID the farm never announces: its SMS have no number.
STRANGER_ICCID = "89490200000000000999"
NUMBERS = (
    "4915100000001",
    "4915100000002",
    "4915100000003",
    "79160000001",
    "79160000002",
    "79160000003",
)
OPERATORS = {"germany": ("vodafone", "telekom"), "russia": ("megafon", "mts")}
PREFIXES = ("49", "4915100000001", "491510000000", "7", "79160000002", "1", "3")


def country_of(number: str) -> str:
    return "germany" if number.startswith("49") else "russia"


def make_sim(slot: int, moved_to: int | None, operator_choice: int) -> OnlineSim:
    """The SIM in `slot`, with its own number or (moved, misread) another one of the universe."""
    number = NUMBERS[slot if moved_to is None else moved_to]
    country = country_of(number)
    operator = OPERATORS[country][operator_choice]
    return OnlineSim(ICCIDS[slot], number, country, operator, signal=slot)


@dataclass
class ModelActivation:
    id: int
    number: str
    service: str
    rent: bool
    open: bool = True
    status: int | None = None


class PoolMachine(RuleBasedStateMachine):
    activations = Bundle("activations")
    fingerprints = Bundle("fingerprints")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="pool-machine-"))
        self.path = self.folder / "simfarm.db"
        self.pool = self.run(self._open_pool())
        self.fingerprint_counter = itertools.count(1)
        # The model.
        self.announced: dict[str, OnlineSim] = {}  # what the pool knows of each ICCID
        self.live: dict[str, OnlineSim] = {}
        self.by_id: dict[int, ModelActivation] = {}
        self.open_by_number: dict[str, int] = {}
        self.issues: Counter[tuple[str, str]] = Counter()
        self.barred: set[tuple[str, str]] = set()
        self.sms_by_fingerprint: dict[str, tuple[int, int | None]] = {}
        self.queued: set[int] = set()
        self.highest_id = 0

    # --- plumbing ---------------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _open_pool(self) -> Pool:
        store = await Store.open(self.path)
        pool = Pool(store, RULES)
        await pool.load()
        return pool

    def teardown(self) -> None:
        try:
            self.run(self.pool.store.close())
            self.run(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    # --- the model's rules ------------------------------------------------------------------

    def eligible(self, sim: OnlineSim, service: str) -> bool:
        if sim.number in self.open_by_number:
            return False
        if service == RENT:
            return RULES.rent
        if service not in OFFERED:
            return False
        key = (sim.number, service)
        return key not in self.barred and self.issues[key] < MAX_ISSUES

    def expected_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        report: dict[str, dict[str, dict[str, int]]] = {}
        for sim in self.live.values():
            counts = report.setdefault(sim.country, {}).setdefault(
                sim.operator, dict.fromkeys((*OFFERED, RENT), 0)
            )
            for service in counts:
                counts[service] += int(self.eligible(sim, service))
        return report

    def candidates(self, request: NumberRequest) -> set[str]:
        service = RENT if request.rent else request.service
        if request.rent:
            if not RULES.rent:
                return set()
        elif service not in OFFERED:
            return set()
        floor = MIN_SUM.get(service)
        if floor is not None and (request.sum is None or request.sum < floor):
            return set()
        return {
            sim.number
            for sim in self.live.values()
            if sim.country == request.country
            and request.operator in ("any", sim.operator)
            and self.eligible(sim, service)
            and not sim.number.startswith(request.excluded_prefixes)
        }

    # --- rules: the farm --------------------------------------------------------------------

    @rule(
        slot=st.integers(0, len(ICCIDS) - 1),
        moved_to=st.none() | st.integers(0, len(NUMBERS) - 1),
        operator_choice=st.integers(0, 1),
    )
    def sim_online(self, slot: int, moved_to: int | None, operator_choice: int) -> None:
        sim = make_sim(slot, moved_to, operator_choice)
        self.model_online(sim, self.run(self.pool.sim_online(sim)))

    def model_online(self, sim: OnlineSim, accepted: bool) -> None:
        taken = any(s.number == sim.number and i != sim.iccid for i, s in self.live.items())
        assert accepted is (not taken)
        if accepted:
            self.announced[sim.iccid] = sim
            self.live[sim.iccid] = sim

    @rule(slot=st.integers(0, len(ICCIDS) - 1))
    def sim_offline(self, slot: int) -> None:
        self.pool.sim_offline(ICCIDS[slot])
        self.live.pop(ICCIDS[slot], None)

    @rule(
        target=fingerprints,
        slot=st.integers(0, len(ICCIDS)),
        text=st.sampled_from(["Your code 1234", "Код: 5678", "🙂 99"]),
    )
    def sms_received(self, slot: int, text: str) -> str:
        iccid = ICCIDS[slot] if slot < len(ICCIDS) else STRANGER_ICCID
        fingerprint = f"fp-{next(self.fingerprint_counter)}"
        self._deliver(iccid, fingerprint, text, duplicate=False)
        return fingerprint

    @rule(fingerprint=fingerprints, slot=st.integers(0, len(ICCIDS) - 1))
    def sms_received_again(self, fingerprint: str, slot: int) -> None:
        # The same SMS read twice (a sweep after a notification, a re-read after a restart).
        self._deliver(ICCIDS[slot], fingerprint, "whatever", duplicate=True)

    def _deliver(self, iccid: str, fingerprint: str, text: str, *, duplicate: bool) -> None:
        sms = IncomingSms(
            iccid=iccid,
            fingerprint=fingerprint,
            sender="VK",
            text=text,
            pdus=("00",),
            received_at=time.time(),
        )
        stored = self.run(self.pool.sms_received(sms))
        assert stored.duplicate is duplicate
        if duplicate:
            first_id, first_activation = self.sms_by_fingerprint[fingerprint]
            assert (stored.id, stored.activation_id) == (first_id, first_activation)
        else:
            assert all(stored.id > known for known, _ in self.sms_by_fingerprint.values())
            known_sim = self.announced.get(iccid)
            activation_id = self.open_by_number.get(known_sim.number) if known_sim else None
            assert stored.activation_id == activation_id
            self.sms_by_fingerprint[fingerprint] = (stored.id, activation_id)
            if activation_id is not None:
                self.queued.add(stored.id)
        due = self.run(self.pool.store.due_pushes(time.time() + 3600, 10_000))
        assert {p.sms_id for p in due} == self.queued
        rows = self.query("SELECT count(*) FROM sms WHERE fingerprint = ?", (fingerprint,))
        assert rows == [(1,)]

    # --- rules: the marketplace -------------------------------------------------------------

    @rule(
        target=activations,
        country=st.sampled_from(["germany", "russia", "ukraine"]),
        operator=st.sampled_from(["any", "vodafone", "telekom", "megafon", "mts"]),
        service=st.sampled_from(["vk", "wa", "tg", "rent", "Rent", "xx"]),
        amount=st.sampled_from([None, 0.0, 4.99, 5.0, 12.5]),
        prefixes=st.lists(st.sampled_from(PREFIXES), max_size=3, unique=True),
    )
    def get_number(
        self, country: str, operator: str, service: str, amount: float | None, prefixes: list[str]
    ):
        request = NumberRequest(country, operator, service, amount, tuple(prefixes))
        allowed = self.candidates(request)
        try:
            issued = self.run(self.pool.get_number(request))
        except NoNumbers:
            assert not allowed, f"NO_NUMBERS although {sorted(allowed)} may be issued"
            return multiple()
        assert issued.number in allowed, f"issued {issued.number}, allowed {sorted(allowed)}"
        assert issued.activation_id > self.highest_id
        self.highest_id = issued.activation_id
        rent = request.rent
        self.by_id[issued.activation_id] = ModelActivation(
            issued.activation_id, issued.number, RENT if rent else service, rent
        )
        self.open_by_number[issued.number] = issued.activation_id
        return issued.activation_id

    @rule(
        country=st.sampled_from(["germany", "russia"]),
        service=st.sampled_from([*OFFERED, RENT]),
        statuses=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    )
    def sales(self, country: str, service: str, statuses: list[int]) -> None:
        """Whole sales in one step, so that histories reach their limits in short runs."""
        for status in statuses:
            activation_id = self.get_number(country, "any", service, 12.5, [])
            if isinstance(activation_id, int):
                self.finish(activation_id, status)

    @rule(activation_id=activations, status=st.integers(1, 5))
    def finish(self, activation_id: int, status: int) -> None:
        self.run(self.pool.finish(activation_id, status, None))
        self.model_finish(activation_id, status)

    def model_finish(self, activation_id: int, status: int) -> None:
        activation = self.by_id[activation_id]
        if not activation.open:
            return  # idempotent: a repeat changes nothing, whatever its status
        activation.open = False
        activation.status = status
        del self.open_by_number[activation.number]
        if activation.rent:
            return
        key = (activation.number, activation.service)
        if status in (1, 3):
            self.barred.add(key)
        else:
            self.issues[key] += 1

    @rule(activation_id=activations, status=st.sampled_from([0, 6, -1, 100]))
    def finish_with_bad_status(self, activation_id: int, status: int) -> None:
        with pytest.raises(ValueError):
            self.run(self.pool.finish(activation_id, status, None))

    @rule(ahead=st.integers(0, 3) | st.integers(10**6, 2**63 - 1))
    def finish_unknown(self, ahead: int) -> None:
        # Including ids the pool will issue next: not issued yet means unknown.
        activation_id = self.highest_id + 1 + ahead if ahead < 10**6 else ahead
        if activation_id in self.by_id:
            return
        with pytest.raises(UnknownActivation):
            self.run(self.pool.finish(activation_id, 4, None))

    # --- rules: the process -----------------------------------------------------------------

    @rule()
    def restart(self) -> None:
        """Close the store, open it again, load a new pool; the farm re-announces live SIMs."""
        self.run(self.pool.store.close())
        self.pool = self.run(self._open_pool())
        for sim in self.live.values():
            assert self.run(self.pool.sim_online(sim)) is True
        for iccid, sim in self.announced.items():
            known = self.pool.known_sim(iccid)
            assert known is not None and known.number == sim.number

    # --- invariants, checked after every step -----------------------------------------------

    @invariant()
    def open_activations_match(self) -> None:
        expected = {a.id: a.number for a in self.by_id.values() if a.open}
        assert {a.id: a.number for a in self.pool.open_activations()} == expected
        for number, activation_id in self.open_by_number.items():
            found = self.pool.open_activation_for(number)
            assert found is not None and found.id == activation_id

    @invariant()
    def database_agrees(self) -> None:
        doubles = self.query(
            "SELECT number, count(*) FROM activations WHERE finished_at IS NULL"
            " GROUP BY number HAVING count(*) > 1"
        )
        assert doubles == [], f"numbers in two open activations: {doubles}"
        rows = self.query("SELECT id, number, service, rent, finish_status FROM activations")
        expected = {a.id: (a.number, a.service, int(a.rent), a.status) for a in self.by_id.values()}
        assert {r[0]: r[1:] for r in rows} == expected
        history = self.query("SELECT number, service, issues, barred FROM history")
        expected_history = {
            key: (self.issues[key], int(key in self.barred))
            for key in set(self.issues) | self.barred
        }
        assert {(n, s): (i, b) for n, s, i, b in history} == expected_history
        pending = self.query("SELECT sms_id FROM push_outbox WHERE state = 'pending'")
        assert {r[0] for r in pending} == self.queued

    @invariant()
    def services_are_exact(self) -> None:
        assert self.pool.service_counts() == self.expected_counts()

    @invariant()
    def live_numbers_match(self) -> None:
        assert {s.iccid: s.number for s in self.pool.live_numbers()} == {
            i: s.number for i, s in self.live.items()
        }


class ConcurrentPoolMachine(PoolMachine):
    """The same model, plus farm events that arrive while a FINISH is being written.

    Each pair below commutes in the model (the outcome does not depend on which runs first),
    so whatever interleaving the pool's awaits produce, the model's state after both is exact.
    """

    @rule(
        slot=st.integers(0, len(ICCIDS) - 1),
        moved_to=st.none() | st.integers(0, len(NUMBERS) - 1),
        operator_choice=st.integers(0, 1),
        activation_id=PoolMachine.activations,
        status=st.integers(1, 5),
    )
    def online_while_finishing(
        self, slot: int, moved_to: int | None, operator_choice: int, activation_id: int, status: int
    ) -> None:
        sim = make_sim(slot, moved_to, operator_choice)

        async def both() -> bool:
            accepted, _ = await asyncio.gather(
                self.pool.sim_online(sim), self.pool.finish(activation_id, status, None)
            )
            return accepted

        accepted = self.run(both())
        self.model_finish(activation_id, status)
        self.model_online(sim, accepted)

    @rule(
        activation_id=PoolMachine.activations,
        status=st.integers(1, 5),
        operator_choice=st.integers(0, 1),
    )
    def replug_while_finishing(self, activation_id: int, status: int, operator_choice: int) -> None:
        """The modem holding the number is re-plugged while that number's FINISH is written."""
        number = self.by_id[activation_id].number
        holder = next((i for i, s in self.live.items() if s.number == number), None)
        if holder is not None:
            self.pool.sim_offline(holder)
            del self.live[holder]
        slot = ICCIDS.index(holder) if holder is not None else NUMBERS.index(number)
        self.online_while_finishing(
            slot, NUMBERS.index(number), operator_choice, activation_id, status
        )

    @rule(
        country=st.sampled_from(["germany", "russia"]),
        service=st.sampled_from([*OFFERED, RENT]),
        status=st.integers(1, 5),
    )
    def lease_then_replug_while_finishing(self, country: str, service: str, status: int) -> None:
        activation_id = self.get_number(country, "any", service, 12.5, [])
        if isinstance(activation_id, int):
            self.replug_while_finishing(activation_id, status, 0)

    @rule(activation_id=PoolMachine.activations, statuses=st.lists(st.integers(1, 5), min_size=2))
    def finish_racing_itself(self, activation_id: int, statuses: list[int]) -> None:
        """Repeats of one FINISH in flight at once: the first one's status is the one kept."""

        async def all_of_them() -> None:
            await asyncio.gather(*(self.pool.finish(activation_id, s, None) for s in statuses))

        self.run(all_of_them())
        self.model_finish(activation_id, statuses[0])


SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PoolMachine.TestCase.settings = SETTINGS
TestPoolProperties = PoolMachine.TestCase

ConcurrentPoolMachine.TestCase.settings = SETTINGS
TestPoolPropertiesConcurrent = ConcurrentPoolMachine.TestCase
