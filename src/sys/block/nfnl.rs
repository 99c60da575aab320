//! The NETLINK_NETFILTER socket of the hot path: sends a batch made by `crate::block::nfnl` and
//! reads the kernel's answers. The kernel runs the whole transaction inside `send`, so the
//! answers are queued when it returns and are read without waiting (the socket is
//! non-blocking); nothing here ever blocks the event loop on another process.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};

use crate::block::nfnl::{self, Ack, Outcome, Request};

/// Send buffer: a batch goes out in one datagram, and netlink refuses one larger than the
/// buffer (EMSGSIZE). 4,096 IPv6 elements take about 165 KB.
const SNDBUF: usize = 1 << 20;
/// Receive buffer: a batch is answered by one acknowledgement per message (a few) and at
/// most one error per message.
const RCVBUF: usize = 1 << 20;
/// linux/netlink.h: acknowledge errors with the refused message's header only, not the
/// whole message (it may be 40 KB of elements).
const NETLINK_CAP_ACK: libc::c_int = 10;

/// A NETLINK_NETFILTER socket for element batches.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    /// Open and bind the socket.
    pub fn open() -> io::Result<Socket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkNetFilter,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        // Root (CAP_NET_ADMIN, which nftables needs anyway) may exceed [rw]mem_max.
        if setsockopt(&fd, sockopt::SndBufForce, &SNDBUF).is_err() {
            setsockopt(&fd, sockopt::SndBuf, &SNDBUF)?;
        }
        if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
            setsockopt(&fd, sockopt::RcvBuf, &RCVBUF)?;
        }
        let one: libc::c_int = 1;
        // SAFETY: fd is an open socket we own; optval points to a c_int that lives across
        // the call and optlen is its size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                NETLINK_CAP_ACK,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let seq = std::process::id().wrapping_mul(0x9e37_79b9);
        Ok(Socket {
            fd,
            seq,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Numbers for the next batch ([`crate::block::nfnl::add_elements`]'s `seq`).
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Sends `req` and judges the answers. Err: the socket failed (the caller drops it).
    pub fn transact(&mut self, req: &Request) -> io::Result<Outcome> {
        self.seq = req.next_seq;
        // Answers of an earlier batch left unread (none are expected) are dropped first.
        self.read_acks()?;
        let n = loop {
            match send(self.fd.as_raw_fd(), &req.bytes, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                r => break r?,
            }
        };
        if n != req.bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        let acks = self.read_acks()?;
        Ok(nfnl::outcome(req, &acks))
    }

    fn read_acks(&mut self) -> io::Result<Vec<Ack>> {
        let mut acks = Vec::new();
        loop {
            match recv(
                self.fd.as_fd().as_raw_fd(),
                &mut self.buf,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) => return Ok(acks),
                Ok(n) => acks.extend(nfnl::parse_acks(self.buf.get(..n).unwrap_or(&[]))),
                Err(Errno::EAGAIN) => return Ok(acks),
                Err(Errno::EINTR) => continue,
                // ENOBUFS: answers were dropped; those of this batch then count as missing.
                Err(Errno::ENOBUFS) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
