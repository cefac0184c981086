"""One QEMU guest: command line, serial console capture with host timestamps, a monitor
socket for sysrq, and a bounded stop."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .kernel import Kernel


@dataclass
class VmConfig:
    smp: int = 2
    mem_mb: int = 3072
    accel: str = "tcg"          # "kvm" or "tcg"
    append: str = ""            # extra kernel command line
    # "snapshot": "fast", booted once and restored from a migration image (snapshot.py);
    # "fast": PVH entry, qboot, no certificate list, and the agent's python from the
    # initramfs (agentfiles.py); "pvh": PVH entry, the agent over 9p; "bzimage": SeaBIOS,
    # setup, decompression, 9p.
    boot: str = "snapshot"

    @property
    def pvh_entry(self) -> bool:
        return self.boot in ("snapshot", "fast", "pvh")

    @property
    def agent_in_memory(self) -> bool:
        return self.boot in ("snapshot", "fast")

    @property
    def light_boot(self) -> bool:
        return self.boot in ("snapshot", "fast")

    @property
    def snapshot(self) -> bool:
        # Under KVM a boot is about 2 s: not worth an image, and a host whose KVM cannot run
        # the guest (it pauses it) would stall the making boot.
        return self.boot == "snapshot" and self.accel != "kvm"


# Measured under TCG (2 cores, debian:sid): SeaBIOS's POST takes about 0.5 s before it
# hands over to the kernel; qboot, QEMU's minimal firmware (qemu-system-data, next to
# pvh.bin), loads the same ACPI tables and jumps to the kernel (PVH or bzImage) at once.
LIGHT_FIRMWARE = ["-bios", "qboot.rom"]
# Parsing Debian's built-in X.509 list is one 0.25 s initcall under TCG. The guest needs
# no key: Debian enforces module signatures only under Secure Boot's lockdown, and a
# patched or gcov ublk_drv is unsigned anyway. So the first module load taints the
# kernel 'E' ("module verification failed"), which no check here reads.
LIGHT_CMDLINE = "initcall_blacklist=load_system_certificate_list "


def qemu_binary() -> str:
    q = shutil.which("qemu-system-x86_64")
    if not q:
        raise UserError("qemu-system-x86_64 not found: install qemu-system-x86 (scripts/bootstrap.sh does)")
    return q


def kvm_usable() -> bool:
    """/dev/kvm is there and ours, and no earlier boot found it broken. Whether it really
    runs a normal guest is found out by booting: on some hosts (PVM-only KVM) qemu dies on
    the first instructions; orchestrate then falls back to TCG and remembers it."""
    if os.environ.get("UBLKCHECK_NO_KVM") or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    return not kvm_broken_marker().exists()


def kvm_broken_marker() -> Path:
    from .kernel import cache_dir
    return cache_dir() / "kvm-broken"


def command_line(kernel: Kernel, initrd: Path, share: Path, cfg: VmConfig, monitor: Path,
                 agent: Path) -> list[str]:
    accel = ["-accel", "kvm", "-cpu", "host"] if cfg.accel == "kvm" else \
        ["-accel", "tcg,thread=multi", "-cpu", "max"]
    # Under TCG the TSC calibrates badly ("Unable to calibrate against PIT") and the
    # clocksource watchdog later marks it unstable, which patches sched_clock's static key
    # while the other vCPU runs it: an int3 Oops in sched_clock_cpu, seen in selftest runs
    # here. Without the watchdog on the TSC that runtime patch never happens.
    tcg_only = "tsc=nowatchdog " if cfg.accel != "kvm" else ""
    light = LIGHT_CMDLINE if cfg.light_boot else ""
    light += "SNAPSHOT=1 " if cfg.snapshot else ""
    # loglevel=5: KERN_WARNING/DEFAULT lines reach the console, so WARN/UBSAN call traces
    # (printed at the default level, without console_verbose()) are in the log too.
    # sysrq_always_enabled: Debian restricts sysrq; the hang path needs w and t.
    cmdline = (f"console=ttyS0 loglevel=5 panic=-1 sysrq_always_enabled=1 {tcg_only}{light}KREL={kernel.release} "
               f"KMODS={kernel.modules} AGENT={agent} {cfg.append}").strip()
    return [qemu_binary(), "-nographic", "-no-reboot", "-nic", "none", *accel,
            *(LIGHT_FIRMWARE if cfg.light_boot else []),
            "-smp", str(cfg.smp), "-m", str(cfg.mem_mb),
            "-kernel", str(kernel.pvh if cfg.pvh_entry and kernel.pvh else kernel.vmlinuz),
            "-initrd", str(initrd),
            "-fsdev", "local,id=hostroot,path=/,readonly=on,security_model=none,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", f"local,id=results,path={share},security_model=none,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=results,mount_tag=results",
            "-monitor", f"unix:{monitor},server,nowait",
            "-append", cmdline]


@dataclass
class Guest:
    argv: list[str]
    console_log: Path
    monitor: Path
    on_line: callable = None              # called with (index, text) for every console line
    lines: list[str] = field(default_factory=list)
    started: float = 0.0
    last_output: float = 0.0

    def start(self) -> None:
        self.started = self.last_output = time.monotonic()
        # stdin is the serial console's input: a snapshot's guest waits there for "go".
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._log = open(self.console_log, "a", encoding="utf-8", errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(65536) if hasattr(self.proc.stdout, "read1") else self.proc.stdout.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                self._emit(raw)
        if buf:
            self._emit(buf)

    def _emit(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        # Strip terminal escape noise from SeaBIOS/qemu; keep the guest's text intact.
        text = text.replace("\x1bc", "").replace("\x1b[?7l", "").replace("\x1b[2J", "").replace("\x1b[0m", "")
        self.last_output = time.monotonic()
        stamp = self.last_output - self.started
        idx = len(self.lines)
        self.lines.append(text)
        self._log.write(f"[{stamp:9.3f}] {text}\n")
        self._log.flush()
        if self.on_line:
            self.on_line(idx, text)

    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, data: bytes) -> None:
        """Types `data` on the serial console."""
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def monitor_cmd(self, cmd: str) -> None:
        try:
            hmp(self.monitor, cmd, timeout=2)
        except OSError:
            pass

    def sysrq(self, key: str) -> None:
        """Magic SysRq through the emulated keyboard (w: blocked tasks, t: all tasks)."""
        self.monitor_cmd(f"sendkey alt-sysrq-{key}")

    def stop(self, grace: float = 5.0) -> int:
        if self.running():
            self.monitor_cmd("quit")
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        self._log.close()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        return self.proc.returncode


def hmp(monitor: Path, cmd: str, timeout: float = 5.0) -> str:
    """One command on the guest's human monitor; its answer (up to the next prompt)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(monitor))
        _until_prompt(s)
        s.sendall(cmd.encode() + b"\n")
        return _until_prompt(s)


def _until_prompt(s: socket.socket) -> str:
    buf = b""
    while not buf.rstrip().endswith(b"(qemu)"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")
