//! Measures the per-hit work of the daemon's core under the flood benchmark's shapes
//! (`bench/flood.py`, issue 23): `Engine::observe` with the benchmark's configuration
//! (`-stcp`, SCAN_TRIGGER="0", BLOCK_TCP="1", a KILL_ROUTE; the response jobs are never run,
//! so the flood queue stays full, as it does while the commands lag behind), then the top
//! lists' counting of the same hits (`Stats::note_probe` one by one, and `Stats::note_probes`
//! a round at a time, as the capture loop calls it). Forged SYNs to the benchmark's 9 ports:
//! `prefix4` from 256 sources of one /24, `all4` from a new random IPv4 source each packet.
//!
//! `cargo run --release --example engine_flood [N]` (N hits per shape, default 1,000,000;
//! 1,000 hits a millisecond of the engine's clock, rounds of 512 hits). Prints ns per hit,
//! the best of 3 runs, in this thread's CPU time.
use std::net::{IpAddr, Ipv4Addr};

use portsentry::capture::classify::TcpScanType;
use portsentry::config::ignore::IgnoreList;
use portsentry::config::mode::Mode;
use portsentry::config::protect::Protected;
use portsentry::config::{BlockMode, Config};
use portsentry::engine::{Context, Detail, Engine, Hit, Limits};
use portsentry::observe::stats::{ProbeKind, Stats};

const PORTS: [u16; 9] = [1, 11, 15, 79, 111, 119, 143, 540, 635];
const ROUND: usize = 512;
const EPOCH: i64 = 1_796_043_600;

/// The `i`-th forged hit of `shape` (xorshift-style mixing: no two shapes alike).
fn forged(shape: &str, i: u64) -> Hit {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i >> 7);
    let src = match shape {
        "prefix4" => Ipv4Addr::new(198, 18, 7, (x >> 40) as u8),
        // 1.0.0.0-223.255.255.255, as `forge --sources all-v4`.
        _ => Ipv4Addr::from(0x0100_0000 + ((x >> 16) as u32) % 0xdf00_0000),
    };
    Hit {
        src: IpAddr::V4(src),
        port: PORTS[(x >> 8) as usize % PORTS.len()],
        mode: Mode::Stcp,
        detail: Detail::TcpScan(TcpScanType::Syn),
        ip_options: false,
    }
}

/// This thread's CPU time in ns (the first field of /proc/thread-self/schedstat: a shared
/// machine's other work is not counted).
fn cpu_ns() -> u128 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn best_of_3(mut f: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = Config {
        scan_trigger: 0,
        block_tcp: BlockMode::Block,
        kill_route: Some("/bin/sh /tmp/route $TARGET$".into()),
        ..Config::default()
    };
    let ignore = IgnoreList::default();
    let target = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    let gateway = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 254));
    let protected = Protected::new([target], [], [gateway]);
    let ctx = Context {
        cfg: &cfg,
        ignore: &ignore,
        protected: &protected,
    };
    for shape in ["prefix4", "all4"] {
        let hits: Vec<Hit> = (0..n).map(|i| forged(shape, i)).collect();
        let engine = best_of_3(|| {
            let mut e = Engine::new(Limits::default());
            let t0 = cpu_ns();
            for (i, h) in hits.iter().enumerate() {
                let now = i as u64 / 1000;
                // What the capture asks before a round's fresh socket read (none is made
                // for a blocked source); once made, the round's other hits need not ask.
                if i % ROUND == 0 {
                    std::hint::black_box(e.already_blocked(h.src, h.mode.proto()));
                }
                std::hint::black_box(e.observe(now, h, &ctx));
            }
            (cpu_ns() - t0) as f64 / n as f64
        });
        let one = best_of_3(|| {
            let mut s = Stats::new(EPOCH, &[Mode::Stcp]);
            let t0 = cpu_ns();
            for (i, h) in hits.iter().enumerate() {
                let now = EPOCH + (i / 1_000_000) as i64;
                s.note_probe(now, h.src, h.port, h.mode, ProbeKind::Syn);
            }
            std::hint::black_box(s.top_keys_held());
            (cpu_ns() - t0) as f64 / n as f64
        });
        let batched = best_of_3(|| {
            let mut s = Stats::new(EPOCH, &[Mode::Stcp]);
            let t0 = cpu_ns();
            let mut round = Vec::with_capacity(ROUND);
            for (i, c) in hits.chunks(ROUND).enumerate() {
                let now = EPOCH + (i * ROUND / 1_000_000) as i64;
                round.clear();
                round.extend(c.iter().map(|h| (h.src, h.port, h.mode, ProbeKind::Syn)));
                s.note_probes(now, &round);
            }
            std::hint::black_box(s.top_keys_held());
            (cpu_ns() - t0) as f64 / n as f64
        });
        println!(
            "{shape}: {n} hits: engine {engine:.0} ns per hit; top lists {one:.0} ns per hit \
             one by one, {batched:.0} ns in rounds of {ROUND}"
        );
    }
}
