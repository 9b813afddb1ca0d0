"""SIM card data the simulated modems answer from: identity, number, state, USSD replies."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from stdnum import luhn

#: Attempts a SIM allows for a wrong PIN before it asks for the PUK.
PIN_ATTEMPTS = 3


class SimState(enum.Enum):
    """What the card and the network let the modem do."""

    READY = "ready"
    ABSENT = "absent"
    PIN_LOCKED = "pin-locked"
    NOT_REGISTERED = "not-registered"
    REGISTRATION_DENIED = "registration-denied"


@dataclass
class SimCard:
    """One SIM as the simulator sees it.

    `number` holds digits with the country code and no "+" (or None when the network never told
    it); `number_in_cnum` / `number_in_phonebook` say whether `AT+CNUM` and the "ON" phonebook
    reveal it. `ussd` maps a code such as "*111#" to the operator's reply text.
    """

    iccid: str
    imsi: str
    number: str | None = None
    number_in_cnum: bool = True
    number_in_phonebook: bool = False
    operator_name: str = "Test Operator"
    mcc_mnc: str = "26202"
    pin: str | None = None
    state: SimState = SimState.READY
    roaming: bool = False
    ussd: dict[str, str] = field(default_factory=dict)
    smsc: str = "+491710760000"

    def __post_init__(self) -> None:
        if not (19 <= len(self.iccid) <= 20 and self.iccid.isdigit()):
            raise ValueError(f"ICCID must be 19-20 digits, got {self.iccid!r}")
        if not self.imsi.isdigit() or not 14 <= len(self.imsi) <= 15:
            raise ValueError(f"IMSI must be 14-15 digits, got {self.imsi!r}")
        if self.number is not None:
            self.number = self.number.lstrip("+")
            if not self.number.isdigit():
                raise ValueError(f"number must be digits with country code, got {self.number!r}")

    @property
    def mnc_length(self) -> int:
        return len(self.mcc_mnc) - 3

    @property
    def international_number(self) -> str | None:
        return f"+{self.number}" if self.number else None


def make_iccid(body: str) -> str:
    """A valid ICCID: `body` (18 or 19 digits, usually starting with "89") plus its Luhn digit."""
    if not body.isdigit() or len(body) not in (18, 19):
        raise ValueError(f"ICCID body must be 18 or 19 digits, got {body!r}")
    return body + luhn.calc_check_digit(body)


def iccid_is_valid(iccid: str) -> bool:
    return iccid.isdigit() and 19 <= len(iccid) <= 20 and luhn.is_valid(iccid)


def iccid_to_ef(iccid: str) -> str:
    """The raw EF_ICCID content: digits nibble-swapped per byte, padded with F to 20 nibbles."""
    padded = iccid.ljust(20, "F")
    return "".join(padded[i + 1] + padded[i] for i in range(0, 20, 2))


def make_sim(
    serial: int,
    *,
    number: str | None = None,
    mcc_mnc: str = "26202",
    operator_name: str = "Vodafone.de",
    **fields: object,
) -> SimCard:
    """A SIM with a valid ICCID and IMSI derived from `serial` (handy for tests and the demo)."""
    iccid = make_iccid(f"8949{mcc_mnc[3:]:0>2}00{serial:010d}"[:18].ljust(18, "0"))
    imsi = f"{mcc_mnc}{serial:0{15 - len(mcc_mnc)}d}"
    return SimCard(
        iccid=iccid,
        imsi=imsi,
        number=number,
        mcc_mnc=mcc_mnc,
        operator_name=operator_name,
        **fields,  # type: ignore[arg-type]
    )
