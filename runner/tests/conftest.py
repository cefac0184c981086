import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture
def standins(tmp_path, monkeypatch):
    """apt-get, apt-cache, qemu and make that record being called: a refusal must come first."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    called = tmp_path / "called"
    for tool in ("apt-get", "apt-cache", "qemu-system-x86_64", "make", "dpkg-deb"):
        (bin_ / tool).write_text(f"#!/bin/sh\necho {tool} >> {called}\nexit 1\n")
        (bin_ / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:/usr/bin:/bin")
    return called
