#!/usr/bin/python3
"""Hand-made evasion probes for tests/e2e_evasion.rs (issue 18), run in the scanner namespace
with Debian's python3-scapy. Not a test by itself: it sends, and says what the target's own
stack did with each probe.

  cases FILE IFACE     FILE holds one case a line: NAME SRC DST TCPPORT UDPPORT. Every case
                       is sent (from SRC, its own address, so answers cannot be confused),
                       then for 2 s everything the target sends to the sources is collected.
                       Prints one line per case: NAME accepted|silent|rejected, where
                       accepted means the target's stack answered as it does to a datagram it
                       took in (a TCP RST, an ICMP port or protocol unreachable, an echo or
                       timestamp reply), rejected that it sent an ICMP error about the packet
                       itself (an ICMPv6 parameter problem), silent nothing.
  flood DST COUNT RATE MAXSECS
                       COUNT lone IPv4 fragments (first fragments and later ones, 8 to 1,480
                       bytes, never completed), each from its own forged source of
                       198.18.0.0/15, at most RATE a second, for at most MAXSECS seconds.
                       Prints "sent N in S s".

Every loop is bounded in count and time; addresses are the test namespaces' own.
"""
import ipaddress
import random
import socket
import struct
import sys
import time

from scapy.all import (IP, IPv6, TCP, UDP, ICMP, ICMPv6EchoRequest, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, Raw,
                       AsyncSniffer, conf, send)

conf.verb = 0
PAY = b"payload-12by"  # makes a 32-byte SYN: four 8-byte pieces


def l4_bytes(pkt):
    """The transport part of a scapy packet, checksums filled in."""
    raw = bytes(pkt)
    if pkt.version == 4:
        return raw[(raw[0] & 15) * 4:]
    return raw[40:]


def syn(src, dst, port, flags="S", sport=None, pay=PAY):
    sport = sport or random.randint(20000, 60000)
    ip = IPv6(src=src, dst=dst) if ":" in dst else IP(src=src, dst=dst)
    return l4_bytes(ip / TCP(sport=sport, dport=port, flags=flags, seq=1000) / Raw(pay)), sport


def frags4(src, dst, l4, pieces, ident, proto=6, tos=None):
    """pieces: (offset, end, more[, data])."""
    out = []
    for i, pc in enumerate(pieces):
        off, end, more = pc[:3]
        data = pc[3] if len(pc) > 3 else l4[off:end]
        t = tos[i] if tos else 0
        out.append(IP(src=src, dst=dst, id=ident, proto=proto, tos=t,
                      flags="MF" if more else 0, frag=off // 8) / Raw(data))
    return out


def frags6(src, dst, l4, pieces, ident, nh=6, before=None):
    out = []
    for pc in pieces:
        off, end, more = pc[:3]
        data = pc[3] if len(pc) > 3 else l4[off:end]
        ip = IPv6(src=src, dst=dst)
        if before is not None:
            ip = ip / before
        out.append(ip / IPv6ExtHdrFragment(nh=nh, offset=off // 8, m=1 if more else 0,
                                           id=ident) / Raw(data))
    return out


def bad(l4, at):
    """The same bytes with the checksum field (at `at`) wrong."""
    b = bytearray(l4)
    b[at] ^= 0x5a
    return bytes(b)


def case(name, src, dst, tport, uport):
    """The packets of one case."""
    v6 = ":" in dst
    ident = random.randint(1, 60000)
    P = lambda *a: a  # noqa: E731
    l4, _ = syn(src, dst, tport)
    f = frags6 if v6 else frags4
    if name == "in_order_8":
        return f(src, dst, l4, [P(0, 8, 1), P(8, 16, 1), P(16, 24, 1), P(24, 32, 0)], ident)
    if name == "reverse":
        return f(src, dst, l4, [P(24, 32, 0), P(16, 24, 1), P(8, 16, 1), P(0, 8, 1)], ident)
    if name == "shuffled":
        return f(src, dst, l4, [P(16, 24, 1), P(0, 8, 1), P(24, 32, 0), P(8, 16, 1)], ident)
    if name == "tiny_first":
        return f(src, dst, l4, [P(0, 8, 1), P(8, 32, 0)], ident)
    if name == "first_24":
        return f(src, dst, l4, [P(0, 24, 1), P(24, 32, 0)], ident)
    if name == "first_24_reverse":
        return f(src, dst, l4, [P(24, 32, 0), P(0, 24, 1)], ident)
    if name == "dup_exact":
        return f(src, dst, l4, [P(0, 24, 1), P(8, 16, 1), P(24, 32, 0)] if v6 else
                 [P(0, 8, 1), P(8, 16, 1), P(8, 16, 1), P(16, 32, 0)], ident)
    if name == "dup_rewrites_flags":
        # The flag byte sent again as FIN inside a run: a duplicate, the SYN stands.
        fin, _ = syn(src, dst, tport, flags="F", sport=struct.unpack("!H", l4[:2])[0])
        return f(src, dst, l4, [P(0, 8, 1), P(8, 16, 1), P(8, 16, 1, fin[8:16]), P(16, 32, 0)],
                 ident)
    if name == "dup_two_runs":
        return f(src, dst, l4, [P(0, 8, 1), P(16, 24, 1), P(8, 16, 1), P(0, 16, 1),
                                P(24, 32, 0)], ident)
    if name == "overlap_tail":
        return f(src, dst, l4, [P(0, 8, 1), P(8, 16, 1), P(8, 24, 1), P(24, 32, 0)], ident)
    if name == "overlap_superset":
        return f(src, dst, l4, [P(0, 8, 1), P(0, 16, 1), P(16, 24, 1), P(24, 32, 0)], ident)
    if name == "overlap6":
        l4b, _ = syn(src, dst, tport, pay=PAY + b"x" * 8)
        return f(src, dst, l4b, [P(0, 24, 1), P(32, 40, 0), P(16, 32, 1), P(24, 32, 1)], ident)
    if name == "rfc1858":
        # A later fragment at offset 8 rewriting the flags of a first fragment of 16 bytes.
        return f(src, dst, l4, [P(0, 16, 1), P(8, 32, 0)], ident)
    if name == "zero_length":
        return f(src, dst, l4, [P(0, 8, 1), P(8, 8, 1, b""), P(8, 16, 1), P(16, 32, 0)], ident)
    if name == "two_last_ends":
        return f(src, dst, l4, [P(0, 8, 1), P(24, 32, 0), P(24, 40, 0, l4[24:32] + b"z" * 8),
                                P(8, 24, 1)], ident)
    if name == "past_last_end":
        return f(src, dst, l4, [P(0, 8, 1), P(16, 32, 0), P(32, 40, 1, b"z" * 8), P(8, 16, 1)],
                 ident)
    if name == "trim_non8":
        return f(src, dst, l4, [P(0, 12, 1), P(8, 32, 0)], ident)
    if name == "non8_dropped_alone":
        return f(src, dst, l4, [P(0, 24, 1), P(24, 28, 1), P(24, 32, 0)], ident)
    if name == "ecn_mix":
        return frags4(src, dst, l4, [P(0, 8, 1), P(8, 32, 0)], ident, tos=[2, 0])
    if name == "ecn_ce_ect0":
        return frags4(src, dst, l4, [P(0, 8, 1), P(8, 32, 0)], ident, tos=[3, 2])
    if name == "lone_first":
        return f(src, dst, l4, [P(0, 24, 1)], ident)
    if name == "lone_last":
        return f(src, dst, l4, [P(16, 32, 0)], ident)
    if name in ("max_dist_70", "max_dist_60"):
        n = int(name[-2:])
        two = f(src, dst, l4, [P(0, 24, 1), P(24, 32, 0)], ident)
        others = []
        for i in range(n):
            others += f(src, dst, b"o" * 24, [P(0, 24, 1)], (ident + 1 + i) % 65536 or 1)
        return [two[0]] + others + [two[1]]
    if name == "oversize":
        pieces, off = [P(0, 32, 1)], 32
        while off < 65528:
            end = min(off + 1480, 65528)
            pieces.append(P(off, end, 1 if end < 65528 else 0, b"\0" * (end - off)))
            off = end
        return f(src, dst, l4, pieces, ident)
    if name == "udp_fragmented":
        ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
        u = l4_bytes(ip / UDP(sport=40000, dport=uport) / Raw(b"u" * 24))
        return f(src, dst, u, [P(0, 8, 1), P(8, 32, 0)], ident, 17)
    if name == "hbh_before_fragment":
        return frags6(src, dst, l4, [P(0, 24, 1), P(24, 32, 0)], ident,
                      before=IPv6ExtHdrHopByHop())
    if name == "icmp_echo_fragmented":
        ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
        e = l4_bytes(ip / (ICMPv6EchoRequest(id=7, seq=1) if v6 else ICMP(id=7, seq=1)) /
                     Raw(b"e" * 40))
        return f(src, dst, e, [P(0, 24, 1), P(24, 48, 0)], ident, 58 if v6 else 1)
    if name == "badsum_fragmented":
        return f(src, dst, bad(l4, 16), [P(0, 24, 1), P(24, 32, 0)], ident)
    # Whole packets.
    ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    if name == "tcp_good":
        return [IP(src=src, dst=dst, proto=6) / Raw(l4)] if not v6 else \
            [IPv6(src=src, dst=dst, nh=6) / Raw(l4)]
    if name == "tcp_badsum":
        return [IP(src=src, dst=dst, proto=6) / Raw(bad(l4, 16))] if not v6 else \
            [IPv6(src=src, dst=dst, nh=6) / Raw(bad(l4, 16))]
    if name in ("udp_good", "udp_badsum", "udp_zero_sum"):
        u = bytearray(l4_bytes(ip / UDP(sport=40001, dport=uport) / Raw(b"probe")))
        if name == "udp_badsum":
            u[6] ^= 0x5a
        if name == "udp_zero_sum":
            u[6] = u[7] = 0
        return [IP(src=src, dst=dst, proto=17) / Raw(bytes(u))] if not v6 else \
            [IPv6(src=src, dst=dst, nh=17) / Raw(bytes(u))]
    if name == "bad_ip_header_sum":
        return [IP(src=src, dst=dst, proto=6, chksum=0x1234) / Raw(l4)]
    if name == "icmp_echo_badsum":
        if v6:
            e = bytearray(l4_bytes(ip / ICMPv6EchoRequest(id=9, seq=1)))
            e[2] ^= 0x5a
            return [IPv6(src=src, dst=dst, nh=58) / Raw(bytes(e))]
        return [ip / ICMP(id=9, seq=1, chksum=0x1234)]
    if name == "routing_header":
        return [IPv6(src=src, dst=dst) / IPv6ExtHdrRouting(nh=6, addresses=[], segleft=0) /
                Raw(l4)]
    if name == "hop_by_hop":
        return [IPv6(src=src, dst=dst) / IPv6ExtHdrHopByHop(nh=6) / Raw(l4)]
    if name == "dest_opts":
        return [IPv6(src=src, dst=dst) / IPv6ExtHdrDestOpt(nh=6) / Raw(l4)]
    raise SystemExit(f"unknown case {name}")


def verdict(answers):
    """What the target's packets to a source say (only their outer headers count: an ICMP
    error quotes the probe, TCP header and all)."""
    kinds = set()
    for a in answers:
        if a.haslayer(IP):
            proto, raw = a[IP].proto, bytes(a[IP].payload)
            if proto == 6:
                kinds.add("accepted")
            elif proto == 1 and len(raw) >= 2:
                t, c = raw[0], raw[1]
                if (t == 3 and c in (2, 3)) or t in (0, 14):
                    kinds.add("accepted")
                elif t == 12:
                    kinds.add("rejected")
        elif a.haslayer(IPv6):
            nh, raw = a[IPv6].nh, bytes(a[IPv6].payload)
            if nh == 6:
                kinds.add("accepted")
            elif nh == 58 and len(raw) >= 2:
                t, c = raw[0], raw[1]
                if (t == 1 and c == 4) or t == 129:
                    kinds.add("accepted")
                elif t == 4:
                    kinds.add("rejected")
    if "accepted" in kinds:
        return "accepted"
    return "rejected" if "rejected" in kinds else "silent"


def cases(path, iface):
    rows = [l.split() for l in open(path) if l.strip()]
    srcs = {r[1] for r in rows}
    got = {s: [] for s in srcs}

    def keep(p):
        dst = p[IP].dst if p.haslayer(IP) else (p[IPv6].dst if p.haslayer(IPv6) else None)
        if dst in got:
            got[dst].append(p)
    sn = AsyncSniffer(iface=iface, prn=keep, store=False, filter="ip or ip6")
    sn.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    for name, src, dst, tport, uport in rows:
        if time.monotonic() - t0 > 60:
            break
        for p in case(name, src, dst, int(tport), int(uport)):
            send(p, iface=iface)
    time.sleep(2)
    sn.stop()
    for name, src, dst, _, _ in rows:
        print(name, src, verdict(got[src]), flush=True)


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def flood(dst, count, rate, maxsecs):
    dst = ipaddress.ip_address(dst)
    base = int(ipaddress.ip_address("198.18.0.0"))
    rnd = random.Random(18)
    pkts = []
    for i in range(count):
        src = ipaddress.ip_address(base + (i % (1 << 17)))
        n = 8 * (1 + rnd.randrange(185))
        off = 0 if i % 2 == 0 else 8 * (1 + rnd.randrange(1000))
        data = struct.pack("!HH", 40000 + i % 1000, 143) + bytes(n - 4)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + n, 1 + i % 65535,
                         0x2000 | (off // 8), 64, 6, 0, src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        pkts.append(ip + data)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    to = (str(dst), 0)
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
        try:
            s.sendto(p, to)
            sent += 1
        except OSError:
            pass
    print("sent %d in %.2f s" % (sent, time.monotonic() - t0), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "cases":
        cases(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "flood":
        flood(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        raise SystemExit(__doc__)
