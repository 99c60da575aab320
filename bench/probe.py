#!/usr/bin/env python3
"""Traffic helper for bench/nft-blocks.sh (not a test; prints figures).

  flood  BASE COUNT DST PORT RATE MAXSECS [START]   spoofed-source UDP datagrams over a raw
         socket: COUNT distinct sources from BASE upwards, at most RATE per second, stopping
         after MAXSECS whatever happens. The datagrams are built first; with START (a
         time.time() value) sending begins then, so the build does not count. Prints
         "sent N in S s".
  latency BASE COUNT DST PORT NS                   one probe at a time from fresh sources;
         `nft monitor` in namespace NS reports when each address lands in the set.
         Prints median and p90 in ms.
  listen PORT MAXSECS                              TCP accept-and-close server.
  connrate SRC DST PORT SECS                       TCP connects per second from SRC.
  burst  BASE COUNT DST PORT MAXSECS [tcp]         as `flood`, as fast as the socket takes
         them (a template patched per source, checksum updated incrementally; ~150k/s);
         with `tcp`, SYN segments instead of UDP datagrams.
  real   SRC DST PORT [tcp]                        one UDP datagram (or a TCP connect: a SYN)
         from SRC (an address of this namespace); prints the send time (epoch seconds).
  sweep  BASE NSRC DST RATE SECS [START]           TCP SYNs from NSRC forged sources BASE,
         BASE+1, ... (IPv4, one /N: NSRC a power of two) sweeping every destination port:
         packet i comes from source i mod NSRC to port i mod 65536, at most RATE per second
         (0: as fast as the socket takes them), for SECS seconds (from START, a time.time()
         value, if given). A
         template patched per packet, checksum updated incrementally (RFC 1624). Prints
         "sent N in S s".
  syns   DST PORT START SRC@OFFSET...              one SYN (raw, IPv4) from each SRC at START +
         OFFSET seconds; prints "SRC TIME" per probe (TIME: epoch seconds just before the
         send).
  stamp  FIFO OUT MAXSECS                          reads lines from FIFO (opened read-write, so
         it never sees end of file) and writes "TIME LINE" to OUT (TIME: epoch seconds at
         receipt): a process of its own, so no other thread delays the stamp.
  sink   PATH OUT MAXSECS                          fake syslog socket: writes "TIME LINE" per
         datagram to OUT (TIME: epoch seconds at receipt).
"""
import ipaddress
import socket
import struct
import subprocess
import sys
import threading
import time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def packet(src, dst, port, payload=b"probe"):
    n = 8 + len(payload)
    if src.version == 4:
        udp = struct.pack("!HHHH", 40000, port, n, 0) + payload
        # Total length and header checksum are filled in by the kernel (IP_HDRINCL).
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + n, 0, 0, 64, 17, 0,
                         src.packed, dst.packed)
        return ip + udp
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", n, 17)
    c = csum(pseudo + struct.pack("!HHHH", 40000, port, n, 0) + payload) or 0xFFFF
    udp = struct.pack("!HHHH", 40000, port, n, c) + payload
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, n, 17, 64, src.packed, dst.packed)
    return ip6 + udp


def syn(src, dst, port):
    """A TCP SYN from port 40000 with a valid checksum, IP header included."""
    tcp = struct.pack("!HHIIBBHHH", 40000, port, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, 20)
        c = csum(pseudo + tcp)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0,
                           src.packed, dst.packed) + tcp
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", 20, 6)
    c = csum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    return struct.pack("!IHBB16s16s", 0x60000000, 20, 6, 64, src.packed, dst.packed) + tcp


def raw(version):
    fam = socket.AF_INET if version == 4 else socket.AF_INET6
    # IPPROTO_RAW implies "header included" for IPv4 and (Linux >= 4.5) IPv6.
    return socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)


def flood(base, count, dst, port, rate, maxsecs, start=None):
    base, dst = ipaddress.ip_address(base), ipaddress.ip_address(dst)
    s = raw(dst.version)
    pkts = [packet(base + i, dst, port) for i in range(count)]
    to = (str(dst), 0)
    if start is not None:
        wait = start - time.time()
        if wait > 0:
            time.sleep(min(wait, maxsecs))
    t0 = time.monotonic()
    sent = 0
    for i, p in enumerate(pkts):
        if i % 256 == 0:
            now = time.monotonic()
            if now - t0 > maxsecs:
                break
            ahead = t0 + i / rate - now
            if ahead > 0:
                time.sleep(ahead)
        s.sendto(p, to)
        sent += 1
    print("sent %d in %.2f s" % (sent, time.monotonic() - t0))


def latency(base, count, dst, port, ns):
    base, dst = ipaddress.ip_address(base), ipaddress.ip_address(dst)
    seen = {}
    cond = threading.Condition()
    mon = subprocess.Popen(["ip", "netns", "exec", ns, "nft", "monitor", "new", "elements"],
                           stdout=subprocess.PIPE, text=True)

    def reader():
        for line in mon.stdout:
            t = time.monotonic()
            for tok in line.replace("{", " ").replace(",", " ").split():
                with cond:
                    seen.setdefault(tok, t)
                    cond.notify_all()

    threading.Thread(target=reader, daemon=True).start()
    time.sleep(0.5)  # let the monitor subscribe
    s = raw(dst.version)
    lat = []
    for i in range(count):
        src = str(base + i)
        t0 = time.monotonic()
        s.sendto(packet(base + i, dst, port), (str(dst), 0))
        with cond:
            cond.wait_for(lambda: src in seen, timeout=1.0)
        if src in seen:
            lat.append((seen[src] - t0) * 1000)
        time.sleep(0.05)
    mon.terminate()
    lat.sort()
    if not lat:
        print("latency: no element seen")
        return
    print("latency ms: median %.2f p90 %.2f (n=%d of %d)"
          % (lat[len(lat) // 2], lat[int(len(lat) * 0.9)], len(lat), count))


def listen(port, maxsecs):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)
    s.settimeout(1.0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < maxsecs:
        try:
            c, _ = s.accept()
            c.close()
        except socket.timeout:
            pass


def connrate(src, dst, port, secs):
    n = 0
    t0 = time.monotonic()
    linger = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT pile-up
    while time.monotonic() - t0 < secs:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        c.settimeout(1.0)
        c.bind((src, 0))
        try:
            c.connect((dst, port))
            n += 1
        except OSError:
            pass
        c.close()
    print("connects/s %.0f" % (n / (time.monotonic() - t0)))


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def burst(base, count, dst, port, maxsecs, proto="udp"):
    """Forged sources BASE, BASE+1, ...: the packet is built once; per source only the low
    32 bits of the source address and the UDP or TCP checksum change (RFC 1624 update)."""
    base, dst = ipaddress.ip_address(base), ipaddress.ip_address(dst)
    s = raw(dst.version)
    tcp = proto == "tcp"
    pkt = bytearray(syn(base, dst, port) if tcp else packet(base, dst, port))
    hdr = 20 if base.version == 4 else 40
    ck_at = hdr + (16 if tcp else 6)
    if base.version == 4:
        src_at, b32 = 12, int(base)
    else:
        src_at, b32 = 20, int(base) & 0xFFFFFFFF
    # IPv4 UDP may carry no checksum (0): leave it so.
    fix = tcp or base.version == 6
    # The checksum over everything but the source's low 32 bits.
    c0 = pkt[ck_at] << 8 | pkt[ck_at + 1]
    rest = fold((~c0 & 0xFFFF) + (~(b32 >> 16) & 0xFFFF) + (~b32 & 0xFFFF))
    to = (str(dst), 0)
    t0 = time.monotonic()
    sent = 0
    for i in range(count):
        if i % 4096 == 0 and time.monotonic() - t0 > maxsecs:
            break
        a = (b32 + i) & 0xFFFFFFFF
        struct.pack_into("!I", pkt, src_at, a)
        if fix:
            c = ~fold(rest + (a >> 16) + (a & 0xFFFF)) & 0xFFFF
            struct.pack_into("!H", pkt, ck_at, c or (0xFFFF if not tcp else 0))
        while True:
            try:
                s.sendto(pkt, to)
                break
            except OSError:  # ENOBUFS: the qdisc is full for a moment
                time.sleep(0.0002)
        sent += 1
    print("sent %d in %.2f s" % (sent, time.monotonic() - t0), flush=True)


def real(src, dst, port, proto="udp"):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    if proto == "tcp":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(1.0)
        t = time.time()
        try:
            s.connect((dst, port))  # the SYN; refused (RST) or timed out: either is fine
        except OSError:
            pass
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((src, 0))
        t = time.time()
        s.sendto(b"probe", (dst, port))
    print("%.6f" % t, flush=True)


def sink(path, out, maxsecs):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(1.0)
    t0 = time.monotonic()
    with open(out, "w") as f:
        while time.monotonic() - t0 < maxsecs:
            try:
                m = s.recv(8192)
            except socket.timeout:
                continue
            t = time.time()
            text = m.decode(errors="replace")
            i = text.find("]: ")
            f.write("%.6f %s\n" % (t, text[i + 3:] if i >= 0 else text))
            f.flush()


def sweep(base, nsrc, dst, rate, secs, start=None):
    """See the module doc. Sources i mod nsrc: with nsrc dividing 65536 each port is always
    hit by the same source, so the sources that hit watched ports are a fixed few."""
    base, dst = ipaddress.ip_address(base), ipaddress.ip_address(dst)
    if base.version != 4 or nsrc < 1 or nsrc & (nsrc - 1) or int(base) % nsrc:
        sys.exit("sweep: IPv4 BASE aligned to NSRC, NSRC a power of two")
    if nsrc > 65536:
        sys.exit("sweep: at most 65536 sources (the low 16 bits of the address change)")
    s = raw(4)
    pkt = bytearray(syn(base, dst, 0))
    b = int(base)
    lo0 = b & 0xFFFF
    # The template's sum without the source's low 16 bits (its port is 0): add the
    # packet's low bits and port back per packet.
    c0 = pkt[36] << 8 | pkt[37]
    rest = fold((~c0 & 0xFFFF) + (~lo0 & 0xFFFF))
    to = (str(dst), 0)
    pack = struct.pack_into
    if start is not None:
        wait = start - time.time()
        if wait > 0:
            time.sleep(min(wait, secs))
    t0 = time.monotonic()
    t_end = t0 + secs
    i = 0
    mask = nsrc - 1
    while True:
        if i & 1023 == 0:
            now = time.monotonic()
            if now >= t_end:
                break
            ahead = t0 + i / rate - now if rate > 0 else 0
            if ahead > 0:
                time.sleep(ahead)
        lo = lo0 + (i & mask)
        port = i & 0xFFFF
        pack("!H", pkt, 14, lo)
        pack("!H", pkt, 22, port)
        c = ~fold(rest + lo + port) & 0xFFFF
        pack("!H", pkt, 36, c)
        try:
            s.sendto(pkt, to)
        except OSError:  # ENOBUFS: the qdisc is full for a moment
            time.sleep(0.0002)
            continue
        i += 1
    print("sent %d in %.2f s" % (i, time.monotonic() - t0), flush=True)


def syns(dst, port, start, probes):
    dst = ipaddress.ip_address(dst)
    s = raw(4)
    import random
    plan = []
    for p in probes:
        src, off = p.split("@")
        plan.append((start + float(off), ipaddress.ip_address(src)))
    plan.sort()
    out = []
    for at, src in plan:
        while True:
            d = at - time.time()
            if d <= 0:
                break
            time.sleep(min(d, 0.05) if d > 0.002 else 0.0002)
        pkt = bytearray(syn(src, dst, port))
        struct.pack_into("!H", pkt, 20, random.randint(20000, 60000))
        # Recompute the TCP checksum for the new source port.
        struct.pack_into("!H", pkt, 36, 0)
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, 20)
        struct.pack_into("!H", pkt, 36, csum(pseudo + bytes(pkt[20:])))
        t = time.time()
        s.sendto(pkt, (str(dst), 0))
        out.append("%s %.6f" % (src, t))
    print("\n".join(out), flush=True)


def stamp(fifo, out, maxsecs):
    import os
    import select
    fd = os.open(fifo, os.O_RDWR)
    t0 = time.monotonic()
    buf = b""
    with open(out, "w") as f:
        while time.monotonic() - t0 < maxsecs:
            r, _, _ = select.select([fd], [], [], 1.0)
            if not r:
                continue
            data = os.read(fd, 65536)
            t = time.time()
            buf += data
            *lines, buf = buf.split(b"\n")
            for l in lines:
                f.write("%.6f %s\n" % (t, l.decode(errors="replace").strip()))
            f.flush()


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["flood"]:
        flood(a[1], int(a[2]), a[3], int(a[4]), float(a[5]), float(a[6]),
              float(a[7]) if len(a) > 7 else None)
    elif a[:1] == ["latency"]:
        latency(a[1], int(a[2]), a[3], int(a[4]), a[5])
    elif a[:1] == ["listen"]:
        listen(int(a[1]), float(a[2]))
    elif a[:1] == ["connrate"]:
        connrate(a[1], a[2], int(a[3]), float(a[4]))
    elif a[:1] == ["burst"]:
        burst(a[1], int(a[2]), a[3], int(a[4]), float(a[5]), *a[6:7])
    elif a[:1] == ["real"]:
        real(a[1], a[2], int(a[3]), *a[4:5])
    elif a[:1] == ["sweep"]:
        sweep(a[1], int(a[2]), a[3], float(a[4]), float(a[5]), float(a[6]) if len(a) > 6 else None)
    elif a[:1] == ["syns"]:
        syns(a[1], int(a[2]), float(a[3]), a[4:])
    elif a[:1] == ["stamp"]:
        stamp(a[1], a[2], float(a[3]))
    elif a[:1] == ["sink"]:
        sink(a[1], a[2], float(a[3]))
    else:
        sys.exit(__doc__)
