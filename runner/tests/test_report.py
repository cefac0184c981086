"""ublkcheck report: a self-contained page whose links all land, everything escaped, the
charts inlined; and the markdown job summary."""
import base64
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from synth import bar_chart_svg, matrix_dir, run, tr, written
from ublkcheck.report import render_markdown
from ublkcheck.rundirs import load_kernel_runs

REPO = Path(__file__).resolve().parents[2]


class Links(HTMLParser):
    """ids, in-page hrefs, img sources, and each element's attributes by id."""

    def __init__(self):
        super().__init__()
        self.ids, self.hrefs, self.imgs, self.tags, self.cells = [], [], [], set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a":
            self.hrefs.append(a.get("href", ""))
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "td" and "c" in a.get("class", "").split():
            self.cells.append(a)


def cli(*args):
    return subprocess.run([str(REPO / "ublkcheck"), *map(str, args)], capture_output=True, text=True, timeout=60)


def render(tmp_path):
    base = matrix_dir(tmp_path / "m")
    p = cli("report", base)
    assert p.returncode == 0, p.stderr
    return (base / "report.html").read_text()


def test_links_land_and_nothing_is_fetched(tmp_path):
    html = render(tmp_path)
    parsed = Links()
    parsed.feed(html)
    assert len(parsed.ids) == len(set(parsed.ids)), "duplicate ids"
    for h in parsed.hrefs:
        assert h.startswith("#") and h[1:] in parsed.ids, h
    assert not {"script", "link", "iframe"} & parsed.tags
    assert all(src.startswith("data:image/svg+xml;base64,") for src in parsed.imgs)
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_failed_cell_links_to_the_test_and_its_console_excerpt(tmp_path):
    html = render(tmp_path)
    # The sid column's FAIL for the seed workload -> the failed test -> the report's excerpt.
    row = re.search(r"<td class='name'>stress\.Stress\.SeedPanicWorkload</td>(.*?)</tr>", html).group(1)
    fail_anchor = re.findall(r'href="#(k1-f\d+)">FAIL<', row)[0]
    entry = html[html.index(f"id='{fail_anchor}'"):]
    report_anchor = re.search(r"href='#(k1-r\d+)'>BUG: kernel NULL pointer", entry).group(1)
    excerpt = html[html.index(f"id='{report_anchor}'"):]
    assert re.match(r"id='k1-r\d+'>BUG: kernel NULL pointer dereference in io_uring_cmd_done "
                    r"&lt;script&gt;alert\(1\)&lt;/script&gt;</h4>", excerpt)
    pre = re.search(r"<pre>(.*?)</pre>", excerpt, re.S).group(1)
    assert "RIP: 0010:io_uring_cmd_done+0x1c/0x1f0" in pre and "&lt;TASK&gt;" in pre
    # An assertion failure shows its message; the known issue is FAIL* with its note.
    assert "Which is: -5" in html
    assert re.search(r"class=\"c known\" title=\"UBSAN: [^\"]*known issue: UBSAN in io_buffer_register_bvec", html)


def test_everything_is_escaped(tmp_path):
    html = render(tmp_path)
    assert "<script>" not in html and "alert(1)</script>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3   # report list, excerpt heading, tooltip
    assert "404 &lt;Not Found&gt;" in html                            # the kernel that did not run


def test_skip_reasons_are_tooltips_and_numbered_notes(tmp_path):
    html = render(tmp_path)
    parsed = Links()
    parsed.feed(html)
    lacks = "kernel 6.12.48+deb13-amd64 lacks UBLK_F_PER_IO_DAEMON (GET_FEATURES = 0x1fe)"
    skips = [c for c in parsed.cells if "skip" in c["class"]]
    assert {c["title"] for c in skips} == {lacks, "kernel lacks UBLK_F_AUTO_BUF_REG"}
    n = re.search(r'href="#note-(\d)">SKIP\[\d\]</a></td>', html.split("per_io_daemon.PerIo.Basic")[1]).group(1)
    assert f"<li id='note-{n}'>{lacks}</li>" in html
    assert "13 pass on every kernel, 5 do not" in html


def test_charts_are_inlined_per_kernel(tmp_path):
    html = render(tmp_path)
    imgs = re.findall(r"src='data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(imgs) == 2                                   # trixie's and sid's imbalance chart
    assert base64.b64decode(imgs[0]).decode() == bar_chart_svg()
    assert "imbalance.Imbalance.SeedVsKublk" in html[html.index("id='charts'"):]


def test_single_and_merged_runs(tmp_path):
    shard = tmp_path / "shard1"
    r = run([tr("imbalance.Imbalance.SeedVsKublk"), tr("io.X.Y", "skip", skip_reason="why")], shard="1/1")
    written(r, shard)
    art = shard / "share" / "artifacts" / "imbalance.Imbalance.SeedVsKublk"
    art.mkdir(parents=True)
    (art / "imbalance.svg").write_text(bar_chart_svg())
    assert cli("report", shard).returncode == 0
    assert "data:image/svg+xml;base64," in (shard / "report.html").read_text()
    # A merged run keeps no artifacts of its own: the report finds them in its shards.
    assert cli("merge", shard, "--out", tmp_path / "merged").returncode == 0
    p = cli("report", tmp_path / "merged" / "results.json", "--out", tmp_path / "r.html")
    assert p.returncode == 0 and f"report: {tmp_path / 'r.html'}" in p.stdout
    html = (tmp_path / "r.html").read_text()
    assert "data:image/svg+xml;base64," in html and "<td>1/1</td>" in html


def test_markdown_summary(tmp_path):
    _, kruns = load_kernel_runs(matrix_dir(tmp_path / "m"))
    md = render_markdown(kruns)
    lines = md.splitlines()
    assert lines[0] == "## ublkcheck: FAILED"
    assert "| debian:sid | 7.2.13+deb14-amd64 | 15 | 3 | 0 | 0 | 90s |" in lines
    assert any(l.startswith("| debian:experimental | did not run: apt-get download") and "&lt;Not Found&gt;" in l
               for l in lines)
    assert "| `stress.Stress.SeedPanicWorkload` | PASS | **FAIL** |" in lines
    assert "| `io.ZeroCopy.Register` | SKIP[1] | FAIL* |" in lines
    assert "1. kernel lacks UBLK_F_AUTO_BUF_REG" in lines
    assert "<script>" not in md
    # Every table row has as many cells as its header.
    table = [l for l in lines if l.startswith("| test |")][0]
    rows = lines[lines.index(table):]
    rows = rows[:next(i for i, l in enumerate(rows) if not l.startswith("|"))]
    assert len({l.count(" | ") for l in rows if not l.startswith("|---")}) == 1
    p = cli("report", tmp_path / "m", "--markdown")
    assert p.returncode == 0 and p.stdout == md
    assert not (tmp_path / "m" / "report.html").exists()


def test_bad_input_is_one_line(tmp_path):
    written(run([tr("a.B.C")]), tmp_path / "r")
    for args, needle in [((tmp_path / "nope",), "no such file or directory"),
                         ((tmp_path / "r", "--out", tmp_path), "is an existing directory")]:
        p = cli("report", *args)
        assert p.returncode == 2 and needle in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1


def test_a_coverage_run_shows_its_figures(tmp_path):
    cov = {"lines": {"hit": 1466, "total": 2047, "percent": 71.6},
           "functions": {"hit": 146, "total": 177, "percent": 82.5},
           "branches": {"hit": 856, "total": 1555, "percent": 55.0}, "tests": 222,
           "html": "coverage/html/index.html"}
    d = written(run([tr("control.Lifecycle.StartStop")], spec="tree:/src/linux-source-7.2",
                    release="7.2.13", coverage=cov), tmp_path / "r")
    p = cli("report", d)
    assert p.returncode == 0, p.stderr
    html = (d / "report.html").read_text()
    assert "ublk_drv.c coverage: lines 71.6% (1466/2047), functions 82.5% (146/177), branches 55.0% (856/1555)" in html
