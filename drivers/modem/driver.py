"""The GSM modem driver: one object per serial port that brings a modem up and keeps it honest.

`ModemDriver(port_path, events, settings)`; `await driver.run()` drives the modem until it is
cancelled, and returns (state GONE) when the port disappears — the farm decides when to try
again. One worker task does all the talking, in this order of urgency: port lost, modem
restarted (re-init), routed `+CMT`, `+CMTI` hints, the storage sweep, the keep-alive probe,
polls and re-asserts. URC listeners only note what happened and wake the worker.

A SIM is READY (sellable) only when the SIM is ready, its ICCID read, it is registered (home or
roaming), its number is known, and a storage sweep succeeded since the last (re)init.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from drivers.at.commands import PROBE
from drivers.at.engine import AtEngine
from drivers.at.errors import AtError, AtTimeout, PortGone
from drivers.at.lines import Urc
from drivers.events import DriverEvents, ModemState, ModemStatus, TraceHook
from drivers.modem import facts
from drivers.modem.facts import ModemFacts, Phase
from drivers.modem.held import HeldModem
from drivers.modem.init import (
    apply_basics,
    apply_vendor_settings,
    read_identity,
    setup_network_reports,
    setup_sms,
    wake,
)
from drivers.modem.link import ModemLink
from drivers.modem.network import (
    RegistrationBook,
    query_operator,
    query_registration,
    query_signal,
    signal_bucket,
)
from drivers.modem.number import NumberFound, SmsNumberWait, discover_number, number_from_text
from drivers.modem.profiles import GENERIC, QIND_READY, READY_URCS, RESET_URCS, ModelProfile
from drivers.modem.recovery import RecoveryLadder
from drivers.modem.settings import DriverSettings
from drivers.modem.sim import read_sim_identity, wait_for_sim
from drivers.modem.sms import SmsReceiver
from drivers.modem.work import Handover, HoldRequest, Job, Request, SweepRequest

if TYPE_CHECKING:
    from drivers.sms.pdu import SmsDeliver

log = logging.getLogger(__name__)

#: Consecutive refused commands in steady state before the recovery ladder is climbed.
MAX_CONSECUTIVE_ERRORS = 3
#: `+CPIN:` URC states that mean the SIM is no longer usable.
SIM_LOST_STATES = ("NOT READY", "NOT INSERTED", "REMOVED", "SIM PIN", "SIM PUK")


async def _wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout`. Uses `asyncio.timeout`, not `wait_for`: on
    Python 3.11 `wait_for` swallows a cancellation that coincides with the event being set."""
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _raise_if_cancelling() -> None:
    """A cancellation swallowed by a library's `wait_for` (Python 3.11) still ends the worker."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class ModemDriver:
    """Brings one modem up, keeps it honest, and reports what it knows (see module docstring)."""

    def __init__(self, port_path: str, events: DriverEvents, settings: DriverSettings) -> None:
        self.port = port_path
        self.events = events
        self.settings = settings
        self.timings = settings.timings
        self._link: ModemLink | None = None
        self._trace: TraceHook | None = settings.trace
        self._ladder: RecoveryLadder | None = None
        self._earlier_timeouts = 0  # command timeouts on the ports of earlier runs
        self._wake = asyncio.Event()
        self._receiver = SmsReceiver(port_path, events, on_delivered=self._check_number_sms)
        self._receiver.wake = self._wake.set
        self._registration = RegistrationBook()
        # What the driver knows, one value replaced as facts arrive (see drivers/modem/facts.py).
        self._facts = facts.initial_facts(port_path)
        self._errors = 0
        self._due: dict[Job, float] = {}
        self._status = ModemStatus(port_path, ModemState.STARTING)
        self._published_key: ModemStatus | None = None
        self._logged_key: ModemStatus | None = None
        # Requests from whoever runs the driver (a SIM bank's rotation), served by the worker.
        self._requests: deque[Request] = deque()

    # -- what the farm sees ----------------------------------------------------------------------

    @property
    def status(self) -> ModemStatus:
        return self._status

    async def run(self) -> None:
        """Drive the modem until cancelled; returns with state GONE when the port vanished."""
        timings = self.timings
        try:
            engine = await AtEngine.open(
                self.port,
                self.settings.baudrate,
                drain_quiet_s=timings.drain_quiet_seconds,
                drain_max_s=timings.drain_max_seconds,
            )
        except PortGone as error:
            self._gone(f"cannot open the port: {error}")
            return
        try:
            self._attach(engine)
            await self._drive()
        except PortGone as error:
            self._gone(f"the port went away: {error}")
        finally:
            await engine.close()
            self._earlier_timeouts += engine.timeouts
            self._link = None

    def set_trace(self, hook: TraceHook | None) -> None:
        """Report every byte on the port to `hook` from now on (None: stop), also mid-run."""
        self._trace = hook
        if self._link is not None:
            self._install_trace(self._link.engine)

    def _install_trace(self, engine: AtEngine) -> None:
        hook = self._trace
        if hook is None:
            engine.set_transcript(None)
        else:
            engine.set_transcript(lambda way, data: hook("in" if way == "rx" else "out", data))

    async def sweep_now(self, timeout: float) -> bool:
        """Read, persist and delete everything in every swept memory now (SM and ME).

        Returns once a sweep that started after the call is done: True, or False when the SIM
        is not ready (nothing to sweep). TimeoutError when the worker does not get to it.
        """
        loop = asyncio.get_running_loop()
        request = SweepRequest(loop.create_future())
        await self._request(request, timeout)
        return request.future.result()

    @contextlib.asynccontextmanager
    async def held(self, timeout: float) -> AsyncIterator[HeldModem]:
        """Park the worker and hand over the port (for a SIM switch); on exit the modem is
        re-initialised as after a reboot: SIM, identity, storage setup, a sweep, registration.

        TimeoutError when the worker does not get to it (the modem is recovering, say).
        """
        loop = asyncio.get_running_loop()
        request = HoldRequest(loop.create_future())
        await self._request(request, timeout)
        handover = request.future.result()
        try:
            yield handover.held
        finally:
            handover.release.set()

    async def _request(self, request: Request, timeout: float) -> None:
        """Queue `request` for the worker and wait until it is served (its future is done)."""
        future = request.future
        self._requests.append(request)
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(future)
        except BaseException:
            if not future.done():
                future.cancel()
            elif isinstance(request, HoldRequest):
                request.give_back()  # handed over just as the caller gave up: give it back
            raise

    async def _serve_requests(self) -> bool:
        """The worker's side of `sweep_now` and `held`; True when a hold ended and the modem
        must be re-initialised (the other requests wait for the next round)."""
        while self._requests:
            request = self._requests.popleft()
            if request.future.done():
                continue
            if isinstance(request, SweepRequest):
                await self._serve_sweep(request)
            else:
                await self._serve_hold(request)
                return True
        return False

    async def _serve_sweep(self, request: SweepRequest) -> None:
        future = request.future
        try:
            if self._facts.sim_ready:
                await self._receive()
                await self._sweep()
        except BaseException as error:
            if not future.done():
                future.set_exception(error)
            raise
        future.set_result(self._facts.sim_ready)

    async def _serve_hold(self, request: HoldRequest) -> None:
        """Hand the port over and wait until it is given back (the driver stays HELD)."""
        release = asyncio.Event()
        held = HeldModem(self._require_link(), self._profile, self._wait_for_restart)
        self._facts = facts.held(self._facts)
        self._publish()
        request.future.set_result(Handover(held, release))
        log.info("event=modem_held port=%s", self.port)
        await release.wait()
        log.info("event=modem_released port=%s", self.port)

    # -- wiring ----------------------------------------------------------------------------------

    def _attach(self, engine: AtEngine) -> None:
        self._install_trace(engine)
        engine.on_connection_lost = self._on_connection_lost
        engine.add_listener(self._on_urc)
        self._link = ModemLink(engine, self.timings)
        if self._ladder is None:
            self._ladder = RecoveryLadder(self._link, self._wait_for_restart)
        else:
            self._ladder.link = self._link

    def _on_connection_lost(self, error: BaseException | None) -> None:
        self._facts = dataclasses.replace(self._facts, port_lost=True)
        self._wake.set()

    def _on_urc(self, urc: Urc) -> None:
        """Note what a URC means; never talks to the modem (the worker does)."""
        name = urc.name
        if name == "+CMTI":
            self._receiver.on_cmti(urc)
        elif name in ("+CMT", "+CDS"):
            self._receiver.on_cmt(urc)
        elif name in ("+CDSI", "^SMMEMFULL"):
            if name == "^SMMEMFULL":
                log.warning("event=storage_full_urc port=%s line=%r", self.port, urc.line)
            self._receiver.sweep_wanted = True
        elif name in ("+CREG", "+CGREG", "+CEREG"):
            if self._registration.update_from_line(urc.line, solicited=False):
                log.info(
                    "event=registration port=%s registration=%s",
                    self.port,
                    self._registration.summary,
                )
                self._note_registration()
                if self._facts.registered and self._facts.number is None:
                    self._due[Job.NUMBER] = 0.0
                self._publish()
        elif name == "+CPIN":
            self._on_cpin(urc.args.strip().strip('"').upper())
        elif self._is_restart(urc):
            log.info("event=modem_restart_urc port=%s line=%r", self.port, urc.line)
            now = asyncio.get_running_loop().time()
            self._facts = facts.restart_urc(self._facts, urc.line, now)
            if self._facts.phase is Phase.RUNNING:
                self._publish()
        self._wake.set()

    @staticmethod
    def _is_restart(urc: Urc) -> bool:
        if urc.name in RESET_URCS or urc.name in READY_URCS:
            return urc.name != "+CFUN" or urc.args.strip() == "1"
        return urc.name == "+QIND" and urc.args.strip().strip('"').upper() in QIND_READY

    def _on_cpin(self, state: str) -> None:
        check = self._facts.sim_check
        ready = check is not None and check.ready
        now = asyncio.get_running_loop().time()
        if state == "READY":
            if not ready:
                self._facts = dataclasses.replace(self._facts, restart_seen_at=now)
            return
        if ready and state.startswith(SIM_LOST_STATES):
            log.warning("event=sim_lost port=%s cpin=%r", self.port, state)
            self._facts = facts.sim_lost(self._facts, state, now)
            self._publish()

    def _check_number_sms(self, deliver: SmsDeliver) -> None:
        """Operators that answer the number USSD by SMS: the SMS is still handed over as usual."""
        wait, sim = self._facts.number_wait, self._facts.sim
        if wait is None or sim is None:
            return
        if asyncio.get_running_loop().time() > wait.deadline:
            return
        number = number_from_text(deliver.text or "", wait.pattern, sim.imsi)
        if number is not None:
            self._facts = facts.number_found(self._facts, NumberFound(number, "ussd"))
            log.info("event=number_found port=%s source=ussd-sms number=%s", self.port, number)
            self._publish()

    # -- the worker ------------------------------------------------------------------------------

    async def _drive(self) -> None:
        bring_up_needed = True
        self._facts = facts.worker_started(self._facts)
        while True:
            try:
                if bring_up_needed:
                    await self._bring_up()
                await self._serve()  # returns when the modem must be re-initialised
                bring_up_needed = True
                self._facts = facts.worker_started(self._facts)
            except PortGone:
                raise
            except AtError as failure:
                await self._recover(failure)
                bring_up_needed = False

    async def _bring_up(self) -> None:
        """Init per playbook §2.2, SIM, identity, network, first sweep, number."""
        link = self._require_link()
        loop = asyncio.get_running_loop()
        self._facts = facts.bring_up_began(self._facts)  # "initialising" until the SIM answers
        self._registration.clear()
        self._receiver.forget_memory_selection()
        self._publish()
        await wake(link, self.timings.wake_attempts)
        await apply_basics(link)
        identity = await read_identity(link)
        self._facts = dataclasses.replace(self._facts, identity=identity)
        profile = identity.profile
        log.info(
            "event=modem_identified port=%s manufacturer=%r model=%r imei=%s profile=%s",
            self.port,
            identity.manufacturer,
            identity.model,
            identity.imei,
            profile.name,
        )
        await apply_vendor_settings(link, profile)
        check = await wait_for_sim(
            link,
            pin=self.settings.pin,
            pin_allowed=not self._facts.pin_rejected,
            ready_seconds=self.timings.sim_ready_seconds,
        )
        self._facts = dataclasses.replace(
            self._facts,
            sim_check=check,
            pin_rejected=self._facts.pin_rejected or check.pin_rejected,
        )
        if not check.ready:
            log.warning("event=sim_not_ready port=%s detail=%r", self.port, check.detail)
            self._schedule(Job.SIM_RETRY, self.timings.sim_retry_seconds)
            await setup_network_reports(link, profile)
            self._publish()
            return
        sim = await read_sim_identity(link, profile)
        if self._facts.sim is None or self._facts.sim.iccid != sim.iccid:
            log.info(
                "event=sim_identified port=%s iccid=%s source=%s imsi=%s mccmnc=%s",
                self.port,
                sim.iccid,
                sim.iccid_source,
                sim.imsi,
                sim.mccmnc,
            )
        self._facts = facts.sim_identified(self._facts, sim)
        deadline = loop.time() + self.timings.sim_ready_seconds
        setup = await setup_sms(link, deadline)
        self._facts = dataclasses.replace(self._facts, setup=setup)
        await setup_network_reports(link, profile)
        await self._poll_network()
        self._publish()
        await self._receive()
        await self._sweep()
        self._schedule(Job.REASSERT, self.timings.reassert_seconds)
        self._schedule(Job.SIGNAL, self.settings.signal_poll_seconds)
        if self._facts.number is None:
            await self._find_number()
        self._publish()

    async def _serve(self) -> None:
        """Work through whatever is due, then sleep until the next deadline or URC.

        Returns when the modem must be re-initialised: a reboot/ready URC has settled, a hold
        ended, or it is time to look for a SIM again. Raises on a failure to recover from.
        """
        loop = asyncio.get_running_loop()
        link = self._require_link()
        while True:
            _raise_if_cancelling()
            if facts.restart_settled(self._facts, loop.time(), self.timings.reboot_settle_seconds):
                return
            try:
                if await self._serve_requests():
                    return
                await self._receive()
                if self._facts.sim_ready and (
                    self._due_now(Job.SWEEP) or self._receiver.sweep_wanted
                ):
                    await self._sweep()
                if loop.time() - link.last_answer_at >= self.settings.keepalive_seconds:
                    await link.run(PROBE)
                if self._due_now(Job.SIGNAL):
                    await self._poll_network()
                    self._schedule(Job.SIGNAL, self.settings.signal_poll_seconds)
                if self._due_now(Job.REASSERT):
                    await self._reassert()
                if (
                    self._facts.sim_ready
                    and self._facts.number is None
                    and self._due_now(Job.NUMBER)
                ):
                    await self._find_number()
                if not self._facts.sim_ready and self._due_now(Job.SIM_RETRY):
                    return
                self._errors = 0
            except AtError as error:
                if isinstance(error, (AtTimeout, PortGone)):
                    raise
                self._errors += 1
                log.warning(
                    "event=command_refused port=%s errors=%d error=%r",
                    self.port,
                    self._errors,
                    str(error),
                )
                if self._errors >= MAX_CONSECUTIVE_ERRORS:
                    self._errors = 0
                    raise
                self._schedule(Job.SWEEP, min(self.settings.sweep_seconds, 1.0))
            self._publish()
            await self._sleep_until_due(loop)

    async def _sleep_until_due(self, loop: asyncio.AbstractEventLoop) -> None:
        link = self._require_link()
        if self._facts.port_lost:
            raise PortGone("serial port lost", port=self.port)
        if self._requests:
            return
        if self._facts.sim_ready and (self._receiver.hints or self._receiver.sweep_wanted):
            return
        deadlines = [link.last_answer_at + self.settings.keepalive_seconds]
        deadlines += list(self._due.values())
        seen = self._facts.restart_seen_at
        if seen is not None:
            deadlines.append(seen + self.timings.reboot_settle_seconds)
        delay = max(0.0, min(deadlines) - loop.time())
        self._wake.clear()
        await _wait_event(self._wake, delay)
        if self._facts.port_lost:
            raise PortGone("serial port lost", port=self.port)

    async def _receive(self) -> None:
        """Routed PDUs first (they exist only in memory), then the `+CMTI` hints."""
        sim = self._facts.sim
        if not self._facts.sim_ready or sim is None:
            return
        link = self._require_link()
        await self._receiver.handle_routed(link, sim.iccid, self._facts.setup)
        await self._receiver.handle_hints(link, sim.iccid)

    async def _sweep(self) -> None:
        sim, setup = self._facts.sim, self._facts.setup
        assert sim is not None and setup is not None
        await self._receiver.sweep(self._require_link(), setup, sim.iccid)
        if not self._facts.swept:
            log.info("event=first_sweep_done port=%s storage=%s", self.port, self._receiver.storage)
        self._facts = facts.sweep_done(self._facts, time.time())
        self._schedule(Job.SWEEP, self.settings.sweep_seconds)

    async def _poll_network(self) -> None:
        link = self._require_link()
        before = self._registration.summary
        await query_registration(link, self._registration, lte=self._profile.has_lte)
        self._note_registration()
        if self._registration.summary != before:
            log.info(
                "event=registration port=%s registration=%s", self.port, self._registration.summary
            )
        operator = await query_operator(link) if self._facts.registered else None
        self._facts = dataclasses.replace(self._facts, operator=operator)
        rssi = await query_signal(link)
        self._facts = dataclasses.replace(self._facts, rssi=rssi)

    async def _reassert(self) -> None:
        """Re-send the volatile settings (F23): cheap, and other software may have changed them."""
        link = self._require_link()
        profile = self._profile
        await apply_basics(link)
        await apply_vendor_settings(link, profile)
        if self._facts.setup is not None:
            deadline = asyncio.get_running_loop().time() + self.timings.command_seconds
            setup = await setup_sms(link, deadline, self._facts.setup)
            self._facts = dataclasses.replace(self._facts, setup=setup)
            self._receiver.forget_memory_selection()
        await setup_network_reports(link, profile)
        self._schedule(Job.REASSERT, self.timings.reassert_seconds)

    async def _find_number(self) -> None:
        sim = self._facts.sim
        assert sim is not None
        self._schedule(Job.NUMBER, self.timings.number_retry_seconds)
        wait = self._facts.number_wait
        if wait is not None and asyncio.get_running_loop().time() <= wait.deadline:
            return  # the operator's SMS may still come
        found = await discover_number(
            self._require_link(),
            self.settings,
            iccid=sim.iccid,
            imsi=sim.imsi,
            mccmnc=sim.mccmnc,
            registered=self._facts.registered,
        )
        if isinstance(found, NumberFound):
            self._facts = facts.number_found(self._facts, found)
            log.info(
                "event=number_found port=%s source=%s number=%s",
                self.port,
                found.source,
                found.number,
            )
        elif isinstance(found, SmsNumberWait):
            self._facts = dataclasses.replace(self._facts, number_wait=found)
            self._schedule(Job.NUMBER, self.timings.ussd_sms_window_seconds)
        else:
            log.warning(
                "event=number_unknown port=%s iccid=%s detail=%r",
                self.port,
                sim.iccid,
                "no rung of the number ladder knew it: configure [sims.<ICCID>] number",
            )

    async def _recover(self, failure: AtError) -> None:
        """Climb the ladder until a bring-up works; DEAD in between, retried rarely."""
        ladder = self._ladder
        assert ladder is not None
        detail = f"modem stopped answering properly ({failure}); recovering"
        self._facts = facts.recovering(self._facts, detail)
        self._publish()
        while True:
            rung = await ladder.climb(self._bring_up)
            if rung is not None:
                self._facts = facts.worker_started(self._facts)
                self._publish()
                return
            detail = (
                "modem does not recover by AT commands (tried "
                f"{ladder.summary()}): check its power supply and USB cable; retried every "
                f"{self.timings.dead_retry_seconds:.0f} s"
            )
            self._facts = facts.dead(self._facts, detail)
            log.error("event=modem_dead port=%s deaths=%d", self.port, ladder.deaths)
            self._publish()
            await self._wait_for_restart(self.timings.dead_retry_seconds)
            if self._facts.port_lost:
                raise PortGone("serial port lost", port=self.port)
            self._facts = facts.recovering(self._facts)
            self._publish()

    async def _wait_for_restart(self, timeout: float) -> bool:
        """Wait up to `timeout` for a reboot/ready URC (or a lost port); True when one came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        start_mark = self._facts.restart_seen_at
        while loop.time() < deadline:
            if self._facts.port_lost:
                return False
            seen = self._facts.restart_seen_at
            if seen is not None and seen != start_mark:
                # let the boot burst finish before talking to the modem
                settle = seen + self.timings.reboot_settle_seconds - loop.time()
                if settle <= 0:
                    return True
                await asyncio.sleep(settle)
                continue
            self._wake.clear()
            if not await _wait_event(self._wake, deadline - loop.time()):
                break
        return False

    # -- state and reporting ---------------------------------------------------------------------

    @property
    def _profile(self) -> ModelProfile:
        identity = self._facts.identity
        return identity.profile if identity else GENERIC

    def _note_registration(self) -> None:
        """The registration book changed: the facts take its summary word."""
        self._facts = dataclasses.replace(self._facts, registration=self._registration.summary)

    def _schedule(self, job: Job, in_seconds: float) -> None:
        self._due[job] = asyncio.get_running_loop().time() + in_seconds

    def _due_now(self, job: Job) -> bool:
        due = self._due.get(job)
        return due is not None and asyncio.get_running_loop().time() >= due

    def _require_link(self) -> ModemLink:
        if self._link is None:
            raise PortGone("the driver has no open port", port=self.port)
        return self._link

    def _sampled(self) -> ModemFacts:
        """The facts with the counters the receiver, the engine and the ladder keep, as of now."""
        return dataclasses.replace(
            self._facts,
            storage=dict(self._receiver.storage),
            last_sms_at=self._receiver.last_sms_at,
            timeouts=self._timeouts(),
            recoveries=self._ladder.recoveries() if self._ladder else {},
        )

    def _state(self) -> tuple[ModemState, str | None]:
        return facts.state_of(self._facts)

    def _publish(self) -> None:
        """Build the snapshot; report it when something that matters changed."""
        self._facts = self._sampled()
        status = facts.status_of(self._facts)
        state, detail = status.state, status.detail
        self._status = status
        # The farm hears of every change but signal wobbles and sweeps; the log only of changes
        # an operator acts on (a new SMS or counter is logged where it happens).
        key = dataclasses.replace(
            status, signal_rssi=signal_bucket(status.signal_rssi), last_sweep_at=None
        )
        if key == self._published_key:
            return
        self._published_key = key
        logged = dataclasses.replace(key, last_sms_at=None, timeouts=0, recoveries={})
        if logged != self._logged_key:
            self._logged_key = logged
            log.info(
                "event=status port=%s state=%s iccid=%s number=%s registration=%s rssi=%s "
                "detail=%r",
                self.port,
                state,
                status.iccid,
                status.number,
                status.registration,
                status.signal_rssi,
                detail,
            )
        try:
            self.events.status_changed(status)
        except Exception:
            log.exception("event=status_listener_failed port=%s", self.port)

    def _timeouts(self) -> int:
        """Command timeouts since the driver started, over every port it opened."""
        link = self._link
        return self._earlier_timeouts + (link.engine.timeouts if link is not None else 0)

    def _gone(self, why: str) -> None:
        self._facts = facts.gone(self._facts, why)
        self._publish()
