"""The configuration contract: good files load, every kind of bad file is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import (
    Config,
    ConfigError,
    MarketplaceConfig,
    ModemConfig,
    OfferConfig,
    config_from_dict,
    config_warnings,
    load_config,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config" / "simfarm.example.toml"
SECRET = "s3cret-partner-key-XYZW"

MINIMAL = f"""\
[marketplace]
key = "{SECRET}"
push_url = "https://market.example/v1/PUSH_SMS"

[offer]
services = ["vk", "wa"]

[[modems]]
port = "/dev/simfarm/*"
"""


def write(tmp_path: Path, text: str, name: str = "simfarm.toml", mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ={} if environ is None else environ)


# --- good files -----------------------------------------------------------------------------


def test_minimal_file_gets_every_default(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.marketplace.key == SECRET
    assert config.marketplace.rent_url == config.marketplace.push_url
    assert config.marketplace.push_retry_seconds == 10.0
    assert config.storage.path == Path("var/simfarm.db")
    assert config.offer.services == ["vk", "wa"]
    assert config.offer.rent is False
    assert config.offer.max_issues_per_service == 4
    assert config.modems == [ModemConfig(port="/dev/simfarm/*")]
    assert config.modems[0].baudrate == 115200
    assert config.farm.rescan_seconds == 5.0
    assert config.log.level == "INFO"
    assert config.source == tmp_path / "simfarm.toml"
    assert config.key_source == "file"


FULL = f"""\
[server]
host = "0.0.0.0"
port = 0

[marketplace]
key = "{SECRET}"
push_url = "https://market.example/v1/PUSH_SMS"
push_rent_url = "https://market.example/v1/PUSH_SMS_RENT"
push_retry_seconds = 2

[storage]
path = "data/x.db"

[offer]
services = ["vk", "wa"]
rent = true
min_sum = {{ vk = 5, rent = 20.5 }}

[[modems]]
port = "/dev/simfarm/*"
baudrate = 460800
pin = "0000"

[countries]
DE = "deutschland"

[operators]
"25002" = "megafon"
"310260" = "tmobile"

[[simbanks]]
port = "/dev/simfarm/simbank0"
slots = 16
dwell_minutes = 45
max_in_transition = 1
[simbanks.channels]
"01" = "/dev/simfarm/1-1.2-if02"

[sims."89490200001234567890"]
number = "+4915112345678"

[ussd."25001"]
code = "*111*0887#"
pattern = '(\\+?7\\d{{10}})'
reply_by_sms = true

[farm]
sweep_seconds = 12

[log]
level = "debug"
"""


def test_full_file(tmp_path: Path) -> None:
    config = load(tmp_path, FULL)
    assert config.server.port == 0
    assert config.marketplace.rent_url == "https://market.example/v1/PUSH_SMS_RENT"
    assert config.marketplace.push_retry_seconds == 2.0
    assert isinstance(config.marketplace.push_retry_seconds, float)  # an int is a fine float
    assert config.offer.min_sum == {"vk": 5.0, "rent": 20.5}
    assert config.modems[0].pin == "0000"
    assert config.storage.path == Path("data/x.db")
    assert config.countries == {"DE": "deutschland"}
    assert config.operators == {"25002": "megafon", "310260": "tmobile"}
    bank = config.simbanks[0]
    assert (bank.slots, bank.dwell_minutes, bank.max_in_transition) == (16, 45.0, 1.0)
    assert bank.channels == {"01": "/dev/simfarm/1-1.2-if02"}
    assert config.sims["89490200001234567890"].number == "4915112345678"  # digits only
    rule = config.ussd["25001"]
    assert rule.reply_by_sms is True
    assert rule.regex.search("Vash nomer +79161234567.")[1] == "+79161234567"
    assert config.farm.sweep_seconds == 12.0
    assert config.log.level == "DEBUG"


def test_example_file_passes_with_a_real_key() -> None:
    config = load_config(EXAMPLE, environ={"SIMFARM_KEY": "env-partner-key-42"})
    assert config.offer.services
    assert config.modems
    warnings = config_warnings(config)
    assert all("chmod 600" in warning for warning in warnings), warnings


def test_config_built_in_code() -> None:
    config = Config(
        marketplace=MarketplaceConfig(key="code-partner-key-1", push_url="http://127.0.0.1:9/push"),
        offer=OfferConfig(services=["vk"]),
    )
    assert config.source is None
    assert config.key_source == "code"
    assert config.modems == []
    with pytest.raises(ValidationError):
        config.offer = OfferConfig(services=["wa"])  # frozen


def test_config_from_dict_checks_like_the_file() -> None:
    data = {
        "marketplace": {"key": "code-partner-key-1", "push_url": "https://m.example/p"},
        "offer": {"services": ["vk"], "max_issues_per_service": 0},
    }
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, environ={})
    assert str(caught.value) == (
        "configuration: offer.max_issues_per_service: must be at least 1 (got 0)"
    )
    data["offer"]["max_issues_per_service"] = 2
    assert config_from_dict(data, environ={}).offer.max_issues_per_service == 2


# --- bad files: one line naming the file and the key ---------------------------------------

BAD_FILES = [
    # (case, how to spoil MINIMAL, key named, words in the message)
    ("unknown top-level key", lambda t: "bogus = 1\n" + t, "bogus", "unknown key"),
    (
        "unknown nested key",
        lambda t: t.replace("push_url =", "push_ulr = 1\npush_url ="),
        "marketplace.push_ulr",
        "unknown key (did you mean 'push_url'?)",
    ),
    (
        "unknown key in an array of tables",
        lambda t: t + "speed = 9600\n",
        "modems[0].speed",
        "unknown key",
    ),
    ("source is not a key", lambda t: 'source = "x"\n' + t, "source", "unknown key"),
    (
        "string where an integer belongs",
        lambda t: t + '[server]\nport = "8080"\n',
        "server.port",
        'must be an integer, not a string (got "8080")',
    ),
    (
        "float where an integer belongs",
        lambda t: t.replace('["vk", "wa"]', '["vk", "wa"]\nmax_issues_per_service = 2.5'),
        "offer.max_issues_per_service",
        "must be an integer",
    ),
    (
        "string where a number belongs",
        lambda t: t + '[farm]\nsweep_seconds = "30"\n',
        "farm.sweep_seconds",
        "must be a number",
    ),
    (
        "boolean where a number belongs",
        lambda t: t + "[farm]\nsweep_seconds = true\n",
        "farm.sweep_seconds",
        "must be a number",
    ),
    (
        "string where a boolean belongs",
        lambda t: t.replace('["vk", "wa"]', '["vk", "wa"]\nrent = "yes"'),
        "offer.rent",
        "must be true or false",
    ),
    (
        "pin as a number",
        lambda t: t + "pin = 1234\n",
        "modems[0].pin",
        "must be a string",
    ),
    (
        "table where an array belongs",
        lambda t: t.replace("[[modems]]", "[modems]"),
        "modems",
        "must be an array",
    ),
    (
        "missing required table",
        lambda t: t.replace('[offer]\nservices = ["vk", "wa"]\n', ""),
        "offer",
        "required key is missing",
    ),
    (
        "missing required key",
        lambda t: t.replace('push_url = "https://market.example/v1/PUSH_SMS"\n', ""),
        "marketplace.push_url",
        "required key is missing",
    ),
    (
        "missing key",
        lambda t: t.replace(f'key = "{SECRET}"\n', ""),
        "marketplace.key",
        "SIMFARM_KEY",
    ),
    ("empty key", lambda t: t.replace(SECRET, ""), "marketplace.key", "must not be empty"),
    (
        "bad URL scheme",
        lambda t: t.replace("https://market.example", "ftp://market.example"),
        "marketplace.push_url",
        "must be an http:// or https:// URL",
    ),
    (
        "URL without a host",
        lambda t: t.replace("https://market.example/v1/PUSH_SMS", "https:///x"),
        "marketplace.push_url",
        "must be an http:// or https:// URL",
    ),
    (
        "bad rent URL",
        lambda t: t.replace("push_url =", 'push_rent_url = "market.example"\npush_url ='),
        "marketplace.push_rent_url",
        "URL",
    ),
    (
        "non-positive retry",
        lambda t: t.replace("push_url =", "push_retry_seconds = 0\npush_url ="),
        "marketplace.push_retry_seconds",
        "must be greater than 0 (got 0)",
    ),
    (
        "infinite timeout",
        lambda t: t.replace("push_url =", "push_timeout_seconds = inf\npush_url ="),
        "marketplace.push_timeout_seconds",
        "finite",
    ),
    (
        "port out of range",
        lambda t: t + "[server]\nport = 65536\n",
        "server.port",
        "must be at most 65535",
    ),
    (
        "empty services",
        lambda t: t.replace('["vk", "wa"]', "[]"),
        "offer.services",
        "must not be empty",
    ),
    (
        "empty service name",
        lambda t: t.replace('["vk", "wa"]', '["vk", ""]'),
        "offer.services[1]",
        "must not be empty",
    ),
    (
        "duplicate service",
        lambda t: t.replace('["vk", "wa"]', '["vk", "vk"]'),
        "offer.services",
        '"vk" is listed twice',
    ),
    (
        "rent as a service",
        lambda t: t.replace('["vk", "wa"]', '["vk", "rent"]'),
        "offer.services",
        "rent = true",
    ),
    (
        "min_sum for an unknown service",
        lambda t: t.replace('["vk", "wa"]', '["vk", "wa"]\nmin_sum = { tg = 3 }'),
        "offer.min_sum",
        '"tg" is not an offered service',
    ),
    (
        "negative min_sum",
        lambda t: t.replace('["vk", "wa"]', '["vk", "wa"]\nmin_sum = { vk = -1 }'),
        "offer.min_sum.vk",
        "must be at least 0",
    ),
    (
        "max issues zero",
        lambda t: t.replace('["vk", "wa"]', '["vk", "wa"]\nmax_issues_per_service = 0'),
        "offer.max_issues_per_service",
        "must be at least 1 (got 0)",
    ),
    (
        "odd baudrate in the second modem",
        lambda t: t + '[[modems]]\nport = "/dev/x"\nbaudrate = 12345\n',
        "modems[1].baudrate",
        "standard serial speed",
    ),
    ("short pin", lambda t: t + 'pin = "12"\n', "modems[0].pin", "4 to 8 digits"),
    ("empty port", lambda t: t.replace('"/dev/simfarm/*"', '""'), "modems[0].port", "empty"),
    (
        "bad region key",
        lambda t: t + '[countries]\nde = "germany"\n',
        "countries.de",
        "ISO region",
    ),
    (
        "bad MCC-MNC key",
        lambda t: t + '[operators]\n"2500" = "megafon"\n',
        "operators.2500",
        "MCC+MNC",
    ),
    (
        "bad ICCID key",
        lambda t: t + '[sims.123]\nnumber = "4915112345678"\n',
        "sims.123",
        "ICCID",
    ),
    (
        "bad number",
        lambda t: t + '[sims."89490200001234567890"]\nnumber = "0151-123"\n',
        "sims.89490200001234567890.number",
        "international number",
    ),
    (
        "bad regex",
        lambda t: t + '[ussd."25002"]\ncode = "*205#"\npattern = "(\\\\d+"\n',
        "ussd.25002.pattern",
        "not a valid regular expression",
    ),
    (
        "regex without a group",
        lambda t: t + '[ussd."25002"]\ncode = "*205#"\npattern = "\\\\d+"\n',
        "ussd.25002.pattern",
        "group",
    ),
    (
        "bad USSD code",
        lambda t: t + '[ussd."25002"]\ncode = "AT+CUSD"\npattern = "(\\\\d+)"\n',
        "ussd.25002.code",
        "USSD code",
    ),
    (
        "simbank without channels",
        lambda t: t + '[[simbanks]]\nport = "/dev/b"\nslots = 8\nchannels = {}\n',
        "simbanks[0].channels",
        "must not be empty",
    ),
    (
        "simbank slots out of range",
        lambda t: t + '[[simbanks]]\nport = "/dev/b"\nslots = 2000\nchannels = { "01" = "/d" }\n',
        "simbanks[0].slots",
        "at most 1024",
    ),
    (
        "simbank transition share",
        lambda t: (
            t
            + '[[simbanks]]\nport = "/dev/b"\nslots = 8\nmax_in_transition = 1.5\n'
            + 'channels = { "01" = "/d" }\n'
        ),
        "simbanks[0].max_in_transition",
        "at most 1",
    ),
    (
        "simbank channel key",
        lambda t: t + '[[simbanks]]\nport = "/dev/b"\nslots = 8\nchannels = { "1" = "/d" }\n',
        "simbanks[0].channels.1",
        "channel",
    ),
    ("bad log level", lambda t: t + '[log]\nlevel = "LOUD"\n', "log.level", "must be one of"),
    (
        "storage path as a number",
        lambda t: t + "[storage]\npath = 5\n",
        "storage.path",
        "must be a string",
    ),
    (
        "invalid TOML",
        lambda t: t.replace("[offer]", "[offer"),
        "line 5",
        "invalid TOML (Expected ']'",
    ),
    (
        # tomllib notices at line 8 ("[[modems]]"); the "]" is missing on line 6
        "array left open",
        lambda t: t.replace('["vk", "wa"]', '["vk", "wa"   # a comment'),
        "line 6",
        'invalid TOML (Unclosed array: a "]" or "," is missing at the end of the line '
        "(noticed at line 8, column 1))",
    ),
    (
        "array left open before a statement",
        lambda t: t.replace('["vk", "wa"]', '["vk", "wa",\n\nrent = true'),
        "line 6",
        'a "]" or "," is missing',
    ),
    ("bad value inside an array", lambda t: t.replace('"wa"]', "\n  wa]"), "line 7", "column 3"),
    ("TOML cut short", lambda t: t + "x = ", "line 10", "invalid TOML"),
    ("array cut short", lambda t: t + "x = [1,\n\n# more\n", "line 10", "at end of file"),
    (
        "the example's placeholder key",
        lambda t: t.replace(SECRET, "replace-with-your-partner-key"),
        "marketplace.key",
        "is still the example's placeholder; put the partner key from Onlinesim here or in "
        "SIMFARM_KEY",
    ),
    (
        "a key too short to be a partner key",
        lambda t: t.replace(SECRET, "short-key"),
        "marketplace.key",
        "is 9 characters long; a partner key has at least 16",
    ),
    ("duplicate TOML key", lambda t: t + 'port = "/dev/y"\n', "line 10", "invalid TOML"),
]


@pytest.mark.parametrize(
    ("spoil", "key", "words"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_bad_file_is_refused_in_one_line(tmp_path: Path, spoil, key: str, words: str) -> None:
    path = write(tmp_path, spoil(MINIMAL))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: "), message
    assert words in message, message
    assert SECRET not in message
    assert caught.value.key == key
    assert caught.value.file == str(path)


def test_secret_is_not_echoed_when_its_type_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, MINIMAL.replace(f'"{SECRET}"', "123456789"))
    assert str(caught.value).endswith("marketplace.key: must be a string, not an integer")
    assert "123456789" not in str(caught.value)


def test_several_errors_are_all_listed_one_line_each(tmp_path: Path) -> None:
    text = "a = 1\nb = 2\n" + MINIMAL + "[server]\nport = -1\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).split("\n") == [
        f"{path}: server.port: must be at least 0 (got -1)",
        f"{path}: a: unknown key",
        f"{path}: b: unknown key",
    ]
    assert caught.value.key == "server.port" and caught.value.more == 2


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: cannot read (No such file or directory)"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, environ={})
    assert str(caught.value).startswith(f"{tmp_path}: cannot read (")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(MINIMAL.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: line 10: not UTF-8 text"


# --- the key from the environment ------------------------------------------------------------


def test_environment_key_wins(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL, environ={"SIMFARM_KEY": "env-partner-key-42"})
    assert config.marketplace.key == "env-partner-key-42"
    assert config.key_source == "environment"


def test_environment_key_fills_a_missing_key(tmp_path: Path) -> None:
    text = MINIMAL.replace(f'key = "{SECRET}"\n', "")
    config = load(tmp_path, text, environ={"SIMFARM_KEY": "env-partner-key-42"})
    assert config.marketplace.key == "env-partner-key-42"


def test_empty_environment_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, MINIMAL, environ={"SIMFARM_KEY": ""})
    assert "marketplace.key: SIMFARM_KEY is set but empty" in str(caught.value)


def test_a_short_environment_key_is_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, MINIMAL, environ={"SIMFARM_KEY": "abc123"})
    assert str(caught.value).endswith(
        ": marketplace.key: is 6 characters long; a partner key has at least 16 "
        "(is it cut short, or another value?) (the key comes from SIMFARM_KEY)"
    )
    assert "abc123" not in str(caught.value)


def test_the_example_as_shipped_is_refused_for_its_placeholder_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, environ={})
    assert str(caught.value) == (
        f"{EXAMPLE}: marketplace.key: is still the example's placeholder; put the partner key "
        "from Onlinesim here or in SIMFARM_KEY"
    )


def test_environment_key_does_not_excuse_other_errors(tmp_path: Path) -> None:
    text = MINIMAL.replace("[marketplace]\n", "").replace(f'key = "{SECRET}"\n', "")
    text = text.replace('push_url = "https://market.example/v1/PUSH_SMS"\n', "")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, environ={"SIMFARM_KEY": "env-partner-key-42"})
    assert ": marketplace.push_url: required key is missing" in str(caught.value)


def test_process_environment_is_the_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SIMFARM_KEY", "process-partner-key-7")
    assert load_config(write(tmp_path, MINIMAL)).marketplace.key == "process-partner-key-7"


# --- warnings --------------------------------------------------------------------------------


def test_world_readable_file_with_the_key_is_warned_about(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL, mode=0o644)
    warnings = config_warnings(load_config(path, environ={}))
    assert any("chmod 600" in w and str(path) in w for w in warnings), warnings


def test_private_file_is_not_warned_about(tmp_path: Path) -> None:
    assert config_warnings(load_config(write(tmp_path, MINIMAL), environ={})) == []


def test_world_readable_file_without_the_key_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace(f'key = "{SECRET}"\n', ""), mode=0o644)
    config = load_config(path, environ={"SIMFARM_KEY": "env-partner-key-42"})
    assert config_warnings(config) == []


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://market.example/push", True),
        ("http://10.0.0.5:8000/push", True),
        ("http://127.0.0.1:8000/push", False),
        ("http://[::1]:8000/push", False),
        ("http://localhost:8000/push", False),
        ("https://market.example/push", False),
    ],
)
def test_plain_http_to_a_remote_host_is_warned_about(url: str, warned: bool) -> None:
    config = config_from_dict(
        {
            "marketplace": {"key": "code-partner-key-1", "push_url": url},
            "offer": {"services": ["vk"]},
            "modems": [{"port": "/dev/x"}],
        },
        environ={},
    )
    warnings = config_warnings(config)
    assert any("plain http" in w for w in warnings) is warned, warnings


def test_no_modems_and_unknown_region_are_warned_about() -> None:
    config = config_from_dict(
        {
            "marketplace": {"key": "code-partner-key-1", "push_url": "https://m.example/p"},
            "offer": {"services": ["vk"]},
            "countries": {"QQ": "nowhere", "DE": "germany"},
        },
        environ={},
    )
    warnings = config_warnings(config)
    assert any("no [[modems]]" in w for w in warnings), warnings
    assert any("countries: QQ" in w for w in warnings), warnings
