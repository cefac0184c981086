"""The host files python reads to start the guest agent: the interpreter, its shared
libraries and the modules the agent imports. The initramfs carries copies at their own
paths, and init.sh stacks them over the host's root as the top lower layer of the guest's
overlay: the same bytes, read from the guest's memory instead of over 9p (python's start over
9p took about 1.7 s under TCG). Anything not copied still comes from the host."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

PYTHON = Path("/usr/bin/python3")   # what init.sh starts the agent with
AGENT_DIR = Path(__file__).parent / "guest"

# Run by the same interpreter with the agent's flags (-S): every module file the agent's
# import loads, and its bytecode where the host has it.
_MODULES = """
import importlib.util, json, os, sys
sys.path.insert(0, sys.argv[1])
import agent
out = []
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if not f or not os.path.isabs(f) or f.startswith(sys.argv[1]):
        continue
    out.append(f)
    if f.endswith(".py"):
        out.append(importlib.util.cache_from_source(f))
print(json.dumps(out))
"""

# The agent's own bytecode, compiled by the guest's interpreter into the layer (not into the
# checkout): compiling agent.py and protocol.py took about 0.5 s of its start under TCG, at
# every boot, since the guest's overlay forgets what it wrote.
_COMPILE = """
import importlib.util, os, py_compile, sys
top = sys.argv[1]
for src in sys.argv[2:]:
    cfile = top + importlib.util.cache_from_source(os.path.realpath(src))
    py_compile.compile(src, cfile=cfile, doraise=True)
    print(cfile)
"""
AGENT_SOURCES = ("agent.py", "protocol.py")


def compile_agent(top: Path, python: Path = PYTHON) -> list[Path]:
    """The agent's .pyc files under top, at the paths python looks for them; [] if the
    host's python cannot compile them (then the guest compiles, as before)."""
    srcs = [str(AGENT_DIR / n) for n in AGENT_SOURCES]
    p = subprocess.run([str(python), "-c", _COMPILE, str(top), *srcs], capture_output=True, text=True)
    return [Path(l) for l in p.stdout.splitlines()] if p.returncode == 0 else []


_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def _shared_libraries(binaries: list[str]) -> list[str]:
    p = subprocess.run(["ldd", *binaries], capture_output=True, text=True)
    return [m.group(1) for line in p.stdout.splitlines() if (m := _LDD_PATH.search(line))]


def _chain(path: str) -> list[Path]:
    """path's symlinks, each in its parent's real directory, and the file they end at: the
    loader opens libz.so.1, a link to libz.so.1.2.13, and both then resolve in the layer."""
    out = []
    p = os.path.abspath(path)
    for _ in range(40):
        p = os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
        if not os.path.islink(p):
            break
        out.append(Path(p))
        p = os.path.normpath(os.path.join(os.path.dirname(p), os.readlink(p)))
    if os.path.isfile(p):
        out.append(Path(p))
    return out


def agent_files(python: Path = PYTHON) -> list[Path]:
    """Regular files and symlinks, each in its parent's real path (a parent that is a symlink
    on the host, like usrmerge's /lib, must not become a directory in the layer above it),
    sorted and without duplicates. Empty if the host's python cannot run the agent's imports
    (then everything comes over 9p, as before)."""
    p = subprocess.run([str(python), "-S", "-c", _MODULES, str(AGENT_DIR)], capture_output=True, text=True)
    if p.returncode != 0:
        return []
    modules = json.loads(p.stdout)
    extensions = [f for f in modules if f.endswith(".so")]
    files = [str(python), "/etc/ld.so.cache", *modules, *_shared_libraries([str(python), *extensions])]
    return sorted({c for f in files for c in _chain(f)})
