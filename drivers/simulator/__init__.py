"""Simulated GSM modems behind real pseudo-terminals, for tests and `simfarm demo`."""

from .control import (
    ControlError,
    ControlServer,
    send_control,
    send_control_async,
    serve_control,
)
from .farm import SimulatedFarm, UnknownModem, make_demo_farm, with_serial
from .modem import PowerState, SimulatedModem
from .profiles import (
    E160,
    E303,
    E3372,
    EC25,
    PROFILES,
    SIM800,
    SIM7600,
    Profile,
    UssdEncoding,
    profile_by_name,
)
from .serial_probe import AtReply, SerialProbe
from .sim_card import SimCard, SimState, iccid_is_valid, iccid_to_ef, make_iccid, make_sim
from .storage import MessageStat, StoredMessage
from .testing import running_modem
from .transcript import Transcript, TranscriptEntry

__all__ = [
    "E160",
    "E303",
    "E3372",
    "EC25",
    "PROFILES",
    "SIM800",
    "SIM7600",
    "AtReply",
    "ControlError",
    "ControlServer",
    "MessageStat",
    "PowerState",
    "Profile",
    "SerialProbe",
    "SimCard",
    "SimState",
    "SimulatedFarm",
    "SimulatedModem",
    "StoredMessage",
    "Transcript",
    "TranscriptEntry",
    "UnknownModem",
    "UssdEncoding",
    "iccid_is_valid",
    "iccid_to_ef",
    "make_demo_farm",
    "make_iccid",
    "make_sim",
    "profile_by_name",
    "running_modem",
    "send_control",
    "send_control_async",
    "serve_control",
    "with_serial",
]
