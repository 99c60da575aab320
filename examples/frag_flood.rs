//! Measures the reassembly path (`wire::parse` then `Defrag::push`, as the capture runs it)
//! for the fragment floods of bench/compare-1.2.py: `cargo run --release --example
//! frag_flood [N]`. Three workloads of N fragments each: lone fragments that never complete,
//! each from its own forged source (scenario G); a sweep of SYNs in nmap -f's three
//! fragments (scenario F); and the same sweep with its first fragments filtered out (as
//! the kernel filter drops first fragments to unwatched ports).
use portsentry::defrag::{Defrag, Outcome};
use portsentry::wire::{Meta, Packet, parse};

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn frag(src: u32, id: u16, off8: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0];
    p[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&(off8 | if more { 0x2000 } else { 0 }).to_be_bytes());
    p.extend_from_slice(&src.to_be_bytes());
    p.extend_from_slice(&[198, 51, 100, 1]);
    let c = csum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(data);
    p
}

fn run(name: &str, pkts: &[Vec<u8>]) {
    let mut d = Defrag::default();
    let t0 = std::time::Instant::now();
    let mut done = 0;
    for (i, p) in pkts.iter().enumerate() {
        if let Ok(Packet::Fragment(f)) = parse(p, Meta::whole(p.len()))
            && let Outcome::Complete(_) = d.push(i as u64 / 100, &f, true)
        {
            done += 1;
        }
    }
    let el = t0.elapsed();
    println!(
        "{name}: {:.0} ns per fragment ({} fragments, {done} datagrams completed, cache {} bytes, peak {})",
        el.as_nanos() as f64 / pkts.len() as f64,
        pkts.len(),
        d.bytes(),
        d.stats().peak_bytes
    );
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let base = u32::from_be_bytes([198, 18, 0, 0]);
    let lone: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let off = if i % 2 == 0 { 0 } else { 1 + (i % 1000) as u16 };
            frag(
                base + (i % 131_072),
                (i / 2) as u16,
                off,
                true,
                &[0x9c, 0x40, 0, 143, 0, 0, 0, 0],
            )
        })
        .collect();
    run("lone fragments, forged sources", &lone);
    let mut sweep = Vec::new();
    let mut later = Vec::new();
    for i in 0..n / 3 {
        let src = base + 16384 * 4 + (i % 16384);
        let port = (i % 65536) as u16;
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&port.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        let id = i as u16;
        let f = [
            frag(src, id, 0, true, &tcp[0..8]),
            frag(src, id, 1, true, &tcp[8..16]),
            frag(src, id, 2, false, &tcp[16..20]),
        ];
        later.extend_from_slice(&f[1..]);
        sweep.extend(f);
    }
    run("nmap -f sweep (3 fragments a SYN)", &sweep);
    run("the same, first fragments filtered", &later);
}
