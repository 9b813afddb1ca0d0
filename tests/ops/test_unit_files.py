"""The systemd unit and the udev rules: checked by the real tools where they exist, and by
pure-Python checks that always run.

Tools (Debian package): systemd-analyze (systemd), udevadm (udev), umockdev-run (umockdev),
unshare (util-linux). `udevadm verify` exists from systemd 254 on; older udevadm only has
`udevadm test`, which the rule-behaviour tests below run against fake devices (umockdev) inside
a private mount namespace, so nothing on the machine's /dev or /etc changes.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIT = REPO_ROOT / "systemd" / "simfarm.service"
RULES = REPO_ROOT / "udev-rules" / "90-simfarm.rules"
TOOL_TIMEOUT_SECONDS = 60
# The default [[modems]] port glob of the configuration contract (DESIGN.md).
DEFAULT_MODEM_GLOB = "/dev/simfarm/*"


# ------------------------------------------------------------------------------------------------
# systemd unit
# ------------------------------------------------------------------------------------------------


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order; repeated keys stay separate."""
    entries = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line in {UNIT.name}: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def service_values(key: str) -> list[str]:
    return [v for s, k, v in unit_entries(UNIT.read_text()) if s == "Service" and k == key]


def service_value(key: str) -> str:
    values = service_values(key)
    assert len(values) == 1, f"{key}= appears {len(values)} times in [Service]"
    return values[0]


def test_unit_is_a_notify_service_with_watchdog_and_restart() -> None:
    assert service_value("Type") == "notify"
    assert service_value("NotifyAccess") == "main"
    assert int(service_value("WatchdogSec")) > 0
    assert service_value("Restart") == "on-failure"
    assert service_value("RestartSec") == "5"
    assert service_value("TimeoutStopSec") == "20"
    assert service_value("KillSignal") == "SIGTERM"
    assert service_value("ExecStart") == (
        "/opt/simfarm/venv/bin/simfarm run --config /etc/simfarm/simfarm.toml"
    )


def test_unit_runs_unprivileged_with_state_and_config_directories() -> None:
    assert service_value("User") == "simfarm"
    assert service_value("Group") == "simfarm"
    assert "dialout" in service_value("SupplementaryGroups").split()
    assert service_value("StateDirectory") == "simfarm"
    assert service_value("WorkingDirectory") == "/var/lib/simfarm"
    assert service_value("ConfigurationDirectory") == "simfarm"
    assert service_value("EnvironmentFile") == "-/etc/simfarm/secret.env"


def test_unit_leaves_file_descriptors_for_api_clients_and_the_rest() -> None:
    # The API takes at most half the limit for its clients; its default cap is 1024 of them.
    limit = service_value("LimitNOFILE")
    assert limit.isdigit() and int(limit) >= 2 * 1024


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "DevicePolicy": "closed",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
}


@pytest.mark.parametrize(("key", "expected"), sorted(HARDENING.items()))
def test_unit_hardening(key: str, expected: str) -> None:
    assert service_value(key) == expected


def test_unit_allows_exactly_the_modem_tty_classes() -> None:
    assert sorted(service_values("DeviceAllow")) == ["char-ttyACM rw", "char-ttyUSB rw"]
    # PrivateDevices= would hide /dev/ttyUSB* and /dev/ttyACM* from the daemon.
    assert service_values("PrivateDevices") == []


def _unit_copy_with_runnable_commands(tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the unit (same file name) whose Exec*= binaries that are missing on this machine
    point at /bin/true, with the original arguments and prefixes kept. Everything else is
    unchanged, so `systemd-analyze verify` still checks every other directive."""
    replaced = []
    out_lines = []
    for line in UNIT.read_text().splitlines():
        match = re.match(r"^(Exec[A-Za-z]*=)([-+@:!]*)(\S+)(.*)$", line)
        if match and not os.access(match.group(3), os.X_OK):
            replaced.append(match.group(3))
            line = f"{match.group(1)}{match.group(2)}/bin/true{match.group(4)}"
        out_lines.append(line)
    copy = tmp_path / UNIT.name
    copy.write_text("\n".join(out_lines) + "\n")
    return copy, replaced


def _require_tool(name: str, purpose: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed: {purpose} not run"
        print(reason)
        pytest.skip(reason)
    return path


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _require_tool("systemd-analyze", "systemd-analyze verify of the unit")
    copy, replaced = _unit_copy_with_runnable_commands(tmp_path)
    print(f"commands replaced by /bin/true because missing here: {replaced}")
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    # Unknown keys and bad values are only warnings (exit code 0): any line naming the unit fails.
    about_unit = [line for line in output.splitlines() if UNIT.name in line or str(copy) in line]
    assert result.returncode == 0, output
    assert about_unit == [], output


def test_systemd_analyze_security_exposure_is_low(tmp_path: Path) -> None:
    analyze = _require_tool("systemd-analyze", "systemd-analyze security of the unit")
    copy, _ = _unit_copy_with_runnable_commands(tmp_path)
    result = subprocess.run(
        # --threshold is on a 0-100 scale: 30 means "exposure 3.0 or lower" ("OK" range).
        [analyze, "security", "--offline=yes", "--threshold=30", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    if "--offline" in result.stderr and "nrecognized" in result.stderr:
        pytest.skip("systemd-analyze too old for security --offline (needs systemd 250)")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


# ------------------------------------------------------------------------------------------------
# udev rules: pure-Python syntax and policy checks
# ------------------------------------------------------------------------------------------------

MATCH_OPS = ("==", "!=")
ASSIGN_OPS = ("=", "+=", "-=", ":=")
PAIR = re.compile(r'\s*([A-Z_]+(?:\{[^}]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
MATCH_ONLY_KEYS = {"ACTION", "KERNEL", "KERNELS", "SUBSYSTEMS", "DRIVERS", "DEVPATH", "TAGS"}
KNOWN_KEYS = MATCH_ONLY_KEYS | {
    "SUBSYSTEM",
    "DRIVER",
    "ATTR",
    "ATTRS",
    "ENV",
    "TEST",
    "TAG",
    "SYMLINK",
    "GROUP",
    "MODE",
    "OWNER",
    "IMPORT",
    "GOTO",
    "LABEL",
    "RUN",
    "NAME",
    "PROGRAM",
    "RESULT",
    "OPTIONS",
}


@dataclass(frozen=True)
class Pair:
    key: str  # e.g. ENV{ID_MM_DEVICE_IGNORE}
    op: str
    value: str

    @property
    def base(self) -> str:
        return self.key.split("{", 1)[0]


def parse_rule(line: str) -> list[Pair]:
    """Split one rule line into KEY op "value" pairs; raises AssertionError on anything else."""
    pairs = []
    rest = line
    while rest.strip():
        match = PAIR.match(rest)
        assert match, f"cannot parse {rest!r} in rule {line!r}"
        key, op, value = match.groups()
        pair = Pair(key, op, value)
        assert pair.base in KNOWN_KEYS, f"unknown key {key} in {line!r}"
        if pair.base in MATCH_ONLY_KEYS:
            assert op in MATCH_OPS, f"{key} takes only == or != in {line!r}"
        pairs.append(pair)
        rest = rest[match.end() :]
        if rest.strip():
            assert rest.lstrip().startswith(","), f"missing comma before {rest!r} in {line!r}"
            rest = rest.lstrip()[1:]
    assert pairs, f"empty rule {line!r}"
    return pairs


def rule_lines(text: str, *, include_commented_examples: bool = False) -> list[str]:
    lines = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if include_commented_examples and re.match(r'^#[A-Z]+(\{[^}]*\})?(==|=)"', line):
            line = line[1:]
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "rules file ends inside a continued line"
    return lines


def parsed_rules(*, include_commented_examples: bool = False) -> list[list[Pair]]:
    text = RULES.read_text()
    lines = rule_lines(text, include_commented_examples=include_commented_examples)
    return [parse_rule(line) for line in lines]


def test_every_rule_line_parses_including_the_commented_templates() -> None:
    assert len(parsed_rules(include_commented_examples=True)) > len(parsed_rules())


def test_goto_targets_exist() -> None:
    rules = parsed_rules()
    labels = {p.value for rule in rules for p in rule if p.key == "LABEL"}
    gotos = {p.value for rule in rules for p in rule if p.key == "GOTO"}
    assert gotos <= labels


def test_every_symlink_goes_under_simfarm_and_matches_the_default_glob() -> None:
    symlinks = [p for rule in parsed_rules() for p in rule if p.key == "SYMLINK"]
    assert symlinks
    for pair in symlinks:
        assert pair.op == "+=", "SYMLINK= would drop the by-id/by-path links of other rules"
        assert pair.value.startswith("simfarm/")
        assert "/" not in pair.value.removeprefix("simfarm/"), (
            "one level: the glob is not recursive"
        )
        assert fnmatch.fnmatch("/dev/" + pair.value, DEFAULT_MODEM_GLOB)


def _model_rules() -> list[list[Pair]]:
    return [
        rule
        for rule in parsed_rules(include_commented_examples=True)
        if any(p.key == "ATTRS{idVendor}" and p.op == "==" for p in rule)
    ]


def test_every_modem_rule_names_model_at_interface_and_usb_device() -> None:
    models = _model_rules()
    assert len(models) >= 10
    handled_interfaces = {
        p.value
        for rule in parsed_rules()
        for p in rule
        if p.key == "ENV{.SIMFARM_AT_IF}" and p.op == "=="
    }
    seen_ids = set()
    for rule in models:
        assigned = {p.key: p.value for p in rule if p.op == "="}
        matched = {p.key: p.value for p in rule if p.op == "=="}
        assert (
            re.fullmatch(r"[0-9a-f]{4}", matched["ATTRS{idVendor}"])
            or "v" in matched["ATTRS{idVendor}"]
        )
        assert "ATTRS{idProduct}" in matched, rule
        assert assigned.get("ENV{SIMFARM_MODEM}"), rule
        assert assigned.get("ENV{.SIMFARM_USB}") == "$id", rule
        assert assigned.get("ENV{.SIMFARM_AT_IF}") in handled_interfaces, rule
        usb_id = (matched["ATTRS{idVendor}"], matched["ATTRS{idProduct}"], matched.get("KERNELS"))
        assert usb_id not in seen_ids, f"duplicate rule for {usb_id}"
        seen_ids.add(usb_id)


def test_modemmanager_ignore_tag_covers_every_modem_rule() -> None:
    # Set once, on every device node of any model matched above (gated by SIMFARM_MODEM).
    ignore = [
        rule
        for rule in parsed_rules()
        if any(p.key == "ENV{ID_MM_DEVICE_IGNORE}" and p.op == "=" and p.value == "1" for p in rule)
    ]
    assert len(ignore) == 1
    conditions = [p for p in ignore[0] if p.op in MATCH_OPS]
    assert conditions == [Pair("ENV{SIMFARM_MODEM}", "==", "?*")]


def test_autosuspend_is_switched_off_on_the_usb_device() -> None:
    power = [rule for rule in parsed_rules() if Pair("ATTR{power/control}", "=", "on") in rule]
    assert len(power) == 1
    assert Pair("SUBSYSTEM", "==", "usb") in power[0]
    assert Pair("ENV{DEVTYPE}", "==", "usb_device") in power[0]
    assert Pair("TEST", "==", "power/control") in power[0]


def test_named_ports_get_dialout_group() -> None:
    (named,) = [rule for rule in parsed_rules() if any(p.key == "SYMLINK" for p in rule)]
    assert Pair("GROUP", "=", "dialout") in named
    assert Pair("MODE", "=", "0660") in named


def test_udevadm_verify() -> None:
    udevadm = _require_tool("udevadm", "udevadm verify of the rules")
    probe = subprocess.run(
        [udevadm, "verify", "--help"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    if probe.returncode != 0:
        version = subprocess.run(
            [udevadm, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        reason = f"udevadm {version} has no 'verify' (systemd >= 254); see the umockdev tests"
        print(reason)
        pytest.skip(reason)
    result = subprocess.run(
        [udevadm, "verify", "--resolve-names=never", str(RULES)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------------
# udev rules: behaviour on fake devices (umockdev), in a private mount namespace
# ------------------------------------------------------------------------------------------------

ROOT_HUB = "/devices/pci0000:00/0000:00:14.0/usb1"

# Runs inside `unshare --mount`: our rules replace /etc/udev/rules.d and tmpfs replace /dev and
# /run, so `udevadm test` (which creates the links and the udev database entries it computes)
# touches nothing outside.
NAMESPACE_SCRIPT = """
set -e
rules_dir=$1; testbed=$2; device=$3
mount --bind "$rules_dir" /etc/udev/rules.d
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev
for n in null zero urandom random full; do touch "/dev/$n"; done
mkdir /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
exec umockdev-run -d "$testbed" -- udevadm test --action=add "$device"
"""


def _usb_device(path: str, vendor: str, product: str, devnum: int) -> str:
    return (
        f"P: {path}\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\n"
        f"A: idVendor={vendor}\nA: idProduct={product}\nA: busnum=1\nA: devnum={devnum}\n"
        "A: manufacturer=Test\nA: product=Modem\nA: serial=0001\nA: power/control=auto\n\n"
    )


def _tty_interface(device: str, ifnum: int, tty: str) -> str:
    interface = f"{device}/{device.rsplit('/', 1)[1]}:1.{ifnum}"
    minor = int(tty.removeprefix("ttyUSB"))
    return (
        f"P: {interface}\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\n"
        f"A: bInterfaceNumber={ifnum:02d}\nA: bInterfaceClass=ff\n\n"
        f"P: {interface}/{tty}\nE: SUBSYSTEM=usb-serial\nA: port_number=0\n\n"
        f"P: {interface}/{tty}/tty/{tty}\nN: {tty}\nE: SUBSYSTEM=tty\n"
        f"E: DEVNAME=/dev/{tty}\nE: MAJOR=188\nE: MINOR={minor}\n\n"
    )


def _testbed() -> str:
    """A root hub, a hub in port 1, and behind it: an EC25 in port 4 (interfaces 0-3), a CH340
    board in port 3, and an unknown serial device (1234:5678) in port 2."""
    hub = f"{ROOT_HUB}/1-1"
    ec25 = f"{hub}/1-1.4"
    ch340 = f"{hub}/1-1.3"
    other = f"{hub}/1-1.2"
    text = _usb_device(ROOT_HUB, "1d6b", "0002", 1) + _usb_device(hub, "05e3", "0610", 2)
    text += _usb_device(ec25, "2c7c", "0125", 3)
    text += "".join(_tty_interface(ec25, n, f"ttyUSB{n}") for n in range(4))
    text += _usb_device(ch340, "1a86", "7523", 4) + _tty_interface(ch340, 0, "ttyUSB4")
    text += _usb_device(other, "1234", "5678", 5) + _tty_interface(other, 0, "ttyUSB5")
    return text


def _tty_path(device: str, ifnum: int, tty: str) -> str:
    name = device.rsplit("/", 1)[1]
    return f"{device}/{name}:1.{ifnum}/{tty}/tty/{tty}"


@pytest.fixture(scope="module")
def udev_test(tmp_path_factory: pytest.TempPathFactory):
    for tool in ("udevadm", "umockdev-run", "unshare"):
        _require_tool(tool, "the udev rule behaviour tests")
    if os.geteuid() != 0:
        pytest.skip("udev rule behaviour tests need root (a private mount namespace)")
    base = tmp_path_factory.mktemp("udev")
    rules_dir = base / "rules.d"
    rules_dir.mkdir()
    shutil.copy(RULES, rules_dir / RULES.name)
    testbed = base / "farm.umockdev"
    testbed.write_text(_testbed())
    script = base / "run.sh"
    script.write_text(NAMESPACE_SCRIPT)

    def run(device: str) -> dict[str, str]:
        result = subprocess.run(
            ["unshare", "--mount", "sh", str(script), str(rules_dir), str(testbed), device],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0 and any(
            text in result.stderr for text in ("Permission denied", "Operation not permitted")
        ):
            reason = f"no private mount namespace here: {result.stderr[-300:]}"
            print(reason)
            pytest.skip(reason)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        log = result.stdout + result.stderr
        assert f"Reading rules file: /etc/udev/rules.d/{RULES.name}" in log
        properties = {}
        for line in result.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and re.fullmatch(r"\.?[A-Z_]+", key):
                properties[key] = value
        properties["__output__"] = log
        return properties

    return run


def _simfarm_links(properties: dict[str, str]) -> list[str]:
    links = properties.get("DEVLINKS", "").split()
    return sorted(link for link in links if link.startswith("/dev/simfarm/"))


def test_rules_name_the_ec25_at_port_by_usb_path(udev_test) -> None:
    ec25 = f"{ROOT_HUB}/1-1/1-1.4"
    properties = udev_test(_tty_path(ec25, 2, "ttyUSB2"))
    assert _simfarm_links(properties) == ["/dev/simfarm/1-1.4-if02"]
    assert fnmatch.fnmatch("/dev/simfarm/1-1.4-if02", DEFAULT_MODEM_GLOB)
    assert properties["ID_MM_DEVICE_IGNORE"] == "1"
    assert properties["SIMFARM_MODEM"] == "quectel-ec25"


@pytest.mark.parametrize("ifnum", [0, 1, 3])
def test_rules_leave_the_ec25_other_ports_unnamed_but_ignored(udev_test, ifnum: int) -> None:
    ec25 = f"{ROOT_HUB}/1-1/1-1.4"
    properties = udev_test(_tty_path(ec25, ifnum, f"ttyUSB{ifnum}"))
    assert _simfarm_links(properties) == []
    assert properties["ID_MM_DEVICE_IGNORE"] == "1"


def test_rules_switch_autosuspend_off_on_the_modem(udev_test) -> None:
    properties = udev_test(f"{ROOT_HUB}/1-1/1-1.4")
    assert properties["ID_MM_DEVICE_IGNORE"] == "1"
    assert re.search(r"ATTR '\S+/1-1\.4/power/control' writing 'on'", properties["__output__"])


def test_rules_name_a_sim800_behind_a_ch340(udev_test) -> None:
    properties = udev_test(_tty_path(f"{ROOT_HUB}/1-1/1-1.3", 0, "ttyUSB4"))
    assert _simfarm_links(properties) == ["/dev/simfarm/1-1.3-if00"]


def test_rules_ignore_unknown_devices_and_hubs(udev_test) -> None:
    other = udev_test(_tty_path(f"{ROOT_HUB}/1-1/1-1.2", 0, "ttyUSB5"))
    assert _simfarm_links(other) == []
    assert "ID_MM_DEVICE_IGNORE" not in other
    hub = udev_test(f"{ROOT_HUB}/1-1")
    assert "ID_MM_DEVICE_IGNORE" not in hub
    # (the system's own rules set hubs to 'auto'; ours must not touch them)
    assert "power/control' writing 'on'" not in hub["__output__"]
