"""The guest's initramfs: static busybox, the modules needed to reach the host's root
(virtio, 9p, overlay, in dependency order), init.sh, and under /fast the host files python
needs to start the agent (agentfiles.py). Cached by kernel and inputs."""
from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import subprocess
from pathlib import Path

from .agentfiles import AGENT_DIR, AGENT_SOURCES, agent_files, compile_agent
from .errors import UserError
from .kernel import Kernel, cache_dir

BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"]
BUSYBOX = Path("/bin/busybox")
INIT = Path(__file__).parent / "guest" / "init.sh"


def module_closure(kernel: Kernel, names: list[str]) -> list[Path]:
    """Module files to insmod, dependencies first (built-ins drop out: modprobe says 'builtin')."""
    base = kernel.modules.parent.parent
    if base.name == "lib":
        base = base.parent
    else:
        base = kernel.modules.parent.parent / ".depmod-root"
    out: list[Path] = []
    for n in names:
        p = subprocess.run(["modprobe", "-d", str(base), "-S", kernel.release, "--show-depends", n],
                           capture_output=True, text=True)
        if p.returncode != 0 and "not found" in p.stderr:
            continue  # not a module of this kernel (built in, or absent: init copes)
        for line in p.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod":
                path = Path(parts[1])
                if path not in out:
                    out.append(path)
    return out


def _decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        p = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True)
        return p.stdout
    return data


def _ko_name(path: Path) -> str:
    name = path.name
    for ext in (".xz", ".gz", ".zst"):
        name = name.removesuffix(ext)
    return name.removesuffix(".ko")


def build(kernel: Kernel, agent_layer: bool = True) -> Path:
    if not BUSYBOX.is_file():
        raise UserError("/bin/busybox missing: install busybox-static (scripts/bootstrap.sh does)")
    mods = module_closure(kernel, BOOT_MODULES)
    fast = agent_files() if agent_layer else []
    h = hashlib.sha256()
    sources = [AGENT_DIR / n for n in AGENT_SOURCES] if agent_layer else []
    for p in [BUSYBOX, INIT, *mods, *fast, *sources]:
        h.update(str(p).encode())
        h.update(os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
    # Uncompressed: the guest would spend longer inflating it under TCG than qemu spends
    # loading the few MiB more.
    out = cache_dir() / "initramfs" / f"{kernel.release}-{h.hexdigest()[:16]}.cpio"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.with_suffix(".d")
    shutil.rmtree(stage, ignore_errors=True)
    for d in ("bin", "dev", "proc", "sys", "mods", "mnt"):
        (stage / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, stage / "bin" / "busybox")
    shutil.copy2(INIT, stage / "init")
    os.chmod(stage / "init", 0o755)
    order = []
    for m in mods:
        name = _ko_name(m)
        (stage / "mods" / f"{name}.ko").write_bytes(_decompress(m))
        order.append(name)
    (stage / "modules.order").write_text("\n".join(order) + "\n")
    if fast:
        _copy_layer(fast, stage / "fast")
        compile_agent(stage / "fast")
        _host_dir_attributes(stage / "fast")
    files = subprocess.run(["find", "."], cwd=stage, capture_output=True, text=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=stage, input=files.encode(),
                          capture_output=True, check=True).stdout
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(cpio)
    tmp.rename(out)
    shutil.rmtree(stage, ignore_errors=True)
    return out


def _copy_layer(files: list[Path], top: Path) -> None:
    """files at their own paths under top. An overlay shows a directory with the attributes
    of its top-most layer: _host_dir_attributes gives them the host's."""
    top.mkdir()
    for f in files:
        dest = top / f.relative_to("/")
        for d in reversed(dest.relative_to(top).parents[:-1]):
            if not (top / d).is_dir():
                (top / d).mkdir()
        shutil.copy2(f, dest, follow_symlinks=False)


def _host_dir_attributes(top: Path) -> None:
    """Each directory of the layer gets its host's mode and times (copying into a directory
    changed its times: set last, deepest first). One the host lacks (the agent's
    __pycache__) keeps 0755."""
    for d in sorted([top, *(p for p in top.rglob("*") if p.is_dir() and not p.is_symlink())], reverse=True):
        host = Path("/") / d.relative_to(top)
        if host.is_dir():
            shutil.copystat(host, d)


def list_contents(path: Path) -> list[str]:
    data = path.read_bytes()
    p = subprocess.run(["cpio", "-t", "--quiet"], input=data, capture_output=True, check=True)
    return p.stdout.decode().split()
