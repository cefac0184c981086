"""Discovery, the qemu command line, attribution of reports, known issues, CLI errors."""
import subprocess
from pathlib import Path

import pytest

from ublkcheck import known, vm
from ublkcheck.discover import PlannedTest, parse_gtest_list
from ublkcheck.kernel import Kernel
from ublkcheck.model import Report, RunResult, TestResult
from ublkcheck.orchestrate import Limits, Orchestrator

REPO = Path(__file__).resolve().parents[2]


def test_parse_gtest_list_with_parameters():
    text = ("Lifecycle.\n  StartStopDelete\n  TryStopDevIsBusyWhileOpen\n"
            "CopyModes/Integrity.  # TypeParam = \n  WriteRead/plain_mem_512  # GetParam() = 24-byte object <..>\n")
    assert parse_gtest_list(text) == ["Lifecycle.StartStopDelete", "Lifecycle.TryStopDevIsBusyWhileOpen",
                                      "CopyModes/Integrity.WriteRead/plain_mem_512"]


def fake_kernel(tmp_path):
    return Kernel(spec="debian:sid", release="7.2.13+deb14-amd64", vmlinuz=tmp_path / "vmlinuz",
                  modules=tmp_path / "7.2.13+deb14-amd64")


def test_qemu_command_line(tmp_path, monkeypatch):
    monkeypatch.setattr(vm, "qemu_binary", lambda: "/usr/bin/qemu-system-x86_64")
    argv = vm.command_line(fake_kernel(tmp_path), tmp_path / "initrd", tmp_path / "share",
                           vm.VmConfig(smp=2, mem_mb=2048, append="foo=1"), tmp_path / "mon", Path("/a/agent.py"))
    s = " ".join(argv)
    for want in ("-no-reboot", "-nographic", "-nic none", "tcg,thread=multi", "-cpu max", "-smp 2", "-m 2048",
                 "readonly=on", "mount_tag=hostroot", "mount_tag=results", f"path={tmp_path / 'share'}",
                 "monitor"):
        assert want in s, want
    append = argv[argv.index("-append") + 1]
    assert "panic=-1" in append and "console=ttyS0" in append and "foo=1" in append
    assert "KREL=7.2.13+deb14-amd64" in append and "AGENT=/a/agent.py" in append
    # TCG only: no clocksource watchdog on the TSC (its runtime sched_clock patch oopses there).
    assert "tsc=nowatchdog" in append.split()
    kvm = vm.command_line(fake_kernel(tmp_path), tmp_path / "initrd", tmp_path / "share",
                          vm.VmConfig(accel="kvm"), tmp_path / "mon", Path("/a/agent.py"))
    assert "tsc=nowatchdog" not in kvm[kvm.index("-append") + 1]


def assemble(tmp_path, lines, results, tests):
    o = Orchestrator(fake_kernel(tmp_path), vm.VmConfig(), tmp_path / "out", Limits())
    o._t0 = 0.0
    o.boots = 1
    o.all_lines = [(1, l) for l in lines]
    o.results = results
    o.kernel_release = "7.2.13+deb14-amd64"
    return o._assemble(tests, {}, "debian:sid", [], "2026-11-22T00:00:00+00:00")


def test_reports_are_attributed_to_the_running_test_and_fail_it(tmp_path):
    tests = [PlannedTest("a.X.One", "a", "/bin/true", "X.One"), PlannedTest("a.X.Two", "a", "/bin/true", "X.Two")]
    lines = ["[ 1.0] ublkcheck: START a.X.One", "[ 1.1] ublkcheck: END a.X.One pass",
             "[ 2.0] ublkcheck: START a.X.Two",
             "[ 2.5] WARNING: CPU: 0 PID: 9 at drivers/block/ublk_drv.c:10 ublk_foo+0x1/0x2 [ublk_drv]",
             "[ 2.5] RIP: 0010:ublk_foo+0x1/0x2 [ublk_drv]", "[ 2.6] ---[ end trace 0 ]---",
             "[ 2.9] ublkcheck: END a.X.Two pass"]
    res = {n: {"name": n, "status": "pass", "duration": 1.0} for n in ("a.X.One", "a.X.Two")}
    run = assemble(tmp_path, lines, res, tests)
    one, two = run.tests
    assert one.status == "pass" and not one.reports
    assert two.status == "fail" and two.reports[0].title == "WARNING in ublk_foo"
    assert "kernel report during the test" in two.message
    assert not run.ok()


def test_unreached_tests_are_errors(tmp_path):
    tests = [PlannedTest("a.X.One", "a", "/bin/true", "X.One")]
    run = assemble(tmp_path, [], {}, tests)
    assert run.tests[0].status == "error"


def test_known_issue_keeps_fail_but_not_the_run():
    rep = Report("ubsan", "UBSAN: array-index-out-of-bounds in io_buffer_register_bvec", "s",
                 "UBSAN: array-index-out-of-bounds in io_uring/rsrc.c:1070:12")
    run = RunResult("r", "debian:sid", kernel_release="7.2.13+deb14-amd64",
                    tests=[TestResult("t", "io", "fail", message="kernel report during the test: UBSAN",
                                      reports=[rep])])
    issues = [{"signature": "UBSAN: array-index-out-of-bounds in io_buffer_register_bvec", "release": r"^7\.2\.",
               "location": r"rsrc\.c:1070:", "note": "n"}]
    assert known.annotate(run, issues) == 1
    assert run.tests[0].status == "fail" and run.ok()
    other = RunResult("r", "x", kernel_release="7.3.0",
                      tests=[TestResult("t", "io", "fail", message="kernel report during the test: UBSAN",
                                        reports=[rep])])
    assert known.annotate(other, issues) == 0 and not other.ok()


def test_evidence_starts_at_the_test(tmp_path):
    lines = ["x", "ublkcheck: START a.B.C", "boom", "more"]
    assert Orchestrator._evidence(lines, "a.B.C").splitlines()[0] == "ublkcheck: START a.B.C"


def run_cli(*args):
    return subprocess.run([str(REPO / "ublkcheck"), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args,needle", [
    (["run", "--kernel", "debian:hamm"], "unknown Debian suite"),
    (["run", "--kernel", "/nonexistent/bzImage"], "no such file"),
    (["run", "--kernel", "/bin/true"], "needs --modules"),
    (["scan", "/nonexistent.log"], "no such file"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    p = run_cli(*args)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_missing_build_dir(tmp_path, monkeypatch):
    from ublkcheck.discover import discover
    from ublkcheck.errors import UserError
    with pytest.raises(UserError, match="not a meson build directory"):
        discover(tmp_path)


@pytest.mark.parametrize("args,needle", [
    (["run", "--kernel", "debian:sid", "--coverage"], "--kernel-tree"),
    (["run", "--kernel", "debian:sid", "--affected"], "--patch FILE"),
    (["run", "--kernel", "debian:sid", "--affected-only"], "goes with --affected"),
])
def test_coverage_and_affected_refused_before_anything_runs(standins, args, needle):
    p = run_cli(*args)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not standins.exists(), f"called before refusing: {standins.read_text()}"
