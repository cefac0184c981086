"""ublkcheck matrix: the tests x kernels table, matrix.json, and a kernel that does not run
not costing the others their run."""
import json
import subprocess
from pathlib import Path

import pytest

from synth import report, run, tr, written
from ublkcheck import cli, matrix
from ublkcheck.errors import UserError
from ublkcheck.matrix import kernel_dirname, matrix_table, parse_kernels
from ublkcheck.rundirs import load_kernel_runs

REPO = Path(__file__).resolve().parents[2]
TRIXIE = "6.12.48+deb13-amd64"
LACKS = "kernel 6.12.48+deb13-amd64 lacks UBLK_F_PER_IO_DAEMON (GET_FEATURES = 0x1fe)"


def three_kernels():
    oops = report("BUG: kernel NULL pointer dereference in io_uring_cmd_done", "stress.S.Seed", kind="null-deref")
    ubsan = report("UBSAN: array-index-out-of-bounds in io_uring/rsrc.c:1043:18", "io.Z.Reg", kind="ubsan")
    passing = [tr(f"control.L.T{i}") for i in range(5)]
    trixie = run(passing + [tr("per_io_daemon.P.A", "skip", skip_reason=LACKS),
                            tr("per_io_daemon.P.B", "skip", skip_reason=LACKS),
                            tr("io.Z.Reg", "skip", skip_reason="no zero copy"), tr("stress.S.Seed")],
                 spec="debian:trixie", release=TRIXIE)
    sid = run(passing + [tr("per_io_daemon.P.A"), tr("per_io_daemon.P.B"),
                         tr("io.Z.Reg", "fail", reports=[ubsan], known="UBSAN in io_buffer_register_bvec"),
                         tr("stress.S.Seed", "fail", reports=[oops])])
    exp = run(passing + [tr("per_io_daemon.P.A"), tr("per_io_daemon.P.B"), tr("io.Z.Reg")],
              spec="debian:experimental", release="7.3.0-rc3-amd64")
    return [trixie, sid, exp]


def test_matrix_table_collapses_skip_reasons_and_hides_passing_rows():
    text = matrix_table(three_kernels())
    lines = text.splitlines()
    assert lines[0].split() == ["TEST", "debian:trixie", "debian:sid", "debian:experimental"]
    assert lines[1].split() == [TRIXIE, "7.2.13+deb14-amd64", "7.3.0-rc3-amd64"]
    rows = {l.split()[0]: l.split()[1:] for l in lines[2:] if l.split() and "." in l.split()[0] and "[" not in l[:3]}
    # Notes are numbered in row order; the same reason gets the same number.
    assert rows["io.Z.Reg"] == ["SKIP[1]", "FAIL*", "PASS"]
    assert rows["per_io_daemon.P.A"] == ["SKIP[2]", "PASS", "PASS"]
    assert rows["per_io_daemon.P.B"] == ["SKIP[2]", "PASS", "PASS"]
    assert rows["stress.S.Seed"] == ["PASS", "FAIL", "-"]             # experimental's run lacks it
    assert not any(l.startswith("control.") for l in lines)
    assert "5 tests pass on every kernel (--all lists them)" in lines
    assert "[1] no zero copy" in lines and f"[2] {LACKS}" in lines
    assert "debian:sid: 7 passed, 2 failed, 0 skipped, 0 errors in 15s" in lines
    assert any(l.startswith("FAIL* = ") for l in lines)
    # Columns line up: every status starts where its kernel's heading does.
    col = lines[0].index("debian:sid")
    assert next(l for l in lines if l.startswith("io.Z.Reg"))[col:].startswith("FAIL*")


def test_matrix_table_all_rows_and_errors():
    text = matrix_table(three_kernels()[:1], {"debian:experimental": "apt-get download failed"}, all_rows=True)
    assert "control.L.T0" in text and "pass on every kernel" not in text
    assert "debian:experimental: did not run: apt-get download failed" in text


@pytest.mark.parametrize("spec,want", [("debian:sid", "debian-sid"), ("/boot/vmlinuz-7.2", "boot-vmlinuz-7.2"),
                                       ("7.2.13-1", "7.2.13-1")])
def test_kernel_dirname(spec, want):
    assert kernel_dirname(spec) == want


@pytest.mark.parametrize("text,needle", [("", "comma-separated"), ("a,,b", "comma-separated"),
                                         ("debian:sid,debian:sid", "twice"), ("a:b,a/b", "share")])
def test_parse_kernels_rejects(text, needle):
    with pytest.raises(UserError, match=needle):
        parse_kernels(text)


def test_matrix_runs_every_kernel_and_records_the_ones_that_fail(tmp_path, monkeypatch, capsys):
    runs = {r.kernel_spec: r for r in three_kernels()}
    seen = []

    def fake_execute(args, command, label):
        seen.append((args.kernel, args.results, args.shard, label))
        if args.kernel == "debian:experimental":
            raise RuntimeError("qemu exploded")
        if args.kernel == "debian:bookworm":
            raise UserError("debian:bookworm ships without ublk")
        out = Path(args.results)
        r = runs[args.kernel]
        r.shard = args.shard or ""
        written(r, out)
        return r, out
    monkeypatch.setattr(matrix, "execute", fake_execute)
    base = tmp_path / "m"
    rc = cli.main(["matrix", "--kernels", "debian:trixie,debian:bookworm,debian:sid,debian:experimental",
                   "--results", str(base), "--shard", "1/2", "--filter", "io.*"])
    assert rc == 1
    assert [s[0] for s in seen] == ["debian:trixie", "debian:bookworm", "debian:sid", "debian:experimental"]
    assert seen[0][1:] == (str(base / "debian-trixie"), "1/2", "debian:trixie")
    m = json.loads((base / "matrix.json").read_text())
    assert m["schema_version"] == 1
    k = {e["spec"]: e for e in m["kernels"]}
    assert k["debian:trixie"]["dir"] == "debian-trixie" and k["debian:trixie"]["release"] == TRIXIE
    assert k["debian:trixie"]["totals"]["skip"] == 3 and k["debian:trixie"]["shard"] == "1/2"
    assert k["debian:bookworm"]["error"] == "debian:bookworm ships without ublk" and k["debian:bookworm"]["dir"] is None
    assert k["debian:experimental"]["error"] == "RuntimeError: qemu exploded"
    cell = m["tests"]["stress.S.Seed"]["debian:sid"]
    assert cell["status"] == "fail" and cell["titles"] == ["BUG: kernel NULL pointer dereference in io_uring_cmd_done"]
    assert m["tests"]["io.Z.Reg"]["debian:sid"]["known_issue"]
    assert m["tests"]["per_io_daemon.P.A"]["debian:trixie"] == {"status": "skip", "skip_reason": LACKS,
                                                                "titles": [], "known_issue": ""}
    out = capsys.readouterr()
    assert "debian:experimental: did not run: RuntimeError: qemu exploded" in out.out
    assert "SKIP[1]" in out.out and "continuing with the other kernels" in out.err
    # The matrix directory reads back for diff and report, error kernels included.
    kind, kruns = load_kernel_runs(base)
    assert kind == "matrix" and [x.spec for x in kruns][:2] == ["debian:trixie", "debian:bookworm"]
    assert kruns[1].run is None and "without ublk" in kruns[1].error
    assert kruns[2].run.tests[-1].name == "stress.S.Seed"


def test_matrix_refuses_kernel_singular():
    p = subprocess.run([str(REPO / "ublkcheck"), "matrix", "--kernel", "debian:sid", "--kernels", "debian:sid"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not --kernel" in p.stderr and len(p.stderr.strip().splitlines()) == 1
