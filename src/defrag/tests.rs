//! The reassembly against the Linux rules it mirrors. The overlap and length cases are the
//! ones `tests/e2e_evasion.rs` sends to a real kernel (6.18 here), with the kernel's own
//! answer (reassembled and answered, or dropped) as the expected outcome.

use super::*;
use crate::classify::tcp_flags::*;
use crate::testrng::Rng;
use crate::wire::fixtures::{seal, tcp, udp, v4, v6};
use crate::wire::{Meta, Packet, Probe, ipproto, parse};

/// One piece of a datagram: [offset, end) of its data, MF, and other bytes if given.
#[derive(Clone)]
struct Piece(u32, u32, bool, Option<Vec<u8>>);

fn p(off: u32, end: u32, more: bool) -> Piece {
    Piece(off, end, more, None)
}

/// IPv4 fragments of the whole packet `whole` (20-byte header), identification `id`, from
/// source 192.0.2.`src`.
fn frags4(whole: &[u8], pieces: &[Piece], id: u16, src: u8, tos: &[u8]) -> Vec<Vec<u8>> {
    // The datagram as sent from that source (its transport checksum covers the address).
    let mut whole = whole.to_vec();
    if whole[15] != src {
        whole[15] = src;
        seal(&mut whole);
    }
    let l4 = &whole[20..];
    pieces
        .iter()
        .enumerate()
        .map(|(i, Piece(off, end, more, data))| {
            let d = data
                .clone()
                .unwrap_or_else(|| l4[*off as usize..*end as usize].to_vec());
            let mut f = whole[..20].to_vec();
            f[1] = tos.get(i).copied().unwrap_or(0);
            f[2..4].copy_from_slice(&((20 + d.len()) as u16).to_be_bytes());
            f[4..6].copy_from_slice(&id.to_be_bytes());
            let fo = (off / 8) as u16 | if *more { 0x2000 } else { 0 };
            f[6..8].copy_from_slice(&fo.to_be_bytes());
            f[15] = src;
            f.extend_from_slice(&d);
            seal(&mut f);
            f
        })
        .collect()
}

/// IPv6 fragments (fragment header right after the fixed header) of `whole` (40-byte header,
/// no extension headers).
fn frags6(whole: &[u8], pieces: &[Piece], id: u32) -> Vec<Vec<u8>> {
    let l4 = &whole[40..];
    let nh = whole[6];
    pieces
        .iter()
        .map(|Piece(off, end, more, data)| {
            let d = data
                .clone()
                .unwrap_or_else(|| l4[*off as usize..*end as usize].to_vec());
            let mut f = whole[..40].to_vec();
            f[4..6].copy_from_slice(&((8 + d.len()) as u16).to_be_bytes());
            f[6] = ipproto::FRAGMENT;
            let fo = *off as u16 | u16::from(*more);
            f.extend_from_slice(&[nh, 0]);
            f.extend_from_slice(&fo.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(&d);
            f
        })
        .collect()
}

/// Push each packet at `now` into `d`; the outcomes.
fn feed(d: &mut Defrag, now: u64, pkts: &[Vec<u8>]) -> Vec<Outcome> {
    pkts.iter()
        .map(|b| match parse(b, Meta::whole(b.len())) {
            Ok(Packet::Fragment(f)) => d.push(now, &f, true),
            other => panic!("not a fragment: {other:?}"),
        })
        .collect()
}

/// The probe a completed datagram is, parsed as the shell parses it.
fn probe_of(out: &Outcome) -> Probe {
    let Outcome::Complete(b) = out else {
        panic!("not complete: {out:?}");
    };
    let m = Meta {
        reassembled: true,
        ..Meta::whole(b.len())
    };
    match parse(b, m) {
        Ok(Packet::Probe(x)) => x,
        other => panic!("not a probe: {other:?}"),
    }
}

/// A SYN to port 5 with 12 bytes of payload (32 bytes of TCP), checksums right.
fn syn32() -> Vec<u8> {
    let mut t = tcp(5, SYN);
    t.extend_from_slice(b"payload-12by");
    v4(6, &[], &t)
}

fn completes(outs: &[Outcome]) -> bool {
    matches!(outs.last(), Some(Outcome::Complete(_)))
}

#[test]
fn in_order_reverse_and_shuffled_fragments_give_back_the_datagram() {
    let whole = syn32();
    let want = match parse(&whole, Meta::whole(whole.len())) {
        Ok(Packet::Probe(x)) => x,
        o => panic!("{o:?}"),
    };
    let pieces = [
        p(0, 8, true),
        p(8, 16, true),
        p(16, 24, true),
        p(24, 32, false),
    ];
    let mut rng = Rng(42);
    for round in 0..50 {
        let mut order: Vec<Piece> = pieces.to_vec();
        if round == 1 {
            order.reverse();
        } else if round > 1 {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
        let mut d = Defrag::default();
        let outs = feed(&mut d, 0, &frags4(&whole, &order, 7, 2, &[]));
        assert!(outs[..3].iter().all(|o| *o == Outcome::Stored), "{round}");
        assert_eq!(probe_of(&outs[3]), want, "round {round}");
        let Outcome::Complete(b) = &outs[3] else {
            unreachable!()
        };
        // Byte for byte the same datagram (DF kept, offset and MF cleared).
        assert_eq!(&b[20..], &whole[20..]);
        assert_eq!(&b[2..4], &whole[2..4]);
        assert!(d.is_empty() && d.bytes() == 0);
        assert_eq!(d.stats().reassembled, 1);
    }
}

#[test]
fn duplicates_are_dropped_and_the_first_bytes_win() {
    let whole = syn32();
    let mut fin = tcp(5, FIN);
    fin.extend_from_slice(b"payload-12by");
    let fin = v4(6, &[], &fin);
    // An exact duplicate; then the flag byte sent again as FIN inside the run: the kernel
    // keeps the SYN (measured: it answers the SYN with a RST).
    for dup in [None, Some(fin[28..36].to_vec())] {
        let mut d = Defrag::default();
        let pieces = [
            p(0, 8, true),
            p(8, 16, true),
            Piece(8, 16, true, dup.clone()),
            p(16, 24, true),
            p(24, 32, false),
        ];
        let outs = feed(&mut d, 0, &frags4(&whole, &pieces, 8, 2, &[]));
        assert_eq!(outs[2], Outcome::Dropped(Drop::Duplicate));
        assert_eq!(probe_of(&outs[4]).tcp_flags, SYN);
        assert_eq!(d.stats().dropped[Drop::Duplicate.kind()], 1);
    }
}

/// The measured cases (tests/e2e_evasion.rs sends the same to the kernel).
#[test]
fn runs_decide_duplicate_against_overlap() {
    let whole = syn32();
    let cases: Vec<(&str, Vec<Piece>, bool)> = vec![
        (
            "[0,16) again inside one run: a duplicate",
            vec![
                p(0, 8, true),
                p(8, 16, true),
                p(0, 16, true),
                p(16, 24, true),
                p(24, 32, false),
            ],
            true,
        ),
        (
            "[0,16) again over two runs: an overlap",
            vec![
                p(0, 8, true),
                p(16, 24, true),
                p(8, 16, true),
                p(0, 16, true),
                p(24, 32, false),
            ],
            false,
        ),
        (
            "[8,16) inside the run [0,24): a duplicate",
            vec![
                p(0, 8, true),
                p(8, 16, true),
                p(16, 24, true),
                p(8, 16, true),
                p(24, 32, false),
            ],
            true,
        ),
        (
            "[8,24) past the tail [0,16): an overlap",
            vec![
                p(0, 8, true),
                p(8, 16, true),
                p(8, 24, true),
                p(24, 32, false),
            ],
            false,
        ),
        (
            "[0,16) after [0,8) at the tail: an overlap",
            vec![
                p(0, 8, true),
                p(0, 16, true),
                p(16, 24, true),
                p(24, 32, false),
            ],
            false,
        ),
        (
            "gap filled: three runs, fine",
            vec![
                p(24, 32, false),
                p(0, 8, true),
                p(16, 24, true),
                p(8, 16, true),
            ],
            true,
        ),
        (
            "complete before a late copy of [0,16) comes (which starts a new datagram)",
            vec![
                p(0, 8, true),
                p(16, 32, false),
                p(8, 16, true),
                p(0, 16, true),
            ],
            true,
        ),
    ];
    for (name, pieces, done) in cases {
        let mut d = Defrag::default();
        let outs = feed(&mut d, 0, &frags4(&whole, &pieces, 9, 2, &[]));
        let complete = outs.iter().any(|o| matches!(o, Outcome::Complete(_)));
        assert_eq!(complete, done, "{name}: {outs:?}");
        if !done {
            assert!(
                outs.contains(&Outcome::Dropped(Drop::Overlap)),
                "{name}: {outs:?}"
            );
        }
    }
}

#[test]
fn lengths_that_contradict_discard_the_datagram() {
    let whole = syn32();
    let cases: Vec<(&str, Vec<Piece>)> = vec![
        (
            "a zero-length fragment",
            vec![
                p(0, 8, true),
                Piece(8, 8, true, Some(vec![])),
                p(8, 16, true),
                p(16, 32, false),
            ],
        ),
        (
            "two last fragments with different ends",
            vec![
                p(0, 8, true),
                p(24, 32, false),
                Piece(24, 40, false, Some(vec![1; 16])),
                p(8, 24, true),
            ],
        ),
        (
            "a fragment past the last one's end",
            vec![
                p(0, 8, true),
                p(16, 32, false),
                Piece(32, 40, true, Some(vec![1; 8])),
                p(8, 16, true),
            ],
        ),
        (
            "a last fragment ending before data already in",
            vec![p(0, 8, true), p(16, 32, true), Piece(8, 16, false, None)],
        ),
    ];
    for (name, pieces) in cases {
        let mut d = Defrag::default();
        let outs = feed(&mut d, 0, &frags4(&whole, &pieces, 10, 2, &[]));
        assert!(!completes(&outs), "{name}: {outs:?}");
        assert!(
            outs.contains(&Outcome::Dropped(Drop::BadLength)),
            "{name}: {outs:?}"
        );
    }
}

#[test]
fn ipv4_cuts_a_non_last_fragment_to_a_multiple_of_8() {
    // [0,12) with MF counts as [0,8); [8,32) then completes it (measured: answered).
    let whole = syn32();
    let mut d = Defrag::default();
    let outs = feed(
        &mut d,
        0,
        &frags4(&whole, &[p(0, 12, true), p(8, 32, false)], 11, 2, &[]),
    );
    assert_eq!(probe_of(&outs[1]).dst_port, 5);
}

#[test]
fn ecn_mixes_fail_as_rfc_3168_says() {
    let whole = syn32();
    let two = [p(0, 8, true), p(8, 32, false)];
    for (tos, ok) in [
        ([0u8, 0], true),
        ([2, 0], false), // ECT(0) with not-ECT
        ([3, 0], false), // CE with not-ECT
        ([3, 2], true),  // CE with ECT(0): CE
        ([1, 2], true),  // ECT(1) with ECT(0)
    ] {
        let mut d = Defrag::default();
        let outs = feed(&mut d, 0, &frags4(&whole, &two, 12, 2, &tos));
        assert_eq!(completes(&outs), ok, "{tos:?}");
        if !ok {
            assert_eq!(outs[1], Outcome::Dropped(Drop::Ecn));
        } else if tos.contains(&3) {
            let Outcome::Complete(b) = &outs[1] else {
                unreachable!()
            };
            assert_eq!(b[1] & 3, 3, "CE carried over");
        }
    }
}

#[test]
fn a_lone_first_fragment_times_out_and_the_timer_is_not_extended() {
    let whole = syn32();
    let f = frags4(
        &whole,
        &[p(0, 8, true), p(8, 16, true), p(16, 32, false)],
        13,
        2,
        &[],
    );
    let mut d = Defrag::default();
    assert_eq!(feed(&mut d, 0, &f[..1]), vec![Outcome::Stored]);
    assert_eq!(feed(&mut d, 29_000, &f[1..2]), vec![Outcome::Stored]);
    // At 30 s the datagram is gone, whatever came at 29 s: the last fragment starts anew.
    assert_eq!(feed(&mut d, 31_000, &f[2..]), vec![Outcome::Stored]);
    assert_eq!(d.stats().timed_out, 1);
    d.expire(61_000);
    assert!(d.is_empty() && d.bytes() == 0);
    assert_eq!(d.stats().timed_out, 2);
    assert_eq!(d.stats().reassembled, 0);
}

#[test]
fn more_than_64_fragments_from_the_source_in_between_restart_an_ipv4_datagram() {
    let whole = syn32();
    let two = frags4(&whole, &[p(0, 8, true), p(8, 32, false)], 14, 2, &[]);
    for (between, from_src, done) in [(60, 2u8, true), (70, 2, false), (70, 3, true)] {
        let mut d = Defrag::default();
        let mut pkts = vec![two[0].clone()];
        for i in 0..between {
            // Incomplete datagrams of their own, from `from_src`.
            let other = frags4(&whole, &[p(0, 8, true)], 1000 + i, from_src, &[]);
            pkts.extend(other);
        }
        pkts.push(two[1].clone());
        let outs = feed(&mut d, 0, &pkts);
        assert_eq!(completes(&outs), done, "{between} from .{from_src}");
        assert_eq!(d.stats().restarted, u64::from(!done));
    }
    // Fragments of a protocol nobody watches count too (they reach the kernel's queue
    // code), though they are not kept.
    let mut d = Defrag::default();
    feed(&mut d, 0, &two[..1]);
    let gre = {
        let mut g = v4(47, &[], &[0; 8]);
        g[6] = 0x20;
        seal(&mut g);
        g[15] = 2;
        seal(&mut g);
        g
    };
    for _ in 0..70 {
        let Ok(Packet::Fragment(f)) = parse(&gre, Meta::whole(gre.len())) else {
            panic!()
        };
        assert_eq!(d.push(0, &f, false), Outcome::Ignored);
    }
    assert!(!completes(&feed(&mut d, 0, &two[1..])));
}

#[test]
fn over_65535_bytes_fails() {
    // IPv4: the last fragment at offset 65,520 with 8 bytes makes 65,528 bytes of data:
    // with the 20-byte header 65,548.
    let whole = syn32();
    let mut d = Defrag::default();
    let mut pieces = vec![p(0, 32, true)];
    let mut off = 32;
    while off < 65_528 {
        let end = (off + 1480).min(65_528);
        let more = end < 65_528;
        pieces.push(Piece(off, end, more, Some(vec![0; (end - off) as usize])));
        off = end;
    }
    let outs = feed(&mut d, 0, &frags4(&whole, &pieces, 15, 2, &[]));
    assert_eq!(outs.last(), Some(&Outcome::Dropped(Drop::Oversize)));
    assert!(d.is_empty());
    // IPv6: a fragment ending past 65,535 is dropped alone.
    let w6 = v6(6, &tcp(5, SYN));
    let mut d = Defrag::default();
    let outs = feed(
        &mut d,
        0,
        &frags6(&w6, &[Piece(65_528, 65_544, false, Some(vec![0; 16]))], 16),
    );
    assert_eq!(outs, vec![Outcome::Dropped(Drop::BadFragment)]);
}

#[test]
fn ipv6_reassembly() {
    let mut t = tcp(5, SYN);
    t.extend_from_slice(&[9; 12]);
    let w6 = v6(6, &t);
    let want = match parse(&w6, Meta::whole(w6.len())) {
        Ok(Packet::Probe(x)) => x,
        o => panic!("{o:?}"),
    };
    for pieces in [
        vec![p(0, 24, true), p(24, 32, false)],
        vec![p(24, 32, false), p(0, 24, true)],
        vec![p(0, 24, true), p(8, 16, true), p(24, 32, false)],
        // A non-last fragment not a multiple of 8 is dropped alone; the queue lives on.
        vec![p(0, 24, true), p(24, 28, true), p(24, 32, false)],
    ] {
        let mut d = Defrag::default();
        let outs = feed(&mut d, 0, &frags6(&w6, &pieces, 77));
        assert_eq!(probe_of(outs.last().unwrap()), want);
        let Outcome::Complete(b) = outs.last().unwrap() else {
            unreachable!()
        };
        assert_eq!(b, &w6, "the datagram as it was sent");
    }
    // No ipfrag_max_dist for IPv6 (measured: answered after 70 in between).
    let mut d = Defrag::default();
    let two = frags6(&w6, &[p(0, 24, true), p(24, 32, false)], 78);
    let mut pkts = vec![two[0].clone()];
    for i in 0..70 {
        pkts.extend(frags6(&w6, &[p(0, 24, true)], 1000 + i));
    }
    pkts.push(two[1].clone());
    assert!(completes(&feed(&mut d, 0, &pkts)));
    // A reassembled datagram that holds another fragment header is dropped by `wire`.
    let inner = frags6(&w6, &[p(0, 32, true)], 5)[0][40..].to_vec();
    let mut outer = v6(ipproto::FRAGMENT, &inner);
    outer[6] = ipproto::FRAGMENT;
    let mut d = Defrag::default();
    let outs = feed(
        &mut d,
        0,
        &frags6(
            &outer,
            &[p(0, 32, true), p(32, inner.len() as u32, false)],
            6,
        ),
    );
    let Outcome::Complete(b) = outs.last().unwrap() else {
        panic!("{outs:?}")
    };
    let m = Meta {
        reassembled: true,
        ..Meta::whole(b.len())
    };
    assert_eq!(parse(b, m), Err(crate::wire::WireError::NestedFragment));
}

#[test]
fn udp_and_sctp_and_icmp_datagrams_reassemble_and_are_judged_whole() {
    use crate::classify::OtherProbe;
    use crate::wire::fixtures::{icmp, sctp};
    let mut u = udp(7);
    u.extend_from_slice(&[1; 23]); // 32 bytes
    u[5] = 32;
    let cases = [
        (v4(17, &[], &u), None),
        (
            v4(ipproto::SCTP, &[], &sctp(80, 1)),
            Some(OtherProbe::SctpInit),
        ),
        (
            v4(ipproto::ICMP, &[], &icmp(13)),
            Some(OtherProbe::IcmpTimestamp),
        ),
    ];
    for (whole, other) in cases {
        let n = (whole.len() - 20) as u32;
        let mut d = Defrag::default();
        let outs = feed(
            &mut d,
            0,
            &frags4(&whole, &[p(8, n, false), p(0, 8, true)], 20, 2, &[]),
        );
        let Outcome::Complete(b) = &outs[1] else {
            panic!("{outs:?}")
        };
        let m = Meta {
            reassembled: true,
            ..Meta::whole(b.len())
        };
        match (parse(b, m), other) {
            (Ok(Packet::Probe(x)), None) => assert_eq!(x.dst_port, 7),
            (Ok(Packet::Other(x)), Some(k)) => assert_eq!(x.kind, k),
            (r, _) => panic!("{r:?}"),
        }
        // The same with one data byte changed: the reassembled checksum catches it.
        let mut bad = whole.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        let mut d = Defrag::default();
        let outs = feed(
            &mut d,
            0,
            &frags4(&bad, &[p(0, 8, true), p(8, n, false)], 21, 2, &[]),
        );
        let Outcome::Complete(b) = &outs[1] else {
            panic!("{outs:?}")
        };
        let r = parse(
            b,
            Meta {
                reassembled: true,
                ..Meta::whole(b.len())
            },
        );
        assert_eq!(r, Err(crate::wire::WireError::BadChecksum), "{other:?}");
    }
}

/// A forged flood of incomplete fragments from 100,000 sources, with a real datagram's
/// fragments in the middle of it: memory stays under the cap, the real datagram completes.
#[test]
fn a_flood_of_incomplete_fragments_neither_grows_past_the_cap_nor_evicts_a_real_datagram() {
    let whole = syn32();
    let real = frags4(
        &whole,
        &[p(0, 8, true), p(8, 16, true), p(16, 32, false)],
        99,
        200,
        &[],
    );
    let mut d = Defrag::default();
    let mut rng = Rng(5);
    let mut got = None;
    let mut peak = 0;
    for i in 0..100_000u32 {
        // A lone fragment (first or later, 8 to 1,480 bytes) from a source of 10.0.0.0/8.
        let len = 8 + rng.below(185) * 8;
        let off = (rng.below(2) * 8 * (1 + rng.below(100))) as u32;
        let mut f = v4(17, &[], &vec![0u8; len]);
        f[4..6].copy_from_slice(&(i as u16).to_be_bytes());
        f[6..8].copy_from_slice(&(0x2000 | (off / 8) as u16).to_be_bytes());
        f[12..16].copy_from_slice(&(0x0a00_0000 | i).to_be_bytes());
        seal(&mut f);
        feed(&mut d, u64::from(i / 100), &[f]);
        peak = peak.max(d.bytes());
        // The real scanner's three fragments, back to back, half-way through.
        if i == 50_000 {
            let outs = feed(&mut d, 500, &real);
            got = Some(probe_of(&outs[2]));
        }
    }
    assert_eq!(got.map(|x| x.dst_port), Some(5));
    assert!(peak <= MEM_CAP, "{peak}");
    assert_eq!(d.stats().peak_bytes, peak);
    assert!(d.stats().evicted > 50_000, "{:?}", d.stats());
    assert!(d.len() > 2_000, "the cache holds {} datagrams", d.len());
}

/// One source cannot take more than its share: another's datagram still gets in.
#[test]
fn one_source_gets_its_share_and_no_more() {
    let whole = syn32();
    let mut d = Defrag::default();
    let mut over = 0;
    for i in 0..20_000u16 {
        let f = frags4(&whole, &[p(0, 8, true)], i, 66, &[]);
        if feed(&mut d, 0, &f) == vec![Outcome::Dropped(Drop::OverShare)] {
            over += 1;
        }
    }
    assert!(over > 10_000, "{over}");
    assert!(d.bytes() <= MEM_CAP / 8 + 1024, "{}", d.bytes());
    assert_eq!(
        d.stats().evicted,
        0,
        "one source never makes the cache evict"
    );
    let outs = feed(
        &mut d,
        0,
        &frags4(&whole, &[p(0, 8, true), p(8, 32, false)], 1, 3, &[]),
    );
    assert_eq!(probe_of(&outs[1]).dst_port, 5);
}

/// Random datagrams cut at random 8-byte boundaries, shuffled, with exact duplicates mixed
/// in: always the datagram that was sent.
#[test]
fn random_splits_with_duplicates_always_reassemble() {
    let mut rng = Rng(99);
    for round in 0..500 {
        let mut t = tcp(1 + rng.below(1000) as u16, SYN);
        t.extend((0..12 + rng.below(300)).map(|_| rng.next() as u8));
        let v6_round = round % 2 == 1;
        let whole = if v6_round { v6(6, &t) } else { v4(6, &[], &t) };
        let hlen = if v6_round { 40 } else { 20 };
        let n = (whole.len() - hlen) as u32;
        // Cut points: multiples of 8; IPv6's first fragment must hold the TCP header.
        let mut cuts: Vec<u32> = (1..n.div_ceil(8))
            .map(|k| k * 8)
            .filter(|&c| c < n && (!v6_round || c >= 24) && rng.below(3) == 0)
            .collect();
        if cuts.is_empty() {
            // At least two pieces (one would be no fragment at all).
            cuts.push(24);
        }
        cuts.insert(0, 0);
        cuts.push(n);
        let mut pieces: Vec<Piece> = cuts.windows(2).map(|w| p(w[0], w[1], w[1] < n)).collect();
        for _ in 0..rng.below(3) {
            let dup = pieces[rng.below(pieces.len())].clone();
            pieces.push(dup);
        }
        for i in (1..pieces.len()).rev() {
            pieces.swap(i, rng.below(i + 1));
        }
        let pkts = if v6_round {
            frags6(&whole, &pieces, round)
        } else {
            frags4(&whole, &pieces, round as u16, 2, &[])
        };
        let mut d = Defrag::default();
        let outs = feed(&mut d, 0, &pkts);
        let done: Vec<&Outcome> = outs
            .iter()
            .filter(|o| matches!(o, Outcome::Complete(_)))
            .collect();
        // Copies that come after the datagram is complete start another one, which may
        // complete too (as in the kernel): each is the datagram that was sent.
        assert!(!done.is_empty(), "round {round}: {outs:?}");
        for o in done {
            let Outcome::Complete(b) = o else {
                unreachable!()
            };
            assert_eq!(&b[hlen..], &whole[hlen..], "round {round}");
        }
    }
}
