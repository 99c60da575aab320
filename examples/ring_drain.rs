//! The least a reader of the daemon's capture can do (issue 23, item 3): the same ring
//! (`sys::capture::Capture`, 64 blocks of 32 KiB) and the same kernel filter (`bpf::compile`
//! of the watched TCP ports), read as the daemon reads it (poll, then hand every packet of
//! every released block to a closure), but the closure only counts. `bench/capture-rate.py`
//! runs it beside the daemon to find the packet rate at which each starts to lose packets in
//! the ring on this machine.
//!
//! ```text
//! ring_drain --ports 1,11,15 --secs 6      (root, in the target namespace)
//! ```
//!
//! Prints one line: `read N packets, ring saw P, dropped D`.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use portsentry::bpf::{self, FilterSpec, PortSet};
use portsentry::sys::capture::Capture;

/// Read the capture ring, counting only.
#[derive(Parser)]
struct Args {
    /// Watched TCP ports (the kernel filter passes these).
    #[arg(long, value_delimiter = ',', required = true)]
    ports: Vec<u16>,
    /// Read for this many seconds.
    #[arg(long)]
    secs: f64,
}

fn main() {
    let a = Args::parse();
    let prog = bpf::compile(&FilterSpec {
        tcp: Some(PortSet::from_ports(a.ports)),
        udp: None,
        // As the daemon's TCP modes: SCTP to those ports and ICMP requests pass too.
        other: true,
    });
    let mut cap = Capture::open(&prog, None, None).unwrap_or_else(|e| {
        eprintln!("ring_drain: cannot open the capture: {e}");
        std::process::exit(1)
    });
    let t0 = Instant::now();
    let until = Duration::from_secs_f64(a.secs.clamp(0.1, 600.0));
    let (mut read, mut bytes) = (0u64, 0u64);
    let (mut seen, mut dropped) = (0u64, 0u64);
    println!("ready");
    while t0.elapsed() < until {
        let n = cap.drain(|_, p| bytes += p.len() as u64);
        read += n as u64;
        if n == 0 {
            let fd = cap.fd().expect("the ring is attached");
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(100u16));
        }
        // The counters reset when read: add them up.
        if let Ok(s) = cap.stats() {
            seen += u64::from(s.packets);
            dropped += u64::from(s.drops);
        }
    }
    println!("read {read} packets ({bytes} bytes), ring saw {seen}, dropped {dropped}");
}
