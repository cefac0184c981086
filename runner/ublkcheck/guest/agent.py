"""Runs inside the guest (host's /usr/bin/python3 via the overlay): loads ublk_drv, runs the
planned tests one by one, marks each start/end in the kernel log, and appends one JSON line
per event to events.jsonl on the results share, so the host follows progress and keeps
what finished even if the guest dies. stdlib only."""
import json
import os
import re
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol  # noqa: E402  (the guest-host protocol, next to this file)
from protocol import SHARE  # noqa: E402
GCOV = "/sys/kernel/debug/gcov"
KSFT_SKIP = 4


def kmsg(text):
    # Level 3 (err) so the marker reaches the serial console at loglevel=4; the scanner
    # knows these lines.
    try:
        with open("/dev/kmsg", "w") as f:
            f.write(f"<3>ublkcheck: {text}\n")
    except OSError:
        pass


def event(ev):
    ev["uptime"] = uptime()
    protocol.append_event(os.path.join(SHARE, protocol.EVENTS_FILE), ev, sync=True)


def sh(cmd, timeout=60):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)


def run(argv, timeout=60):
    """A program without a shell in between (one exec less over 9p on the boot path)."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def load_driver(plan):
    mod = plan.module
    if mod:
        if os.path.exists("/sys/module/ublk_drv"):
            run(["modprobe", "-r", "ublk_drv"])
        r = run(["insmod", mod])
        if r.returncode != 0:
            return f"insmod {mod} failed: {r.stderr.strip()}"
    else:
        r = run(["modprobe", "ublk_drv"])
        if r.returncode != 0:
            return f"modprobe ublk_drv failed: {r.stderr.strip()}"
    for _ in range(200):
        if os.path.exists("/dev/ublk-control"):
            return ""
        time.sleep(0.01)
    return "/dev/ublk-control did not appear"


def start_features(plan):
    """GET_FEATURES (ublk-fixture features) started beside the first test, off the boot
    path; features(proc) collects the word."""
    fx = plan.fixture
    if not fx or not os.path.exists(fx):
        return None
    return subprocess.Popen([fx, "features", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def features(proc):
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(timeout=60)
        return json.loads(out)["features"]
    except (ValueError, KeyError, subprocess.TimeoutExpired):
        proc.kill()
        return None


def gtest_status(path):
    """(status, message, skip_reason, properties) from a gtest JSON report."""
    try:
        rep = json.load(open(path))
    except (OSError, ValueError):
        return None
    for suite in rep.get("testsuites", []):
        for t in suite.get("testsuite", []):
            props = {k: v for k, v in t.items() if k not in (
                "name", "status", "result", "timestamp", "time", "classname", "failures",
                "file", "line", "value_param", "type_param", "skipped")}
            if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                msg = ""
                for s in t.get("skipped", []) or []:
                    msg = s.get("message", "")
                return "skip", "", msg.split("\n", 1)[-1].strip() or msg, props
            fails = t.get("failures", [])
            if fails:
                return "fail", "\n".join(f.get("failure", "") for f in fails), "", props
            return "pass", "", "", props
    return None


def skip_message(output):
    """gtest 1.12's JSON drops GTEST_SKIP()'s text; its console output has it:
    'file:line: Skipped' then the message, then '[  SKIPPED ]'."""
    lines = output.splitlines()
    for i, l in enumerate(lines):
        if l.endswith(": Skipped"):
            msg = []
            for m in lines[i + 1:]:
                if m.startswith("[  SKIPPED ]"):
                    break
                msg.append(m)
            return "\n".join(msg).strip()
    return ""


def safe_name(name):
    return name.replace("/", "_")


def coverage_setup(plan):
    """--coverage: debugfs holds the instrumented ublk_drv's gcov counters."""
    if not plan.coverage:
        return ""
    if not os.path.isdir(GCOV):
        sh("mount -t debugfs none /sys/kernel/debug")
    if not os.path.exists(os.path.join(GCOV, "reset")):
        return f"--coverage: no {GCOV}/reset in the guest (a kernel without CONFIG_GCOV_KERNEL?)"
    return ""


def coverage_reset(plan):
    # Any write zeroes every counter: each test's .gcda then holds that test alone.
    if plan.coverage:
        with open(os.path.join(GCOV, "reset"), "w") as f:
            f.write("1")


def coverage_save(name, plan):
    """Copy ublk_drv's counters after a test (the file lives under the build path of the
    module, mirrored in debugfs; it stays after an unload, gcov_persist)."""
    if not plan.coverage:
        return None
    for root, _dirs, files in os.walk(GCOV):
        if "ublk_drv.gcda" in files:
            dest = os.path.join(SHARE, "coverage", safe_name(name) + ".gcda")
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(os.path.join(root, "ublk_drv.gcda"), "rb") as src, open(dest, "wb") as out:
                out.write(src.read())
            return dest
    return None


def run_script(t, plan):
    """(rc, output, the guest is fit for the next test, files it left in /dev) of one
    kselftest script, run from its own directory in its own process group: on a timeout the
    whole group is killed. Each script gets a fresh TMPDIR (its backing files), and what it
    leaves (devices, kublk daemons, files) is cleared before the next one."""
    import tempfile  # here, not at the top: the agent's start under TCG pays for every import
    tmp = tempfile.mkdtemp(prefix="ksft-", dir="/tmp")
    here = os.path.dirname(t["binary"])
    p = subprocess.Popen(["bash", t["binary"]], cwd=here,
                         env=dict(os.environ, TMPDIR=tmp, **plan.env), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=t.get("timeout", 180))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, _ = p.communicate()
        rc, out = -1, (out or "") + f"\ntimed out after {t.get('timeout')}s in the guest"
    left = sh("pgrep -x kublk").stdout.split()
    fit = True
    if left:
        deleted = "devices deleted"
        try:
            sh(f"{os.path.join(here, 'kublk')} del -a", timeout=60)
        except subprocess.TimeoutExpired:
            # DEL_DEV waits for a device whose teardown never ends (a recovery a mutant
            # broke): the devices stay, so the guest is done.
            fit = False
            deleted = "`kublk del -a` still waiting after 60 s; the next test gets a fresh guest"
        sh("pkill -9 -x kublk")
        out += f"\n(ublkcheck: {len(left)} kublk process(es) outlived the script; {deleted})"
        stuck = wait_gone("kublk", 30)
        if stuck:
            # A daemon that survives SIGKILL (D state) keeps its devices and its backing
            # files in the guest's tmpfs: the next scripts would fail for it (ENOSPC).
            fit = False
            out += (f"\n(ublkcheck: {len(stuck)} kublk process(es) survive SIGKILL after 30 s: "
                    f"{'; '.join(stuck)[:300]}; the next test gets a fresh guest)")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    files = clear_dev_files()
    if files:
        out += ("\n(ublkcheck: the script left regular files in /dev, removed: "
                + ", ".join(files) + ")")
    return rc, out, fit, files


DEV = "/dev"


def clear_dev_files(dev=None):
    """Removes the regular files in the guest's devtmpfs; returns them as "name (N MiB)".
    The stress scripts run fio on /dev/ublkbN while they delete the device: a fio job that
    opens the path after the node is gone creates a regular file there and fills it. With
    devtmpfs full (it is a tmpfs of half the guest's memory), a later script's device node
    cannot be created, and its fio writes into the old file until ENOSPC (seen as
    stripe_05 failing after stress_06 in one guest)."""
    dev = dev or DEV
    root = os.stat(dev).st_dev
    found = []
    for top, dirs, files in os.walk(dev):
        dirs[:] = [d for d in dirs if os.lstat(os.path.join(top, d)).st_dev == root]
        for f in files:
            path = os.path.join(top, f)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                found.append(f"{os.path.relpath(path, dev)} ({st.st_blocks * 512 >> 20} MiB)")
                os.unlink(path)
    return sorted(found)


def wait_gone(name, seconds):
    """The processes called `name` still alive after `seconds` ("pid state" each), or []. A
    zombie holds nothing (nobody may reap it: PID 1 is init.sh) and does not count."""
    deadline = time.monotonic() + seconds
    while True:
        rows = [l.split() for l in sh(f"ps -C {name} -o pid=,stat=").stdout.splitlines() if l.strip()]
        left = [" ".join(r) for r in rows if len(r) == 2 and not r[1].startswith("Z")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def missing_programs(script):
    """The programs a selftest checks for (`_have_program NAME`) that this guest lacks: the
    usual reason of a silent SKIP (the scripts run with UBLK_TEST_QUIET=1)."""
    try:
        text = open(script).read()
    except (OSError, TypeError):
        return []
    names = sorted(set(re.findall(r"_have_program\s+([\w.-]+)", text)))
    import shutil
    return [n for n in names if shutil.which(n) is None]


def script_result(rc, output, script=None):
    """(status, message, skip_reason) by kselftest's exit codes: 0 pass, 4 skip, else fail."""
    if rc == 0:
        return "pass", "", ""
    if rc == KSFT_SKIP:
        lines = [l.strip() for l in output.splitlines() if l.strip()]
        body = [l for l in lines if not l.endswith(": [SKIP]")]
        if body:
            return "skip", "", body[-1][:300]
        missing = missing_programs(script)
        return "skip", "", ("exit 4 (KSFT_SKIP) without a message; the guest lacks " + ", ".join(missing)
                            if missing else "exit 4 (KSFT_SKIP) without a message")
    return "fail", f"exit {rc}\n{output[-4000:]}", ""


SERVER_LOGS = "/run/ublk-fixture"  # ublk-fixture's default state dir: server-<pid>.log


def save_server_logs(art, src=SERVER_LOGS):
    """The servers' stderr (ublk-fixture's own diagnostics) of the test that just ran go
    with its artifacts; the logs are then removed, so the next test gets only its own."""
    try:
        names = [n for n in os.listdir(src) if n.startswith("server-") and n.endswith(".log")]
    except OSError:
        return
    for n in names:
        p = os.path.join(src, n)
        try:
            if os.path.getsize(p):
                with open(p, "rb") as src_f, open(os.path.join(art, n), "wb") as dst_f:
                    dst_f.write(src_f.read())
            os.unlink(p)
        except OSError:
            pass


def run_test(t, plan):
    """Runs one planned test; returns False if it left the guest unfit for the next one."""
    name = t["name"]
    if t.get("kind") == "script":
        event(protocol.start_event(name))
        coverage_reset(plan)
        kmsg(protocol.start_marker(name))
        t0 = time.time()
        rc, output, fit, dev_files = run_script(t, plan)
        dur = time.time() - t0
        status, msg, skip = script_result(rc, output, t["binary"])
        kmsg(protocol.end_marker(name, status))
        props = {"exit_code": rc}
        if dev_files:
            props["dev_files_left"] = ", ".join(dev_files)
        if coverage_save(name, plan):
            props["coverage"] = True
        event(protocol.result_event(name, status, dur, msg[-8000:], skip, props))
        return fit
    out_json = os.path.join(SHARE, "gtest", safe_name(name) + ".json")
    art = os.path.join(SHARE, "artifacts", safe_name(name))
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    os.makedirs(art, exist_ok=True)
    env = dict(os.environ, UBLKCHECK_ARTIFACTS=art, **plan.env)
    cmd = [t["binary"], f"--gtest_filter={t['filter']}", f"--gtest_output=json:{out_json}"]
    event(protocol.start_event(name))
    coverage_reset(plan)
    kmsg(protocol.start_marker(name))
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=plan.cwd, env=env, capture_output=True, text=True,
                           timeout=t.get("timeout", 900))
        rc, output = p.returncode, (p.stdout + p.stderr)
    except subprocess.TimeoutExpired as e:
        rc, output = -1, f"timed out after {e.timeout}s in the guest"
    dur = time.time() - t0
    st = gtest_status(out_json)
    if rc == 77:
        status, msg, skip, props = "skip", "", output.strip().splitlines()[-1] if output.strip() else "exit 77", {}
    elif st is None:
        status, msg, skip, props = "error", f"no gtest report (exit {rc})\n{output[-4000:]}", "", {}
    else:
        status, msg, skip, props = st
        if status == "skip" and not skip:
            skip = skip_message(output)
        if status == "pass" and rc != 0:
            status, msg = "fail", f"exit {rc} after passing assertions\n{output[-4000:]}"
    kmsg(protocol.end_marker(name, status))
    save_server_logs(art)
    if coverage_save(name, plan):
        props = dict(props, coverage=True)
    event(protocol.result_event(name, status, dur, msg[-8000:], skip, props))
    return True


def run_command(plan):
    name = plan.command_name
    event(protocol.start_event(name))
    kmsg(protocol.start_marker(name))
    t0 = time.time()
    p = subprocess.run(plan.command, shell=True, cwd=plan.cwd)
    status = "pass" if p.returncode == 0 else "fail"
    kmsg(protocol.end_marker(name, status))
    event(protocol.result_event(name, status, time.time() - t0,
                                "" if p.returncode == 0 else f"exit {p.returncode}",
                                properties={"exit_code": p.returncode}))


def uptime():
    return float(open("/proc/uptime").read().split()[0])


def main():
    t_main = uptime()
    plan = protocol.Plan.loads(open(sys.argv[1]).read())
    err = load_driver(plan) or coverage_setup(plan)
    t_driver = uptime()
    pending = None if err else start_features(plan)
    event(protocol.boot_event(os.uname().release, None, err, t_main, t_driver))
    # A guest booted again after a lost one skips what the earlier guests finished.
    try:
        _, earlier = protocol.read_events(os.path.join(SHARE, protocol.EVENTS_FILE))
    except ValueError:
        earlier = []
    done = {e["name"] for e in earlier if e.get("event") == protocol.RESULT}
    if plan.command is not None:
        event(protocol.features_event(features(pending)))
        run_command(plan)
    else:
        for i, t in enumerate(t for t in plan.tests if t["name"] not in done):
            fit = run_test(t, plan)
            if i == 0:
                event(protocol.features_event(features(pending)))
            if not fit:
                return  # the guest ends without "done": the host boots a fresh one for the rest
        if pending and pending.returncode is None:
            event(protocol.features_event(features(pending)))
    event(protocol.done_event())


if __name__ == "__main__":
    main()
