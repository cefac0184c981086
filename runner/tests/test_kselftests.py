"""The upstream selftests as tests of a run: planning from a staged directory, the agent's
reading of kselftest exit codes, and their KTAP lines."""
import importlib.util
from pathlib import Path

from ublkcheck import kselftests
from ublkcheck.guest.protocol import Plan
from ublkcheck.model import RunResult, TestResult
from ublkcheck.results import write_ktap

AGENT = Path(__file__).resolve().parents[1] / "ublkcheck" / "guest" / "agent.py"


def agent():
    spec = importlib.util.spec_from_file_location("agent", AGENT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_exit_codes_map_to_pass_skip_fail():
    a = agent()
    assert a.script_result(0, "noise\n")[0] == "pass"
    st, msg, why = a.script_result(4, "need bpftrace\ntest_generic_02 : [SKIP]\n")
    assert (st, msg, why) == ("skip", "", "need bpftrace")
    assert a.script_result(4, "")[2] == "exit 4 (KSFT_SKIP) without a message"
    for rc in (1, 255, -9, -1):
        st, msg, _ = a.script_result(rc, "fio: verify failed\n")
        assert st == "fail" and msg.startswith(f"exit {rc}") and "verify failed" in msg


def test_planned_scripts_are_one_test_each(tmp_path):
    for n in ("test_null_01.sh", "test_loop_02.sh", "test_common.sh"):
        (tmp_path / n).write_text("#!/bin/bash\n")
    (tmp_path / "settings").write_text("timeout=150\n")
    ts = kselftests.planned(tmp_path)
    assert [t.name for t in ts] == ["kselftests.test_loop_02", "kselftests.test_null_01"]
    assert all(t.kind == "script" and t.suite == "kselftests" and t.timeout == 180 for t in ts)
    assert ts[1].binary == str(tmp_path / "test_null_01.sh")
    (tmp_path / "settings").unlink()
    assert kselftests.planned(tmp_path)[0].timeout == kselftests.DEFAULT_TIMEOUT + 30


def test_script_results_in_ktap(tmp_path):
    run = RunResult(run_id="r", kernel_spec="tree:x", kernel_release="7.2.13")
    run.tests = [TestResult("kselftests.test_null_01", "kselftests", "pass"),
                 TestResult("kselftests.test_generic_02", "kselftests", "skip", skip_reason="need bpftrace"),
                 TestResult("kselftests.test_loop_01", "kselftests", "fail", message="exit 255\nfio failed")]
    write_ktap(run, tmp_path / "k.txt")
    k = (tmp_path / "k.txt").read_text().splitlines()
    assert "ok 1 kselftests.test_null_01" in k
    assert "ok 2 kselftests.test_generic_02 # SKIP need bpftrace" in k
    assert "not ok 3 kselftests.test_loop_01" in k and "# exit 255" in k


def test_a_silent_skip_names_the_programs_the_guest_lacks(tmp_path):
    a = agent()
    script = tmp_path / "test_generic_02.sh"
    script.write_text("if ! _have_program bpftrace-never-installed; then exit 4; fi\n_have_program sh\n")
    why = a.script_result(4, "", str(script))[2]
    assert why == "exit 4 (KSFT_SKIP) without a message; the guest lacks bpftrace-never-installed"


def test_a_quiet_script_is_not_a_hang_before_its_own_timeout():
    from ublkcheck.orchestrate import Limits, Orchestrator
    o = Orchestrator.__new__(Orchestrator)
    o.limits = Limits(hang_timeout=120)
    plan = Plan(tests=[{"name": "kselftests.test_stress_05", "kind": "script", "timeout": 180},
                       {"name": "io.A.B", "kind": "gtest", "timeout": 900}])
    assert o._idle_limit(plan, "kselftests.test_stress_05") == 210
    assert o._idle_limit(plan, "io.A.B") == 120
    assert o._idle_limit(plan, None) == 120


def test_only_reports_that_kill_the_task_start_the_grace_clock():
    from ublkcheck.scan import FATAL_KINDS, header_kind
    assert header_kind("[ 1.0] UBSAN: array-index-out-of-bounds in io_uring/rsrc.c:1070:12") not in FATAL_KINDS
    assert header_kind("[ 1.0] WARNING: CPU: 1 PID: 2 at drivers/block/ublk_drv.c:10 f+0x1/0x2") not in FATAL_KINDS
    assert header_kind("[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000010") in FATAL_KINDS


def test_a_daemon_that_survives_sigkill_makes_the_guest_unfit(monkeypatch):
    """kublk in D state after the kill keeps its backing files in the guest's tmpfs (the
    stripe scripts then failed with ENOSPC): the agent ends the guest so the next test gets
    a fresh one. A zombie holds nothing and does not count."""
    import subprocess
    a = agent()
    ps = {"out": " 812 D\n 813 Z\n"}
    monkeypatch.setattr(a, "sh", lambda cmd, timeout=60: subprocess.CompletedProcess(cmd, 0, ps["out"], ""))
    monkeypatch.setattr(a.time, "sleep", lambda s: None)
    assert a.wait_gone("kublk", 0) == ["812 D"]
    ps["out"] = " 813 Z\n"
    assert a.wait_gone("kublk", 0) == []

    ran, events = [], []
    monkeypatch.setattr(a, "event", events.append)
    monkeypatch.setattr(a, "load_driver", lambda plan: "")
    monkeypatch.setattr(a, "start_features", lambda plan: None)
    monkeypatch.setattr(a, "uptime", lambda: 1.0)
    monkeypatch.setattr(a.protocol, "read_events", lambda path, pos=0: (0, []))
    monkeypatch.setattr(a, "run_test", lambda t, plan: ran.append(t["name"]) or t["name"] != "k.stuck")
    plan = a.protocol.Plan(tests=[{"name": "k.one"}, {"name": "k.stuck"}, {"name": "k.after"}])
    monkeypatch.setattr(a.sys, "argv", ["agent.py", "plan.json"])
    monkeypatch.setattr("builtins.open", lambda *args, **kw: __import__("io").StringIO(plan.dumps()))
    a.main()
    assert ran == ["k.one", "k.stuck"]
    assert [e["event"] for e in events] == ["boot", "features"], "no done: the host boots again for k.after"


def test_regular_files_left_in_dev_are_named_and_removed(tmp_path, monkeypatch):
    """fio of a stress script that opens /dev/ublkbN after the device is gone creates a
    regular file in devtmpfs and fills it (measured: stress_06 left ublkb0/1/2, 1.5 GB,
    devtmpfs 100% full, and stripe_05 later got ENOSPC). The agent removes such files after
    the script and names them; nodes, links and directories stay."""
    import subprocess
    a = agent()
    dev = tmp_path / "dev"
    (dev / "sub").mkdir(parents=True)
    (dev / "ublkb0").write_bytes(b"x" * (2 << 20))
    (dev / "sub" / "leak").write_text("y")
    (dev / "null-link").symlink_to("/dev/null")
    monkeypatch.setattr(a, "DEV", str(dev))
    script = tmp_path / "test_leak_01.sh"
    script.write_text("exit 0\n")
    monkeypatch.setattr(a, "sh", lambda cmd, timeout=60: subprocess.CompletedProcess(cmd, 1, "", ""))
    monkeypatch.setattr("tempfile.mkdtemp", lambda **kw: str(tmp_path / "t"))
    rc, out, fit, files = a.run_script({"binary": str(script)}, a.protocol.Plan())
    assert (rc, fit) == (0, True)
    assert files == ["sub/leak (0 MiB)", "ublkb0 (2 MiB)"]
    assert "left regular files in /dev, removed: sub/leak (0 MiB), ublkb0 (2 MiB)" in out
    assert sorted(p.name for p in dev.rglob("*")) == ["null-link", "sub"]
    rc, out, fit, files = a.run_script({"binary": str(script)}, a.protocol.Plan())
    assert files == [] and "ublkcheck" not in out


def test_a_device_whose_deletion_never_returns_ends_the_guest(tmp_path, monkeypatch):
    """Seen in a zoo pool (2026-12-02): a recovery script hung, its kublk outlived it, and
    `kublk del -a` waited on the stuck device past its 60 s; the timeout ended the agent with a
    traceback. Now the script's result carries the reason and the next test gets a fresh guest."""
    import subprocess
    a = agent()
    script = tmp_path / "test_recover_04.sh"
    script.write_text("exit 1\n")
    calls = []

    def sh(cmd, timeout=60):
        calls.append(cmd)
        if cmd.endswith("del -a"):
            raise subprocess.TimeoutExpired(cmd, timeout)
        return subprocess.CompletedProcess(cmd, 0, "337\n" if cmd.startswith("pgrep") else "", "")
    monkeypatch.setattr(a, "sh", sh)
    monkeypatch.setattr(a, "wait_gone", lambda name, seconds: [])
    monkeypatch.setattr(a, "clear_dev_files", lambda: [])
    monkeypatch.setattr("tempfile.mkdtemp", lambda **kw: str(tmp_path / "t"))
    rc, out, fit, files = a.run_script({"binary": str(script)}, a.protocol.Plan())
    assert (rc, fit) == (1, False)
    assert "1 kublk process(es) outlived the script; `kublk del -a` still waiting after 60 s" in out
    assert calls[-1] == "pkill -9 -x kublk", "the daemons are still killed"
