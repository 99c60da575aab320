#!/usr/bin/env python3
"""Fragment traffic for bench/compare-1.2.py's scenarios F and G (issue 18; not a test,
prints figures). IPv4 over a raw socket (IPPROTO_RAW: the kernel fills in the IP header
checksum and total length), run in the scanner namespace.

  fragsweep BASE NSRC DST RATE SECS [START]
      Scenario E's sweep, each SYN sent as nmap -f sends it: three fragments of 8, 8 and 4
      bytes of TCP (the first holds the ports, the second the flags, the third the checksum).
      Datagram i comes from source BASE + (i mod NSRC) to port i mod 65536; at most RATE
      fragments a second, for SECS seconds (from START, a time.time() value, if given).
      Prints "sent N fragments (D datagrams) in S s".
  fragflood BASE COUNT DST RATE SECS [START]
      Lone fragments that never complete (a first fragment, then a later one at another
      offset, alternately; 8 bytes of data each), datagram i from source BASE + i mod
      131072, at most RATE a second, for SECS seconds or COUNT fragments.
      Prints "sent N in S s".
  fragsyns DST PORT START SRC@OFFSET...
      One SYN from each SRC at START + OFFSET seconds, in three fragments as above; prints
      "SRC TIME" per probe (TIME: epoch seconds just before its first fragment).

Every loop is bounded in count and time.
"""
import ipaddress
import random
import socket
import struct
import sys
import time


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum(b):
    if len(b) % 2:
        b += b"\0"
    return ~fold(sum(struct.unpack("!%dH" % (len(b) // 2), b))) & 0xFFFF


def raw():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return s


def ip_header(src, dst, ident, off8, more, n):
    fo = off8 | (0x2000 if more else 0)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + n, ident, fo, 64, 6, 0, src, dst)


def syn_frags(src, dst, sport, dport, ident):
    """The three fragments of a SYN (20-byte TCP header, checksum right)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02,
                      1024, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, 20)
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    return [ip_header(src, dst, ident, 0, True, 8) + tcp[0:8],
            ip_header(src, dst, ident, 1, True, 8) + tcp[8:16],
            ip_header(src, dst, ident, 2, False, 4) + tcp[16:20]]


def send(s, p, to):
    while True:
        try:
            s.sendto(p, to)
            return
        except OSError:  # ENOBUFS: the qdisc is full for a moment
            time.sleep(0.0002)


def wait_until(start, secs):
    if start is not None:
        w = start - time.time()
        if w > 0:
            time.sleep(min(w, secs))


def fragsweep(base, nsrc, dst, rate, secs, start=None):
    base, dst = ipaddress.ip_address(base), ipaddress.ip_address(dst)
    if nsrc < 1 or nsrc & (nsrc - 1) or int(base) % nsrc or nsrc > 65536:
        sys.exit("fragsweep: BASE aligned to NSRC, NSRC a power of two up to 65536")
    s = raw()
    to = (str(dst), 0)
    # Templates patched per datagram: source low 16 bits and port in the first fragment,
    # identification in all three, the TCP checksum (RFC 1624 update) in the third.
    f1, f2, f3 = (bytearray(f) for f in syn_frags(base.packed, dst.packed, 40000, 0, 0))
    lo0 = int(base) & 0xFFFF
    c0 = f3[20] << 8 | f3[21]
    rest = fold((~c0 & 0xFFFF) + (~lo0 & 0xFFFF))
    pack = struct.pack_into
    wait_until(start, secs)
    t0 = time.monotonic()
    t_end = t0 + secs
    i = sent = 0
    mask = nsrc - 1
    while True:
        if i & 255 == 0:
            now = time.monotonic()
            if now >= t_end:
                break
            ahead = t0 + sent / rate - now if rate > 0 else 0
            if ahead > 0:
                time.sleep(ahead)
        lo = lo0 + (i & mask)
        port = i & 0xFFFF
        ident = i & 0xFFFF or 1
        for f in (f1, f2, f3):
            pack("!H", f, 14, lo)
            pack("!H", f, 4, ident)
        pack("!H", f1, 22, port)
        pack("!H", f3, 20, ~fold(rest + lo + port) & 0xFFFF)
        for f in (f1, f2, f3):
            send(s, f, to)
        sent += 3
        i += 1
    print("sent %d fragments (%d datagrams) in %.2f s" % (sent, i, time.monotonic() - t0),
          flush=True)


def fragflood(base, count, dst, rate, secs, start=None):
    base, dst = ipaddress.ip_address(base), ipaddress.ip_address(dst)
    s = raw()
    to = (str(dst), 0)
    first = bytearray(ip_header(base.packed, dst.packed, 1, 0, True, 8) + b"\x9c\x40\x00\x8f" + bytes(4))
    later = bytearray(ip_header(base.packed, dst.packed, 1, 1, True, 8) + bytes(8))
    b = int(base)
    pack = struct.pack_into
    wait_until(start, secs)
    t0 = time.monotonic()
    t_end = t0 + secs
    sent = 0
    rnd = random.Random(18)
    while sent < count:
        if sent & 255 == 0:
            now = time.monotonic()
            if now >= t_end:
                break
            ahead = t0 + sent / rate - now if rate > 0 else 0
            if ahead > 0:
                time.sleep(ahead)
        f = first if sent & 1 == 0 else later
        pack("!I", f, 12, (b + (sent % 131072)) & 0xFFFFFFFF)
        pack("!H", f, 4, (sent >> 1) & 0xFFFF or 1)
        if f is later:
            pack("!H", f, 6, 0x2000 | (1 + rnd.randrange(1000)))
        send(s, f, to)
        sent += 1
    print("sent %d in %.2f s" % (sent, time.monotonic() - t0), flush=True)


def fragsyns(dst, port, start, probes):
    dst = ipaddress.ip_address(dst)
    s = raw()
    plan = sorted((start + float(off), ipaddress.ip_address(src))
                  for src, off in (p.split("@") for p in probes))
    out = []
    for at, src in plan:
        while True:
            d = at - time.time()
            if d <= 0:
                break
            time.sleep(min(d, 0.05) if d > 0.002 else 0.0002)
        frags = syn_frags(src.packed, dst.packed, random.randint(20000, 60000), port,
                          random.randint(1, 65535))
        t = time.time()
        for f in frags:
            send(s, f, (str(dst), 0))
        out.append("%s %.6f" % (src, t))
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["fragsweep"]:
        fragsweep(a[1], int(a[2]), a[3], float(a[4]), float(a[5]),
                  float(a[6]) if len(a) > 6 else None)
    elif a[:1] == ["fragflood"]:
        fragflood(a[1], int(a[2]), a[3], float(a[4]), float(a[5]),
                  float(a[6]) if len(a) > 6 else None)
    elif a[:1] == ["fragsyns"]:
        fragsyns(a[1], int(a[2]), float(a[3]), a[4:])
    else:
        sys.exit(__doc__)
