"""Runs inside the guest for `ublkcheck bench`: the same fio jobs against null_blk (the
ceiling: no userspace round trip) and against ublk-fixture's null target in every copy mode
and thread model, repeated, interleaved so that drift of a noisy host hits every target
alike. One JSON line per fio run goes to the results share; the host aggregates them.
stdlib only (the host's /usr/bin/python3 through the guest's overlay)."""
import argparse
import json
import os
import subprocess
import sys
import time

SHARE = "/ublkcheck-results"

COPY_MODES = {"plain": [], "user_copy": ["--user-copy"], "zero_copy": ["--zero-copy"],
              "auto_buf_reg": ["--auto-buf-reg"]}
THREAD_MODELS = {"per_queue": [], "per_io_2": ["--nthreads", "2", "--per-io-tasks"],
                 "per_io_4": ["--nthreads", "4", "--per-io-tasks"]}


def jobs(profile):
    """(name, rw, engine, iodepth, numjobs). 'ref' is the job the upstream selftest server
    (kublk) was measured with on these machines: 4k randread, io_uring, iodepth 64 x 2 jobs."""
    out = [("ref_randread_io_uring_qd64x2", "randread", "io_uring", 64, 2)]
    if profile in ("quick", "modes"):
        return out
    shapes = [(1, 1), (32, 2), (128, 8)] if profile == "standard" else \
        [(qd, nj) for qd in (1, 32, 128) for nj in (1, 2, 8)]
    for rw in ("randread", "randwrite"):
        for engine in ("io_uring", "libaio"):
            for qd, nj in shapes:
                out.append((f"{rw}_{engine}_qd{qd}x{nj}", rw, engine, qd, nj))
    return out


def targets(profile, alt=False, kublk=False):
    """(name, kind, server args, pin to queue 0's CPUs). kind: null_blk, ublk (our server),
    ublk_alt (a second build of it, for before/after in one guest), kublk (the upstream
    selftest server)."""
    out = [("null_blk", "null_blk", None, False)]
    models = THREAD_MODELS if profile != "quick" else {k: THREAD_MODELS[k] for k in ("per_queue", "per_io_4")}
    modes = COPY_MODES if profile != "quick" else {"plain": []}
    for mode, margs in modes.items():
        for model, targs in models.items():
            out.append((f"ublk_{mode}_{model}", "ublk", margs + targs, False))
    # Per-queue threads pinned to their queue's CPUs, as kublk runs them (ours float by
    # default): what that setup is worth here.
    out.append(("ublk_plain_per_queue_affinity", "ublk", ["--affinity"], False))
    # UBLK_F_BATCH_IO (one thread per queue, batch PREP/FETCH/COMMIT), plain copy.
    out.append(("ublk_plain_batch", "ublk", ["--batch"], False))
    # The imbalanced case: every submitter on the CPUs of hardware queue 0.
    out.append(("ublk_plain_per_queue_pinned_q0", "ublk", THREAD_MODELS["per_queue"], True))
    out.append(("ublk_plain_per_io_4_pinned_q0", "ublk", THREAD_MODELS["per_io_4"], True))
    if alt:
        out += [(f"{n}@alt", "ublk_alt", a, p) for n, k, a, p in out if k == "ublk"]
    if kublk:
        out.append(("kublk_per_queue", "kublk", [], False))
        out.append(("kublk_per_io_4", "kublk", ["--nthreads", "4", "--per_io_tasks"], False))
        # kublk -b (batch I/O) is left out: on 7.2.13 its `add` had not returned after 60 s
        # (our build of the 7.2 selftest, not investigated).
    return out


def sh(cmd, timeout=60):
    """A finished process; one that outlives `timeout` is killed and reported as exit 124
    with a message, so a server that never comes up skips its target, not the bench."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"{os.path.basename(cmd[0])} {cmd[1]}: "
                                           f"no answer within {timeout} s")


def progress(msg):
    # The serial console is the runner's liveness signal; a long bench must keep talking.
    print(f"bench: {msg}", flush=True)


def record(out, **kw):
    with open(out, "a") as f:
        f.write(json.dumps(kw) + "\n")


def setup_null_blk(queues, depth):
    sh(["modprobe", "-r", "null_blk"])
    r = sh(["modprobe", "null_blk", "nr_devices=1", "queue_mode=2", f"submit_queues={queues}",
            f"hw_queue_depth={depth}", "irqmode=0", "gb=1", "bs=512"])
    if r.returncode != 0:
        return None, f"modprobe null_blk failed: {r.stderr.strip()}"
    for _ in range(200):
        if os.path.exists("/dev/nullb0"):
            return "/dev/nullb0", ""
        time.sleep(0.01)
    return None, "/dev/nullb0 did not appear"


KUBLK_ID = 77


def setup_kublk(kublk, queues, depth, extra):
    r = sh([kublk, "add", "-t", "null", "-q", str(queues), "-d", str(depth), "-n", str(KUBLK_ID)] + extra,
           timeout=60)
    dev = f"/dev/ublkb{KUBLK_ID}"
    for _ in range(300):
        if os.path.exists(dev):
            return dev, ""
        time.sleep(0.01)
    return None, (r.stderr.strip() or r.stdout.strip() or f"kublk exit {r.returncode}").splitlines()[-1]


def setup_ublk(fixture, queues, depth, extra):
    cmd = [fixture, "add", "-t", "null", "-q", str(queues), "-d", str(depth), "--json"] + extra
    r = sh(cmd, timeout=60)
    if r.returncode != 0:
        return None, None, (r.stderr.strip() or r.stdout.strip() or f"exit {r.returncode}").splitlines()[-1]
    info = json.loads(r.stdout)
    dev_id = info.get("dev_id", info.get("id"))
    return f"/dev/ublkb{dev_id}", dev_id, ""


def queue0_cpus(dev):
    name = os.path.basename(dev)
    try:
        return open(f"/sys/block/{name}/mq/0/cpu_list").read().strip()
    except OSError:
        return ""


def cpu_sample():
    """(busy, idle) clock ticks of all CPUs and context switches since boot (/proc/stat)."""
    busy = idle = ctxt = 0
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0] == "cpu":
                v = [int(x) for x in parts[1:9]]  # user nice system idle iowait irq softirq steal
                busy, idle = v[0] + v[1] + v[2] + v[5] + v[6] + v[7], v[3] + v[4]
            elif parts[0] == "ctxt":
                ctxt = int(parts[1])
    return busy, idle, ctxt


def cpu_cost(before, after, ios):
    """Where the guest's CPUs went during one fio run: busy CPU microseconds and context
    switches per I/O, and the idle share. IOPS on this noisy host swing by a third from run
    to run; these say whether a server change made each I/O cheaper or only moved the noise."""
    busy, idle, ctxt = (a - b for a, b in zip(after, before))
    hz = os.sysconf("SC_CLK_TCK")
    return {"cpu_us_per_io": round(busy * 1e6 / hz / ios, 2) if ios else None,
            "ctxt_per_io": round(ctxt / ios, 3) if ios else None,
            "idle_frac": round(idle / (busy + idle), 3) if busy + idle else None}


def fio_cmd(dev, job, runtime, cpus):
    name, rw, engine, qd, nj = job
    cmd = ["fio", "--name=bench", f"--filename={dev}", f"--rw={rw}", "--bs=4k", "--direct=1",
           f"--ioengine={engine}", f"--iodepth={qd}", f"--numjobs={nj}", "--group_reporting",
           "--time_based", f"--runtime={runtime}", "--output-format=json"]
    if cpus:
        cmd.append(f"--cpus_allowed={cpus}")
    return cmd


def run_fio(dev, job, runtime, cpus):
    rw = job[1]
    before = cpu_sample()
    r = sh(fio_cmd(dev, job, runtime, cpus), timeout=runtime + 60)
    after = cpu_sample()
    body = r.stdout[r.stdout.find("{"):] if "{" in r.stdout else ""
    try:
        j = json.loads(body)["jobs"][0]
    except (ValueError, KeyError, IndexError):
        return {"error": (r.stderr.strip() or "fio printed no JSON")[-300:]}
    side = j["read"] if rw.endswith("read") else j["write"]
    pct = side.get("clat_ns", {}).get("percentile", {})
    return {**cpu_cost(before, after, side.get("total_ios", 0)),
            "iops": side.get("iops", 0.0), "error": j.get("error", 0) or "",
            "lat_mean_us": side.get("lat_ns", {}).get("mean", 0.0) / 1000.0,
            "clat_p50_us": pct.get("50.000000", 0) / 1000.0,
            "clat_p99_us": pct.get("99.000000", 0) / 1000.0,
            "clat_p999_us": pct.get("99.900000", 0) / 1000.0}


def thread_stats(fixture, dev_id):
    r = sh([fixture, "stats", "-n", str(dev_id), "--json"])
    try:
        return [t["ios"] for t in json.loads(r.stdout)["threads"]]
    except (ValueError, KeyError):
        return []


class Target:
    """One bench target's device, set up and torn down the same way for a measured round
    and for the profiling pass."""

    def __init__(self, a, name, kind, extra):
        self.a, self.name, self.kind, self.extra = a, name, kind, extra
        self.fixture = a.alt_fixture if kind == "ublk_alt" else a.fixture
        self.dev_id = None

    def open(self):
        """(device path or None, why not)"""
        a = self.a
        if self.kind == "null_blk":
            return setup_null_blk(a.queues, a.depth)
        if self.kind == "kublk":
            return setup_kublk(a.kublk, a.queues, a.depth, self.extra)
        dev, self.dev_id, why = setup_ublk(self.fixture, a.queues, a.depth, self.extra)
        return dev, why

    def close(self):
        """'' or why the device would not go away (which ends the bench: the next target
        would share a crowded guest)."""
        if self.dev_id is not None:
            r = sh([self.fixture, "del", "-n", str(self.dev_id)], timeout=60)
            self.dev_id = None
            return "" if r.returncode == 0 else f"del failed: {r.stderr.strip()}"
        if self.kind == "kublk":
            r = sh([self.a.kublk, "del", "-n", str(KUBLK_ID)], timeout=60)
            return "" if r.returncode == 0 else f"kublk del failed: {r.stderr.strip()}"
        sh(["modprobe", "-r", "null_blk"])
        return ""


PERF_DATA = "/tmp/bench-perf.data"


def perf_table(sort, limit):
    """perf report of PERF_DATA sorted by `sort` -> [[percent, key, key...], ...]"""
    r = sh(["perf", "report", "-i", PERF_DATA, "--no-children", "--sort", sort, "--stdio", "-g", "none"],
           timeout=300)
    return parse_perf_report(r.stdout, limit)


def parse_perf_report(text, limit):
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or line.startswith("#") or not parts[0].endswith("%"):
            continue
        rows.append([float(parts[0][:-1])] + parts[1:])
        if len(rows) == limit:
            break
    return rows


def profile(t, dev, job, runtime, cpus, out):
    """One run of the job under `perf record -a` (software cpu-clock: TCG has no PMU): where
    every CPU's time went, by thread and binary and by symbol."""
    cmd = ["perf", "record", "-a", "-e", "cpu-clock", "-F", "999", "-o", PERF_DATA, "--"]
    r = sh(cmd + fio_cmd(dev, job, runtime, cpus), timeout=runtime + 120)
    if r.returncode != 0 or not os.path.exists(PERF_DATA):
        record(out, event="profile", target=t.name, job=job[0], error=(r.stderr.strip() or "perf failed")[-300:])
        return
    record(out, event="profile", target=t.name, job=job[0], by_comm_dso=perf_table("comm,dso", 25),
           by_symbol=perf_table("comm,dso,sym", 40))
    os.unlink(PERF_DATA)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--out", default=os.path.join(SHARE, "bench-raw.jsonl"))
    ap.add_argument("--profile", choices=["quick", "modes", "standard", "full"], default="standard")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=2)
    ap.add_argument("--queues", type=int, default=2)
    ap.add_argument("--depth", type=int, default=128)
    ap.add_argument("--only", default="", help="comma-separated target names")
    ap.add_argument("--alt-fixture", default="", help="a second ublk-fixture build (targets NAME@alt)")
    ap.add_argument("--kublk", default="", help="the upstream selftest server (scripts/build-kublk.sh)")
    ap.add_argument("--perf", action="store_true",
                    help="after the measured rounds, profile the first job once per target")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    tlist = [t for t in targets(a.profile, bool(a.alt_fixture), bool(a.kublk))
             if not only or t[0] in only or t[0].split("@")[0] in only or t[1] == "kublk"]
    jlist = jobs(a.profile)
    record(a.out, event="plan", targets=[t[0] for t in tlist], jobs=[j[0] for j in jlist],
           repeats=a.repeats, runtime=a.runtime, queues=a.queues, depth=a.depth,
           cpus=os.cpu_count(), release=os.uname().release)
    skipped = {}
    # The profiling pass comes after the measured rounds: perf's own cost stays out of them.
    passes = [(rep, False) for rep in range(1, a.repeats + 1)] + ([(0, True)] if a.perf else [])
    for rep, perf in passes:
        for name, kind, extra, pinned in tlist:
            if name in skipped:
                continue
            t = Target(a, name, kind, extra)
            dev, why = t.open()
            if not dev:
                skipped[name] = why
                record(a.out, event="skip", target=name, reason=why)
                progress(f"{name}: SKIP {why}")
                continue
            cpus = queue0_cpus(dev) if pinned else ""
            if perf:
                profile(t, dev, jlist[0], a.runtime, cpus, a.out)
                progress(f"profiled {name} {jlist[0][0]}")
            else:
                for job in jlist:
                    res = run_fio(dev, job, a.runtime, cpus)
                    record(a.out, event="run", target=name, job=job[0], repeat=rep, cpus=cpus, **res)
                    progress(f"rep {rep} {name} {job[0]}: {res.get('iops', 0):.0f} IOPS {res.get('error') or ''}")
                if t.dev_id is not None:
                    record(a.out, event="threads", target=name, repeat=rep, ios=thread_stats(t.fixture, t.dev_id))
            why = t.close()
            if why:
                progress(why)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
