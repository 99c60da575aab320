#!/usr/bin/python3
"""Side-by-side benchmark: this portsentry against Debian's portsentry 1.2, same probes,
same run, on a veth between two test-made network namespaces.

Run as root from the repository: `bench/compare-1.2.py` (builds the release binary, fetches
and unpacks Debian's package with tests/fetch-reference; 1.2 is never installed: it runs
inside the target namespace with a private /etc and /dev made with unshare -m).

Scenarios (every loop is bounded in count and time; all addresses live in our namespaces:
198.51.100.0/24 and the benchmarking range 198.18.0.0/15 are assigned to the scanner):
  A  10 s SYN flood (hping3 --flood) at an unmonitored port; 5 real probes from other
     addresses mid-flood. Detected, probe-to-KILL_ROUTE latency, daemon CPU.
  B  10 s SYN flood sweeping all destination ports from forged sources in 198.18.0.0/16;
     5 real probes mid-flood. Same figures, plus how many blocks ran.
  C  idle: 20 probes from distinct sources, probe packet to KILL_ROUTE command start.
  D  -atcp start-up: ours with ADVANCED_PORTS_TCP=65535, 1.2 with 1024; time to "now active"
     and idle RSS.
"""
import argparse, ctypes, os, random, socket, statistics, struct, subprocess, sys, tempfile
import threading, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000
CLK_TCK = os.sysconf("SC_CLK_TCK")
T4, S4 = "198.51.100.1", "198.51.100.2"
PORTS = [1, 11, 15, 79, 111, 119, 143, 540, 635, 1080, 1524, 2000, 5742, 6667, 12345,
         12346, 20034, 27665, 31337, 32771, 32772, 32773, 32774, 40421, 49724, 54320]


def sh(cmd, check=True):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"command failed: {cmd}\n{r.stdout}{r.stderr}")
    return r


class Net:
    def __init__(self):
        i = os.getpid() % 100000
        self.t, self.s = f"pbt{i}", f"pbs{i}"
        self.vt, self.vs = f"bt{i}", f"bs{i}"
        sh(f"ip netns add {self.t}; ip netns add {self.s}")
        sh(f"ip link add {self.vt} netns {self.t} type veth peer name {self.vs} netns {self.s}")
        b = [f"ip -n {self.t} link set lo up", f"ip -n {self.s} link set lo up",
             f"ip -n {self.t} addr add {T4}/24 dev {self.vt}",
             f"ip -n {self.s} addr add {S4}/24 dev {self.vs}",
             f"ip -n {self.s} addr add 198.18.0.1/15 dev {self.vs}",
             f"ip -n {self.t} link set {self.vt} up", f"ip -n {self.s} link set {self.vs} up",
             f"ip -n {self.t} route add 198.18.0.0/15 dev {self.vt}"]
        try:
            for c in b:
                sh(c)
        except BaseException:
            self.close()
            raise

    def close(self):
        sh(f"ip netns del {self.t}; ip netns del {self.s}", check=False)

    def pids(self):
        return [int(p) for p in sh(f"ip netns pids {self.t}", check=False).stdout.split()]


def in_netns(name, fn):
    """Run fn() on a thread that entered network namespace `name`."""
    out = {}

    def body():
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        os.close(fd)
        out["r"] = fn()
    th = threading.Thread(target=body)
    th.start()
    th.join()
    return out.get("r")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data)//2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn(src, dst, sport, dport, flags=0x02):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, flags, 1024, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def raw_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return s


class Syslog:
    def __init__(self, path):
        self.path, self.lines = path, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                d = self.sock.recv(8192).decode(errors="replace")
            except OSError:
                return
            i = d.find("]: ")
            self.lines.append((time.time(), d[i + 3:] if i >= 0 else d))

    def wait(self, text, timeout=30):
        t0 = time.time()
        while time.time() - t0 < timeout:
            for t, l in list(self.lines):
                if text in l:
                    return t
            time.sleep(0.005)
        return None


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def rss_kb(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
    return 0


class Daemon:
    """One daemon (ours or 1.2) in the target namespace, with its own state directory."""

    def __init__(self, net, kind, mode, ours_bin, ref_root, extra=""):
        self.net, self.kind = net, kind
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
        d = self.dir
        # KILL_ROUTE writes the target into a FIFO with a shell builtin (no fork after the
        # shell starts); a reader thread here stamps each line when it arrives, so both
        # daemons are measured from probe packet to command start the same way.
        self.actions = f"{d}/actions"
        os.mkfifo(self.actions)
        self.stamps = {}
        threading.Thread(target=self.read_actions, daemon=True).start()
        conf = (f'TCP_PORTS="{",".join(map(str, PORTS))}"\nUDP_PORTS="1,7,9"\n'
                f'IGNORE_FILE="{d}/ignore"\nHISTORY_FILE="{d}/history"\nBLOCKED_FILE="{d}/blocked"\n'
                f'BLOCK_TCP="1"\nBLOCK_UDP="1"\nSCAN_TRIGGER="0"\nRESOLVE_HOST="0"\n'
                f'KILL_ROUTE="echo $TARGET$ > {self.actions}"\n{extra}\n')
        open(f"{d}/ignore", "w").write("127.0.0.1/32\n0.0.0.0\n")
        if kind == "ours":
            open(f"{d}/portsentry.conf", "w").write(conf + f'HOSTS_DENY_FILE="{d}/hosts.deny"\n')
            self.log = Syslog(f"{d}/log.sock")
            self.t_start = time.time()
            r = sh(f"ip netns exec {net.t} {ours_bin} -{mode} -c {d}/portsentry.conf "
                   f"--pidfile {d}/pid --syslog-socket {d}/log.sock", check=False)
            if r.returncode != 0:
                raise SystemExit(f"our daemon failed to start: {r.stderr}")
            self.pid = int(open(f"{d}/pid").read())
        else:
            etc, dev = f"{d}/etc", f"{d}/dev"
            os.makedirs(f"{etc}/portsentry")
            os.makedirs(dev)
            for f in ["passwd", "group", "nsswitch.conf", "hosts", "localtime", "ld.so.cache"]:
                if os.path.exists(f"/etc/{f}"):
                    sh(f"cp -L /etc/{f} {etc}/")
            open(f"{etc}/portsentry/portsentry.conf", "w").write(conf)
            for n, mj, mn in [("null", 1, 3), ("zero", 1, 5), ("random", 1, 8), ("urandom", 1, 9)]:
                sh(f"mknod -m 666 {dev}/{n} c {mj} {mn}")
            self.log = Syslog(f"{dev}/log")
            before = set(net.pids())
            self.t_start = time.time()
            sh(f"ip netns exec {net.t} unshare -m --propagation private sh -c "
               f"'mount --bind {etc} /etc && mount --bind {dev} /dev && "
               f"exec {ref_root}/usr/sbin/portsentry -{mode}'")
            exe = os.path.realpath(f"{ref_root}/usr/sbin/portsentry")
            self.pid = None
            t0 = time.time()
            while self.pid is None and time.time() - t0 < 5:
                for p in set(net.pids()) - before:
                    try:
                        if os.path.realpath(f"/proc/{p}/exe") == exe:
                            self.pid = p
                    except OSError:
                        pass
                time.sleep(0.01)
            if self.pid is None:
                raise SystemExit("1.2 did not start")
        self.ready = self.log.wait("PortSentry is now active and listening")

    def stop(self):
        try:
            os.kill(self.pid, 15)
        except ProcessLookupError:
            pass
        t0 = time.time()
        while os.path.exists(f"/proc/{self.pid}") and time.time() - t0 < 5:
            try:
                if open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.02)

    def read_actions(self):
        # O_RDWR: the FIFO never reports EOF between writers.
        f = os.fdopen(os.open(self.actions, os.O_RDWR), "r")
        for line in f:
            t = time.time()
            self.stamps.setdefault(line.strip(), t)

    def blocks(self):
        return dict(self.stamps)


def probes_during(net, sources, at, port=1):
    """Send one SYN from each source at the given offsets (s) from now; return send times."""
    sent = {}

    def body():
        s = raw_socket()
        t0 = time.time()
        for src, off in zip(sources, at):
            while time.time() - t0 < off:
                time.sleep(0.001)
            pkt = syn(src, T4, random.randint(20000, 60000), port)
            sent[src] = time.time()
            s.sendto(pkt, (T4, 0))
    th = threading.Thread(target=in_netns, args=(net.s, body))
    th.start()
    return th, sent


def forged_sweep(net, seconds, stop_at):
    """SYNs from random sources in 198.18.0.0/16 to random ports, for `seconds` (bounded)."""
    count = [0]

    def body():
        s = raw_socket()
        t_end = time.time() + seconds
        n = 0
        while time.time() < t_end and n < stop_at:
            src = f"198.18.{random.randint(1, 254)}.{random.randint(1, 254)}"
            s.sendto(syn(src, T4, random.randint(1024, 65535), random.randint(1, 65535)), (T4, 0))
            n += 1
        count[0] = n
    th = threading.Thread(target=in_netns, args=(net.s, body))
    th.start()
    return th, count


def scenario_flood(net, d, kind):
    real = [f"198.51.100.{20 + i}" for i in range(5)]
    c0, t0 = cpu(d.pid), time.time()
    if kind == "A":
        flood = subprocess.Popen(["ip", "netns", "exec", net.s, "timeout", "10", "hping3", "--flood",
                                  "-q", "-S", "-p", "9999", T4], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        count = None
    else:
        flood, count = forged_sweep(net, 10, 5_000_000)
    th, sent = probes_during(net, real, [2, 3.5, 5, 6.5, 8])
    th.join()
    if kind == "A":
        flood.wait(timeout=20)
    else:
        flood.join()
    busy = time.time() - t0
    c1 = cpu(d.pid)
    time.sleep(1.5)
    b = d.blocks()
    lat = [(b[s] - sent[s]) * 1000 for s in real if s in b]
    return {"detected": sum(1 for s in real if s in b), "lat": lat,
            "cpu": (c1 - c0) / busy * 100, "blocks": len(b), "sent": count[0] if count else None}


def scenario_idle(net, d, n=20):
    """Probe to KILL_ROUTE start, and probe to the detection line reaching syslog."""
    srcs = [f"198.51.100.{100 + i}" for i in range(n)]
    th, sent = probes_during(net, srcs, [0.2 * i for i in range(n)])
    th.join()
    time.sleep(1)
    b = d.blocks()
    logged = {}
    for t, l in d.log.lines:
        for s in srcs:
            if f"/{s} to TCP port" in l and s not in logged:
                logged[s] = t
    return ([(b[s] - sent[s]) * 1000 for s in srcs if s in b],
            [(logged[s] - sent[s]) * 1000 for s in srcs if s in logged])


def fmt_lat(l):
    if not l:
        return "-"
    return f"median {statistics.median(l):.2f} / max {max(l):.2f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--only", choices=["1.2", "ours"], help="run one side only")
    ap.add_argument("--idle-only", action="store_true", help="run scenario C only")
    ap.add_argument("--start-only", type=int, metavar="N",
                    help="run scenario D only, N times per daemon, alternating")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not a.skip_build:
        sh(f"cd {REPO} && cargo build --release --quiet")
    ours = f"{REPO}/target/release/portsentry"
    ref = sh(f"{REPO}/tests/fetch-reference").stdout.strip()
    for tool in ["hping3", "ip", "unshare"]:
        if sh(f"command -v {tool}", check=False).returncode != 0:
            raise SystemExit(f"missing tool: {tool}")
    net = Net()
    rows = []
    try:
        res = {}
        if a.start_only:
            starts = {"1.2": [], "ours": []}
            for _ in range(min(a.start_only, 50)):
                for kind in [a.only] if a.only else ["1.2", "ours"]:
                    extra = ('ADVANCED_PORTS_TCP="65535"' if kind == "ours"
                             else 'ADVANCED_PORTS_TCP="1024"')
                    d = Daemon(net, "ref" if kind == "1.2" else "ours", "atcp", ours, ref, extra)
                    if d.ready:
                        starts[kind].append((d.ready - d.t_start) * 1000)
                    d.stop()
            for k, v in starts.items():
                if v:
                    print(f"{k:5} -atcp start to 'now active' ({'65535' if k == 'ours' else '1024'} ports), "
                          f"{len(v)} starts: median {statistics.median(v):.1f} / min {min(v):.1f} / max {max(v):.1f} ms")
            return
        for kind in [a.only] if a.only else ["1.2", "ours"]:
            r = res.setdefault(kind, {})
            if a.idle_only:
                d = Daemon(net, "ref" if kind == "1.2" else "ours", "stcp", ours, ref)
                r["C"] = scenario_idle(net, d)
                d.stop()
                continue
            d = Daemon(net, "ref" if kind == "1.2" else "ours", "stcp", ours, ref)
            r["A"] = scenario_flood(net, d, "A")
            r["idle_rss"] = rss_kb(d.pid)
            d.stop()
            d = Daemon(net, "ref" if kind == "1.2" else "ours", "stcp", ours, ref)
            r["B"] = scenario_flood(net, d, "B")
            d.stop()
            d = Daemon(net, "ref" if kind == "1.2" else "ours", "stcp", ours, ref)
            r["C"] = scenario_idle(net, d)
            d.stop()
            extra = 'ADVANCED_PORTS_TCP="65535"' if kind == "ours" else 'ADVANCED_PORTS_TCP="1024"'
            d = Daemon(net, "ref" if kind == "1.2" else "ours", "atcp", ours, ref, extra)
            r["D_start"] = (d.ready - d.t_start) * 1000 if d.ready else None
            time.sleep(2)
            r["D_rss"] = rss_kb(d.pid)
            if kind == "ours":
                r["drops"] = [l for _, l in d.log.lines if "drop" in l.lower()]
            d.stop()
    finally:
        net.close()
    print(f"\nportsentry benchmark, {time.strftime('%Y-%m-%d')}, {os.uname().nodename}, "
          f"{os.cpu_count()} cores, kernel {os.uname().release}")
    kinds = [k for k in ["1.2", "ours"] if k in res]
    if a.idle_only:
        for k in kinds:
            print(f"{k:5} probe -> syslog {fmt_lat(res[k]['C'][1])}; probe -> KILL_ROUTE {fmt_lat(res[k]['C'][0])}")
        return
    print(f"{'':44}" + "".join(f" {'Debian 1.2' if k == '1.2' else 'ours':>34}" for k in kinds))

    def row(label, f):
        print(f"{label:44}" + "".join(f" {f(res[k]):>34}" for k in kinds))
    row("A flood: real probes detected", lambda r: f"{r['A']['detected']}/5")
    row("A flood: probe -> KILL_ROUTE", lambda r: fmt_lat(r['A']['lat']))
    row("A flood: daemon CPU (% of one core)", lambda r: f"{r['A']['cpu']:.1f}%")
    row("B forged sweep: real probes detected", lambda r: f"{r['B']['detected']}/5")
    row("B forged sweep: probe -> KILL_ROUTE", lambda r: fmt_lat(r['B']['lat']))
    row("B forged sweep: daemon CPU", lambda r: f"{r['B']['cpu']:.1f}%")
    row("B forged sweep: blocks run / packets sent", lambda r: f"{r['B']['blocks']} / {r['B']['sent']}")
    row("B: each real probe's block ran after (ms)", lambda r: " ".join(f"{x:.1f}" for x in r['B']['lat']))
    row("C idle: probe -> detection in syslog", lambda r: fmt_lat(r['C'][1]))
    row("C idle: probe -> KILL_ROUTE (20 probes)", lambda r: fmt_lat(r['C'][0]))
    row("C idle: detected", lambda r: f"{len(r['C'][0])}/20")
    row("D -atcp start to 'now active' (65535 vs 1024)", lambda r: f"{r['D_start']:.0f} ms" if r['D_start'] is not None else "-")
    row("D -atcp idle RSS", lambda r: f"{r['D_rss'] / 1024:.1f} MB")
    row("-stcp RSS after flood A", lambda r: f"{r['idle_rss'] / 1024:.1f} MB")
    if "ours" in res:
        print("ring drop reports (ours):", res["ours"].get("drops") or "none")


if __name__ == "__main__":
    main()
