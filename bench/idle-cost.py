#!/usr/bin/python3
"""What idle stealth daemons cost the whole machine (prints figures; not a timed test).

Run as root from the repository: `bench/idle-cost.py` (needs target/release/portsentry and
Debian's 1.2, fetched by tests/fetch-reference). Options: `--daemons K` (default 40),
`--secs S` (default 10), `--mode stcp|atcp|sudp|audp|tcp` (default stcp), `--only ours|1.2`,
`--bin PATH` (another build of ours).

For each kind (Debian's 1.2, ours), K daemons are started, each in a network namespace of its
own with nothing but `lo` (as on a host running K containers), and left idle: no packet is
sent to them. Over S seconds the script reads /proc/stat (the CPU the whole machine spent
outside idle, with its softirq part), the daemons' own CPU (their threads' schedstat), and,
when `perf` is installed, the kernel's timer expirations machine-wide
(timer:hrtimer_expire_entry). A baseline with no daemon is measured first, in the same run.
An idle daemon should cost nothing: every wake-up it causes, in its own threads or in the
kernel's timers, is paid by whatever else runs on the machine. Every namespace, daemon and
file is removed at the end.
"""
import argparse, importlib.util, os, re, shutil, subprocess, sys, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("compare", f"{REPO}/bench/compare-1.2.py")
C = importlib.util.module_from_spec(spec)
spec.loader.exec_module(C)


class Host:
    """A network namespace with only `lo`: what bench/compare-1.2.py's Daemon needs of a Net."""

    def __init__(self, i):
        self.t = f"pbi{os.getpid() % 100000}x{i}"
        C.sh(f"ip netns add {self.t}; ip -n {self.t} link set lo up")

    def pids(self):
        return [int(p) for p in C.sh(f"ip netns pids {self.t}", check=False).stdout.split()]

    def close(self):
        C.sh(f"ip netns del {self.t}", check=False)


def busy():
    """(non-idle, softirq) jiffies of the whole machine so far."""
    f = open("/proc/stat").readline().split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, f[:8])
    return user + nice + system + irq + softirq + steal, softirq


def window(secs, pids):
    """Measure `secs` seconds: machine CPU, softirq, timer expirations, the daemons' CPU."""
    hz = os.sysconf("SC_CLK_TCK")
    d0 = sum(C.cpu_ns(p) for p in pids)
    b0, s0 = busy()
    timers = None
    if shutil.which("perf"):
        r = subprocess.run(["perf", "stat", "-a", "-x,", "-e", "timer:hrtimer_expire_entry",
                            "sleep", str(secs)], capture_output=True, text=True)
        m = re.match(r"\s*(\d+),", r.stderr.strip().splitlines()[-1]) if r.stderr.strip() else None
        timers = int(m.group(1)) / secs if m else None
    else:
        time.sleep(secs)
    b1, s1 = busy()
    d1 = sum(C.cpu_ns(p) for p in pids)
    return {"cpu": (b1 - b0) / hz / secs * 100, "softirq": (s1 - s0) / hz / secs * 100,
            "timers": timers, "daemons": (d1 - d0) / 1e9 / secs * 100}


def show(label, r, base=None, k=0):
    t = f"{r['timers']:,.0f}/s" if r["timers"] is not None else "- (no perf)"
    line = (f"{label:26} machine CPU {r['cpu']:6.2f}% of a core (softirq {r['softirq']:5.2f}%), "
            f"daemons' own {r['daemons']:5.2f}%, timer expirations {t}")
    if base is not None and k:
        extra = (r["cpu"] - base["cpu"]) / k
        line += f"; per daemon above the baseline: {extra:+.3f}% of a core"
        if r["timers"] is not None and base["timers"] is not None:
            line += f", {(r['timers'] - base['timers']) / k:+,.0f} timer expirations/s"
    print(line, flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--daemons", type=int, default=40)
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--mode", default="stcp", choices=["stcp", "atcp", "sudp", "audp", "tcp"])
    ap.add_argument("--only", choices=["ours", "1.2"])
    ap.add_argument("--bin", help="our daemon (default: target/release/portsentry)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/idle-cost.py: run as root (namespaces, daemons)")
    ours = os.path.abspath(a.bin) if a.bin else f"{REPO}/target/release/portsentry"
    if not os.path.exists(ours):
        raise SystemExit(f"{ours} is missing: cargo build --release")
    ref = None
    if a.only != "ours":
        ref = C.sh(f"{REPO}/tests/fetch-reference").stdout.strip().splitlines()[-1]
    kinds = [k for k in ["1.2", "ours"] if a.only in (None, k)]
    print(f"idle cost, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, kernel {os.uname().release}, load {os.getloadavg()[0]:.2f}; "
          f"{a.daemons} daemons -{a.mode}, each in a namespace of its own, {a.secs:.0f} s")
    base = show("no daemon (baseline)", window(a.secs, []))
    hosts, daemons = [], []
    try:
        for kind in kinds:
            for i in range(a.daemons):
                h = Host(i)
                hosts.append(h)
                daemons.append(C.Daemon(h, "ref" if kind == "1.2" else "ours", a.mode, ours, ref,
                                        block=0))
            time.sleep(2)
            show(f"{a.daemons} x {'Debian 1.2' if kind == '1.2' else 'ours'}",
                 window(a.secs, [d.pid for d in daemons]), base, a.daemons)
            for d in daemons:
                d.stop()
            for h in hosts:
                h.close()
            hosts, daemons = [], []
        show("no daemon (again)", window(a.secs, []))
    finally:
        for d in daemons:
            d.stop()
        for h in hosts:
            h.close()
        C._remove_dirs()


if __name__ == "__main__":
    main()
