"""The run loop: boot a guest, let the agent run the planned tests, follow the console and
the agent's events, and turn panics, hangs and kernel reports into FAILs with evidence.
After a dead guest, boot a fresh one for the tests that remain."""
from __future__ import annotations

import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import initramfs, known, snapshot, vm
from .discover import PlannedTest
from .kernel import Kernel
from .model import REPORT_LINE_PREFIX, RunResult, TestResult
from .scan import FATAL_KINDS, header_kind, scan_lines, strip_prefix
from .guest import protocol
from .guest.protocol import Plan

AGENT = Path(__file__).parent / "guest" / "agent.py"


@dataclass
class Limits:
    timeout: float = 3600.0       # whole run
    hang_timeout: float = 120.0   # no console output and no agent event for this long
    grace: float = 20.0           # after a kernel report, time the test gets to finish
    boot_timeout: float = 90.0    # qemu start -> agent running


KVM_INTERNAL_ERROR = "KVM internal error"


@dataclass
class Boot:
    """What one guest showed so far: its console, and the agent's events."""
    lines: list[str] = field(default_factory=list)
    first_report: dict = field(default_factory=dict)  # test -> monotonic time of its first report
    kvm_error: bool = False  # qemu said "KVM internal error": it paused the VM, nothing will exit
    console_test: str | None = None  # the test the latest console line belongs to
    agent_up: bool = False
    done_at: float | None = None     # the agent said it finished
    running_test: str | None = None  # started (its START event) and no result yet
    last_event: float = 0.0

    def on_console(self, text: str, now: float) -> None:
        self.lines.append(text)
        if KVM_INTERNAL_ERROR in text:
            self.kvm_error = True
        m = protocol.marker(text)
        if m:
            self.console_test = m[1] if m[0] == "START" else None
        elif self.console_test and header_kind(text) in FATAL_KINDS:
            # The grace clock of the test starts at its first report that kills a task.
            self.first_report.setdefault(self.console_test, now)

    def on_event(self, ev: dict, now: float) -> None:
        self.last_event = now
        kind = ev["event"]
        if kind == protocol.BOOT:
            self.agent_up = True
        elif kind == protocol.START:
            self.running_test = ev["name"]
        elif kind == protocol.RESULT and ev["name"] == self.running_test:
            self.running_test = None
        elif kind == protocol.DONE:
            self.done_at = now


@dataclass
class GuestState:
    """What the host knows about a running guest at one instant (monotonic seconds)."""
    now: float
    started: float            # qemu start
    last_activity: float      # last console line or agent event
    agent_up: bool
    running: bool
    done_at: float | None     # the agent said it finished
    report_at: float | None   # first fatal kernel report of the running test
    kvm_error: bool
    idle_limit: float         # the running test's allowed silence
    boot_timeout: float
    grace: float
    run_started: float
    run_timeout: float


def stop_reason(s: GuestState) -> str | None:
    """Why the guest must be stopped now, or None while it may go on."""
    if not s.running:
        return "exited"
    if s.done_at and s.now - s.done_at > 10:
        return "done"  # the agent finished; a guest slow to power off is stopped
    if s.kvm_error and not s.agent_up:
        return "boot: KVM internal error (this host's KVM cannot run the guest)"
    if not s.agent_up and s.now - s.started > s.boot_timeout:
        return f"boot: no agent after {s.boot_timeout:.0f}s"
    if s.report_at and s.now - s.report_at > s.grace:
        return f"a kernel report, and the test did not finish within {s.grace:.0f}s"
    if s.agent_up and s.now - s.last_activity > s.idle_limit:
        return f"hang: no console output and no progress for {s.idle_limit:.0f}s"
    if s.now - s.run_started > s.run_timeout:
        return f"run timeout ({s.run_timeout:.0f}s)"
    return None


class Progress:
    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream, self.t0 = total, stream, time.monotonic()
        self.tty = stream.isatty()

    def show(self, done: int, current: str) -> None:
        el = time.monotonic() - self.t0
        eta = f"{el / done * (self.total - done):.0f}s" if done else "?"
        msg = f"[{done}/{self.total}] {el:.0f}s elapsed, ETA {eta}  {current[:70]}"
        if self.tty:
            self.stream.write("\r\x1b[K" + msg)
        elif current:
            self.stream.write(msg + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")


class Orchestrator:
    def __init__(self, kernel: Kernel, cfg: vm.VmConfig, outdir: Path, limits: Limits,
                 module: Path | None = None, env: dict | None = None, quiet: bool = False):
        self.kernel, self.cfg, self.out, self.limits = kernel, cfg, outdir, limits
        self.module, self.env, self.quiet = module, env or {}, quiet
        # A reused results directory starts clean: the agent skips tests it finds done.
        self.share = outdir / "share"
        shutil.rmtree(self.share, ignore_errors=True)
        self.share.mkdir(parents=True)
        (outdir / "console.log").unlink(missing_ok=True)
        self.events_path = self.share / protocol.EVENTS_FILE
        self.console = outdir / "console.log"
        self.results: dict[str, dict] = {}
        self.boot_seconds: float | None = None
        self.boots = 0
        self.snapshot_off = False  # an image failed this run: the guests boot
        self.kernel_release = ""
        self.features = None
        self.all_lines: list[tuple[int, str]] = []   # (boot number, line)
        self.boot_errors: list[str] = []

    # --- events from the agent ---
    def _read_events(self, pos: int) -> tuple[int, list[dict]]:
        return protocol.read_events(self.events_path, pos)

    def _write_plan(self, plan: Plan) -> None:
        (self.share / protocol.PLAN_FILE).write_text(plan.dumps())

    # --- one guest ---
    def _boot(self, plan: Plan, progress: Progress | None) -> str:
        """Runs one guest until it ends; returns why it ended."""
        self.boots += 1
        boot = Boot(last_event=time.monotonic())
        guest, restored = self._start_guest(boot, progress)
        pos = self.events_path.stat().st_size if self.events_path.exists() else 0
        why = "exited"
        while True:
            time.sleep(0.25)
            pos = self._take_events(boot, pos, guest.started, progress)
            why = stop_reason(self._state(boot, guest, plan)) or ""
            if why:
                break
        if guest.running() and why != "done" and not boot.kvm_error:  # a paused VM dumps nothing
            self._dump_tasks(guest)
        rc = guest.stop()
        self._take_events(boot, pos, guest.started, None)
        self.all_lines += [(self.boots, l) for l in boot.lines]
        if any("Kernel panic - not syncing" in l for l in boot.lines):
            why = "kernel panic"
        if boot.running_test and boot.running_test not in self.results:
            self._record_lost(boot, why)
        if not boot.agent_up:
            self.boot_errors.append(f"boot {self.boots}: {why} (qemu exit {rc})")
            if restored:
                # An image that gives no agent is not used again: the next guests boot.
                restored.unlink(missing_ok=True)
                self.snapshot_off = True
        return why

    def _start_guest(self, boot: Boot, progress: Progress | None) -> tuple[vm.Guest, Path | None]:
        """The guest, and the snapshot image it was restored from (None: it booted)."""
        monitor = self.out / f"monitor-{self.boots}.sock"
        initrd = initramfs.build(self.kernel, self.cfg.agent_in_memory)
        argv = vm.command_line(self.kernel, initrd, self.share, self.cfg, monitor, AGENT)
        image = None
        if self.cfg.snapshot and not self.snapshot_off:
            image = snapshot.image_for(argv, self.share, monitor, self._note)
        if image:
            argv = argv + snapshot.restore_args(image)

        def on_line(idx: int, text: str) -> None:
            if not self.quiet and progress is None:
                print(text, flush=True)
            if snapshot.SNAPSHOT_POINT in text:  # booted, not restored: it waits all the same
                guest.send(snapshot.go_line())
            boot.on_console(text, time.monotonic())

        guest = vm.Guest(argv, self.console, monitor, on_line)
        with open(self.console, "a") as f:
            f.write(f"===== ublkcheck boot {self.boots}: {' '.join(argv)}\n")
        guest.start()
        if image:
            if snapshot.wait_running(monitor):
                guest.send(snapshot.go_line())
            else:
                self._note(f"ublkcheck: the guest restored from {image.name} did not run in "
                           f"{snapshot.RUN_TIMEOUT:.0f} s")
        return guest, image

    def _note(self, line: str) -> None:
        """A line of the runner's own in the console log (no time stamp: no boot phase)."""
        with open(self.console, "a") as f:
            f.write(line + "\n")
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)

    def _take_events(self, boot: Boot, pos: int, started: float, progress: Progress | None) -> int:
        """Reads the agent's new events into the boot and the run; returns the new position."""
        pos, evs = self._read_events(pos)
        now = time.monotonic()
        for ev in evs:
            boot.on_event(ev, now)
            if ev["event"] == protocol.BOOT:
                if self.boot_seconds is None:
                    self.boot_seconds = round(now - started, 2)
                self.kernel_release = ev.get("release", "")
                if ev.get("features") is not None:  # agents before the features event
                    self.features = ev["features"]
                if ev.get("error"):
                    self.boot_errors.append(ev["error"])
            elif ev["event"] == protocol.FEATURES and ev.get("features") is not None:
                self.features = ev["features"]
            elif ev["event"] == protocol.START and progress:
                progress.show(len(self.results), ev["name"])
            elif ev["event"] == protocol.RESULT:
                self.results[ev["name"]] = ev
        return pos

    def _state(self, boot: Boot, guest: vm.Guest, plan: Plan) -> GuestState:
        t = boot.running_test
        return GuestState(
            now=time.monotonic(), started=guest.started, last_activity=max(guest.last_output, boot.last_event),
            agent_up=boot.agent_up, running=guest.running(), done_at=boot.done_at,
            report_at=boot.first_report.get(t) if t else None, kvm_error=boot.kvm_error,
            idle_limit=self._idle_limit(plan, t), boot_timeout=self.limits.boot_timeout,
            grace=self.limits.grace, run_started=self._t0, run_timeout=self.limits.timeout)

    @staticmethod
    def _dump_tasks(guest: vm.Guest) -> None:
        """Evidence before the guest is stopped: blocked tasks, then all tasks. sysrq 7
        first: the dumps are KERN_INFO, below the console's loglevel=5, and sysrq raises the
        level for its own header line only. The serial console is slow: the all-task dump
        gets time to drain."""
        guest.sysrq("7")
        guest.sysrq("w")
        time.sleep(2)
        guest.sysrq("t")
        time.sleep(8)

    def _record_lost(self, boot: Boot, why: str) -> None:
        """The test running when the guest ended fails with the console's evidence."""
        name = boot.running_test
        ev = protocol.result_event(name, "fail", 0.0,
                                   f"guest lost during the test ({why})\n{self._evidence(boot.lines, name)}",
                                   properties={"guest_end": why})
        self.results[name] = ev
        protocol.append_event(self.events_path, ev)

    def _idle_limit(self, plan: Plan, name: str | None) -> float:
        """How long the running test may stay silent: --hang-timeout, or for a selftest
        script (which prints nothing until it ends) its own timeout, after which the agent
        kills it and says so."""
        t = next((t for t in plan.tests if t["name"] == name), None)
        if t and t.get("kind") == "script":
            return max(self.limits.hang_timeout, t.get("timeout", 0) + 30)
        return self.limits.hang_timeout

    @staticmethod
    def _evidence(lines: list[str], name: str, n: int = 60) -> str:
        """What a person needs: the test's last console lines before the end, and the
        blocked tasks (sysrq w) if they were dumped; not the long all-task dump."""
        start = 0
        for i, l in enumerate(lines):
            if protocol.start_marker(name) in l:
                start = i
        tail = lines[start:]
        blocked = next((i for i, l in enumerate(tail) if "sysrq: Show Blocked State" in l), None)
        if blocked is None:
            return "\n".join(strip_prefix(l) for l in tail[-n:])
        dump_end = next((j for j in range(blocked + 1, len(tail)) if "sysrq: Show State" in tail[j]), len(tail))
        before = tail[:blocked][-20:]
        dump = tail[blocked:dump_end][:n]
        return "\n".join(strip_prefix(l) for l in before + ["..."] + dump)

    # --- whole runs ---
    def run(self, plan: Plan, tests: list[PlannedTest], spec: str, patches: list[str]) -> RunResult:
        self._t0 = time.monotonic()
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        names = [t.name for t in tests]
        progress = Progress(len(names)) if not self.quiet and tests else None
        failed_boots = 0
        while True:
            self._write_plan(plan)
            before = len(self.results)
            errors_before = len(self.boot_errors)
            self._boot(plan, progress)
            if self.cfg.accel == "kvm" and self.boot_seconds is None:
                # KVM that cannot run this guest (it died, or qemu paused it with a KVM
                # internal error, before the agent spoke): use TCG from now on, and
                # remember it for later runs on this host.
                print("ublkcheck: KVM cannot run the guest on this host; booting again with TCG "
                      f"(remembered in {vm.kvm_broken_marker()})", file=sys.stderr, flush=True)
                vm.kvm_broken_marker().write_text("a KVM guest died before its agent started\n")
                self.cfg.accel = "tcg"
                self.boot_errors.clear()
                continue
            remaining = [n for n in names if n not in self.results]
            if plan.command is not None:
                # A guest lost before its agent started ran nothing (seen once: an int3
                # oops in sched_clock_cpu at 2 s under TCG): boot once more. The first
                # boot's console and report stay in the results.
                if len(self.boot_errors) == errors_before or failed_boots >= 1:
                    break
                failed_boots += 1
                continue
            if not remaining:
                break
            if len(self.results) == before:
                failed_boots += 1
                if failed_boots >= 2:
                    break
            if time.monotonic() - self._t0 > self.limits.timeout:
                break
        if progress:
            progress.end()
        return self._assemble(tests, plan, spec, patches, started)

    def boot_profiles(self) -> list[dict | None]:
        """Where each boot's time went, from its console and the agent's boot events."""
        from .bootprofile import run_profiles
        text = self.console.read_text(errors="replace") if self.console.exists() else ""
        return run_profiles(text, protocol.read_events(self.events_path)[1])

    def _assemble(self, tests, plan, spec, patches, started) -> RunResult:
        run = RunResult(run_id=self.out.name, kernel_spec=spec, kernel_release=self.kernel_release,
                        features=self.features, host=socket.gethostname(), accel=self.cfg.accel,
                        boot_seconds=self.boot_seconds, boots=self.boots, started=started,
                        duration_s=round(time.monotonic() - self._t0, 1), patches=patches)
        order = [t.name for t in tests] or [plan.command_name]
        suites = {t.name: t.suite for t in tests}
        for name in order:
            ev = self.results.get(name)
            if ev is None:
                why = "; ".join(self.boot_errors) or "not reached (the run ended early)"
                tr = TestResult(name=name, suite=suites.get(name, "command"), status="error", message=why)
            else:
                tr = TestResult(name=name, suite=suites.get(name, "command"), status=ev["status"],
                                duration_s=round(ev.get("duration", 0.0), 2), skip_reason=ev.get("skip_reason", ""),
                                message=ev.get("message", ""), properties=ev.get("properties", {}))
            tr.kernel = self.kernel_release
            run.tests.append(tr)
        by_name = {t.name: t for t in run.tests}
        # Scan each boot's console; a report belongs to the test whose START precedes it.
        for b in range(1, self.boots + 1):
            lines = [l for (bb, l) in self.all_lines if bb == b]
            owner = protocol.owners(lines)
            for r in scan_lines(lines):
                r.test = owner[r.line] if r.line < len(owner) else None
                run.reports.append(r)
                t = by_name.get(r.test) if r.test else None
                if t is None:
                    continue
                t.reports.append(r)
                if t.status in ("pass", "skip"):
                    t.status = "fail"
                    t.message = (f"{REPORT_LINE_PREFIX} {r.title}\n" + t.message).strip()
        known.annotate(run, known.load())
        return run
