"""What a modem driver knows, as one frozen value, and the pure functions that change and report it.

The worker does the I/O; every fact it learns replaces the driver's `ModemFacts` with a new value
(`dataclasses.replace` or one of the transitions below). What the farm sees, `status_of(facts)`,
is a pure function of that value, so the rules of READY can be tested without a modem or a pty.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass

from drivers.events import ModemState, ModemStatus
from drivers.modem.init import ModemIdentity, SmsSetup
from drivers.modem.network import REGISTERED_WORDS
from drivers.modem.number import NumberFound, SmsNumberWait
from drivers.modem.sim import SimCheck, SimIdentity

#: Why a modem whose SIM is ready, registered and swept is still not READY.
NUMBER_UNKNOWN_DETAIL = (
    "the SIM's number is unknown: configure [sims.<ICCID>] number, or a USSD rule for its network"
)
HELD_DETAIL = "held for a SIM switch"


class Phase(enum.Enum):
    """Where the driver is in its life; in RUNNING the reported state follows from the facts."""

    STARTING = "starting"  # created, the worker has not begun
    RUNNING = "running"  # the worker drives the modem: SIM, registration, sweep, number decide
    HELD = "held"  # parked, the port handed over for a SIM switch
    RECOVERING = "recovering"  # climbing the recovery ladder
    DEAD = "dead"  # the ladder is exhausted; retried rarely
    GONE = "gone"  # the port vanished


#: The state each phase but RUNNING reports, whatever else is known.
PHASE_STATES: dict[Phase, ModemState] = {
    Phase.STARTING: ModemState.STARTING,
    Phase.HELD: ModemState.STARTING,
    Phase.RECOVERING: ModemState.RECOVERING,
    Phase.DEAD: ModemState.DEAD,
    Phase.GONE: ModemState.GONE,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModemFacts:
    """Everything the driver knows about its modem and SIM at one moment.

    The counters have no default: whoever builds facts must say what they are, so a status can
    never forget one.
    """

    port: str
    phase: Phase = Phase.STARTING
    detail: str | None = None  # the words of the last phase change or restart
    # identity and SIM
    identity: ModemIdentity | None = None
    sim_check: SimCheck | None = None  # None: not asked since the last (re)init
    pin_rejected: bool = False  # the configured PIN was refused once: never enter it again
    sim: SimIdentity | None = None
    # setup and the receive path
    setup: SmsSetup | None = None
    swept: bool = False  # a storage sweep succeeded since the last (re)init
    restart_seen_at: float | None = None  # loop time of the last reboot/ready URC
    port_lost: bool = False
    # network and number
    registration: str | None = None  # the RegistrationBook's summary word
    operator: str | None = None
    rssi: int | None = None
    number: NumberFound | None = None
    number_iccid: str | None = None  # the SIM `number` belongs to
    number_wait: SmsNumberWait | None = None  # the operator answers the number USSD by SMS
    # reception and counters (sampled from the receiver, the engine and the ladder)
    storage: Mapping[str, tuple[int, int]]
    last_sweep_at: float | None = None
    last_sms_at: float | None
    timeouts: int
    recoveries: Mapping[str, int]

    @property
    def sim_ready(self) -> bool:
        """The SIM answered READY and its identity is read: there is something to sweep."""
        return self.sim_check is not None and self.sim_check.ready and self.sim is not None

    @property
    def registered(self) -> bool:
        return self.registration in REGISTERED_WORDS


def initial_facts(port: str) -> ModemFacts:
    """A driver that has not talked to its modem yet."""
    return ModemFacts(port=port, storage={}, last_sms_at=None, timeouts=0, recoveries={})


# -- transitions: facts -> event -> facts ---------------------------------------------------------


def worker_started(facts: ModemFacts) -> ModemFacts:
    """The worker (re)starts driving: the facts, not the phase, decide the state again."""
    return dataclasses.replace(facts, phase=Phase.RUNNING)


def bring_up_began(facts: ModemFacts) -> ModemFacts:
    """A (re)init starts: the receive path is unproven and the SIM must answer again."""
    sim_check = None if facts.sim_check is not None and facts.sim_check.ready else facts.sim_check
    return dataclasses.replace(
        facts,
        restart_seen_at=None,
        swept=False,
        sim_check=sim_check,
        setup=None,
        registration=None,
    )


def sim_identified(facts: ModemFacts, sim: SimIdentity) -> ModemFacts:
    """The SIM's identity was read; a number known for another SIM is forgotten."""
    if facts.number_iccid != sim.iccid:
        return dataclasses.replace(facts, sim=sim, number=None, number_wait=None)
    return dataclasses.replace(facts, sim=sim)


def number_found(facts: ModemFacts, number: NumberFound) -> ModemFacts:
    """The number of the SIM now in the modem."""
    iccid = facts.sim.iccid if facts.sim is not None else None
    return dataclasses.replace(facts, number=number, number_iccid=iccid, number_wait=None)


def sweep_done(facts: ModemFacts, at: float) -> ModemFacts:
    """A storage sweep succeeded (`at`: wall-clock time)."""
    return dataclasses.replace(facts, swept=True, last_sweep_at=at)


def restart_urc(facts: ModemFacts, line: str, at: float) -> ModemFacts:
    """A reboot/ready URC (`at`: loop time): re-initialise once the boot burst settles."""
    if facts.phase is not Phase.RUNNING:
        return dataclasses.replace(facts, restart_seen_at=at)
    return dataclasses.replace(
        facts,
        restart_seen_at=at,
        swept=False,
        detail=f"modem restarted ({line}): re-initialising",
    )


def sim_lost(facts: ModemFacts, cpin: str, at: float) -> ModemFacts:
    """A `+CPIN:` URC says the ready SIM went away: not sellable, re-initialise."""
    return dataclasses.replace(
        facts,
        sim_check=SimCheck(False, f"the SIM went away (+CPIN: {cpin})"),
        swept=False,
        restart_seen_at=at,
    )


def held(facts: ModemFacts) -> ModemFacts:
    """The port is handed over for a SIM switch."""
    return dataclasses.replace(facts, phase=Phase.HELD, detail=HELD_DETAIL, swept=False)


def recovering(facts: ModemFacts, detail: str | None = None) -> ModemFacts:
    """The recovery ladder is being climbed (`detail`: why, when it starts)."""
    if detail is None:
        return dataclasses.replace(facts, phase=Phase.RECOVERING)
    return dataclasses.replace(facts, phase=Phase.RECOVERING, detail=detail, swept=False)


def dead(facts: ModemFacts, detail: str) -> ModemFacts:
    """The ladder is exhausted; `detail` tells the operator what to check."""
    return dataclasses.replace(facts, phase=Phase.DEAD, detail=detail)


def gone(facts: ModemFacts, why: str) -> ModemFacts:
    """The port vanished or never opened."""
    return dataclasses.replace(
        facts, phase=Phase.GONE, detail=f"{why}; the farm retries when the port is back"
    )


def restart_settled(facts: ModemFacts, now: float, settle_seconds: float) -> bool:
    """A reboot/ready URC was seen and its boot burst is over: time to re-initialise."""
    seen = facts.restart_seen_at
    return seen is not None and now - seen >= settle_seconds


# -- what the farm sees ---------------------------------------------------------------------------


def state_of(facts: ModemFacts) -> tuple[ModemState, str | None]:
    """The state and the words why, in order: phase, SIM, registration, sweep, number."""
    if facts.phase is not Phase.RUNNING:
        return PHASE_STATES[facts.phase], facts.detail
    check = facts.sim_check
    if check is None:
        return ModemState.STARTING, facts.detail or "initialising"
    if not check.ready:
        return ModemState.NO_SIM, check.detail
    if facts.sim is None:
        return ModemState.STARTING, "reading the SIM's identity"
    if not facts.registered:
        word = facts.registration or "unknown"
        return ModemState.SEARCHING, f"not registered on a network ({word})"
    if facts.restart_seen_at is not None or not facts.swept:
        return ModemState.STARTING, facts.detail or "waiting for the first storage sweep"
    if facts.number is None:
        return ModemState.STARTING, NUMBER_UNKNOWN_DETAIL
    return ModemState.READY, None


def status_of(facts: ModemFacts) -> ModemStatus:
    """The snapshot the farm is given, from the facts alone."""
    state, detail = state_of(facts)
    identity, sim, number = facts.identity, facts.sim, facts.number
    return ModemStatus(
        port=facts.port,
        state=state,
        manufacturer=identity.manufacturer if identity else None,
        model=identity.model if identity else None,
        revision=identity.revision if identity else None,
        imei=identity.imei if identity else None,
        iccid=sim.iccid if sim else None,
        imsi=sim.imsi if sim else None,
        mccmnc=sim.mccmnc if sim else None,
        number=number.number if number else None,
        number_source=number.source if number else None,
        registration=facts.registration,
        operator_code=facts.operator,
        signal_rssi=facts.rssi,
        storage=dict(facts.storage),
        last_sweep_at=facts.last_sweep_at,
        last_sms_at=facts.last_sms_at,
        detail=detail,
        timeouts=facts.timeouts,
        recoveries=dict(facts.recoveries),
    )
