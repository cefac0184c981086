"""Bad input is refused in one line, exit 2, before anything is downloaded, built or
booted: apt-get, qemu and make are stand-ins that record being called (the `standins`
fixture of conftest.py)."""
import subprocess

import pytest

from ublkcheck.paths import REPO


def refused(standins, args, needle):
    p = subprocess.run([str(REPO / "ublkcheck"), *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    assert needle in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not standins.exists(), f"called before refusing: {standins.read_text()}"


@pytest.mark.parametrize("args,needle", [
    (["run", "--smp", "0"], "argument --smp: 0 is out of range: give 1..64"),
    (["run", "--smp", "two"], "argument --smp: 'two' is not a whole number"),
    (["run", "--mem", "-5"], "argument --mem: -5 is out of range"),
    (["run", "--timeout", "nan"], "argument --timeout: nan is not a usable time"),
    (["run", "--timeout", "-1"], "argument --timeout: -1 is not a usable time"),
    (["run", "--hang-timeout", "inf"], "argument --hang-timeout: inf is not a usable time"),
    (["run", "--grace", "-0.5"], "argument --grace: -0.5 is not a usable time"),
    (["run", "--stress-seconds", "0"], "argument --stress-seconds: 0 is below 1"),
    (["reproduce", "seed-panic", "--attempts", "0"], "argument --attempts: 0 is below 1"),
    (["reproduce", "seed-panic", "--seconds", "x"], "argument --seconds: 'x' is not a whole number"),
    (["bench", "--repeats", "0"], "argument --repeats: 0 is below 1"),
    (["zoo", "--mem", "1.5"], "argument --mem: '1.5' is not a whole number"),
    (["zoo", "--pool", "0"], "argument --pool: 0 is out of range: give 1..16"),
])
def test_numbers_out_of_range(standins, args, needle):
    refused(standins, args, needle)


def test_patch_that_does_not_exist(standins):
    refused(standins, ["run", "--kernel", "debian:sid", "--patch", "/nonexistent.patch"],
            "--patch /nonexistent.patch: no such file")


def test_patch_that_is_not_a_diff_of_the_driver(standins, tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("just some words\n")
    refused(standins, ["run", "--kernel", "debian:sid", "--patch", str(p)],
            "not a unified diff of drivers/block/ublk_drv.c")


def test_results_that_is_a_file(standins, tmp_path):
    f = tmp_path / "r"
    f.write_text("")
    refused(standins, ["run", "--kernel", "debian:sid", "--results", str(f)], "an existing file")


def test_resume_without_results(standins):
    refused(standins, ["zoo", "--resume"], "--resume continues a stopped zoo: give its --results DIR")


def test_results_whose_parent_is_missing(standins, tmp_path):
    refused(standins, ["zoo", "--results", str(tmp_path / "no" / "such")], "does not exist")
    assert not (tmp_path / "no").exists()


def test_kernel_tree_that_is_not_a_directory(standins):
    refused(standins, ["run", "--kernel-tree", "/nonexistent-tree"], "not a directory")


def test_matrix_checks_every_kernel_before_the_first_runs(standins):
    refused(standins, ["matrix", "--kernels", "debian:sid,/nonexistent/bzImage"],
            "--kernel /nonexistent/bzImage: no such file")


def test_run_dashdash_without_a_command(standins):
    refused(standins, ["run", "--"], "nothing after it")


def test_scan_takes_json_before_or_after_the_file():
    log = str(REPO / "runner/tests/data/warn-7.2-new-format.log")
    for args in (["scan", "--json", log], ["scan", log, "--json"]):
        p = subprocess.run([str(REPO / "ublkcheck"), *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and p.stdout.lstrip().startswith("["), (args, p.stderr)
    h = subprocess.run([str(REPO / "ublkcheck"), "scan", "--help"], capture_output=True, text=True, timeout=60)
    assert "--json" in h.stdout and "file" in h.stdout


def test_kernel_that_is_not_a_bzimage(standins, tmp_path):
    k = tmp_path / "vmlinuz"
    k.write_text("not a kernel\n")
    refused(standins, ["run", "--kernel", str(k)], "not a bzImage")


def test_modules_without_the_release_or_without_ublk_drv(standins, tmp_path):
    k = tmp_path / "bzImage"
    k.write_bytes(b"\0" * 0x202 + b"HdrS" + b"\0" * 64)  # the boot protocol's magic at 0x202
    refused(standins, ["run", "--kernel", str(k), "--modules", str(tmp_path / "nope")], "--modules")
    release = tmp_path / "lib" / "modules" / "7.2.0-test"
    (release / "kernel" / "fs").mkdir(parents=True)
    refused(standins, ["run", "--kernel", str(k), "--modules", str(release.parent)],
            "expected a .../modules/<release> directory")
    refused(standins, ["run", "--kernel", str(k), "--modules", str(release)], "no ublk_drv.ko in it")


def test_fetch_source_into_a_file(standins, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    refused(standins, ["fetch-source", "7.2", str(f)], "is an existing file (give a directory)")


@pytest.mark.parametrize("cmd,kind", [("merge", "directory"), ("report", "file"), ("coverage", "directory")])
def test_out_whose_parent_is_missing_or_that_is_the_wrong_kind(standins, tmp_path, cmd, kind):
    f = tmp_path / "file"
    f.write_text("x")
    refused(standins, [cmd, str(tmp_path), "--out", str(tmp_path / "no" / "such")], "does not exist")
    if kind == "directory":
        refused(standins, [cmd, str(tmp_path), "--out", str(f)], "is an existing file (give a directory)")
    else:
        refused(standins, [cmd, str(tmp_path), "--out", str(tmp_path)], "is an existing directory")


def test_filter_or_exclude_that_leaves_no_test_names_itself(standins):
    refused(standins, ["run", "--filter", "nosuchsuite.*"], "--filter 'nosuchsuite.*'")
    refused(standins, ["run", "--exclude", "*"], "--exclude '*'")
