"""The systemd units in scripts/ pass `systemd-analyze verify` and follow the service model:
Type=notify with a watchdog, each service its own state folder, a static user that can own
its 0600 keys (not DynamicUser=)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "scripts").glob("perfmesh-*.service"))


def service_section(unit: Path) -> dict[str, list[str]]:
    """The [Service] keys of a unit, each with all its values (keys may repeat)."""
    values: dict[str, list[str]] = {}
    section = None
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_there_are_two_units():
    """The aggregator's and the agent's."""
    assert [u.name for u in UNITS] == ["perfmesh-agent.service", "perfmesh-aggregator.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_passes_systemd_analyze_verify(unit, tmp_path):
    """systemd-analyze verify finds nothing (ExecStart pointed at this machine's perfmesh)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian package systemd; .ci/run installs it)"
    perfmesh = shutil.which("perfmesh")
    assert perfmesh, "the perfmesh command is installed (pip install .)"
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/usr/local/bin/perfmesh", perfmesh))
    proc = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_is_notify_with_watchdog_and_a_static_user(unit):
    """Type=notify, a watchdog, no DynamicUser, a named user."""
    service = service_section(unit)
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert service["WatchdogSec"] and "DynamicUser" not in service
    assert service["User"][0].startswith("perfmesh")


def test_each_service_has_its_own_state_folder():
    """No StateDirectory is shared between the two units (systemd would re-chown it)."""
    folders = [set(service_section(u)["StateDirectory"][0].split()) for u in UNITS]
    tops = [{f.split("/")[0] for f in group} for group in folders]
    assert not tops[0] & tops[1]
    for unit in UNITS:
        exec_start = service_section(unit)["ExecStart"][0]
        state = service_section(unit)["StateDirectory"][0].split()[0]
        assert f"/var/lib/{state}" in exec_start, unit.name


def test_sysusers_file_declares_both_users():
    """scripts/perfmesh.sysusers.conf creates the users the units run as."""
    declared = {line.split()[1] for line in (ROOT / "scripts" / "perfmesh.sysusers.conf").read_text().splitlines()
                if line.startswith("u ")}
    assert declared == {service_section(u)["User"][0] for u in UNITS}
