"""The uncompressed vmlinux inside a bzImage, for qemu's PVH entry: under TCG the guest
spends about a second decompressing a Debian kernel before its first instruction of its own
(`run --boot-profile`), and a vmlinux with a PVH entry note boots without that. The payload
is found by its compressor's magic (as the kernel's scripts/extract-vmlinux does), unpacked
with the compressor's own tool, and kept beside the bzImage."""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

# (magic, tool command that decompresses stdin to stdout), in the kernel's usual order.
_CODECS = [
    (b"\x28\xb5\x2f\xfd", ["zstd", "-dcq"]),
    (b"\xfd7zXZ\x00", ["xz", "-dcq"]),
    (b"\x1f\x8b\x08", ["gzip", "-dcq"]),
    (b"\x02\x21\x4c\x18", ["lz4", "-dcq"]),
]
XEN_ELFNOTE_PHYS32_ENTRY = 18


def has_pvh_entry(elf: bytes) -> bool:
    """A 64-bit little-endian ELF with the Xen PHYS32_ENTRY note, which qemu boots by PVH."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def extract(bzimage: Path, dest: Path) -> bool:
    """Writes bzImage's vmlinux to dest if it has a PVH entry; False if none is found."""
    data = bzimage.read_bytes()
    for magic, tool in _CODECS:
        if not shutil.which(tool[0]):
            continue
        at, tries = data.find(magic), 0
        while at >= 0 and tries < 20:
            tries += 1
            r = subprocess.run(tool, input=data[at:], capture_output=True)
            # Trailing bytes after the stream make the tools complain; the output counts.
            if r.stdout[:4] == b"\x7fELF":
                if not has_pvh_entry(r.stdout):
                    return False
                tmp = dest.with_suffix(".tmp")
                tmp.write_bytes(r.stdout)
                tmp.replace(dest)
                return True
            at = data.find(magic, at + 1)
    return False


def vmlinux_for(bzimage: Path) -> Path | None:
    """The cached PVH vmlinux of this bzImage (made once), or None if it has none. An ELF
    given as the kernel is booted as it is."""
    if not bzimage.is_file():
        return None
    with open(bzimage, "rb") as f:
        if f.read(4) == b"\x7fELF":
            return None
    dest = bzimage.with_name(bzimage.name + ".pvh-vmlinux")
    none = bzimage.with_name(bzimage.name + ".no-pvh")
    if dest.is_file() and dest.stat().st_mtime >= bzimage.stat().st_mtime:
        return dest
    if none.is_file():
        return None
    if extract(bzimage, dest):
        return dest
    none.write_text("no vmlinux with a PVH entry inside\n")
    return None
