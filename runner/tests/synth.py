"""Synthetic runs for the merge/diff/matrix/report tests: built from the model dataclasses
and written with results.write_all, as a real run writes them."""
from pathlib import Path

from ublkcheck.model import Report, RunResult, TestResult
from ublkcheck.results import write_all

SID = "7.2.13+deb14-amd64"


def report(title, test, kind="warning", signature=None, excerpt=None, line=1):
    return Report(kind=kind, title=title, signature=signature or title, line=line, test=test,
                  excerpt=excerpt or f"{title}\nCall Trace:\n ublk_ch_uring_cmd+0x10/0x20 [ublk_drv]")


def tr(name, status="pass", duration=1.0, skip_reason="", reports=(), known="", message=""):
    t = TestResult(name=name, suite=name.split(".")[0], status=status, duration_s=duration,
                   skip_reason=skip_reason, reports=list(reports), kernel=SID,
                   message=message or (f"kernel report during the test: {reports[0].title}" if reports else ""))
    if known:
        t.properties["known_issue"] = known
    return t


def run(tests, spec="debian:sid", release=SID, **kw):
    reports = [r for t in tests for r in t.reports] + list(kw.pop("extra_reports", []))
    base = dict(run_id="r", kernel_spec=spec, kernel_release=release, accel="tcg", boot_seconds=5.5,
                boots=1, started="2026-11-22T14:00:00+00:00", duration_s=sum(t.duration_s for t in tests) + 6)
    base.update(kw)
    return RunResult(tests=list(tests), reports=reports, **base)


def written(r: RunResult, d: Path) -> Path:
    write_all(r, d)
    return d


def unsharded():
    """Seven tests of every status, one failed by a kernel report."""
    oops = report("BUG: kernel NULL pointer dereference in io_uring_cmd_done", "stress.Stress.Seed",
                  kind="null-deref")
    return run([tr("control.Lifecycle.StartStop", duration=0.7),
                tr("control.Lifecycle.Busy", duration=0.4),
                tr("io.CopyModes/Integrity.Verify/plain_mem_512", duration=3.0),
                tr("io.ReadOnly.Refuses", "skip", 0.0, skip_reason="kernel lacks UBLK_F_X"),
                tr("recovery.Recover.Reissue", "fail", 4.0, message="Expected: 0\n  Actual: -5"),
                tr("stress.Stress.Seed", "fail", 23.0, reports=[oops]),
                tr("stress.Stress.Other", "error", 0.0, message="not reached")])


def bar_chart_svg(title="per-thread I/Os, seed dealing vs kublk dealing"):
    """Shaped like suites/common/load.cc's bar_chart_svg (the imbalance test's chart)."""
    series = {"seed": [4100, 900, 4050, 950], "kublk": [2510, 2490, 2500, 2500]}
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='640' height='320' font-family='sans-serif' "
             f"font-size='12'>\n<text x='60' y='20' font-size='14'>{title}</text>"]
    for si, (name, vals) in enumerate(series.items()):
        color = ("#4e79a7", "#f28e2b")[si]
        for g, v in enumerate(vals):
            h = 240 * v / 4100
            parts.append(f"<rect x='{60 + g * 140 + si * 56:.1f}' y='{280 - h:.1f}' width='54' height='{h:.1f}' "
                         f"fill='{color}'><title>{name} T{g}: {v} I/Os</title></rect>")
        parts.append(f"<rect x='440' y='{30 + si * 16}' width='10' height='10' fill='{color}'/>"
                     f"<text x='455' y='{39 + si * 16}'>{name}</text>")
    parts.append("<line x1='60' y1='280' x2='630' y2='280' stroke='black'/>\n</svg>\n")
    return "\n".join(parts)


def matrix_dir(base: Path) -> Path:
    """A matrix directory as `ublkcheck matrix` writes it: three kernels (one a kernel that did
    not run), a skip, a known issue, an oops whose title needs escaping, and a chart."""
    from ublkcheck.matrix import matrix_doc
    from ublkcheck.rundirs import KernelRun
    import json
    lacks = "kernel 6.12.48+deb13-amd64 lacks UBLK_F_PER_IO_DAEMON (GET_FEATURES = 0x1fe)"
    oops = report("BUG: kernel NULL pointer dereference in io_uring_cmd_done <script>alert(1)</script>",
                  "stress.Stress.SeedPanicWorkload", kind="null-deref",
                  excerpt="BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
                          "RIP: 0010:io_uring_cmd_done+0x1c/0x1f0\nCall Trace:\n <TASK>\n"
                          " ublk_cmd_list_tw_cb+0x2a/0x50 [ublk_drv]\n </TASK>", line=812)
    ubsan = report("UBSAN: array-index-out-of-bounds in io_uring/rsrc.c:1043:18", "io.ZeroCopy.Register",
                   kind="ubsan", line=433)
    common = [tr(f"control.Lifecycle.Case{i:02d}", duration=0.3 + i / 10) for i in range(12)]
    common += [tr("imbalance.Imbalance.SeedVsKublk", duration=41.0)]
    trixie = run(common + [tr("per_io_daemon.PerIo.Basic", "skip", 0, skip_reason=lacks),
                           tr("per_io_daemon.PerIo.Batch", "skip", 0, skip_reason=lacks),
                           tr("io.ZeroCopy.Register", "skip", 0, skip_reason="kernel lacks UBLK_F_AUTO_BUF_REG"),
                           tr("stress.Stress.SeedPanicWorkload", duration=62.0)],
                 spec="debian:trixie", release="6.12.48+deb13-amd64", boot_seconds=5.2)
    sid = run(common + [tr("per_io_daemon.PerIo.Basic", duration=2.0), tr("per_io_daemon.PerIo.Batch", duration=2.5),
                        tr("io.ZeroCopy.Register", "fail", 1.2, reports=[ubsan],
                           known="UBSAN in io_buffer_register_bvec on 7.2 (io_uring, not ublk)"),
                        tr("stress.Stress.SeedPanicWorkload", "fail", 23.0, reports=[oops]),
                        tr("recovery.Recover.Reissue", "fail", 4.0,
                           message="recovery.cc:88: Expected equality of these values:\n  r\n    Which is: -5\n  0")],
              boots=2)
    kruns = [KernelRun("debian:trixie", written(trixie, base / "debian-trixie"), trixie),
             KernelRun("debian:sid", written(sid, base / "debian-sid"), sid),
             KernelRun("debian:experimental", None, None, "apt-get download linux-image-amd64: 404 <Not Found>")]
    for d in ("debian-trixie", "debian-sid"):
        art = base / d / "share" / "artifacts" / "imbalance.Imbalance.SeedVsKublk"
        art.mkdir(parents=True)
        (art / "imbalance.svg").write_text(bar_chart_svg())
    (base / "matrix.json").write_text(json.dumps(matrix_doc(kruns, base), indent=2))
    return base
