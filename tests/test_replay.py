"""Replay: a recorded stream through the same Fleet budgets, alert rules and analysis, in the
recording's time; the ``perfmesh replay`` command on synthetic recordings."""

from __future__ import annotations

import json
import time

import pytest

from perfmesh.mesh.fleet import FleetConfig
from perfmesh.mesh.replay import Replay
from perfmesh.rules.alerting import AlertEngine, AlertRule
from tests.conftest import run_cli
from tests.recordings import T0, batches, write_recording
from workers.cli.recording import parse_duration, replay_setup


def replay(envs, budgets=None, rules=()) -> tuple[list, Replay]:
    r = Replay(FleetConfig(budgets={"cpu_percent": 80.0} if budgets is None else budgets), AlertEngine(rules))
    out = [a for env in envs for a in r.batch(env)]
    return out + r.finish(), r


def test_a_cpu_breach_is_a_violation_under_a_budget_of_50_and_none_under_95():
    alerts, r = replay(batches(), {"cpu_percent": 50.0})
    budget = [(a.state, a.timestamp, a.value) for a in alerts if a.source == "budget"]
    # quiet budgets: the violation fires on its 3rd sample over (the breach starts at T0 + 60)
    assert budget == [("firing", T0 + 62, 85.0), ("resolved", T0 + 90, 30.0)]
    assert r.summary.fired["budget"] == 1 and r.summary.span_s == 119
    alerts, r = replay(batches(), {"cpu_percent": 95.0})
    assert [a for a in alerts if a.source == "budget"] == [] and "budget" not in r.summary.fired


def test_bottlenecks_fire_and_resolve_at_recorded_times_whatever_the_budget():
    alerts, _ = replay(batches(), {"cpu_percent": 95.0})
    got = [(a.metric, a.state, a.timestamp) for a in alerts if a.source == "bottleneck"]
    assert got == [("cpu_bound", "firing", T0 + 60), ("cpu_bound", "resolved", T0 + 90)]


def test_alert_rules_use_their_delay_in_recorded_samples():
    rule = AlertRule("cpu-hot", "cpu_percent", warning=80, for_samples=5)
    alerts, r = replay(batches(), {}, [rule])
    got = [(a.state, a.timestamp) for a in alerts if a.source == "rule"]
    assert got == [("firing", T0 + 64), ("resolved", T0 + 90)]
    assert r.summary.fired == {"rule": 1, "bottleneck": 1}


def test_a_breach_still_on_at_the_end_is_reported_as_still_firing():
    alerts, r = replay(batches(seconds=80), {"cpu_percent": 50.0})
    assert [a.metric for a in r.summary.still_firing] == ["cpu_bound", "cpu_percent"]


def test_a_silence_in_the_recording_takes_the_host_down_as_the_live_aggregator_would():
    envs = list(batches(seconds=10)) + list(batches(seconds=10, t0=T0 + 100, first_seq=21))
    r = Replay(FleetConfig(), AlertEngine())
    for env in envs:
        r.batch(env)
        if env.body["ts"] == T0 + 9:
            assert r.fleet.hosts["web01"].alive
    assert r.fleet.hosts["web01"].alive and r.fleet.hosts["web01"].last_seen == T0 + 109
    assert r.summary.batches == 40 and r.summary.first_ts == T0 and r.summary.last_ts == T0 + 109


def test_a_malformed_batch_is_counted_and_skipped():
    good = list(batches(seconds=2))
    bad = good[0].__class__("metrics", "web01", "boot-1", 99, T0, {"schema": b"zz", "ts": T0 + 5, "values": b""})
    odd = good[0].__class__("metrics", "web01", "boot-1", 98, T0, {"nope": 1})
    _, r = replay([*good, bad, odd])
    assert r.summary.batches == 4 and r.summary.bad_batches == 2


def test_replay_setup_takes_budgets_groups_and_rules_from_the_file_under_the_flags(tmp_path):
    cfg = tmp_path / "new.toml"
    cfg.write_text('version = 1\n[budgets]\ncpu_percent = 70\n[groups.web]\nhosts = ["web*"]\n'
                   '[groups.web.budgets]\nmemory_percent = 30\n'
                   '[[alerts]]\nname = "hot"\nmetric = "cpu_percent"\nwarning = 60\n')
    fleet, engine = replay_setup(str(cfg), {"cpu_percent": 40.0})
    assert fleet.host_budgets("web01")["memory_percent"] == 30 and fleet.host_budgets("db1")["cpu_percent"] == 40
    assert [e.rule.name for e in engine.evaluators] == ["hot"]


@pytest.mark.parametrize("text, seconds", [("90", 90), ("30s", 30), ("10m", 600), ("2h", 7200), ("7d", 604800),
                                           ("1.5h", 5400)])
def test_durations_take_a_unit(text, seconds):
    assert parse_duration(text) == seconds


# ------------------------------------------------------------------ the command
def test_the_command_prints_the_violation_with_its_time_for_50_and_not_for_95(tmp_path):
    path = write_recording(tmp_path / "incident.rec")
    res = run_cli("replay", str(path), "--budget", "cpu_percent=50")
    assert res.returncode == 0, res.stderr
    firing = [line for line in res.stdout.splitlines() if "FIRING" in line and "budget" in line]
    assert len(firing) == 1 and "cpu_percent=85 (limit 50)" in firing[0]
    assert time.strftime("%H:%M:%S", time.localtime(T0 + 62)) in firing[0]
    assert "1 budget violation(s)" in res.stdout and "2m00s of stream" not in res.stdout
    res = run_cli("replay", str(path), "--budget", "cpu_percent=95", "--json")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 0 and not [x for x in lines if x.get("source") == "budget"]
    assert lines[-1]["type"] == "summary" and lines[-1]["batches"] == 240
    assert lines[-1]["recorded_events"] == {"host": 1} and lines[-1]["problem"] is None


def test_a_config_file_is_tried_on_the_recording(tmp_path):
    path = write_recording(tmp_path / "incident.rec")
    cfg = tmp_path / "new.toml"
    cfg.write_text('version = 1\n[budgets]\ncpu_percent = 60\n')
    res = run_cli("replay", str(path), "--config", str(cfg), "--json")
    fired = [json.loads(x) for x in res.stdout.splitlines() if '"alert"' in x]
    assert [(a["metric"], a["threshold"], a["state"]) for a in fired if a["source"] == "budget"] == [
        ("cpu_percent", 60.0, "firing"), ("cpu_percent", 60.0, "resolved")]


def test_speed_0_replays_an_hour_in_seconds(tmp_path):
    path = write_recording(tmp_path / "hour.rec", seconds=3600, breach=(1800, 1860))
    t = time.monotonic()
    res = run_cli("replay", str(path), "--speed", "0", "--budget", "cpu_percent=50", "--json")
    elapsed = time.monotonic() - t
    summary = json.loads(res.stdout.splitlines()[-1])
    assert res.returncode == 0 and summary["batches"] == 7200 and summary["span_s"] == 3599
    assert summary["fired"]["budget"] == 1
    assert elapsed < 15, f"an hour of stream took {elapsed:.1f}s"


def test_speed_10_paces_the_stream_at_ten_times_real_time(tmp_path):
    path = write_recording(tmp_path / "short.rec", seconds=11, breach=(0, 0))
    t = time.monotonic()
    res = run_cli("replay", str(path), "--speed", "10")
    assert res.returncode == 0 and time.monotonic() - t >= 1.0   # 10 s of stream at 10x


def test_a_truncated_file_replays_up_to_the_cut_with_a_warning_naming_file_and_offset(tmp_path):
    path = write_recording(tmp_path / "crashed.rec")
    data = path.read_bytes()
    cut = tmp_path / "cut.rec"
    cut.write_bytes(data[:int(len(data) * 0.6) + 3])     # inside a record, after the breach began
    res = run_cli("replay", str(cut), "--budget", "cpu_percent=50")
    assert res.returncode == 0
    assert [line for line in res.stdout.splitlines() if "FIRING" in line and "cpu_percent=85" in line]
    assert "RESOLVED  critical" not in res.stdout and "still firing at the end: 2" in res.stdout
    assert res.stderr.startswith("perfmesh replay: WARNING: recording ")
    assert "cut.rec at byte " in res.stderr and "ends inside a record" in res.stderr
    assert len(res.stderr.splitlines()) == 1


def test_a_corrupt_record_is_an_error_after_replaying_what_came_before(tmp_path):
    path = write_recording(tmp_path / "bad.rec")
    data = bytearray(path.read_bytes())
    data[int(len(data) * 0.9)] ^= 0xFF
    path.write_bytes(bytes(data))
    res = run_cli("replay", str(path), "--budget", "cpu_percent=50")
    assert res.returncode == 1 and "RESOLVED  critical  budget" in res.stdout
    assert "ERROR: recording" in res.stderr and "bad.rec at byte" in res.stderr and "crc" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["--speed", "-1"], "argument --speed: speed '-1' must be a number >= 0"),
    (["--budget", "cpu_percent"], "must be NAME=LIMIT"),
])
def test_flag_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    res = run_cli("replay", str(write_recording(tmp_path / "a.rec", seconds=1)), *args)
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.splitlines()) == 1


def test_a_file_that_is_not_a_recording_is_one_line_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("x" * 100)
    res = run_cli("replay", str(tmp_path / "notes.txt"))
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1
    assert "notes.txt at byte 0: is not a perfmesh recording" in res.stderr


def test_the_aggregator_serves_a_recording_only_without_keys(tmp_path):
    path = write_recording(tmp_path / "a.rec", seconds=1)
    res = run_cli("aggregator", "--replay", str(path), "--keys", str(tmp_path / "keys"),
                  "--data", str(tmp_path / "data"))
    assert res.returncode == 1 and "--replay serves a recording on an aggregator without --keys" in res.stderr
    res = run_cli("aggregator", "--replay", str(tmp_path / "missing.rec"), "--data", str(tmp_path / "data"))
    assert res.returncode == 1 and "missing.rec: cannot open it" in res.stderr


def test_text_lines_carry_time_state_severity_source_host_value_and_duration():
    from perfmesh.rules.alerting import Alert
    from perfmesh.views.replay_text import format_alert
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(T0 + 90))
    fired = Alert("budget_violation", "web\x1b01", "cpu_percent", "critical", "resolved", 30.0, 50.0, "cpu",
                  T0 + 60, T0 + 90, "budget")
    assert format_alert(fired) == (f"{when}  RESOLVED  critical  budget     web\\x1b01        "
                                   "cpu_percent=30 (limit 50) after 30s")
    rule = Alert("hot", "web01", "cpu_percent", "critical", "firing", 99.0, 95.0, "cpu", T0, T0 + 90, "rule",
                 previous_severity="warning")
    assert format_alert(rule).endswith("cpu_percent=99 (level 95) (was warning) [hot]")
    long = Alert("bottleneck", "web01", "cpu_bound", "warning", "resolved", None, None, "cpu", T0 - 3725,
                 T0 + 90, "bottleneck")
    assert format_alert(long).endswith("web01            cpu_bound after 1h03m35s")


def test_in_process_replay_of_a_cut_file_prints_alerts_summary_and_one_warning(tmp_path, capsys):
    from workers.cli import main
    path = write_recording(tmp_path / "a.rec")
    data = path.read_bytes()
    (tmp_path / "cut.rec").write_bytes(data[:len(data) - 30])
    assert main(["replay", str(tmp_path / "cut.rec"), "--budget", "cpu_percent=50"]) == 0
    out, err = capsys.readouterr()
    assert "RESOLVED  critical  budget" in out and "would fire: 1 budget violation(s), 1 bottleneck(s)" in out
    assert "the live stream had 0 violation event(s)" in out
    assert err.startswith("perfmesh replay: WARNING: recording ") and "cut.rec at byte" in err


def test_in_process_replay_counts_malformed_batches_in_the_summary(tmp_path, capsys):
    from perfmesh.store.recording import RecordingInfo, RecordingWriter
    from workers.cli import main
    w = RecordingWriter(tmp_path / "odd.rec", RecordingInfo(T0))
    env = next(batches())
    w.write_batch(T0, env)
    w.write_batch(T0, env.__class__("metrics", "web01", "b", 5, T0, {"schema": b"zz", "ts": T0 + 1, "values": b""}))
    w.close()
    assert main(["replay", str(tmp_path / "odd.rec")]) == 0
    assert "skipped 1 malformed batch(es)" in capsys.readouterr().out


def test_replay_tries_other_budget_delays_and_clear_levels(tmp_path):
    """--budget-delay 0 fires on the first sample over (T0 + 60), the default on the 3rd."""
    path = write_recording(tmp_path / "incident.rec")
    at_once = run_cli("replay", str(path), "--budget", "cpu_percent=50", "--budget-delay", "0", "--json")
    quiet = run_cli("replay", str(path), "--budget", "cpu_percent=50", "--json")
    fired = [[json.loads(line)["timestamp"] for line in res.stdout.splitlines()
              if json.loads(line).get("source") == "budget" and json.loads(line).get("state") == "firing"]
             for res in (at_once, quiet)]
    assert fired == [[T0 + 60], [T0 + 62]]
