"""Debian packages of other suites, fetched without touching the system's apt state.

The mirror is whatever the system's apt configuration already uses (deb822 `.sources` or
one-line `.list` entries); we only add other suites of it in a private sources list with
private lists/cache directories, then `apt-get download`.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .errors import UserError

SUITES = ("sid", "experimental", "trixie", "bookworm-backports", "bookworm")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _deb822_uris(text: str) -> list[tuple[str, list[str]]]:
    """(uri, suites) pairs of the `Types: deb` stanzas of a deb822 file."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            out.append((uri, fields.get("suites", "").split()))
    return out


def _oneline_uris(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m:
            out.append((m.group(1), [m.group(2)]))
    return out


def debian_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The Debian archive URI the system uses (not security, not a third-party repo)."""
    found: list[tuple[str, list[str]]] = []
    files = sorted((etc / "sources.list.d").glob("*.sources")) if (etc / "sources.list.d").is_dir() else []
    for f in files:
        found += _deb822_uris(f.read_text(errors="replace"))
    listed = sorted((etc / "sources.list.d").glob("*.list")) if (etc / "sources.list.d").is_dir() else []
    for f in [etc / "sources.list", *listed]:
        if f.is_file():
            found += _oneline_uris(f.read_text(errors="replace"))
    debian_suites = {"bookworm", "trixie", "sid", "unstable", "stable", "testing", "bullseye", "forky"}
    for uri, suites in found:
        if "security" in uri:
            continue
        if any(s.split("-")[0] in debian_suites for s in suites) and "/debian" in uri:
            return uri.rstrip("/")
    raise UserError(
        "no Debian archive found in the apt configuration (/etc/apt/sources.list[.d]): "
        "add the Debian mirror there, or pass --kernel PATH --modules DIR")


class PrivateApt:
    """apt-get/apt-cache over a private sources list of the system's mirror."""

    def __init__(self, cache: Path, mirror: str | None = None, etc: Path = Path("/etc/apt")):
        self.root = cache / "apt"
        self.mirror = mirror or debian_mirror(etc)
        for d in ("lists/partial", "cache/archives/partial"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.sources = self.root / "sources.list"
        lines = [f"deb [signed-by={KEYRING}] {self.mirror} {s} main" for s in SUITES]
        text = "\n".join(lines) + "\n"
        if not self.sources.exists() or self.sources.read_text() != text:
            self.sources.write_text(text)

    def options(self) -> list[str]:
        return ["-o", f"Dir::Etc::SourceList={self.sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State::Lists={self.root / 'lists'}", "-o", f"Dir::Cache={self.root / 'cache'}",
                "-o", "Dir::State::status=/dev/null", "-o", "APT::Architecture=amd64",
                "-o", "Debug::NoLocking=1"]

    def _run(self, tool: str, args: list[str], cwd: Path | None = None, timeout: int = 600) -> str:
        try:
            p = subprocess.run([tool, *self.options(), *args], cwd=cwd, capture_output=True,
                               text=True, timeout=timeout)
        except FileNotFoundError:
            raise UserError(f"{tool} not found: ublkcheck fetches kernels with apt (Debian/Ubuntu host)")
        except subprocess.TimeoutExpired:
            raise UserError(f"{tool} {' '.join(args)} timed out after {timeout}s: is the mirror "
                            f"{self.mirror} reachable?")
        if p.returncode != 0:
            err = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise UserError(f"{tool} {' '.join(args[:2])} failed against {self.mirror}: {err} "
                            "(check the network to the mirror)")
        return p.stdout

    def update(self, max_age_s: int = 6 * 3600) -> None:
        import time
        stamp = self.root / "updated"
        if stamp.exists() and time.time() - stamp.stat().st_mtime < max_age_s:
            return
        self._run("apt-get", ["update", "-q"])
        stamp.touch()

    def query(self, args: list[str]) -> str:
        """apt-cache's answer, kept until the next update: each call loads every suite's
        package lists (seconds of CPU), and they change only when `update` fetches them."""
        import hashlib
        stamp = self.root / "updated"
        if not stamp.exists():
            return self._run("apt-cache", args)
        key = hashlib.sha256(f"{stamp.stat().st_mtime_ns} {self.sources.read_text()} {args}".encode()).hexdigest()[:24]
        memo = self.root / "queries" / key
        if memo.is_file():
            return memo.read_text()
        out = self._run("apt-cache", args)
        memo.parent.mkdir(exist_ok=True)
        tmp = memo.with_suffix(".tmp")
        tmp.write_text(out)
        tmp.replace(memo)
        return out

    def search(self, pattern: str) -> list[str]:
        out = self.query(["search", "--names-only", pattern])
        return [line.split(" - ", 1)[0].strip() for line in out.splitlines() if line.strip()]

    def policy_versions(self, package: str) -> dict[str, str]:
        """suite -> candidate version of `package` from `apt-cache showpkg`-like policy output."""
        out = self.query(["madison", package])
        res: dict[str, str] = {}
        for line in out.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 3:
                suite = parts[2].split()[1].split("/")[0] if len(parts[2].split()) > 1 else ""
                res.setdefault(suite, parts[1])
        return res

    def download(self, packages: list[str], dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        self._run("apt-get", ["download", *packages], cwd=dest)
        return sorted(dest.glob("*.deb"))
