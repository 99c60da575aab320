//! The shell of `capture`: the ways a probe comes in. The classic modes' listening and bound
//! sockets (`listen`, `classic`); for the stealth and advanced modes the AF_PACKET socket with
//! its TPACKET_V3 ring and kernel filter (`ring`), their start-up and per-packet loop
//! (`stealth`), and this host's listening sockets from the kernel (`sockdiag`).

pub mod classic;
pub mod listen;
pub mod ring;
pub mod sockdiag;
pub mod stealth;
pub mod watches;
