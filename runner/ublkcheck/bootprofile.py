"""Where a guest's boot goes, read from what every run keeps: console.log (each line stamped
with the host's seconds since qemu started; kernel lines carry the kernel's own clock too)
and the agent's boot event (its guest uptimes at main(), after ublk_drv, at the event).
Phases, in host seconds since qemu start: firmware and the kernel's setup and decompression
(until the kernel's clock starts), the kernel's init (until init.sh runs), init.sh (modules,
9p, overlay), the agent (python, ublk_drv), and the first test's start."""
from __future__ import annotations

import re

from .guest import protocol
from .snapshot import RESTORED, SNAPSHOT_POINT

_STAMP = re.compile(r"^\[\s*(\d+\.\d+)\] (.*)$")
_KTIME = re.compile(r"^\[\s*(\d+\.\d+)\] ")
_BOOT = re.compile(r"^===== ublkcheck boot (\d+):")
_INIT_UP = re.compile(r"ublkcheck-init: kernel \S+ up (\d+\.\d+)")
_AGENT_START = re.compile(r"ublkcheck-init: agent start up (\d+\.\d+)")
_RESTORED = re.compile(re.escape(RESTORED) + r" up (\d+\.\d+)")

# (key, what it covers), in boot order; each ends where the next begins.
PHASES = [
    ("restore", "QEMU loads the boot snapshot, the guest resumes"),  # --boot snapshot
    ("firmware_and_setup", "firmware, the kernel's setup and decompression"),
    ("kernel_init", "the kernel's own boot, until init.sh"),
    ("init_sh", "init.sh: modules, 9p, overlay"),
    ("agent_python", "the agent: python start"),
    ("agent_driver", "the agent: loading ublk_drv"),
    ("agent_event", "the agent: boot event (GET_FEATURES runs beside)"),
    ("agent", "the agent: python, ublk_drv, GET_FEATURES"),  # an agent that kept no timings
    ("first_test", "until the first test starts"),
]


def boots(console: str) -> list[list[tuple[float, str]]]:
    """The console of each boot as (host seconds, text) lines."""
    out: list[list[tuple[float, str]]] = []
    for line in console.splitlines():
        if _BOOT.match(line):
            out.append([])
            continue
        m = _STAMP.match(line)
        if m and out:
            out[-1].append((float(m.group(1)), m.group(2)))
    return out


def profile(lines: list[tuple[float, str]], boot_event: dict | None = None) -> dict | None:
    """{phase: seconds, ..., "total": seconds} for one boot, or None if its kernel never
    printed. Times on the guest's clock (uptimes) are put on the host's through the kernel
    clock's start, taken from the line that lagged least behind it."""
    offsets = [host - float(k.group(1)) for host, text in lines
               if (k := _KTIME.match(text) or _RESTORED.search(text))]
    if not offsets:
        return None
    t0 = min(offsets)  # host seconds at the kernel's time 0
    # Restored from a snapshot: "restored" without this guest reaching the snapshot point
    # (a guest that booted with SNAPSHOT=1 reaches it and then resumes at once).
    booted = any(SNAPSHOT_POINT in text for _host, text in lines)
    restored = None if booted else next((host for host, text in lines if _RESTORED.search(text)), None)

    def first(rx) -> float | None:
        for _host, text in lines:
            m = rx.search(text)
            if m:
                return t0 + float(m.group(1))
        return None

    def first_start() -> float | None:
        for host, text in lines:
            m = protocol.marker(text)
            if m and m[0] == "START":
                k = _KTIME.match(text)
                return t0 + float(k.group(1)) if k else host
        return None
    ev = boot_event or {}
    # A restored guest booted long ago (its clock started before this qemu did): its boot is
    # the restore, from qemu's start to init.sh's resumption.
    boot = [("restore", restored)] if restored is not None else [("firmware_and_setup", t0),
                                                                 ("kernel_init", first(_INIT_UP))]
    points = [*boot, ("init_sh", first(_AGENT_START)),
              ("agent_python", t0 + ev["t_main"] if "t_main" in ev else None),
              ("agent_driver", t0 + ev["t_driver"] if "t_driver" in ev else None),
              ("agent_event" if "t_driver" in ev else "agent", t0 + ev["uptime"] if "uptime" in ev else None),
              ("first_test", first_start())]
    out: dict = {}
    prev = 0.0
    for key, at in points:
        if at is None:
            continue
        out[key] = round(at - prev, 2)
        prev = at
    out["total"] = round(prev, 2)
    return out


def run_profiles(console: str, events: list[dict]) -> list[dict | None]:
    """One profile per boot of a run; boot events pair with the boots whose agent came up."""
    per_boot = boots(console)
    boot_events = [e for e in events if e.get("event") == protocol.BOOT]
    out = []
    for lines in per_boot:
        started = any(_AGENT_START.search(t) for _, t in lines)
        ev = boot_events.pop(0) if started and boot_events else None
        out.append(profile(lines, ev))
    return out


def render(p: dict) -> str:
    """The breakdown as lines for the terminal."""
    rows = [f"  {what:50s} {p[key]:6.2f}s" for key, what in PHASES if key in p]
    return "\n".join(rows + [f"  {'qemu start -> first test':50s} {p['total']:6.2f}s"])
