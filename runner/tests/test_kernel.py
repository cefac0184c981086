"""Kernel specs, mirror discovery from apt configs, package layouts."""
import pytest

from ublkcheck.aptfetch import PrivateApt, debian_mirror
from ublkcheck.errors import UserError
from ublkcheck.kernel import DebianKernels, find_layout, from_paths, parse_spec

DEB822 = """Types: deb
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""


def apt_etc(tmp_path, sources=None, oneline=None):
    d = tmp_path / "etc"
    (d / "sources.list.d").mkdir(parents=True)
    if sources:
        (d / "sources.list.d" / "debian.sources").write_text(sources)
    if oneline:
        (d / "sources.list").write_text(oneline)
    return d


def test_mirror_from_deb822_skips_security(tmp_path):
    assert debian_mirror(apt_etc(tmp_path, sources=DEB822)) == "http://mirror.invalid/debian"


def test_mirror_from_one_line_format(tmp_path):
    etc = apt_etc(tmp_path, oneline="# comment\ndeb https://other.invalid/apt cloud main\n"
                  "deb [arch=amd64] http://m2.invalid/debian/ trixie main contrib\n")
    assert debian_mirror(etc) == "http://m2.invalid/debian"


def test_no_mirror_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no Debian archive"):
        debian_mirror(apt_etc(tmp_path, oneline="deb https://x.invalid/apt stable main\n"))


def test_private_sources_list_has_all_suites(tmp_path):
    apt = PrivateApt(tmp_path, mirror="http://mirror.invalid/debian")
    text = apt.sources.read_text()
    for s in ("sid", "experimental", "trixie", "bookworm-backports"):
        assert f"http://mirror.invalid/debian {s} main" in text
    opts = " ".join(apt.options())
    assert "Dir::State::status=/dev/null" in opts and str(tmp_path) in opts


@pytest.mark.parametrize("spec,kind,suite,version", [
    ("debian:sid", "debian", "sid", ""), ("debian:unstable", "debian", "sid", ""),
    ("debian:experimental", "debian", "experimental", ""), ("debian:trixie", "debian", "trixie", ""),
    ("debian:bookworm-backports", "debian", "bookworm-backports", ""),
    ("debian:7.2.13-1", "debian", "", "7.2.13-1"), ("/boot/vmlinuz", "path", "", "")])
def test_parse_spec(spec, kind, suite, version):
    ks = parse_spec(spec)
    assert (ks.kind, ks.suite, ks.version) == (kind, suite, version)


@pytest.mark.parametrize("spec", ["debian:hamm", "ubuntu:noble", "sid"])
def test_bad_specs_say_what_is_accepted(spec):
    with pytest.raises(UserError) as e:
        parse_spec(spec)
    assert "debian:" in str(e.value)


def test_bookworm_is_refused_with_the_reason(tmp_path):
    class FakeApt:
        mirror = "http://mirror.invalid/debian"
        def update(self): pass
        def policy_versions(self, pkg): return {"bookworm": "6.1.176-1", "sid": "7.2.13-1"}
    dk = DebianKernels(cache=tmp_path, apt=FakeApt())
    with pytest.raises(UserError, match="CONFIG_BLK_DEV_UBLK is not"):
        dk.resolve(parse_spec("debian:bookworm"))


def test_resolve_follows_meta_package_to_binary_and_modules(tmp_path):
    shows = {"linux-image-amd64=7.2.13-1":
             "Package: linux-image-amd64\nDepends: linux-image-7.2.13+deb14-amd64 (= 7.2.13-1)\n",
             "linux-image-7.2.13+deb14-amd64":
             "Depends: linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1), "
             "linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1), kmod\n"}

    class FakeApt:
        mirror = "m"
        def update(self): pass
        def policy_versions(self, pkg): return {"sid": "7.2.13-1"}
        def query(self, args): return shows[args[-1]]
    dk = DebianKernels(cache=tmp_path, apt=FakeApt())
    version, pkgs = dk.resolve(parse_spec("debian:sid"))
    assert version == "7.2.13-1"
    assert pkgs == ["linux-image-7.2.13+deb14-amd64", "linux-binary-7.2.13+deb14-amd64",
                    "linux-modules-7.2.13+deb14-amd64"]


def test_layouts(tmp_path):
    sid = tmp_path / "sid"
    (sid / "usr/lib/modules/7.2.13+deb14-amd64/kernel").mkdir(parents=True)
    (sid / "usr/lib/modules/7.2.13+deb14-amd64/vmlinuz").write_bytes(b"x")
    v, m = find_layout(sid)
    assert v.name == "vmlinuz" and m.name == "7.2.13+deb14-amd64"
    old = tmp_path / "trixie"
    (old / "lib/modules/6.12.107+deb13-amd64/kernel").mkdir(parents=True)
    (old / "boot").mkdir()
    (old / "boot/vmlinuz-6.12.107+deb13-amd64").write_bytes(b"x")
    v, m = find_layout(old)
    assert v.name == "vmlinuz-6.12.107+deb13-amd64" and m.name == "6.12.107+deb13-amd64"
    with pytest.raises(UserError):
        find_layout(tmp_path / "empty")


def test_bzimage_paths_are_checked(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        from_paths(str(tmp_path / "bzImage"), None)
    (tmp_path / "bzImage").write_bytes(b"x")
    with pytest.raises(UserError, match="not a bzImage"):
        from_paths(str(tmp_path / "bzImage"), None)
    (tmp_path / "bzImage").write_bytes(b"\0" * 0x202 + b"HdrS")
    with pytest.raises(UserError, match="needs --modules"):
        from_paths(str(tmp_path / "bzImage"), None)
    with pytest.raises(UserError, match="not a directory"):
        from_paths(str(tmp_path / "bzImage"), str(tmp_path / "nomods"))


def test_apt_cache_answers_are_kept_until_the_next_update(tmp_path, monkeypatch):
    """Resolving debian:sid took 9 s of apt-cache calls in the patch loop: their answers
    only change when `update` fetches new lists."""
    from ublkcheck.aptfetch import PrivateApt
    apt = PrivateApt(tmp_path, mirror="http://mirror.invalid/debian")
    calls = []
    monkeypatch.setattr(apt, "_run", lambda tool, args, **kw: calls.append(args) or f"answer {len(calls)}")
    assert apt.query(["madison", "linux-image-amd64"]) == "answer 1"  # never updated: not kept
    (apt.root / "updated").touch()
    assert apt.query(["madison", "linux-image-amd64"]) == "answer 2"
    assert apt.query(["madison", "linux-image-amd64"]) == "answer 2"
    assert apt.query(["show", "x"]) == "answer 3"
    import os
    st = (apt.root / "updated").stat()
    os.utime(apt.root / "updated", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new update
    assert apt.query(["madison", "linux-image-amd64"]) == "answer 4"
    assert len(calls) == 4
