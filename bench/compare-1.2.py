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
  E  -atcp with Debian's defaults (ADVANCED_PORTS_TCP=1024, ADVANCED_EXCLUDE_TCP=113,139),
     BLOCK_TCP=1 and a KILL_ROUTE script (a file run by /bin/sh: it stamps its start; with
     --route-script ip it then adds a blackhole route as the shipped KILL_ROUTE does, one
     more exec): a 10 s SYN sweep of every destination port from the
     16,384 forged sources of 198.18.64.0/18 at 150,000 packets/s (bench/probe.py sweep;
     packet i from source i mod 16384 to port i mod 65536, so the ~1,022 sources that hit
     a watched port are blocked in the first 0.44 s and hit again every 0.44 s), and 10
     real probes from other addresses (0.25 s to 8 s in). Packets sent and received on
     the veth, daemon CPU and its commands' CPU, hosts blocked, each real probe's time to
     its KILL_ROUTE start, CPU per packet, per hit (steady state) and per block.

  F  E's sweep sent as fragments, as nmap -f sends a SYN (bench/frags.py fragsweep: three
     fragments of 8, 8 and 4 bytes of TCP per SYN, 150,000 fragments/s, 10 s, from the same
     16,384 forged sources), with 10 real probes sent the same way: 1.2 sees the SYNs after
     the kernel reassembled them, ours reassembles them itself (issue 18). Same figures as
     E, plus the daemon's peak RSS and, for ours, its reassembly counters.
  G  Lone fragments that never complete (bench/frags.py fragflood: 100,000/s for 10 s, a
     first fragment or a later one, each datagram from its own forged source of
     198.18.0.0/15), with 10 real probes sent as fragmented SYNs: the kernel's own
     reassembly memory (4 MiB per namespace) is full within milliseconds and then refuses
     every fragment, the real ones too; 1.2 only sees what the kernel reassembles.
     Printed: the real probes caught, daemon CPU and peak RSS, the kernel's fragment memory
     (/proc/net/sockstat) and, for ours, its reassembly cache's peak (at most 4 MiB).

The KILL_ROUTE stamps are taken by a process of their own (bench/probe.py stamp), and E's
senders are processes of their own, so neither waits for Python's GIL behind a thread here.
`--sweep-only N` runs E alone, N times per daemon (alternating); `--frag-only N` runs F and G
alone, N times per daemon (alternating); `--attach CMD` runs a profiler on the daemon during
E; `--bin PATH` runs another build of ours.
"""
import argparse, atexit, ctypes, os, random, shutil, socket, statistics, struct, subprocess, sys
import tempfile, threading, time

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


LIVE = []  # daemons started and not stopped yet: stopped on the way out, whatever happens
# Each daemon's directory (config, logs, FIFO, stamps) is read until the end of the run, then
# removed when the process exits; BENCH_KEEP=1 keeps them for a look afterwards.
DIRS = []


@atexit.register
def _remove_dirs():
    if os.environ.get("BENCH_KEEP") == "1":
        if DIRS:
            print(f"bench: kept {len(DIRS)} daemon directories (BENCH_KEEP=1), e.g. {DIRS[0]}")
        return
    for d in DIRS:
        shutil.rmtree(d, ignore_errors=True)



class Daemon:
    """One daemon (ours or 1.2) in the target namespace, with its own state directory."""

    def __init__(self, net, kind, mode, ours_bin, ref_root, extra="", route_script=None, block=1,
                 commands=True):
        self.net, self.kind, self.bin = net, kind, ours_bin
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
        DIRS.append(self.dir)
        d = self.dir
        # KILL_ROUTE writes the target into a FIFO with a shell builtin (no fork after the
        # shell starts); a process of its own stamps each line when it arrives, so both
        # daemons are measured from probe packet to command start the same way.
        self.actions = f"{d}/actions"
        os.mkfifo(self.actions)
        self.stamp_file = f"{d}/stamps"
        self.stamper = subprocess.Popen([sys.executable, f"{REPO}/bench/probe.py", "stamp",
                                         self.actions, self.stamp_file, "600"])
        # Held open (never read) until this script exits, so a command that opens the FIFO
        # after the stamper has gone never blocks.
        self.fifo_keep = os.open(self.actions, os.O_RDWR | os.O_NONBLOCK)
        self.pid = None
        LIVE.append(self)
        kill_route = f"echo $TARGET$ > {self.actions}"
        if route_script:
            # A script file run by the shell: it stamps its start; with "ip" it then does
            # what the shipped KILL_ROUTE does (one more exec).
            script = f"{d}/kill-route"
            then = 'exec /sbin/ip route add blackhole "$1"\n' if route_script == "ip" else ""
            open(script, "w").write(f'#!/bin/sh\necho "$1" > {self.actions}\n{then}')
            os.chmod(script, 0o755)
            kill_route = f"{script} $TARGET$"
        conf = (f'TCP_PORTS="{",".join(map(str, PORTS))}"\nUDP_PORTS="1,7,9"\n'
                f'IGNORE_FILE="{d}/ignore"\nHISTORY_FILE="{d}/history"\nBLOCKED_FILE="{d}/blocked"\n'
                f'BLOCK_TCP="{block}"\nBLOCK_UDP="{block}"\nSCAN_TRIGGER="0"\nRESOLVE_HOST="0"\n'
                f'KILL_ROUTE="{kill_route if commands else ""}"\n{extra}\n')
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
        if self in LIVE:
            LIVE.remove(self)
        self.stamper.terminate()
        self.stamper.wait(timeout=5)
        if self.pid is None:
            return
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

    def blocks(self):
        """Each KILL_ROUTE target with the time its first command started."""
        out = {}
        try:
            for line in open(self.stamp_file):
                t, _, who = line.rstrip("\n").partition(" ")
                out.setdefault(who, float(t))
        except FileNotFoundError:
            pass
        return out


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


# Scenario E: -atcp with Debian's defaults under a forged sweep of every port.
SWEEP_BASE, SWEEP_NET, SWEEP_SRCS = "198.18.64.0", "198.18.64.0/18", 16384
SWEEP_RATE, SWEEP_SECS = 150_000, 10
REAL_AT = [0.25, 0.5, 0.75, 1.0, 1.5, 2, 3.5, 5, 6.5, 8]
ATCP_DEFAULTS = 'ADVANCED_PORTS_TCP="1024"\nADVANCED_EXCLUDE_TCP="113,139"'
WATCHED = [p for p in range(1024) if p not in (113, 139)]
PROBE_PY = f"{REPO}/bench/probe.py"


def cpu_ns(pid):
    """CPU time of a process (all its threads), in ns."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except OSError:
            pass
    return total


def children_s(pid):
    """CPU time of a process's reaped children (the commands it ran), in s."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[13]) + int(f[14])) / CLK_TCK


def rx_packets(net):
    import json
    j = json.loads(sh(f"ip -n {net.t} -j -s link show dev {net.vt}").stdout)
    return j[0]["stats64"]["rx"]["packets"]


def sweep_hits(n):
    """Packets among the first n of the sweep that go to a watched port."""
    full, part = divmod(n, 65536)
    return sum(full + (1 if p < part else 0) for p in WATCHED)


def scenario_sweep(net, d, attach=None):
    import ipaddress
    forged_net = ipaddress.ip_network(SWEEP_NET)
    sh(f"ip -n {net.t} route flush type blackhole", check=False)
    rx0 = rx_packets(net)
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            try:
                samples.append((time.time(), cpu_ns(d.pid), children_s(d.pid)))
            except (OSError, IndexError):
                return
            time.sleep(0.02)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    prof = (subprocess.Popen(attach.format(pid=d.pid), shell=True, start_new_session=True)
            if attach else None)
    start = time.time() + 1.5  # both senders are started and ready by then
    real = [f"198.51.100.{20 + i}" for i in range(len(REAL_AT))]
    ns = ["ip", "netns", "exec", net.s, sys.executable, PROBE_PY]
    sweep = subprocess.Popen(ns + ["sweep", SWEEP_BASE, str(SWEEP_SRCS), T4, str(SWEEP_RATE),
                                   str(SWEEP_SECS), f"{start:.6f}"], stdout=subprocess.PIPE, text=True)
    probes = subprocess.Popen(ns + ["syns", T4, "1", f"{start:.6f}"]
                              + [f"{a}@{o}" for a, o in zip(real, REAL_AT)],
                              stdout=subprocess.PIPE, text=True)
    out_sweep = sweep.communicate(timeout=SWEEP_SECS + 30)[0].split()
    out_probes = probes.communicate(timeout=30)[0]
    time.sleep(2)  # the last commands end and are reaped
    if prof:
        os.killpg(prof.pid, 2)
        prof.wait(timeout=60)
    stop.set()
    th.join()
    rx = rx_packets(net) - rx0
    sent, secs = int(out_sweep[1]), float(out_sweep[3])
    end = start + secs
    sent_at = {a: float(t) for a, t in (l.split() for l in out_probes.splitlines())}
    b = d.blocks()
    forged = sorted(t for a, t in b.items() if ipaddress.ip_address(a) in forged_net)
    lat = [(b[a] - sent_at[a]) * 1000 if a in b and a in sent_at else None for a in real]
    logged = {}
    for t, line in list(d.log.lines):
        for a in real:
            if f"/{a} to TCP port" in line and a not in logged:
                logged[a] = t
    seen = [(logged[a] - sent_at[a]) * 1000 if a in logged and a in sent_at else None
            for a in real]

    def at(t):
        """The sample nearest to time t."""
        return min(samples, key=lambda x: abs(x[0] - t))
    c0, c1 = at(start), at(end)
    rate = sent / secs if secs else 0
    hits = sweep_hits(sent)
    own = (c1[1] - c0[1]) / 1e9
    r = {"sent": sent, "secs": secs, "rx": rx, "hits": hits, "cpu": own / secs * 100,
         "cpu_s": own, "children_s": samples[-1][2] - c0[2], "blocks": len(b),
         "forged_blocks": len(forged), "lat": lat, "seen": seen,
         "routes": len(sh(f"ip -n {net.t} route show type blackhole").stdout.splitlines()),
         "per_hit": None, "per_block": None, "blocks_done": None}
    if forged:
        # Blocks of the forged sources come in the first sweep (0.44 s at 150,000/s) or as
        # fast as the daemon runs them; after the last one (and the reaping of its command)
        # every hit is a repeat from a blocked host: that is the steady state.
        t_lb = forged[-1] + 0.1
        r["blocks_done"] = t_lb - 0.1 - start
        if end - t_lb > 1.0:
            s0, s1 = at(t_lb + 0.2), at(end - 0.1)
            steady_hits = rate * (s1[0] - s0[0]) * len(WATCHED) / 65536
            per_hit = (s1[1] - s0[1]) / 1e3 / steady_hits
            b1 = at(t_lb)
            burst_hits = rate * (b1[0] - c0[0]) * len(WATCHED) / 65536
            r["per_hit"] = per_hit
            r["per_block"] = ((b1[1] - c0[1]) / 1e3 - per_hit * burst_hits) / len(forged)
    r["children_per_block"] = r["children_s"] * 1e6 / len(b) if b else None
    return r


def fmt_sweep(r):
    lat = [x for x in r["lat"] if x is not None]
    return [
        ("E: packets sent / received on the veth",
         f"{r['sent']:,} in {r['secs']:.1f} s / {r['rx']:,}"),
        ("E: of them to watched ports", f"{r['hits']:,} ({r['hits'] / r['secs']:,.0f}/s)"),
        ("E: daemon CPU (% of one core)", f"{r['cpu']:.1f}% ({r['cpu_s']:.2f} s)"),
        ("E: its commands' CPU (reaped children)", f"{r['children_s']:.2f} s"),
        ("E: hosts blocked (forged)", f"{r['blocks']} ({r['forged_blocks']})"
         + (f", {r['routes']} routes" if r['routes'] else "")),
        ("E: forged blocks done after", f"{r['blocks_done']:.2f} s" if r['blocks_done'] is not None else "-"),
        ("E: real probes -> KILL_ROUTE", f"{len(lat)}/{len(r['lat'])}, {fmt_lat(lat)}"),
        ("E: each real probe (ms; - = never)",
         " ".join("-" if x is None else f"{x:.0f}" for x in r["lat"])),
        ("E: each real probe's detection line (ms)",
         " ".join("-" if x is None else f"{x:.0f}" for x in r["seen"])),
        ("E: CPU per watched-port packet (all)", f"{r['cpu_s'] * 1e6 / r['hits']:.1f} us"),
        ("E: CPU per packet on the veth", f"{r['cpu_s'] * 1e6 / r['rx']:.2f} us"),
        ("E: per hit, steady state (blocked hosts)",
         f"{r['per_hit']:.1f} us" if r['per_hit'] is not None else "-"),
        ("E: per block: daemon / its commands",
         (f"{r['per_block']:.0f} us" if r['per_block'] is not None else "-") + " / "
         + (f"{r['children_per_block']:.0f} us" if r['children_per_block'] is not None else "-")),
    ]


FRAGS_PY = f"{REPO}/bench/frags.py"


def vm_hwm_kb(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmHWM:"):
            return int(l.split()[1])
    return 0


def kernel_frag_mem(net):
    """The kernel's IPv4 reassembly memory in the target namespace, bytes (sockstat FRAG)."""
    out = sh(f"ip netns exec {net.t} cat /proc/net/sockstat", check=False).stdout
    for l in out.splitlines():
        if l.startswith("FRAG:"):
            f = l.split()
            return int(f[f.index("memory") + 1])
    return 0


def ours_counters(d):
    import json
    r = sh(f"{d.bin} status --json -c {d.dir}/portsentry.conf --pidfile {d.dir}/pid",
           check=False)
    try:
        return json.loads(r.stdout).get("counters") or {}
    except ValueError:
        return {}


def scenario_frag(net, d, kind):
    """F (fragmented sweep) or G (a flood of fragments that never complete)."""
    import ipaddress
    sh(f"ip -n {net.t} route flush type blackhole", check=False)
    # A previous G leaves the kernel's reassembly memory full for its 30 s timeout: wait
    # until it is free, so that every run starts from the same kernel (bounded: 40 s).
    t0 = time.time()
    while kernel_frag_mem(net) > 0 and time.time() - t0 < 40:
        time.sleep(0.5)
    rx0 = rx_packets(net)
    samples, stop = [], threading.Event()
    kmem = [0]

    def sample():
        while not stop.is_set():
            try:
                samples.append((time.time(), cpu_ns(d.pid), children_s(d.pid)))
                kmem[0] = max(kmem[0], kernel_frag_mem(net))
            except (OSError, IndexError, ValueError):
                return
            time.sleep(0.05)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    start = time.time() + 1.5
    real = [f"198.51.100.{20 + i}" for i in range(len(REAL_AT))]
    ns = ["ip", "netns", "exec", net.s, sys.executable, FRAGS_PY]
    if kind == "F":
        cmd = ["fragsweep", SWEEP_BASE, str(SWEEP_SRCS), T4, "150000", str(SWEEP_SECS)]
    else:
        cmd = ["fragflood", "198.18.0.0", "2000000", T4, "100000", str(SWEEP_SECS)]
    flood = subprocess.Popen(ns + cmd + [f"{start:.6f}"], stdout=subprocess.PIPE, text=True)
    probes = subprocess.Popen(ns + ["fragsyns", T4, "1", f"{start:.6f}"]
                              + [f"{a}@{o}" for a, o in zip(real, REAL_AT)],
                              stdout=subprocess.PIPE, text=True)
    out_flood = flood.communicate(timeout=SWEEP_SECS + 60)[0].split()
    out_probes = probes.communicate(timeout=60)[0]
    time.sleep(2)
    stop.set()
    th.join()
    rx = rx_packets(net) - rx0
    sent = int(out_flood[1])
    secs = float(out_flood[-2])
    end = start + secs
    sent_at = {a: float(t) for a, t in (l.split() for l in out_probes.splitlines())}
    b = d.blocks()
    forged = [a for a in b if ipaddress.ip_address(a) in ipaddress.ip_network("198.18.0.0/15")]
    lat = [(b[a] - sent_at[a]) * 1000 if a in b and a in sent_at else None for a in real]

    def at(t):
        return min(samples, key=lambda x: abs(x[0] - t))
    c0, c1 = at(start), at(end)
    own = (c1[1] - c0[1]) / 1e9
    r = {"sent": sent, "secs": secs, "rx": rx, "cpu": own / secs * 100 if secs else 0,
         "cpu_s": own, "blocks": len(b), "forged_blocks": len(forged), "lat": lat,
         "hwm": vm_hwm_kb(d.pid), "kmem": kmem[0], "ours": None,
         "datagrams": int(out_flood[3].lstrip("(")) if kind == "F" else None}
    if d.kind == "ours":
        r["ours"] = ours_counters(d)
    return r


def fmt_frag(kind, r):
    lat = [x for x in r["lat"] if x is not None]
    unit = "fragments" if kind == "G" else f"fragments ({r['datagrams']:,} SYNs)"
    rows = [
        (f"{kind}: sent / received on the veth", f"{r['sent']:,} {unit} in {r['secs']:.1f} s / {r['rx']:,}"),
        (f"{kind}: daemon CPU (% of one core)", f"{r['cpu']:.1f}% ({r['cpu_s']:.2f} s)"),
        (f"{kind}: daemon CPU per fragment received", f"{r['cpu_s'] * 1e9 / r['rx']:.0f} ns" if r['rx'] else "-"),
        (f"{kind}: daemon peak RSS", f"{r['hwm'] / 1024:.1f} MB"),
        (f"{kind}: hosts blocked (forged)", f"{r['blocks']} ({r['forged_blocks']})"),
        (f"{kind}: real probes -> KILL_ROUTE", f"{len(lat)}/{len(r['lat'])}, {fmt_lat(lat)}"),
        (f"{kind}: kernel reassembly memory, peak", f"{r['kmem'] / 1048576:.2f} MiB"),
    ]
    o = r["ours"]
    if o is not None:
        rows.append((f"{kind}: our cache peak / fragments / datagrams",
                     f"{o.get('fragment_cache_peak_bytes', 0) / 1048576:.2f} MiB / "
                     f"{o.get('fragments', 0):,} / {o.get('datagrams_reassembled', 0):,}"))
    else:
        rows.append((f"{kind}: our cache peak / fragments / datagrams", "-"))
    return rows


def fmt_lat(l):
    if not l:
        return "-"
    return f"median {statistics.median(l):.2f} / max {max(l):.2f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--only", choices=["1.2", "ours"], help="run one side only")
    ap.add_argument("--bin", metavar="PATH", help="our daemon (default: target/release/portsentry, "
                    "built first unless --skip-build)")
    ap.add_argument("--idle-only", action="store_true", help="run scenario C only")
    ap.add_argument("--start-only", type=int, metavar="N",
                    help="run scenario D only, N times per daemon, alternating")
    ap.add_argument("--sweep-only", type=int, metavar="N",
                    help="run scenario E only, N times per daemon, alternating")
    ap.add_argument("--frag-only", type=int, metavar="N",
                    help="run scenarios F and G only, N times per daemon, alternating")
    ap.add_argument("--route-script", choices=["inline", "script", "ip"], default="script",
                    help="scenario E's KILL_ROUTE: a script file that stamps its start (script, "
                         "the default); the same, then a blackhole route with ip (ip); or the "
                         "stamp inline in KILL_ROUTE, as in scenarios A-C (inline)")
    ap.add_argument("--attach", metavar="CMD",
                    help="scenario E: run CMD ({pid}: the daemon's) from just before the flood "
                         "until 2 s after it, then send it SIGINT (strace -c, perf record)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not a.skip_build and not a.bin:
        sh(f"cd {REPO} && cargo build --release --quiet")
    ours = os.path.abspath(a.bin) if a.bin else f"{REPO}/target/release/portsentry"
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
        if a.frag_only:
            print(f"\nportsentry benchmark F and G, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.uname().nodename}, "
                  f"{os.cpu_count()} cores, kernel {os.uname().release}, load {os.getloadavg()[0]:.2f}")
            for i in range(min(a.frag_only, 20)):
                for kind in [a.only] if a.only else ["1.2", "ours"]:
                    for scen in ["F", "G"]:
                        d = Daemon(net, "ref" if kind == "1.2" else "ours", "atcp", ours, ref,
                                   ATCP_DEFAULTS, route_script=None if a.route_script == "inline" else a.route_script)
                        r = scenario_frag(net, d, scen)
                        d.stop()
                        print(f"-- run {i + 1}, {'Debian 1.2' if kind == '1.2' else 'ours'}", flush=True)
                        for label, v in fmt_frag(scen, r):
                            print(f"   {label:44} {v}", flush=True)
            return
        if a.sweep_only:
            print(f"\nportsentry benchmark E (KILL_ROUTE script: {a.route_script}), {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.uname().nodename}, "
                  f"{os.cpu_count()} cores, kernel {os.uname().release}, load {os.getloadavg()[0]:.2f}")
            for i in range(min(a.sweep_only, 20)):
                for kind in [a.only] if a.only else ["1.2", "ours"]:
                    d = Daemon(net, "ref" if kind == "1.2" else "ours", "atcp", ours, ref,
                               ATCP_DEFAULTS, route_script=None if a.route_script == "inline" else a.route_script)
                    r = scenario_sweep(net, d, a.attach)
                    d.stop()
                    print(f"-- run {i + 1}, {'Debian 1.2' if kind == '1.2' else 'ours'}", flush=True)
                    for label, v in fmt_sweep(r):
                        print(f"   {label:44} {v}", flush=True)
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
            d = Daemon(net, "ref" if kind == "1.2" else "ours", "atcp", ours, ref,
                       ATCP_DEFAULTS, route_script=None if a.route_script == "inline" else a.route_script)
            r["E"] = scenario_sweep(net, d)
            d.stop()
            for scen in ["F", "G"]:
                d = Daemon(net, "ref" if kind == "1.2" else "ours", "atcp", ours, ref,
                           ATCP_DEFAULTS, route_script=None if a.route_script == "inline" else a.route_script)
                r[scen] = scenario_frag(net, d, scen)
                d.stop()
    finally:
        for d in list(LIVE):
            d.stop()
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
    for i, (label, _) in enumerate(fmt_sweep(res[kinds[0]]["E"])):
        row(label, lambda r, i=i: fmt_sweep(r["E"])[i][1])
    for scen in ["F", "G"]:
        for i, (label, _) in enumerate(fmt_frag(scen, res[kinds[0]][scen])):
            row(label, lambda r, i=i, scen=scen: fmt_frag(scen, r[scen])[i][1])
    if "ours" in res:
        print("ring drop reports (ours):", res["ours"].get("drops") or "none")


if __name__ == "__main__":
    main()
