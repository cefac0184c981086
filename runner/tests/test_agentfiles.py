"""The agent's files for the initramfs's /fast layer: what python reads to start it, at paths
that cannot shadow a host symlink with a directory."""
import os
import shutil
import subprocess
from pathlib import Path

from ublkcheck import agentfiles
from ublkcheck.initramfs import _copy_layer, _host_dir_attributes


def test_the_interpreter_its_libraries_and_the_agents_imports():
    files = {str(f) for f in agentfiles.agent_files()}
    real = os.path.realpath(agentfiles.PYTHON)
    assert real in files and str(agentfiles.PYTHON) in files   # the binary and the link init.sh runs
    assert any(f.endswith("/libc.so.6") for f in files)
    for module in ("subprocess.py", "json/__init__.py", "enum.py"):
        assert any(f.endswith("/" + module) for f in files), module
    assert not any("ublkcheck" in f for f in files)            # the agent itself stays the checkout's


def test_every_path_is_in_a_real_directory():
    for f in agentfiles.agent_files():
        assert os.path.realpath(f.parent) == str(f.parent), f
        assert f.is_file() or f.is_symlink()


def test_a_broken_interpreter_gives_no_layer(tmp_path):
    bad = tmp_path / "python3"
    bad.write_text("#!/bin/sh\nexit 1\n")
    bad.chmod(0o755)
    assert agentfiles.agent_files(bad) == []


def test_the_layer_starts_python_in_a_chroot(tmp_path):
    """The copied files alone run the agent's imports: nothing the start needs is left out."""
    files = agentfiles.agent_files()
    _copy_layer(files, tmp_path / "fast")
    top = tmp_path / "fast"
    pycs = agentfiles.compile_agent(top)
    _host_dir_attributes(top)
    assert [p.name.split(".")[0] for p in pycs] == ["agent", "protocol"]
    assert (top / "usr/bin/python3").is_symlink()
    for d in (top, top / "usr", top / "usr/lib"):
        assert d.stat().st_mode == Path("/" + str(d.relative_to(top)).lstrip(".")).stat().st_mode
    if os.geteuid() != 0:
        return
    # The overlay takes the host's top-level usrmerge links (/lib64 -> usr/lib64) from 9p.
    for link in ("lib", "lib64", "bin", "sbin"):
        if os.path.islink("/" + link):
            (top / link).symlink_to(os.readlink("/" + link))
    guest = agentfiles.AGENT_DIR
    for f in guest.glob("*.py"):
        shutil.copy2(f, top / f.relative_to("/"))   # the sources, with their times, as the overlay shows them
    # -v: python says where it takes each module's code from; the agent's is the layer's pyc.
    code = f"import sys; sys.path.insert(0, '{guest}'); import agent; print('ok')"
    p = subprocess.run(["chroot", str(top), "/usr/bin/python3", "-S", "-v", "-c", code], capture_output=True,
                       text=True)
    assert p.stdout.strip() == "ok", p.stderr
    assert f"code object from '{pycs[0]}'".replace(str(top), "") in p.stderr
