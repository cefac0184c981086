"""PVH entry (pvh.py): the vmlinux inside a bzImage is found by its compressor's magic, kept
only with a PVH entry note, and booted instead of the bzImage unless --boot bzimage."""
import struct
import subprocess
from pathlib import Path

from ublkcheck import pvh, vm
from ublkcheck.kernel import Kernel


def elf_with_notes(notes: list[tuple[bytes, int]]) -> bytes:
    """A minimal 64-bit ELF with one PT_NOTE segment holding these (name, type) notes."""
    body = b""
    for name, ntype in notes:
        n = name + b"\0"
        body += struct.pack("<III", len(n), 4, ntype) + n.ljust((len(n) + 3) // 4 * 4, b"\0") + b"\1\0\0\0"
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", ehdr, 0x20, 64)           # e_phoff
    struct.pack_into("<HH", ehdr, 0x36, 56, 1)       # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(body), len(body), 4)
    return bytes(ehdr) + phdr + body


def bzimage_around(payload: bytes, tmp_path: Path) -> Path:
    packed = subprocess.run(["zstd", "-q", "-c"], input=payload, capture_output=True, check=True).stdout
    b = tmp_path / "vmlinuz"
    b.write_bytes(b"\0" * 0x202 + b"HdrS" + b"setup code" * 50 + packed + b"trailer")
    return b


def test_the_pvh_note_is_found():
    assert pvh.has_pvh_entry(elf_with_notes([(b"Xen", 6), (b"Xen", pvh.XEN_ELFNOTE_PHYS32_ENTRY)]))
    assert not pvh.has_pvh_entry(elf_with_notes([(b"Xen", 6), (b"GNU", pvh.XEN_ELFNOTE_PHYS32_ENTRY)]))
    assert not pvh.has_pvh_entry(b"MZ not an elf")


def test_a_bzimage_with_a_pvh_vmlinux_gets_it_once(tmp_path):
    elf = elf_with_notes([(b"Xen", pvh.XEN_ELFNOTE_PHYS32_ENTRY)])
    b = bzimage_around(elf, tmp_path)
    got = pvh.vmlinux_for(b)
    assert got and got.read_bytes() == elf
    assert pvh.vmlinux_for(b) == got  # cached


def test_a_vmlinux_without_pvh_entry_keeps_the_bzimage(tmp_path):
    b = bzimage_around(elf_with_notes([(b"Xen", 6)]), tmp_path)
    assert pvh.vmlinux_for(b) is None
    assert (tmp_path / "vmlinuz.no-pvh").is_file()


def test_qemu_boots_the_pvh_vmlinux_unless_told_bzimage(tmp_path, monkeypatch):
    monkeypatch.setattr(vm, "qemu_binary", lambda: "qemu")
    k = Kernel(spec="debian:sid", release="r", vmlinuz=tmp_path / "vmlinuz", modules=tmp_path / "r",
               pvh=tmp_path / "vmlinuz.pvh-vmlinux")

    def kernel_arg(cfg):
        argv = vm.command_line(k, tmp_path / "initrd", tmp_path, cfg, tmp_path / "mon", Path("/a.py"))
        return argv[argv.index("-kernel") + 1]
    assert kernel_arg(vm.VmConfig()) == str(k.pvh)
    assert kernel_arg(vm.VmConfig(boot="pvh")) == str(k.pvh)
    assert kernel_arg(vm.VmConfig(boot="bzimage")) == str(k.vmlinuz)
    k.pvh = None
    assert kernel_arg(vm.VmConfig()) == str(k.vmlinuz)


def test_only_the_fast_boot_takes_qboot_and_skips_the_certificate_list(tmp_path, monkeypatch):
    monkeypatch.setattr(vm, "qemu_binary", lambda: "qemu")
    k = Kernel(spec="debian:sid", release="r", vmlinuz=tmp_path / "vmlinuz", modules=tmp_path / "r")
    for boot, light in (("fast", True), ("pvh", False), ("bzimage", False)):
        argv = vm.command_line(k, tmp_path / "initrd", tmp_path, vm.VmConfig(boot=boot), tmp_path / "mon",
                               Path("/a.py"))
        assert (argv[argv.index("-bios") + 1] == "qboot.rom" if "-bios" in argv else False) == light, boot
        append = argv[argv.index("-append") + 1].split()
        assert ("initcall_blacklist=load_system_certificate_list" in append) == light, boot
