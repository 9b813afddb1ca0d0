"""The configuration contract: one TOML file, checked completely before anything starts.

Every mistake in the file (an unknown key, a string where a number belongs, a missing key, a bad
value) is refused with one line that names the file and the key, all mistakes at once, so an
operator can fix them without reading a traceback. Relative paths in the file (`[storage]
path`) are relative to the working directory the daemon is started in, not to the file.

The marketplace key may live in the file or in the `SIMFARM_KEY` environment variable; the
environment wins, so a key can stay out of a file that is copied around.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

#: The environment variable that holds (and overrides) the marketplace key.
KEY_ENVIRONMENT_VARIABLE = "SIMFARM_KEY"
#: The key the example configuration ships with; refused, so a copied example cannot go live.
PLACEHOLDER_KEY = "replace-with-your-partner-key"
#: Shortest marketplace key accepted: anything shorter is a typo or a value pasted by mistake.
MIN_KEY_LENGTH = 16
#: A service name the marketplace reserves for rentals.
RENT = "rent"
#: Serial speeds a modem port may be configured with.
STANDARD_BAUDRATES = (
    1200,
    2400,
    4800,
    9600,
    19200,
    38400,
    57600,
    115200,
    230400,
    460800,
    921600,
    1000000,
    1500000,
    2000000,
    3000000,
    4000000,
)

#: Log levels the configuration accepts (in any case).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ConfigError(ValueError):
    """A configuration that cannot be used; `str()` has one line per mistake, naming the file and
    the key, the first mistake first (so an operator fixes them all in one go)."""

    def __init__(
        self,
        file: str,
        key: str | None,
        message: str,
        others: Sequence[tuple[str | None, str]] = (),
    ) -> None:
        self.file = file
        self.key = key
        self.message = message
        self.others = tuple(others)
        super().__init__(
            "\n".join(_error_line(file, k, m) for k, m in ((key, message), *self.others))
        )

    @property
    def more(self) -> int:
        """How many mistakes there are besides the first."""
        return len(self.others)


def _error_line(file: str, key: str | None, message: str) -> str:
    return f"{file}: {key}: {message}" if key else f"{file}: {message}"


# --- value checks -------------------------------------------------------------------------------


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL (got {_shown(value)})")
    if any(ch.isspace() for ch in value):
        raise ValueError(f"must not contain spaces (got {_shown(value)})")
    return value


def _region_key(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise ValueError('key must be an ISO region in upper case, like "DE"')
    return value


def _mccmnc_key(value: str) -> str:
    if not re.fullmatch(r"\d{5,6}", value):
        raise ValueError('key must be MCC+MNC, 5 or 6 digits, like "25002"')
    return value


def _iccid_key(value: str) -> str:
    if not re.fullmatch(r"[0-9A-Fa-f]{18,22}", value):
        raise ValueError("key must be an ICCID, 18 to 22 digits (or hex)")
    return value


def _channel_key(value: str) -> str:
    if not re.fullmatch(r"\d{2}", value) or value == "00":
        raise ValueError('key must be a channel number of two digits, "01" and up')
    return value


NonEmptyStr = Annotated[str, AfterValidator(_not_blank)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
RegionKey = Annotated[str, AfterValidator(_region_key)]
MccMncKey = Annotated[str, AfterValidator(_mccmnc_key)]
IccidKey = Annotated[str, AfterValidator(_iccid_key)]
ChannelKey = Annotated[str, AfterValidator(_channel_key)]
PositiveSeconds = Annotated[float, Field(gt=0)]


# --- the tables ---------------------------------------------------------------------------------


class ServerConfig(BaseModel):
    """Where the marketplace API listens (port 0 picks a free port), and how it bounds clients.

    A connection with no request in progress is closed after `idle_timeout_seconds`; a request
    must arrive whole within `request_timeout_seconds` of its first byte; at most
    `max_connections` are open (never more than half the file limit) and at most
    `max_requests` are handled at once, the rest get 503.
    """

    model_config = _MODEL_CONFIG

    host: NonEmptyStr = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    idle_timeout_seconds: PositiveSeconds = 5.0
    request_timeout_seconds: PositiveSeconds = 10.0
    max_connections: int = Field(1024, ge=1)
    max_requests: int = Field(128, ge=1)


class AdminConfig(BaseModel):
    """Where the operator's endpoint listens (port 0 picks a free port); keep it on loopback.

    It has no key: it lists SMS texts and releases activations, so it must never be reachable
    from the marketplace or the internet.
    """

    model_config = _MODEL_CONFIG

    host: NonEmptyStr = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)


class MarketplaceConfig(BaseModel):
    """Onlinesim Reseller API v1: the partner key and where PUSH_SMS goes."""

    model_config = _MODEL_CONFIG

    key: str
    push_url: HttpUrl
    push_rent_url: HttpUrl | None = None
    push_retry_seconds: PositiveSeconds = 10.0
    push_timeout_seconds: PositiveSeconds = 10.0

    @field_validator("key")
    @classmethod
    def _key_usable(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        if value != value.strip():
            raise ValueError("must not start or end with whitespace")
        if value == PLACEHOLDER_KEY:
            raise ValueError(
                "is still the example's placeholder; put the partner key from Onlinesim here "
                f"or in {KEY_ENVIRONMENT_VARIABLE}"
            )
        if len(value) < MIN_KEY_LENGTH:
            raise ValueError(
                f"is {len(value)} characters long; a partner key has at least {MIN_KEY_LENGTH} "
                "(is it cut short, or another value?)"
            )
        return value

    @property
    def rent_url(self) -> str:
        """Where rent SMS are pushed: `push_rent_url`, else `push_url`."""
        return self.push_rent_url or self.push_url


class StorageConfig(BaseModel):
    """The SQLite file (created if missing; relative to the working directory)."""

    model_config = _MODEL_CONFIG

    path: Path = Field(Path("var/simfarm.db"), strict=False)

    @field_validator("path", mode="before")
    @classmethod
    def _path_is_text(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        if not isinstance(value, str | os.PathLike):
            raise ValueError(f"must be a string (a path), not {_type_name(value)}")
        return value


class OfferConfig(BaseModel):
    """What is offered in GET_SERVICES and accepted by GET_NUMBER."""

    model_config = _MODEL_CONFIG

    services: list[NonEmptyStr] = Field(min_length=1)
    rent: bool = False
    max_issues_per_service: int = Field(4, ge=1)
    min_sum: dict[str, Annotated[float, Field(ge=0)]] = {}

    @field_validator("services")
    @classmethod
    def _services_usable(cls, services: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in services:
            if name.lower() == RENT:
                raise ValueError('"rent" is not a service name; set `rent = true` instead')
            if name in seen:
                raise ValueError(f"{_shown(name)} is listed twice")
            seen.add(name)
        return services

    @field_validator("min_sum")
    @classmethod
    def _floors_for_offered(cls, floors: dict[str, float], info: ValidationInfo) -> dict:
        services = info.data.get("services")
        if services is None:  # services itself is wrong; that error is reported first
            return floors
        for name in floors:
            if name not in services and name != RENT:
                known = ", ".join([*services, RENT])
                raise ValueError(f"{_shown(name)} is not an offered service (one of: {known})")
        return floors


class ModemConfig(BaseModel):
    """One modem port, or a glob whose every match is one modem."""

    model_config = _MODEL_CONFIG

    port: NonEmptyStr
    baudrate: int = 115200
    pin: str | None = None

    @field_validator("baudrate")
    @classmethod
    def _standard_rate(cls, value: int) -> int:
        if value not in STANDARD_BAUDRATES:
            raise ValueError(f"must be a standard serial speed such as 115200 (got {value})")
        return value

    @field_validator("pin")
    @classmethod
    def _pin_digits(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{4,8}", value):
            raise ValueError("must be 4 to 8 digits, written as a string")
        return value


class SimbankConfig(BaseModel):
    """A SIM-bank switch board: its control port and the module wired to each channel."""

    model_config = _MODEL_CONFIG

    port: NonEmptyStr
    slots: int = Field(ge=1, le=1024)
    dwell_minutes: PositiveSeconds = 30.0
    max_in_transition: float = Field(0.25, gt=0, le=1)
    min_command_interval_seconds: float = Field(1.0, ge=0)
    channels: dict[ChannelKey, NonEmptyStr] = Field(min_length=1)
    # The steps of a rotation; the defaults suit real boards and modules.
    drain_seconds: float = Field(130.0, ge=0)  # out of GET_SERVICES this long before switching
    settle_seconds: float = Field(5.0, ge=0)  # after the switch command, before the reset
    reset: Literal["full", "radio"] = "full"  # AT+CFUN=1,1, or AT+CFUN=0 then AT+CFUN=1
    sim_ready_seconds: PositiveSeconds = 90.0  # from the reset to a readable ICCID
    registration_seconds: PositiveSeconds = 300.0  # from the reset to a sellable SIM
    reply_timeout_seconds: PositiveSeconds = 2.0  # board silence after this counts as "sent"
    quarantine_minutes: PositiveSeconds = 60.0  # a channel whose switch never applies rests


class SimConfig(BaseModel):
    """What the configuration says about one SIM (keyed by ICCID)."""

    model_config = _MODEL_CONFIG

    number: str | None = None
    country: NonEmptyStr | None = None
    operator: NonEmptyStr | None = None

    @field_validator("number")
    @classmethod
    def _digits_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"\+?\d{6,15}", value):
            raise ValueError(
                f"must be an international number, 6 to 15 digits with an optional + "
                f"(got {_shown(value)})"
            )
        return value.removeprefix("+")


class UssdConfig(BaseModel):
    """How to learn a SIM's number by USSD on one network (keyed by MCC+MNC)."""

    model_config = _MODEL_CONFIG

    code: str
    pattern: str
    reply_by_sms: bool = False

    @field_validator("code")
    @classmethod
    def _ussd_code(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9*#+]+", value):
            raise ValueError(f'must be a USSD code like "*111*0887#" (got {_shown(value)})')
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from None
        if compiled.groups < 1:
            raise ValueError("needs a group that captures the number, like (\\d{10,15})")
        return value

    @property
    def regex(self) -> re.Pattern[str]:
        """The compiled pattern (its first group is the number)."""
        return re.compile(self.pattern)


class FarmConfig(BaseModel):
    """How often the farm looks at its ports and modems."""

    model_config = _MODEL_CONFIG

    rescan_seconds: PositiveSeconds = 5.0
    sweep_seconds: PositiveSeconds = 30.0
    keepalive_seconds: PositiveSeconds = 10.0
    multipart_timeout_seconds: PositiveSeconds = 60.0


class LogConfig(BaseModel):
    model_config = _MODEL_CONFIG

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in LOG_LEVELS:
            return value.upper()
        return value


class Config(BaseModel):
    """The whole configuration. `source` is the file it came from (not a key of the file)."""

    model_config = _MODEL_CONFIG

    server: ServerConfig = ServerConfig()
    admin: AdminConfig = AdminConfig()
    marketplace: MarketplaceConfig
    storage: StorageConfig = StorageConfig()
    offer: OfferConfig
    modems: list[ModemConfig] = []
    countries: dict[RegionKey, NonEmptyStr] = {}
    operators: dict[MccMncKey, NonEmptyStr] = {}
    simbanks: list[SimbankConfig] = []
    sims: dict[IccidKey, SimConfig] = {}
    ussd: dict[MccMncKey, UssdConfig] = {}
    farm: FarmConfig = FarmConfig()
    log: LogConfig = LogConfig()
    source: Path | None = Field(None, strict=False)

    # Where the marketplace key came from: "file", "environment" or "code".
    _key_source: str = PrivateAttr("code")

    @field_validator("admin")
    @classmethod
    def _admin_port_free(cls, admin: AdminConfig, info: ValidationInfo) -> AdminConfig:
        server = info.data.get("server")
        if server is not None and admin.port != 0 and admin.port == server.port:
            raise ValueError(
                f"port {admin.port} is the [server] port; the admin endpoint needs its own"
            )
        return admin

    @property
    def key_source(self) -> str:
        """ "file", "environment" (SIMFARM_KEY) or "code" (built without a file)."""
        return self._key_source


# --- loading ------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, parse and check a TOML configuration file; raises ConfigError."""
    source = Path(path)
    shown = os.fspath(path)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ConfigError(shown, None, f"cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(shown, f"line {line}", "not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, detail = _toml_error_position(str(exc), text)
        raise ConfigError(shown, f"line {line}", f"invalid TOML ({detail})") from None
    return _build(data, source, shown, environ)


def config_from_dict(
    data: Mapping[str, Any],
    source: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Check a configuration given as plain data (as TOML would parse it); raises ConfigError."""
    shown = os.fspath(source) if source is not None else "configuration"
    return _build(data, source, shown, environ)


def _build(
    data: Mapping[str, Any],
    source: Path | None,
    shown: str,
    environ: Mapping[str, str] | None,
) -> Config:
    environ = os.environ if environ is None else environ
    if not isinstance(data, Mapping):
        raise ConfigError(shown, None, f"must be a table, got {_type_name(data)}")
    if "source" in data:
        raise ConfigError(shown, "source", "unknown key")
    document = dict(data)
    key_source = "file" if source is not None else "code"
    env_key = environ.get(KEY_ENVIRONMENT_VARIABLE)
    if env_key is not None:
        if not env_key:
            raise ConfigError(
                shown, "marketplace.key", f"{KEY_ENVIRONMENT_VARIABLE} is set but empty"
            )
        marketplace = document.get("marketplace")
        if marketplace is None:
            marketplace = {}
        if isinstance(marketplace, Mapping):
            document["marketplace"] = {**marketplace, "key": env_key}
            key_source = "environment"
    try:
        config = Config.model_validate({**document, "source": source})
    except ValidationError as exc:
        env_note = f" (the key comes from {KEY_ENVIRONMENT_VARIABLE})"
        raise _config_error(shown, exc, key_note=env_note if env_key else "") from None
    config._key_source = key_source
    return config


#: A line that starts a `key = value` statement.
_STATEMENT = re.compile(r"\s*[A-Za-z0-9_.\"' -]+=")


def _toml_error_position(message: str, text: str) -> tuple[int, str]:
    """The line to blame and the detail, from tomllib's "(at line 7, column 3)" or "(at end of
    document)" suffix.

    tomllib names where it stopped. When that is the first token of a line and an array was
    still open, the mistake is at the end of the last line before it that holds anything (an
    operator looks there for the missing "]"), and the detail says where parsing stopped.
    """
    lines = text.split("\n")
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        head, line, column = message[: match.start()], int(match[1]), int(match[2])
        if _array_left_open(head, lines, line, column):
            blamed = _last_content_line(lines, line - 1)
            if blamed is not None:
                return blamed, (
                    f'{head}: a "]" or "," is missing at the end of the line '
                    f"(noticed at line {line}, column {column})"
                )
        return line, f"{head}, column {column}"
    match = re.search(r"\s*\(at end of document\)$", message)
    if match:
        blamed = _last_content_line(lines, len(lines)) or 1
        return blamed, f"{message[: match.start()]} at end of file"
    return 1, message


def _array_left_open(head: str, lines: list[str], line: int, column: int) -> bool:
    """Whether tomllib stopped at the first token of a line because an array above was never
    closed (arrays may span lines, so it only notices there).

    "Unclosed array" there always means that; "Invalid value" only when the line goes on with a
    `key = value` statement (otherwise the value on that line itself is what is wrong).
    """
    if line > len(lines) or lines[line - 1][: column - 1].strip():
        return False
    if head == "Unclosed array":
        return True
    return head == "Invalid value" and _STATEMENT.match(lines[line - 1]) is not None


def _last_content_line(lines: list[str], before: int) -> int | None:
    """The number (from 1) of the last of the first `before` lines that is not blank or only a
    comment; None when there is none."""
    for index in range(min(before, len(lines)) - 1, -1, -1):
        stripped = lines[index].strip()
        if stripped and not stripped.startswith("#"):
            return index + 1
    return None


# --- turning pydantic's errors into one line ----------------------------------------------------


def _config_error(
    shown: str, exc: ValidationError, prefix: tuple[Any, ...] = (), key_note: str = ""
) -> ConfigError:
    """Every mistake pydantic found, each as the key it concerns and what is wrong with it.

    `key_note` is added to a mistake in the marketplace key (to say it came from the
    environment, where the operator would not look for it otherwise).
    """
    found: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        loc = (*prefix, *error["loc"])
        note = key_note if loc[:2] == ("marketplace", "key") else ""
        entry = (_key_path(loc), _message(error, loc) + note)
        if entry not in found:
            found.append(entry)
    (key, message), *others = found
    return ConfigError(shown, key, message, others)


def _key_path(loc: tuple[Any, ...]) -> str:
    """("modems", 1, "baudrate") -> "modems[1].baudrate"; dict keys are quoted when TOML would."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        name = str(part)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            name = json.dumps(name, ensure_ascii=False)
        path += f".{name}" if path else name
    return path


def _message(error: Any, loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    secret = loc[:2] == ("marketplace", "key")
    container = isinstance(value, Mapping | list | tuple)
    got = "" if secret or container else f" (got {_shown(value)})"
    if kind == "missing":
        if loc == ("marketplace", "key"):
            return f"required (in the file or in the {KEY_ENVIRONMENT_VARIABLE} variable)"
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key" + _suggestion(loc)
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, not {_type_name(value)}{got}"
    if kind == "greater_than_equal":
        return f"must be at least {_number(ctx['ge'])}{got}"
    if kind == "greater_than":
        return f"must be greater than {_number(ctx['gt'])}{got}"
    if kind == "less_than_equal":
        return f"must be at most {_number(ctx['le'])}{got}"
    if kind == "less_than":
        return f"must be less than {_number(ctx['lt'])}{got}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "finite_number":
        return f"must be a finite number{got}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}{got}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "path_type": "a string (a path)",
}


def _number(limit: Any) -> str:
    """0.0 -> "0": limits read better without a needless decimal point."""
    if isinstance(limit, float) and limit.is_integer():
        return str(int(limit))
    return str(limit)


def _type_name(value: Any) -> str:
    """The TOML word for a parsed value's type."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


def _shown(value: Any) -> str:
    """A short TOML-like rendering of a value for an error message."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, Mapping):
        text = "{...}"
    elif isinstance(value, list | tuple):
        text = "[...]"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggestion(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return ""
    names = [name for name in model.model_fields if name != "source"]
    close = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class found by following `loc` from Config (lists by index, dicts by key)."""
    current: Any = Config
    for part in loc:
        origin = typing.get_origin(current)
        if origin in (list, dict):
            current = _optional_inner(typing.get_args(current)[-1])
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = _optional_inner(field.annotation)
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _optional_inner(annotation: Any) -> Any:
    """`X | None` -> X; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


# --- warnings -----------------------------------------------------------------------------------


def config_warnings(config: Config) -> list[str]:
    """Things that work but that an operator would want to hear about."""
    warnings: list[str] = []
    shown = os.fspath(config.source) if config.source is not None else "configuration"
    if config.key_source == "file" and config.source is not None:
        try:
            mode = config.source.stat().st_mode
        except OSError:
            mode = 0
        if mode & stat.S_IROTH:
            warnings.append(
                f"{shown}: holds the marketplace key and every user can read it; "
                f"run `chmod 600 {shown}` or put the key in {KEY_ENVIRONMENT_VARIABLE}"
            )
    market = config.marketplace
    for key, url in (("push_url", market.push_url), ("push_rent_url", market.push_rent_url)):
        if url is not None and _plain_http_to_remote(url):
            warnings.append(
                f"{shown}: marketplace.{key}: plain http to {urlsplit(url).hostname}; "
                f"the key and every SMS travel unencrypted (use https://)"
            )
    if not _is_loopback_host(config.admin.host):
        warnings.append(
            f"{shown}: admin.host: {config.admin.host} is not a loopback address; the admin "
            f"endpoint has no key and shows SMS texts (keep it on 127.0.0.1)"
        )
    if not config.modems and not config.simbanks:
        warnings.append(f"{shown}: no [[modems]] configured; there is nothing to sell")
    unknown_regions = sorted(set(config.countries) - _known_regions())
    if unknown_regions:
        warnings.append(
            f"{shown}: countries: {', '.join(unknown_regions)} "
            f"{'is not a region' if len(unknown_regions) == 1 else 'are not regions'} "
            f"any phone number belongs to; the entry is never used"
        )
    return warnings


def _is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_admin_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> AdminConfig:
    """The [admin] table of a configuration file (for the command line's operator commands).

    The whole file is checked when it can be; a file that is unusable only for the daemon (the
    key lives in the service's environment, say) still tells where the admin endpoint is.
    """
    try:
        return load_config(path, environ).admin
    except ConfigError as exc:
        error = exc
    shown = os.fspath(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise error from None
    table = data.get("admin", {})
    try:
        return AdminConfig.model_validate(table)
    except ValidationError as exc:
        raise _config_error(shown, exc, ("admin",)) from None


def _plain_http_to_remote(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _known_regions() -> set[str]:
    import phonenumbers

    return set(phonenumbers.SUPPORTED_REGIONS)
