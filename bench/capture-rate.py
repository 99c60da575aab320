#!/usr/bin/python3
"""Capture-rate benchmark of issue 23, item 3 (prints figures; not a timed test): at which
packet rate does the capture ring start to drop, for the daemon and for the least a reader
of the same ring and filter can do (examples/ring_drain.rs: it only counts)?

Run as root from the repository (builds what it needs):

  bench/capture-rate.py                      # rates 25k, 50k, 100k, 150k, 200k, max; 5 s each
  bench/capture-rate.py --rates 100000,0 --secs 10     (0: as fast as the sender goes)

For each rate and each reader, in a fresh pair of namespaces (bench/compare-1.2.py's Net): the
reader starts in the target namespace, then examples/forge.rs sends forged TCP SYNs from all
of IPv4 to the watched ports of Debian's TCP_PORTS for the given time, paced to the rate. The
daemon runs `-stcp` as in bench/flood.py (BLOCK_TCP="1", a KILL_ROUTE command per block,
Debian's TCP_PORTS). Printed: the rate the sender reached, packets received by the target's
veth, read by the reader, dropped in its ring (the kernel's PACKET_STATISTICS; the daemon's
from `portsentry status`), and the reader's CPU time. Every loop is bounded in count and time.
"""
import argparse, importlib.util, json, os, subprocess, sys, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("compare", f"{REPO}/bench/compare-1.2.py")
C = importlib.util.module_from_spec(spec)
spec.loader.exec_module(C)
PORTS = ",".join(map(str, C.PORTS))
FORGED = "1,11,15,79,111,119,143,540,635"


def rx(net):
    return int(C.sh(f"ip netns exec {net.t} cat /sys/class/net/{net.vt}/statistics/rx_packets").stdout)


def flood(net, forge, rate, secs):
    cmd = ["ip", "netns", "exec", net.s, forge, "--sources", "all-v4", "--target", C.T4,
           "--ports", FORGED, "--secs", str(secs)] + (["--rate", str(rate)] if rate else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 30).stdout.strip()


def minimal(net, drain, forge, rate, secs):
    p = subprocess.Popen(["ip", "netns", "exec", net.t, drain, "--ports", PORTS,
                          "--secs", str(secs + 2)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    r0 = rx(net)
    sent = flood(net, forge, rate, secs)
    out, _ = p.communicate(timeout=secs + 30)
    w = out.split()
    # "read N packets (B bytes), ring saw P, dropped D"
    return {"sent": sent, "rx": rx(net) - r0, "read": int(w[1]), "dropped": int(w[-1]), "cpu": None}


def daemon(net, ours, forge, rate, secs):
    d = C.Daemon(net, "ours", "stcp", ours, None)
    try:
        r0, c0 = rx(net), C.cpu(d.pid)
        sent = flood(net, forge, rate, secs)
        time.sleep(0.5)
        c1 = C.cpu(d.pid)
        st = json.loads(C.sh(f"{ours} status --json -c {d.dir}/portsentry.conf --pidfile {d.dir}/pid").stdout)
        cap = st["path"]["capture"]
        return {"sent": sent, "rx": rx(net) - r0, "read": cap["parsed"], "dropped": cap["ring_drops"],
                "cpu": c1 - c0}
    finally:
        d.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="25000,50000,100000,150000,200000,0")
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--bin", default=f"{REPO}/target/release/portsentry")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    C.sh(f"cd {REPO} && cargo build --release --quiet --bin portsentry --example forge --example ring_drain")
    forge, drain = f"{REPO}/target/release/examples/forge", f"{REPO}/target/release/examples/ring_drain"
    secs = min(max(a.secs, 1), 30)
    print(f"capture-rate benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.uname().nodename}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {secs:g} s per step", flush=True)
    print(f"{'asked/s':>8} {'reader':8} {'sender reached':>30} {'veth rx':>9} {'read':>9} {'dropped':>9} {'lost %':>7} {'CPU s':>6}")
    for rate in [int(x) for x in a.rates.split(",")][:12]:
        for name, fn in [("minimal", lambda n: minimal(n, drain, forge, rate, secs)),
                         ("daemon", lambda n: daemon(n, a.bin, forge, rate, secs))]:
            net = C.Net()
            try:
                r = fn(net)
            finally:
                for d in list(C.LIVE):
                    d.stop()
                net.close()
            reached = r["sent"].split("(")[1].split(",")[0] if "(" in r["sent"] else r["sent"]
            lost = 100 * r["dropped"] / max(1, r["read"] + r["dropped"])
            cpu = f"{r['cpu']:.2f}" if r["cpu"] is not None else "-"
            print(f"{rate or 'max':>8} {name:8} {reached:>30} {r['rx']:>9} {r['read']:>9} {r['dropped']:>9} "
                  f"{lost:6.2f}% {cpu:>6}", flush=True)


if __name__ == "__main__":
    main()
