#!/usr/bin/python3
"""Flood benchmark of issue 23 (prints figures; not a timed test): forged-source floods of
two shapes while real nmap scans run, this portsentry beside Debian's 1.2 in the same run.

Run as root from the repository: `bench/flood.sh` (builds the release daemon and the sender
`examples/forge.rs`, fetches Debian's 1.2 with tests/fetch-reference, runs this). Options:
`--secs S` (flood length, default 10), `--rate R` (packets/s asked of the sender, default
200000; it prints what it managed), `--shapes` (a comma list of prefix4, all4, prefix6,
range6), `--only ours|1.2`, `--bin PATH` (another build of ours), `--reps N`.

Shapes (forged TCP SYNs to the watched ports of Debian's TCP_PORTS, one pseudo-random
source address per packet):
  prefix4  from one IPv4 /24 (198.18.7.0/24: 256 sources, each sending many packets)
  all4     from all of IPv4 (1.0.0.0-223.255.255.255, as `hping3 --rand-source` sends them)
  prefix6  from one IPv6 /64 (2001:db8:3::/64, a new source for almost every packet)
  range6   from an IPv6 /32 (fd00:1234::/32)
Debian's 1.2 has no IPv6: it runs the IPv4 shapes only.

Both daemons run `-stcp` with Debian's TCP_PORTS, BLOCK_TCP="1", SCAN_TRIGGER="0",
RESOLVE_HOST="0" and a KILL_ROUTE that writes the address to a FIFO (a process of its own
stamps each line; bench/compare-1.2.py's Daemon), so both block every source they report.
During the flood three real scanners, from addresses of their own, each run
`nmap -sS --top-ports 1000 -T4 --max-retries 1` at 20%, 45% and 70% of the flood.

Printed per shape and daemon: packets sent (and the rate the sender reached), received by
the target's veth, lost before the daemon (ours: its capture ring's count; 1.2: its raw
sockets' drop count in /proc/net/raw), the daemon's CPU time during the flood (and its
commands'), peak RSS, for each real scanner whether it was reported and blocked and how
long after nmap started, and how many forged sources were reported and blocked. Ours also
prints its packet path (`portsentry status`). Every loop is bounded in count and time; the
namespaces, daemons and files are removed at the end.
"""
import argparse, importlib.util, json, os, statistics, subprocess, sys, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("compare", f"{REPO}/bench/compare-1.2.py")
C = importlib.util.module_from_spec(spec)
spec.loader.exec_module(C)

T6, S6 = "2001:db8::1", "2001:db8::2"
REAL4 = ["198.51.100.21", "198.51.100.22", "198.51.100.23"]
REAL6 = ["2001:db8::21", "2001:db8::22", "2001:db8::23"]
SHAPES = {
    "prefix4": ("198.18.7.0/24", 4),
    "all4": ("all-v4", 4),
    "prefix6": ("2001:db8:3::/64", 6),
    "range6": ("fd00:1234::/32", 6),
}
FORGED_PORTS = "1,11,15,79,111,119,143,540,635"


def setup_v6(net):
    C.sh(f"ip -n {net.t} addr add {T6}/64 dev {net.vt} nodad; "
         f"ip -n {net.s} addr add {S6}/64 dev {net.vs} nodad")
    for a in REAL4:
        C.sh(f"ip -n {net.s} addr add {a}/24 dev {net.vs}")
    for a in REAL6:
        C.sh(f"ip -n {net.s} addr add {a}/64 dev {net.vs} nodad")
    # Resolve the neighbours before the flood, so no resolution races it.
    C.sh(f"ip netns exec {net.s} ping -c1 -W2 {C.T4} >/dev/null; "
         f"ip netns exec {net.s} ping -6 -c1 -W2 {T6} >/dev/null", check=False)


def rx(net):
    return int(C.sh(f"ip netns exec {net.t} cat /sys/class/net/{net.vt}/statistics/rx_packets").stdout)


def raw_drops(net):
    """Sum of the drops column of the target namespace's raw sockets (1.2 reads with them)."""
    n = 0
    for f in ["raw", "raw6"]:
        out = C.sh(f"ip netns exec {net.t} cat /proc/net/{f}", check=False).stdout.splitlines()
        for l in out[1:]:
            n += int(l.split()[-1])
    return n


def peak_rss_kb(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmHWM:"):
            return int(l.split()[1])
    return 0


def ours_path(ours_bin, d):
    r = C.sh(f"{ours_bin} status --json -c {d.dir}/portsentry.conf --pidfile {d.dir}/pid", check=False)
    try:
        return json.loads(r.stdout).get("path", {})
    except ValueError:
        return {}


def one(net, kind, shape, secs, rate, ours_bin, ref, forge):
    src, fam = SHAPES[shape]
    target = C.T4 if fam == 4 else T6
    reals = REAL4 if fam == 4 else REAL6
    d = C.Daemon(net, "ref" if kind == "1.2" else "ours", "stcp", ours_bin, ref)
    if not d.ready:
        d.stop()
        raise SystemExit(f"{kind} did not start")
    rx0, drops0, c0, ch0 = rx(net), raw_drops(net), C.cpu(d.pid), C.children_s(d.pid)
    t0 = time.time()
    flood = subprocess.Popen(["ip", "netns", "exec", net.s, forge, "--sources", src, "--target", target,
                              "--ports", FORGED_PORTS, "--secs", str(secs), "--rate", str(rate)],
                             stdout=subprocess.PIPE, text=True)
    started, scans, dumps = {}, [], {}
    for a, at in zip(reals, [0.2, 0.45, 0.7]):
        while time.time() - t0 < at * secs:
            time.sleep(0.01)
        # The scanner's first probe of a watched port as the target's veth received it
        # (tcpdump's stamp): the first packet the daemon can report it for.
        dumps[a] = subprocess.Popen(
            ["ip", "netns", "exec", net.t, "timeout", str(int(secs) + 20), "tcpdump", "-i", net.vt,
             "-n", "-tt", "-c", "1", "--immediate-mode", "-l",
             f"src host {a} and tcp and (" + " or ".join(f"dst port {p}" for p in C.PORTS) + ")"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        dumps[a].stderr.readline()  # "listening on ...": capturing (or EOF: it failed)
        started[a] = time.time()
        scans.append(subprocess.Popen(
            ["ip", "netns", "exec", net.s, "nmap", "-n", "-Pn", "-sS", "-e", net.vs, "-S", a]
            + (["-6"] if fam == 6 else []) +
            ["--top-ports", "1000", "-T4", "--max-retries", "1", "--host-timeout", f"{secs}s", target],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    out, _ = flood.communicate(timeout=secs + 30)
    busy = time.time() - t0
    c1, ch1 = C.cpu(d.pid), C.children_s(d.pid)
    for s in scans:
        s.wait(timeout=secs + 30)
    first = {}
    for a, p in dumps.items():
        try:
            out_d, _ = p.communicate(timeout=secs + 30)
            first[a] = float(out_d.split()[0])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            p.kill()
    # Wait (bounded) for each real scanner's report and block.
    deadline = time.time() + 10
    while time.time() < deadline:
        b = d.blocks()
        if all(a in b for a in reals) and all(
                any(f" {a}/{a} " in l for _, l in d.log.lines) for a in reals):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    rx1, drops1 = rx(net), raw_drops(net)
    path = ours_path(ours_bin, d) if kind == "ours" else {}
    b = d.blocks()
    reported, first_report = set(), {}
    for t, l in list(d.log.lines):
        if "scan from host: " in l:
            who = l.split("scan from host: ", 1)[1].split("/", 1)[0]
            reported.add(who)
            first_report.setdefault(who, t)
    r = {
        "sent": out.strip(), "rx": rx1 - rx0,
        "lost": (path.get("capture") or {}).get("ring_drops") if kind == "ours" else drops1 - drops0,
        "cpu": c1 - c0, "cmd_cpu": ch1 - ch0, "busy": busy, "rss": peak_rss_kb(d.pid),
        "real": [(a, (first_report[a] - first.get(a, started[a])) * 1000 if a in first_report else None,
                  (b[a] - first.get(a, started[a])) * 1000 if a in b else None,
                  a in first) for a in reals],
        "forged_reported": len(reported - set(reals)),
        "forged_blocked": len(set(b) - set(reals)),
        "path": path,
    }
    d.stop()
    return r


def show(kind, shape, r):
    name = "Debian 1.2" if kind == "1.2" else "ours"
    print(f"-- {shape}, {name}: {r['sent']}; received by the target's veth {r['rx']}; "
          f"lost before the daemon {r['lost']}", flush=True)
    print(f"   daemon CPU {r['cpu']:.2f} s over {r['busy']:.1f} s ({r['cpu'] / r['busy'] * 100:.1f}% of a core), "
          f"its commands {r['cmd_cpu']:.2f} s; peak RSS {r['rss'] / 1024:.1f} MB")
    for a, rep, blk, seen in r["real"]:
        f = lambda v: f"{v:.1f} ms" if v is not None else "NEVER"
        since = "its first probe of a watched port reached the target" if seen else "nmap started (tcpdump saw nothing)"
        print(f"   real scanner {a}: reported {f(rep)}, blocked {f(blk)} after {since}")
    print(f"   forged sources reported {r['forged_reported']}, blocked {r['forged_blocked']}")
    for part in ["capture", "hits"]:
        if r["path"].get(part):
            print(f"   {part}: " + ", ".join(f"{k} {v}" for k, v in r["path"][part].items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--rate", type=int, default=200000)
    ap.add_argument("--shapes", default="prefix4,all4,prefix6,range6")
    ap.add_argument("--only", choices=["1.2", "ours"])
    ap.add_argument("--bin", default=f"{REPO}/target/release/portsentry")
    ap.add_argument("--forge", default=f"{REPO}/target/release/examples/forge")
    ap.add_argument("--reps", type=int, default=1)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    shapes = a.shapes.split(",")
    for s in shapes:
        if s not in SHAPES:
            raise SystemExit(f"unknown shape {s}: one of {', '.join(SHAPES)}")
    secs = min(max(a.secs, 1), 60)
    ref = C.sh(f"{REPO}/tests/fetch-reference").stdout.strip()
    for tool in ["nmap", "tcpdump", "ip", "unshare"]:
        if C.sh(f"command -v {tool}", check=False).returncode != 0:
            raise SystemExit(f"missing tool: {tool}")
    print(f"portsentry flood benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.uname().nodename}, "
          f"{os.cpu_count()} cores, kernel {os.uname().release}, load {os.getloadavg()[0]:.2f}; "
          f"{secs:g} s floods asked at {a.rate}/s", flush=True)
    res = {}
    net = C.Net()
    try:
        setup_v6(net)
        for _ in range(min(a.reps, 10)):
            for shape in shapes:
                for kind in [a.only] if a.only else ["1.2", "ours"]:
                    if kind == "1.2" and SHAPES[shape][1] == 6:
                        continue
                    r = one(net, kind, shape, secs, a.rate, a.bin, ref, a.forge)
                    show(kind, shape, r)
                    res.setdefault((shape, kind), []).append(r)
    finally:
        for d in list(C.LIVE):
            d.stop()
        net.close()
    print("\nsummary (median over runs)")
    print(f"{'shape':8} {'daemon':10} {'CPU s':>7} {'cmd s':>7} {'RSS MB':>7} {'lost':>8} "
          f"{'real reported':>14} {'real blocked':>13} {'report ms (max)':>16} {'forged rep/blk':>16}")
    for (shape, kind), rs in res.items():
        med = lambda f: statistics.median(f(r) for r in rs)
        reals = [x for r in rs for x in r["real"]]
        rep = [x[1] for x in reals if x[1] is not None]
        print(f"{shape:8} {'Debian 1.2' if kind == '1.2' else 'ours':10} {med(lambda r: r['cpu']):7.2f} "
              f"{med(lambda r: r['cmd_cpu']):7.2f} {med(lambda r: r['rss']) / 1024:7.1f} "
              f"{med(lambda r: r['lost'] or 0):8.0f} "
              f"{sum(1 for x in reals if x[1] is not None):>6}/{len(reals):<7} "
              f"{sum(1 for x in reals if x[2] is not None):>6}/{len(reals):<6} "
              f"{(max(rep) if rep else float('nan')):16.0f} "
              f"{med(lambda r: r['forged_reported']):>7.0f}/{med(lambda r: r['forged_blocked']):<8.0f}")


if __name__ == "__main__":
    main()
