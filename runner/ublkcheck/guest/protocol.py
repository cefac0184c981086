"""The guest-host protocol, defined once: the plan the host writes for the agent, the events
the agent appends for the host, and the markers it writes to the kernel log so the console
says which test a line belongs to. Used by guest/agent.py (which imports this file from its
own directory, stdlib only) and by the host (pipeline, orchestrate, scan)."""
from __future__ import annotations

import json
import os
import re

SHARE = "/ublkcheck-results"   # the run's results directory, as the guest mounts it (init.sh)
PLAN_FILE = "plan.json"
EVENTS_FILE = "events.jsonl"


# --- the plan: what the agent is to do in this guest ---
class Plan:
    """A plain class, not a dataclass: importing dataclasses pulls in inspect and ast, a
    fifth of the agent's start under TCG. FIELDS: name -> default (a type: a new empty one)."""
    FIELDS = {
        "cwd": "",              # where the tests run (the checkout, through the overlay)
        "module": None,         # ublk_drv.ko to insmod instead of the kernel's own
        "fixture": "",          # ublk-fixture, for GET_FEATURES at boot
        "env": dict,            # added to every test's environment
        "coverage": False,      # reset ublk_drv's gcov counters per test and save them
        "tests": list,          # discover.PlannedTest.to_dict() each
        "command": None,        # a shell command instead of tests (`run -- CMD`)
        "command_name": "command",
    }

    def __init__(self, **values):
        unknown = sorted(set(values) - set(self.FIELDS))
        if unknown:
            raise TypeError(f"Plan has no field {', '.join(unknown)}")
        for name, default in self.FIELDS.items():
            setattr(self, name, values[name] if name in values else
                    default() if isinstance(default, type) else default)

    def __eq__(self, other) -> bool:
        return isinstance(other, Plan) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"Plan({vars(self)})"

    def dumps(self) -> str:
        return json.dumps({name: getattr(self, name) for name in self.FIELDS}, indent=1)

    @classmethod
    def loads(cls, text: str) -> "Plan":
        return cls(**json.loads(text))


# --- events: one JSON object per line of EVENTS_FILE, appended by the agent ---
BOOT, FEATURES, START, RESULT, DONE = "boot", "features", "start", "result", "done"


def boot_event(release: str, features: int | None, error: str, t_main: float | None = None,
               t_driver: float | None = None) -> dict:
    """The agent is up, ublk_drv loaded. t_main, t_driver: its guest uptimes at main() and
    once ublk_drv was loaded, for the boot profile. GET_FEATURES follows in its own event."""
    ev = {"event": BOOT, "release": release, "features": features, "error": error}
    if t_main is not None:
        ev.update(t_main=t_main, t_driver=t_driver)
    return ev


def features_event(features: int | None) -> dict:
    """GET_FEATURES of the driver the tests run against (None: it could not be read)."""
    return {"event": FEATURES, "features": features}


def start_event(name: str) -> dict:
    return {"event": START, "name": name}


def result_event(name: str, status: str, duration: float, message: str = "", skip_reason: str = "",
                 properties: dict | None = None) -> dict:
    return {"event": RESULT, "name": name, "status": status, "duration": duration, "message": message,
            "skip_reason": skip_reason, "properties": properties or {}}


def done_event() -> dict:
    return {"event": DONE}


def append_event(path: str | os.PathLike, ev: dict, sync: bool = False) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(ev) + "\n")
        if sync:  # the guest may die the next moment: the line must be on the host
            f.flush()
            os.fsync(f.fileno())


def read_events(path: str | os.PathLike, pos: int = 0) -> tuple[int, list[dict]]:
    """(new position, the whole lines after pos): a line still being written waits."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = f.read()
    except FileNotFoundError:
        return pos, []
    data = data[: data.rfind(b"\n") + 1]
    return pos + len(data), [json.loads(l) for l in data.decode().splitlines() if l.strip()]


# --- console markers: "ublkcheck: START name" / "ublkcheck: END name status" ---
MARKER_PREFIX = "ublkcheck: "
_MARK = re.compile(r"ublkcheck: (START|END) (\S+)")
_MARK_AT_START = re.compile(r"^ublkcheck: (START|END) ")


def start_marker(name: str) -> str:
    return f"{MARKER_PREFIX}START {name}"


def end_marker(name: str, status: str) -> str:
    return f"{MARKER_PREFIX}END {name} {status}"


def marker(text: str) -> tuple[str, str] | None:
    """("START" or "END", test name) if the console line carries a marker."""
    m = _MARK.search(text)
    return (m.group(1), m.group(2)) if m else None


def is_marker(text: str) -> bool:
    """A kernel-log line (its prefix stripped) that is a marker and nothing else."""
    return bool(_MARK_AT_START.match(text))


def owners(lines: list[str]) -> list[str | None]:
    """For each console line, the test running when it was printed: the one whose START
    came last, until its END (None between tests and before the first)."""
    out: list[str | None] = []
    cur = None
    for l in lines:
        m = marker(l)
        if m:
            cur = m[1] if m[0] == "START" else None
        out.append(cur)
    return out
