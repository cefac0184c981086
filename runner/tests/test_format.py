"""The code follows its formatter configs: C++ as clang-format applies .clang-format, Python
as autopep8 and pycodestyle apply setup.cfg; and pyflakes finds no unused import or name.
scripts/bootstrap.sh installs the four tools."""
import shutil
import subprocess

import pytest

from ublkcheck.paths import REPO


def tracked(*patterns):
    out = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout: nothing says which files are the project's")
    return out.stdout.split()


def tool(name):
    path = shutil.which(name)
    assert path, f"{name} is missing: scripts/bootstrap.sh installs it"
    return path


def test_cpp_follows_clang_format():
    files = tracked("*.cc", "*.h")
    assert len(files) > 20
    r = subprocess.run([tool("clang-format"), "--dry-run", "--Werror", *files], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, "clang-format -i would change:\n" + r.stderr[:3000]


def test_python_follows_pycodestyle_and_autopep8():
    files = tracked("*.py")
    assert len(files) > 20
    r = subprocess.run([tool("pycodestyle"), *files], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[:3000]
    r = subprocess.run([tool("autopep8"), "--diff", *files], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout, "autopep8 -i would change:\n" + r.stdout[:3000]


def test_python_has_no_unused_imports_or_names():
    r = subprocess.run([tool("pyflakes3"), *tracked("*.py")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[:3000] + r.stderr[:1000]
