"""`ublkcheck report RUN_DIR`: one self-contained HTML page (inline CSS and images, no script,
nothing fetched) for a run or a matrix: kernels and totals, tests x kernels, the kernel
reports with their console excerpts, the charts the tests drew, and timings.
`--markdown` prints the short version for a CI job summary instead."""
from __future__ import annotations

import argparse
import base64
from html import escape
from pathlib import Path

from .coverage import summary_line
from .history import summary_line as skips_line
from .argtypes import new_path
from .errors import UserError
from .grid import Cell, Grid, build_grid
from .model import REPORT_LINE_PREFIX
from .rundirs import KernelRun, load_kernel_runs

MAX_SVG = 2 * 1024 * 1024   # a chart bigger than this is linked by name, not inlined
MD_ROWS = 150               # job summaries are read, not searched: the HTML has the rest

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;max-width:1600px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:18px 0 6px} .verdict{font-weight:600;padding:2px 8px;border-radius:4px;color:#fff}
.ok{background:#1a7f37} .bad{background:#cf222e}
table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
table.grid td.name{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all;max-width:720px}
table.grid td.c{text-align:center;font-family:ui-monospace,monospace;font-size:12px;white-space:nowrap}
table.grid thead th{position:sticky;top:0}
.pass{background:#dafbe1} .fail{background:#ffcecb;font-weight:600} .known{background:#ffd8b5}
.skip{background:#fff8c5} .error{background:#e9d8fd;font-weight:600} .absent{background:#eaeef2;color:#57606a}
td.c a{color:inherit;text-decoration:none} td.c a:hover{text-decoration:underline}
ol.notes{font-size:13px;color:#424a53} pre{background:#f6f8fa;border:1px solid #d0d7de;padding:8px;overflow-x:auto;
font-size:12px;line-height:1.35;white-space:pre-wrap;word-break:break-all;max-height:32em;overflow-y:auto}
.muted{color:#57606a} figure{margin:8px 0 16px} figure img{max-width:100%;border:1px solid #d0d7de;background:#fff}
details summary{cursor:pointer;margin:8px 0}
.charts{display:flex;flex-wrap:wrap;gap:16px} h4{margin:14px 0 4px}
h5{font-size:13px;margin:14px 0 4px;color:#57606a;text-transform:uppercase;letter-spacing:.04em}
"""


def _cls(c: Cell) -> str:
    return "known" if c.label == "FAIL*" else c.status


def _tooltip(c: Cell) -> str:
    t = c.test
    if t is None:
        return "not in this kernel's run"
    if c.status == "skip":
        return t.skip_reason
    bits = [r.title for r in t.reports] or (t.message.splitlines()[:1] if t.message else [])
    if t.properties.get("known_issue"):
        bits.append("known issue: " + t.properties["known_issue"])
    return " | ".join(bits) or f"{t.duration_s:.1f}s"


class Page:
    """Ids for the anchors that tie matrix cells to failures, reports and notes."""

    def __init__(self, kruns: list[KernelRun]):
        self.kruns = kruns
        self.ran = [k for k in kruns if k.run]
        self.grid: Grid = build_grid([k.run for k in self.ran])
        self.fail_id: dict[tuple[int, str], str] = {}
        # A test's reports are copies of the run's after loading: match them by what they say.
        self.report_id: dict[tuple, str] = {}
        for ki, k in enumerate(self.ran):
            for n, t in enumerate(t for t in k.run.tests if t.status in ("fail", "error")):
                self.fail_id[(ki, t.name)] = f"k{ki}-f{n}"
            for ri, r in enumerate(k.run.reports):
                self.report_id.setdefault(self.rkey(ki, r), f"k{ki}-r{ri}")

    @staticmethod
    def rkey(ki: int, r) -> tuple:
        return (ki, r.line, r.title, r.test)

    def cell(self, ki: int, c: Cell) -> str:
        href = ""
        if c.note:
            href = f"#note-{c.note}"
        elif c.test and (ki, c.test.name) in self.fail_id:
            href = f"#{self.fail_id[(ki, c.test.name)]}"
        label = escape(c.label)
        inner = f'<a href="{href}">{label}</a>' if href else label
        return f'<td class="c {_cls(c)}" title="{escape(_tooltip(c))}">{inner}</td>'


def ok(kruns: list[KernelRun]) -> bool:
    return all(k.run and k.run.ok() for k in kruns)


def _header(p: Page, title: str) -> list[str]:
    out = [f"<h1>{escape(title)} <span class='verdict {'ok' if ok(p.kruns) else 'bad'}'>"
           f"{'OK' if ok(p.kruns) else 'FAILED'}</span></h1>"]
    out.append("<table><thead><tr><th>kernel</th><th>release</th><th>pass</th><th>fail</th><th>skip</th>"
               "<th>error</th><th>total</th><th>accel</th><th>boot</th><th>boots</th><th>duration</th>"
               "<th>started</th><th>shards</th><th>patches</th></tr></thead><tbody>")
    for k in p.kruns:
        r = k.run
        if r is None:
            out.append(f"<tr><td>{escape(k.spec)}</td><td colspan='13' class='error'>did not run: "
                       f"{escape(k.error)}</td></tr>")
            continue
        t = r.totals()
        shards = ", ".join(s.get("shard") or "?" for s in r.shards) or r.shard or "-"
        boot = f"{r.boot_seconds:.1f}s" if r.boot_seconds is not None else "-"
        out.append("<tr>" + "".join([
            f"<td>{escape(r.kernel_spec)}</td><td>{escape(r.kernel_release or '?')}</td>",
            *(f"<td class='num'>{t[s]}</td>" for s in ("pass", "fail", "skip", "error", "total")),
            f"<td>{escape(r.accel or '-')}</td><td class='num'>{boot}</td><td class='num'>{r.boots}</td>",
            f"<td class='num'>{r.duration_s:.0f}s</td><td>{escape(r.started or '-')}</td>",
            f"<td>{escape(shards)}</td><td>{escape(', '.join(r.patches) or 'none')}</td>"]) + "</tr>")
    out.append("</tbody></table>")
    for k in p.kruns:
        c = k.run.coverage if k.run else {}
        if c and "lines" in c:
            # The genhtml page stays beside the run (named, not linked: this page is self-contained).
            out.append(f"<p class='coverage'>{escape(k.run.kernel_spec)}: {escape(summary_line(c))}</p>")
        if k.run and k.run.skips:
            cls = " error" if k.run.skips.get("newly_skipped") else ""
            out.append(f"<p class='skips{cls}'>{escape(k.run.kernel_spec)}: {escape(skips_line(k.run.skips))}</p>")
    return out


def _grid_table(p: Page, names: list[str]) -> list[str]:
    heads = "".join(f"<th>{escape(k.spec)}<br><span class='muted'>{escape(k.run.kernel_release or '?')}</span></th>"
                    for k in p.ran)
    out = [f"<table class='grid'><thead><tr><th>test</th>{heads}</tr></thead><tbody>"]
    for n in names:
        out.append(f"<tr><td class='name'>{escape(n)}</td>"
                   + "".join(p.cell(ki, c) for ki, c in enumerate(p.grid.rows[n])) + "</tr>")
    out.append("</tbody></table>")
    return out


def _matrix(p: Page) -> list[str]:
    g = p.grid
    problems = g.problem_tests()
    out = ["<h2 id='tests'>Tests</h2>",
           f"<p>{len(g.tests)} tests; {len(g.tests) - len(problems)} pass on every kernel, "
           f"{len(problems)} do not{' (below)' if problems else ''}.</p>"]
    if problems:
        out += _grid_table(p, problems)
    if g.notes:
        out.append("<p class='muted'>Skip reasons:</p><ol class='notes'>")
        out += [f"<li id='note-{i}'>{escape(r)}</li>" for i, r in enumerate(g.notes, 1)]
        out.append("</ol>")
    if g.known_issues():
        out.append("<p class='muted'>FAIL* = failed by a known kernel bug listed in ci/known-issues.json; "
                   "it does not fail the run.</p>")
    out.append(f"<details><summary>All {len(g.tests)} tests</summary>")
    out += _grid_table(p, g.tests)
    out.append("</details>")
    return out


def _failures_and_reports(p: Page) -> list[str]:
    out = ["<h2 id='reports'>Failures and kernel reports</h2>"]
    for k in p.kruns:
        if k.run is None:
            out.append(f"<h3>{escape(k.spec)}</h3><p class='error'>did not run: {escape(k.error)}</p>")
    for ki, k in enumerate(p.ran):
        r = k.run
        bad = [t for t in r.tests if t.status in ("fail", "error")]
        out.append(f"<h3>{escape(r.kernel_spec)} <span class='muted'>{escape(r.kernel_release)}</span></h3>")
        if not bad and not r.reports:
            out.append("<p>No failures and no kernel reports.</p>")
            continue
        if r.reports:
            out.append("<p>Kernel reports:</p><ul>")
            for ri, rep in enumerate(r.reports):
                out.append(f"<li><a href='#k{ki}-r{ri}'>{escape(rep.title)}</a> "
                           f"<span class='muted'>({escape(rep.kind)}, in {escape(rep.test or 'no test')})</span></li>")
            out.append("</ul>")
        if bad:
            out.append("<h5>Failed tests</h5>")
        for t in bad:
            known = t.properties.get("known_issue", "")
            out.append(f"<h4 id='{p.fail_id[(ki, t.name)]}'><code>{escape(t.name)}</code> "
                       f"<span class='c {'known' if known else t.status}'>{escape(t.status.upper())}"
                       f"{'*' if known else ''}</span></h4>")
            if known:
                out.append(f"<p class='muted'>known issue: {escape(known)}</p>")
            if t.reports:
                out.append("<p>" + ", ".join(f"<a href='#{p.report_id[p.rkey(ki, x)]}'>{escape(x.title)}</a>"
                                             for x in t.reports if p.rkey(ki, x) in p.report_id) + "</p>")
            # The reports are linked just above: keep only what the message adds to them.
            msg = "\n".join(l for l in t.message.splitlines()
                            if not (t.reports and l.startswith(REPORT_LINE_PREFIX)))
            if msg.strip():
                out.append(f"<pre>{escape(msg)}</pre>")
        if r.reports:
            out.append("<h5>Console excerpts</h5>")
        for ri, rep in enumerate(r.reports):
            out.append(f"<h4 id='k{ki}-r{ri}'>{escape(rep.title)}</h4>"
                       f"<p class='muted'>{escape(rep.kind)}; test {escape(rep.test or 'none')}; "
                       f"console.log line {rep.line}</p><pre>{escape(rep.excerpt)}</pre>")
    return out


def artifact_svgs(k: KernelRun) -> list[Path]:
    """share/artifacts/<test>/*.svg of the run, and of the shards a merged run came from."""
    if k.dir is None:
        return []
    dirs = [k.dir]
    for m in (k.run.merged_from if k.run else []):
        mp = Path(m)
        dirs += [mp] if mp.is_absolute() else [mp, k.dir.parent / mp, k.dir / mp]
    found: dict[Path, Path] = {}
    for d in dirs:
        for f in sorted(d.glob("share/artifacts/*/*.svg")):
            found.setdefault(f.resolve(), f)
    return list(found.values())


def _charts(p: Page) -> list[str]:
    """One row per chart (test/file), the kernels side by side, so they compare at a glance."""
    rows: dict[tuple[str, str], list[tuple[str, Path]]] = {}
    for k in p.kruns:
        for f in artifact_svgs(k):
            rows.setdefault((f.parent.name, f.name), []).append((k.spec, f))
    out = ["<h2 id='charts'>Charts</h2>"]
    if not rows:
        out.append("<p class='muted'>No charts (share/artifacts/*/*.svg) in these runs.</p>")
    for (test, name), figs in sorted(rows.items()):
        out.append(f"<h3><code>{escape(test)}</code> <span class='muted'>{escape(name)}</span></h3>"
                   "<div class='charts'>")
        for spec, f in figs:
            size = f.stat().st_size
            if size > MAX_SVG:
                out.append(f"<p>{escape(spec)}: too large to inline ({size} bytes): {escape(str(f))}</p>")
                continue
            data = base64.b64encode(f.read_bytes()).decode()
            out.append(f"<figure><img alt='{escape(f'{test} / {name} on {spec}')}' "
                       f"src='data:image/svg+xml;base64,{data}'><figcaption class='muted'>{escape(spec)}"
                       "</figcaption></figure>")
        out.append("</div>")
    return out


def _timings(p: Page) -> list[str]:
    out = ["<h2 id='timings'>Timings</h2><h3>Per suite</h3>"]
    suites = sorted({t.suite for k in p.ran for t in k.run.tests})
    out.append("<table><thead><tr><th>suite</th>" + "".join(f"<th>{escape(k.spec)}</th>" for k in p.ran)
               + "</tr></thead><tbody>")
    for s in suites:
        cells = "".join(f"<td class='num'>{sum(t.duration_s for t in k.run.tests if t.suite == s):.1f}s</td>"
                        for k in p.ran)
        out.append(f"<tr><td>{escape(s)}</td>{cells}</tr>")
    totals = "".join(f"<th class='num'>{sum(t.duration_s for t in k.run.tests):.1f}s</th>" for k in p.ran)
    out.append(f"<tr><th>all tests</th>{totals}</tr>")
    out.append("</tbody></table><h3>15 slowest tests</h3>")
    slow = sorted(((t.duration_s, t.name, k.spec) for k in p.ran for t in k.run.tests), key=lambda x: -x[0])[:15]
    out.append("<table><thead><tr><th>seconds</th><th>test</th><th>kernel</th></tr></thead><tbody>")
    out += [f"<tr><td class='num'>{d:.1f}</td><td><code>{escape(n)}</code></td><td>{escape(s)}</td></tr>"
            for d, n, s in slow]
    out.append("</tbody></table>")
    return out


def render_html(kruns: list[KernelRun], title: str = "ublkcheck report") -> str:
    p = Page(kruns)
    body = _header(p, title) + _matrix(p) + _failures_and_reports(p) + _charts(p) + _timings(p)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _md(text: str) -> str:
    """Table-cell safe: no pipes or newlines, and no HTML (GitHub renders it)."""
    return escape(" ".join(str(text).split())).replace("|", "\\|")


def render_markdown(kruns: list[KernelRun]) -> str:
    ran = [k for k in kruns if k.run]
    g = build_grid([k.run for k in ran])
    out = [f"## ublkcheck: {'OK' if ok(kruns) else 'FAILED'}", "",
           "| kernel | release | pass | fail | skip | error | duration |", "|---|---|--:|--:|--:|--:|--:|"]
    for k in kruns:
        if k.run is None:
            out.append(f"| {_md(k.spec)} | did not run: {_md(k.error)} | | | | | |")
            continue
        t = k.run.totals()
        out.append(f"| {_md(k.spec)} | {_md(k.run.kernel_release or '?')} | {t['pass']} | {t['fail']} | {t['skip']} "
                   f"| {t['error']} | {k.run.duration_s:.0f}s |")
    problems = g.problem_tests()
    out += ["", f"{len(g.tests) - len(problems)} of {len(g.tests)} tests pass on every kernel."]
    if problems:
        out += ["", "| test | " + " | ".join(_md(k.spec) for k in ran) + " |", "|---" * (len(ran) + 1) + "|"]
        for n in problems[:MD_ROWS]:
            cells = [f"**{c.label}**" if c.status in ("fail", "error") and c.label != "FAIL*" else c.label
                     for c in g.rows[n]]
            out.append(f"| `{_md(n)}` | " + " | ".join(cells) + " |")
        if len(problems) > MD_ROWS:
            out.append(f"\n{len(problems) - MD_ROWS} more rows in the HTML report.")
    if g.notes:
        out += [""] + [f"{i}. {_md(r)}" for i, r in enumerate(g.notes, 1)]
    reps = [(k.spec, r) for k in ran for r in k.run.reports]
    if reps:
        out += ["", "**Kernel reports**", ""]
        out += [f"- {_md(s)}: {_md(r.title)} (in `{_md(r.test or 'no test')}`)" for s, r in reps]
    if g.known_issues():
        out += ["", "FAIL\\* = failed by a known kernel bug (ci/known-issues.json); it does not fail the run."]
    return "\n".join(out) + "\n"


def cmd_report(args) -> int:
    kind, kruns = load_kernel_runs(args.run_dir)
    if args.markdown:
        print(render_markdown(kruns), end="")
        return 0
    base = Path(args.run_dir)
    base = base.parent if base.is_file() else base
    out = Path(args.out) if args.out else base / "report.html"
    if out.is_dir():
        raise UserError(f"--out {out} is a directory: name the HTML file, e.g. {out / 'report.html'}")
    title = f"ublkcheck {'matrix' if kind == 'matrix' else kruns[0].spec} - {base.resolve().name}"
    out.write_text(render_html(kruns, title))
    print(f"report: {out}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page for a run or a matrix",
                       description="Write a self-contained HTML report (no script, nothing fetched) of a run "
                                   "directory or a matrix directory, or print a markdown summary.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="run dir (results.json) or matrix dir (matrix.json or "
                   "subdirectories with results.json)")
    p.add_argument("--out", metavar="FILE", type=new_path("file"),
                   help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--markdown", action="store_true", help="print a markdown summary (for a CI job summary) instead")
    p.set_defaults(func=cmd_report)
