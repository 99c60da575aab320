//! Measures `Stats::note_probe` under a flood of distinct forged sources (the daemon's worst
//! case for the top lists; N sources spread over a day, so every window slot is full), and
//! the cost of a snapshot after it: `cargo run --release --example stats_flood [N]`.
use portsentry::config::mode::Mode;
use portsentry::observe::stats::{ProbeKind, Stats};
use std::net::{IpAddr, Ipv6Addr};
fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut s = Stats::new(1_796_043_600, &[Mode::Sudp]);
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let a = IpAddr::V6(Ipv6Addr::from(
            0x2001_0db8_0003_0000_u128 << 64 | u128::from(i).wrapping_mul(0x9e3779b97f4a7c15),
        ));
        s.note_probe(
            1_796_043_600 + i64::from(i) * 86_400 / i64::from(n),
            a,
            7,
            Mode::Sudp,
            ProbeKind::Udp,
        );
    }
    let el = t0.elapsed();
    println!(
        "{n} forged sources: {:.0} ns per note_probe, {} keys held",
        el.as_nanos() as f64 / f64::from(n),
        s.top_keys_held()
    );
    let id = portsentry::observe::stats::Identity::default();
    let tz = jiff::tz::TimeZone::UTC;
    let t0 = std::time::Instant::now();
    let snap = s.snapshot(1_796_043_600 + 86_399, &id, &tz);
    let full = t0.elapsed();
    let t0 = std::time::Instant::now();
    let _ = s.counters_snapshot(1_796_043_600 + 86_399, &id, &tz);
    println!(
        "status snapshot {:.2} ms ({} top sources), metrics snapshot {:.3} ms",
        full.as_secs_f64() * 1e3,
        snap.top_sources.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
}
