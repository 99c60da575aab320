//! Capture: the way in of a packet, up to the probe the engine judges. In the order a packet
//! passes them: the kernel filter that keeps unwatched ports out of the daemon (`bpf`), the
//! two copies of one packet from the ring and the doorbell socket (`dedup`), the typed view of
//! the IP packet (`wire`), the checksums the host's stack would verify (`csum`), fragment
//! reassembly as the host's stack does it (`defrag`), the probe's name from its flags
//! (`classify`), this host's socket table (`socktable`), the exact lookup of one TCP
//! connection (`socklookup`) and, with those facts, the decision
//! whether the packet is a hit for the stealth and advanced modes (`watch`).
//!
//! All pure: bytes and facts in, typed values out. The sockets, the ring and the kernel
//! dumps that feed them are the shell's `sys::capture`.

pub mod bpf;
pub mod classify;
pub mod csum;
pub mod dedup;
pub mod defrag;
pub mod socklookup;
pub mod socktable;
pub mod watch;
pub mod wire;
