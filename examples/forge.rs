//! The forged-source flood sender of `bench/flood.py` (issue 23): the end-to-end tests' own
//! sender (`tests/common/flood.rs`, included here as is), as a command. Run it inside the
//! scanner namespace (`ip netns exec NS`); it needs a raw socket (root).
//!
//! ```text
//! forge --sources all-v4 --target 198.51.100.1 --ports 1,11,15 --secs 10 --rate 200000
//! forge --sources 198.18.7.0/24 ...           one IPv4 prefix, pseudo-random hosts
//! forge --sources 2001:db8:ff00::/32 ...      an IPv6 prefix, pseudo-random hosts
//! forge --sources count:2001:db8:3::1:0 ...   one new address per packet, counting up
//! ```
//!
//! Prints one line: `sent N in S s (R/s, E ENOBUFS waits)`.

#[allow(dead_code)] // the tests use parts this command does not
#[path = "../tests/common/flood.rs"]
mod flood;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use clap::Parser;

/// Send a bounded flood of forged TCP SYNs or UDP datagrams.
#[derive(Parser)]
struct Args {
    /// all-v4, an IPv4 or IPv6 prefix (ADDR/LEN), or count:ADDR.
    #[arg(long)]
    sources: String,
    /// Destination address (the family of the sources).
    #[arg(long)]
    target: IpAddr,
    /// Destination ports, used in turn.
    #[arg(long, value_delimiter = ',', required = true)]
    ports: Vec<u16>,
    /// Send UDP datagrams instead of TCP SYNs.
    #[arg(long)]
    udp: bool,
    /// At most this many packets.
    #[arg(long, default_value_t = 100_000_000)]
    count: u64,
    /// At most this many seconds.
    #[arg(long)]
    secs: f64,
    /// Packets per second (default: as fast as the kernel takes them).
    #[arg(long)]
    rate: Option<u64>,
    /// Pseudo-random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn sources(s: &str) -> Result<flood::Sources, String> {
    if s == "all-v4" {
        return Ok(flood::Sources::AllV4);
    }
    if let Some(base) = s.strip_prefix("count:") {
        return match base.parse() {
            Ok(IpAddr::V6(base)) => Ok(flood::Sources::V6Counting { base }),
            _ => Err(format!(
                "--sources count:ADDR needs an IPv6 address, not {base:?}"
            )),
        };
    }
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("--sources: all-v4, ADDR/LEN or count:ADDR, not {s:?}"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("--sources {s:?}: bad prefix length"))?;
    match addr.parse() {
        Ok(IpAddr::V4(prefix)) if len <= 32 => Ok(flood::Sources::V4In { prefix, len }),
        Ok(IpAddr::V6(prefix)) if len <= 128 => Ok(flood::Sources::V6In { prefix, len }),
        _ => Err(format!("--sources {s:?}: bad address or prefix length")),
    }
}

fn main() {
    let a = Args::parse();
    let src = sources(&a.sources).unwrap_or_else(|e| {
        eprintln!("forge: {e}");
        std::process::exit(2)
    });
    let sent = flood::send(
        flood::Orders {
            sources: src,
            target: a.target,
            kind: if a.udp {
                flood::Kind::Udp
            } else {
                flood::Kind::Syn
            },
            ports: a.ports,
            count: a.count,
            max: Duration::from_secs_f64(a.secs),
            rate: a.rate,
            seed: a.seed,
            stop: None,
        },
        &AtomicU64::new(0),
    );
    println!(
        "sent {} in {:.2} s ({:.0}/s, {} ENOBUFS waits)",
        sent.packets,
        sent.secs,
        sent.rate(),
        sent.enobufs
    );
}
