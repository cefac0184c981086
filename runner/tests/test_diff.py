"""ublkcheck diff: every kind of change, known issues not counted, matrices kernel by kernel,
exit codes."""
import json
import subprocess
from pathlib import Path

from synth import report, run, tr, written
from ublkcheck.diff import diff_runs, diff_sets, format_diff, regressions
from ublkcheck.rundirs import KernelRun

REPO = Path(__file__).resolve().parents[2]
UBSAN = "UBSAN: array-index-out-of-bounds in io_uring/rsrc.c:1043:18"


def old_run():
    return run([tr("a.T.StaysPass"), tr("a.T.Breaks"), tr("a.T.GetsFixed", "fail", message="boom"),
                tr("a.T.StartsSkipping"), tr("a.T.StopsSkipping", "skip", skip_reason="no feature"),
                tr("a.T.Removed"), tr("a.T.OldOops", "fail", reports=[report("WARNING: at ublk_old", "a.T.OldOops")])])


def new_run():
    oops = report("BUG: kernel NULL pointer dereference in io_uring_cmd_done", "a.T.Breaks", kind="null-deref")
    known = report(UBSAN, "a.T.Known", kind="ubsan")
    return run([tr("a.T.StaysPass"), tr("a.T.Breaks", "fail", reports=[oops]), tr("a.T.GetsFixed"),
                tr("a.T.StartsSkipping", "skip", skip_reason="kernel 6.12 lacks <it>"), tr("a.T.StopsSkipping"),
                tr("a.T.Added", "error", message="not reached"), tr("a.T.OldOops"),
                tr("a.T.Known", "fail", reports=[known], known="UBSAN in io_buffer_register_bvec, 7.2")])


def test_every_kind_of_change():
    d = diff_runs(old_run(), new_run())
    nf = {f["test"]: f for f in d["new_failures"]}
    assert set(nf) == {"a.T.Breaks", "a.T.Added", "a.T.Known"}
    assert nf["a.T.Breaks"]["old"] == "pass" and "io_uring_cmd_done" in nf["a.T.Breaks"]["detail"]
    assert nf["a.T.Added"]["old"] == "absent" and nf["a.T.Added"]["new"] == "error"
    assert nf["a.T.Known"]["known_issue"]
    assert [f["test"] for f in d["fixed"]] == ["a.T.GetsFixed", "a.T.OldOops"]
    assert [(f["test"], f["reason"]) for f in d["newly_skipped"]] == [("a.T.StartsSkipping", "kernel 6.12 lacks <it>")]
    assert [f["test"] for f in d["no_longer_skipped"]] == ["a.T.StopsSkipping"]
    assert [f["test"] for f in d["added"]] == ["a.T.Added", "a.T.Known"]
    assert [f["test"] for f in d["removed"]] == ["a.T.Removed"]
    sigs = {s["title"]: s for s in d["new_signatures"]}
    assert set(sigs) == {"BUG: kernel NULL pointer dereference in io_uring_cmd_done", UBSAN}
    assert sigs[UBSAN]["known_issue"]
    assert not sigs["BUG: kernel NULL pointer dereference in io_uring_cmd_done"]["known_issue"]
    assert sigs[UBSAN]["tests"] == ["a.T.Known"]
    assert [s["title"] for s in d["gone_signatures"]] == ["WARNING: at ublk_old"]
    # Breaks and Added fail for unknown reasons, and the NULL deref is a new signature;
    # the known UBSAN is shown but not counted.
    assert regressions(d) == 3


def test_signatures_are_deduplicated():
    r1 = report("WARNING: at ublk_x", "a.T.One", signature="sig")
    r2 = report("WARNING: at ublk_x", "a.T.Two", signature="sig")
    d = diff_runs(run([]), run([tr("a.T.One", "fail", reports=[r1]), tr("a.T.Two", "fail", reports=[r2])]))
    assert len(d["new_signatures"]) == 1 and d["new_signatures"][0]["tests"] == ["a.T.One", "a.T.Two"]


def test_identical_runs_have_no_changes():
    d = diff_sets("run", [KernelRun("debian:sid", None, new_run())], "run", [KernelRun("debian:sid", None, new_run())])
    assert d["regressions"] == 0
    assert "no changes" in format_diff(d)


def test_matrices_compare_kernel_by_kernel():
    trixie = run([tr("a.T.X")], spec="debian:trixie", release="6.12.48+deb13-amd64")
    old = [KernelRun("debian:trixie", None, trixie), KernelRun("debian:sid", None, old_run()),
           KernelRun("debian:experimental", None, run([]))]
    new = [KernelRun("debian:sid", None, new_run()), KernelRun("debian:trixie", None, trixie),
           KernelRun("debian:experimental", None, None, error="apt-get download: no such package"),
           KernelRun("debian:forky", None, run([], spec="debian:forky"))]
    d = diff_sets("matrix", old, "matrix", new)
    assert [k["new"] for k in d["kernels"]] == ["debian:sid", "debian:trixie"]
    assert d["kernels"][1]["changes"]["new_failures"] == []
    assert d["kernel_errors"] == [{"kernel": "debian:experimental", "error": "apt-get download: no such package",
                                   "ran_before": True}]
    assert d["kernels_added"] == ["debian:forky"]
    assert d["regressions"] == 3 + 1        # sid's three, and experimental not running any more
    text = format_diff(d)
    assert "debian:experimental: did not run: apt-get download" in text and "kernels only in NEW: debian:forky" in text


def cli(*args):
    return subprocess.run([str(REPO / "ublkcheck"), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_cli_exit_codes_and_json(tmp_path):
    old = written(old_run(), tmp_path / "old")
    new = written(new_run(), tmp_path / "new")
    p = cli("diff", old, new)
    assert p.returncode == 1, p.stderr
    assert "new failures (3):" in p.stdout and "FAIL*  a.T.Known" in p.stdout and "known issue:" in p.stdout
    assert "fixed (2):" in p.stdout and "3 regression(s)" in p.stdout
    assert p.stdout.count("FAIL*  a.T.Known") == 2       # under new failures and under added
    p = cli("diff", old / "results.json", new, "--json")
    assert p.returncode == 1 and json.loads(p.stdout)["regressions"] == 3
    p = cli("diff", new, new)
    assert p.returncode == 0 and "0 regression(s)" in p.stdout
    # The other way round only fixes and removes, and the gone NULL deref is not a regression.
    p = cli("diff", new, old)
    assert p.returncode == 1  # except OldOops, which fails again with its WARNING
    assert "kernel reports gone (2):" in p.stdout


def test_cli_reads_matrix_dirs_of_subdirectories(tmp_path):
    for base, r in (("old", old_run()), ("new", new_run())):
        written(r, tmp_path / base / "debian-sid")
        written(run([tr("a.T.X")], spec="debian:trixie"), tmp_path / base / "debian-trixie")
    p = cli("diff", tmp_path / "old", tmp_path / "new", "--json")
    d = json.loads(p.stdout)
    assert p.returncode == 1 and [k["new"] for k in d["kernels"]] == ["debian:sid", "debian:trixie"]


def test_cli_bad_input_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for args, needle in [(("/nonexistent", "x"), "no such file or directory"),
                         ((tmp_path / "empty", tmp_path / "empty"), "holds no results.json")]:
        p = cli("diff", *args)
        assert p.returncode == 2 and needle in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_output_cut_short_by_the_reader_is_no_traceback(tmp_path):
    written(run([]), tmp_path / "old")
    written(run([tr(f"a.Many.Test{i:05d}", "fail", message="x" * 80) for i in range(3000)]), tmp_path / "new")
    p = subprocess.run(f"'{REPO / 'ublkcheck'}' diff '{tmp_path / 'old'}' '{tmp_path / 'new'}' | head -1",
                       shell=True, capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("debian:sid") and "Traceback" not in p.stderr and "Broken pipe" not in p.stderr
