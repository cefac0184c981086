"""Console scanner: finds kernel crash/warning reports in a serial console log, the way
syzkaller's pkg/report does for Linux: a table of header rules opens a report, its title
is "<header> in <first non-generic frame>", and a normalised signature dedups it."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .guest.protocol import is_marker
from .model import Report

# Host timestamp our runner prefixes, then the kernel's printk time, then an optional level.
_PREFIX = re.compile(r"^(?:\[\s*\d+\.\d+\]\s)?(?:\[\s*\d+\.\d+\]\s?)?(?:\[\s*[CT]\d+\]\s?)?(?:<\d>)?")

# kind, header regex, title format ({0} = first group), take a frame?
RULES: list[tuple[str, re.Pattern, str, bool]] = [
    ("null-deref", re.compile(r"^BUG: kernel NULL pointer dereference"), "BUG: kernel NULL pointer dereference", True),
    ("paging", re.compile(r"^BUG: unable to handle page fault"), "BUG: unable to handle page fault", True),
    ("paging", re.compile(r"^BUG: unable to handle kernel paging request"),
     "BUG: unable to handle kernel paging request", True),
    ("gpf", re.compile(r"^(?:Oops: )?general protection fault"), "general protection fault", True),
    ("bug", re.compile(r"^kernel BUG at \S+!?$"), "kernel BUG", True),
    # "WARNING: CPU: 1 PID: 2 at file.c:10 f+0x1/0x2" (<= 6.x) and, newer,
    # "WARNING: file.c:10 at f+0x1/0x2 [mod], CPU#0: comm/12" (7.2).
    ("warning", re.compile(r"^WARNING: (?:CPU: \d+ PID: \d+ )?at (\S+)"), "WARNING", True),
    ("warning", re.compile(r"^WARNING: \S+:\d+ at \S+"), "WARNING", True),
    ("warning", re.compile(r"^WARNING: .* at (\S+:\d+)"), "WARNING", True),
    ("kasan", re.compile(r"^BUG: KASAN: ([\w-]+)"), "KASAN: {0}", True),
    ("kfence", re.compile(r"^BUG: KFENCE: ([\w -]+?)(?: in |$)"), "KFENCE: {0}", True),
    ("ubsan", re.compile(r"^UBSAN: ([\w-]+) in (\S+)"), "UBSAN: {0}", True),
    ("lockdep", re.compile(r"^WARNING: possible circular locking dependency detected"), "possible deadlock", True),
    ("lockdep", re.compile(r"^WARNING: possible recursive locking detected"), "possible deadlock", True),
    ("lockdep", re.compile(r"^WARNING: inconsistent lock state"), "inconsistent lock state", True),
    ("lockdep", re.compile(r"^WARNING: suspicious RCU usage"), "suspicious RCU usage", True),
    ("atomic-sleep", re.compile(r"^BUG: sleeping function called from invalid context"),
     "BUG: sleeping function called from invalid context", True),
    ("atomic-sleep", re.compile(r"^BUG: scheduling while atomic"), "BUG: scheduling while atomic", True),
    ("list-corruption", re.compile(r"^(list_add|list_del) corruption"), "{0} corruption", True),
    ("refcount", re.compile(r"^refcount_t: (\w[\w ;-]*)"), "refcount bug", True),
    ("hung-task", re.compile(r"^INFO: task (\S+?):\d+ blocked for more than \d+ seconds"), "INFO: task hung", True),
    ("soft-lockup", re.compile(r"^watchdog: BUG: soft lockup"), "BUG: soft lockup", True),
    ("rcu-stall", re.compile(r"^rcu: INFO: rcu_\w+ (?:self-)?detected stalls?"), "INFO: rcu detected stall", True),
    ("panic", re.compile(r"^Kernel panic - not syncing: (.*?)\s*\]?$"), "Kernel panic - not syncing: {0}", False),
    ("oops", re.compile(r"^Oops: "), "Oops", True),
    ("server-segfault", re.compile(r"^(ublk-fixture|ublkcheck-[\w-]+)\[\d+\]: segfault at"), "{0} segfault", False),
    ("server-segfault", re.compile(r"^traps: (ublk-fixture|ublkcheck-[\w-]+)\[\d+\] general protection"),
     "{0} general protection fault", False),
]

# Reports after which the task that hit them is killed, so the test may never finish: the
# orchestrator gives such a test --grace seconds. After the others (a WARN, UBSAN, KASAN,
# lockdep) the kernel carries on, and so does the test; a hang is still caught as a hang.
FATAL_KINDS = frozenset({"null-deref", "paging", "gpf", "bug", "oops", "panic"})

# Frames that say nothing about where the bug is.
SKIP_FRAMES = re.compile(
    r"^(dump_stack\w*|show_stack|__warn\w*|warn_slowpath\w*|report_bug|handle_bug|exc_\w+|asm_exc_\w+|"
    r"do_error_trap|do_trap|die\w*|oops_\w+|panic\w*|__die\w*|kasan_\w+|__kasan_\w+|print_report|"
    r"print_address_description\w*|kfence_\w+|ubsan_\w+|__ubsan_\w+|lock_acquire\w*|__lock_acquire|"
    r"lockdep_\w+|check_\w+_usage|mark_lock\w*|debug_check_no_locks_freed|__might_sleep|__might_resched|"
    r"_raw_spin_\w+|_raw_read_\w+|_raw_write_\w+|mutex_lock\w*|__mutex_lock\w*|refcount_warn_saturate|"
    r"__list_add_valid\w*|__list_del_entry_valid\w*|do_syscall_64|entry_SYSCALL_64\w*|"
    r"page_fault_oops|do_user_addr_fault|kernelmode_fixup_or_oops|__bad_area_nosemaphore|"
    r"bad_area_nosemaphore|spurious_kernel_fault|sysrq_handle_crash|__handle_sysrq|"
    r"print_circular_bug|check_noncircular|check_prev_add|validate_chain|mutex_lock_nested|"
    r"__schedule|schedule|schedule_timeout|schedule_preempt_disabled|io_schedule\w*|"
    r"__wait_for_common|wait_for_completion\w*|rwsem_down_\w+|__rwsem_\w+)$")

_FRAME = re.compile(r"^\s*(?:\?\s+)?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
_RIP = re.compile(r"^RIP: \d+:([A-Za-z_][\w.]*)\+0x")
# Lines that end a report: the next prompt-ish or the end marker of the trace.
_END = re.compile(r"^(---\[ end trace|---\[ end Kernel panic)")


def strip_prefix(line: str) -> str:
    return _PREFIX.sub("", line, count=1).strip("\r")


def _bare(name: str) -> str:
    return re.sub(r"\.(cold|isra|constprop|part|lto_priv|llvm)(\.\d+)*", "", name)


def clean_frame(name: str) -> str:
    return _bare(name).lstrip("_")


def _generic(name: str) -> bool:
    return bool(SKIP_FRAMES.match(_bare(name)))


def header_kind(line: str) -> str | None:
    """Cheap check that a report starts on this console line."""
    text = strip_prefix(line)
    if not text or text.startswith("+ ") or is_marker(text):
        return None
    for kind, rx, _, _ in RULES:
        if rx.match(text):
            return kind
    return None


def _frame_in(body: list[str]) -> str | None:
    for raw in body:
        t = strip_prefix(raw)
        m = _RIP.match(t)
        if m and not _generic(m.group(1)):
            return clean_frame(m.group(1))
    for raw in body:
        t = strip_prefix(raw)
        m = _FRAME.match(t)
        if m and not _generic(m.group(1)):
            return clean_frame(m.group(1))
    return None


def signature(title: str) -> str:
    s = re.sub(r"0x[0-9a-f]+", "X", title)
    s = re.sub(r"\d+", "N", s)
    return re.sub(r"\s+", " ", s).strip()


_RECORD = re.compile(r"(?=\[\s*\d+\.\d{6}\] )")


def split_records(lines: list[str]) -> tuple[list[str], list[int]]:
    """Logs pasted into mail often join printk records on one line: split them again,
    remembering each piece's original line."""
    out, origin = [], []
    for i, l in enumerate(lines):
        pieces = [p for p in _RECORD.split(l) if p.strip()] if l.count("] ") > 1 else [l]
        if len(pieces) > 1 and all(re.match(r"\s*\[\s*\d+\.\d{6}\] ", p) for p in pieces[1:]):
            out += [p.rstrip() for p in pieces]
            origin += [i] * len(pieces)
        else:
            out.append(l)
            origin.append(i)
    return out, origin


def scan_lines(lines: list[str]) -> list[Report]:
    split, origin = split_records(lines)
    reports = _scan(split)
    for r in reports:
        r.line = origin[r.line]
    return reports


def _scan(lines: list[str]) -> list[Report]:
    reports: list[Report] = []
    i, n = 0, len(lines)
    while i < n:
        kind = header_kind(lines[i])
        if not kind:
            i += 1
            continue
        text = strip_prefix(lines[i])
        rule = next(r for r in RULES if r[0] == kind and r[1].match(text))
        m = rule[1].match(text)
        base = rule[2].format(*[g for g in m.groups() if g is not None]) if m.groups() else rule[2]
        # The report's body: until the trace ends, another report starts (a NULL deref's
        # "Oops:" line belongs to it), or 80 lines.
        j = i + 1
        while j < n and j - i < 80:
            t = strip_prefix(lines[j])
            if _END.match(t):
                j += 1
                break
            k2 = header_kind(lines[j])
            if k2 and k2 not in ("oops", "gpf") and not (kind in ("oops",) and k2 == "oops"):
                break
            if k2 == "oops" and kind not in ("null-deref", "paging", "bug", "gpf"):
                break
            if is_marker(t):
                break
            j += 1
        body = lines[i:j]
        title = base
        if rule[3]:
            frame = _frame_in(body[1:] if kind != "ubsan" else body)
            if kind == "ubsan" and m.lastindex and m.lastindex >= 2 and not frame:
                frame = Path(m.group(2)).name
            if frame:
                title = f"{base} in {frame}"
        reports.append(Report(kind=kind, title=title, signature=signature(title),
                              excerpt="\n".join(strip_prefix(l) for l in body), line=i))
        i = j
    return reports


def add_parser(sub) -> None:
    p = sub.add_parser("scan", help="find kernel reports in a console log",
                       description="Find kernel reports (oops, BUG, WARN, KASAN, UBSAN, hangs) in a "
                                   "console log. Exit 1 if there is one.")
    p.add_argument("file", help="a console log (e.g. a run's console.log)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON (before or after the file)")
    p.set_defaults(func=lambda a: scan_file(a.file, a.json))


def scan_file(file: str, as_json: bool) -> int:
    p = Path(file)
    if not p.is_file():
        print(f"ublkcheck scan: {file}: no such file (give a console log)", file=sys.stderr)
        return 2
    reps = scan_lines(p.read_text(errors="replace").splitlines())
    if as_json:
        print(json.dumps([r.__dict__ for r in reps], indent=2))
    else:
        for r in reps:
            print(f"line {r.line + 1}: [{r.kind}] {r.title}")
            for l in r.excerpt.splitlines()[:8]:
                print(f"    {l}")
        print(f"{len(reps)} report(s)")
    return 1 if reps else 0
