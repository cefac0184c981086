"""Runs inside the guest (host's /usr/bin/python3 via the overlay): loads ublk_drv, runs the
planned tests one by one, marks each start/end in the kernel log, and appends one JSON line
per event to events.jsonl on the results share, so the host follows progress and keeps
what finished even if the guest dies. stdlib only."""
import json
import os
import subprocess
import sys
import time

SHARE = "/ublkcheck-results"


def kmsg(text):
    # Level 3 (err) so the marker reaches the serial console at loglevel=4; the scanner
    # knows these lines.
    try:
        with open("/dev/kmsg", "w") as f:
            f.write(f"<3>ublkcheck: {text}\n")
    except OSError:
        pass


def event(**kw):
    kw["uptime"] = float(open("/proc/uptime").read().split()[0])
    with open(os.path.join(SHARE, "events.jsonl"), "a") as f:
        f.write(json.dumps(kw) + "\n")
        f.flush()
        os.fsync(f.fileno())


def sh(cmd, timeout=60):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)


def load_driver(plan):
    mod = plan.get("module")
    if mod:
        sh("modprobe -r ublk_drv")
        r = sh(f"insmod {mod}")
        if r.returncode != 0:
            return f"insmod {mod} failed: {r.stderr.strip()}"
    else:
        r = sh("modprobe ublk_drv")
        if r.returncode != 0:
            return f"modprobe ublk_drv failed: {r.stderr.strip()}"
    for _ in range(200):
        if os.path.exists("/dev/ublk-control"):
            return ""
        time.sleep(0.01)
    return "/dev/ublk-control did not appear"


def features(plan):
    fx = plan.get("fixture")
    if not fx or not os.path.exists(fx):
        return None
    r = sh(f"{fx} features --json")
    try:
        return json.loads(r.stdout)["features"]
    except (ValueError, KeyError):
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


def run_test(t, plan):
    name = t["name"]
    out_json = os.path.join(SHARE, "gtest", name.replace("/", "_") + ".json")
    art = os.path.join(SHARE, "artifacts", name.replace("/", "_"))
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    os.makedirs(art, exist_ok=True)
    env = dict(os.environ, UBLKCHECK_ARTIFACTS=art, **plan.get("env", {}))
    cmd = [t["binary"], f"--gtest_filter={t['filter']}", f"--gtest_output=json:{out_json}"]
    event(event="start", name=name)
    kmsg(f"START {name}")
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=plan["cwd"], env=env, capture_output=True, text=True,
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
    kmsg(f"END {name} {status}")
    event(event="result", name=name, status=status, duration=dur, message=msg[-8000:],
          skip_reason=skip, properties=props)


def run_command(plan):
    name = plan["command_name"]
    event(event="start", name=name)
    kmsg(f"START {name}")
    t0 = time.time()
    p = subprocess.run(plan["command"], shell=True, cwd=plan["cwd"])
    status = "pass" if p.returncode == 0 else "fail"
    kmsg(f"END {name} {status}")
    event(event="result", name=name, status=status, duration=time.time() - t0,
          message="" if p.returncode == 0 else f"exit {p.returncode}", skip_reason="",
          properties={"exit_code": p.returncode})


def main():
    plan = json.load(open(sys.argv[1]))
    err = load_driver(plan)
    event(event="boot", release=os.uname().release, features=None if err else features(plan),
          error=err)
    done = set()
    try:
        for line in open(os.path.join(SHARE, "events.jsonl")):
            e = json.loads(line)
            if e.get("event") == "result":
                done.add(e["name"])
    except (OSError, ValueError):
        pass
    if plan.get("command") is not None:
        run_command(plan)
    else:
        for t in plan["tests"]:
            if t["name"] not in done:
                run_test(t, plan)
    event(event="done")


if __name__ == "__main__":
    main()
