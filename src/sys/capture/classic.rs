//! The classic modes (`-tcp`, `-udp`, §3.1): a connect or a datagram on a bound port is a
//! hit; PORT_BANNER goes back when the engine says so.

use std::io::{ErrorKind, Write};

use crate::engine::{Detail, Hit};
use crate::observe::report;

use crate::sys::capture::listen::Sock;
use crate::sys::daemon::event_loop::Daemon;

/// Connections or datagrams served per socket per wake-up, so one busy port cannot starve
/// the others or the signal handling.
const BURST: usize = 64;

impl Daemon {
    /// Serve one ready socket: accept connections / read datagrams, up to [`BURST`].
    pub(in crate::sys) fn serve(&mut self, i: usize) {
        let (mode, port) = (self.listeners[i].mode, self.listeners[i].port);
        let hit = |peer: std::net::SocketAddr| Hit {
            src: peer.ip().to_canonical(),
            port,
            mode,
            detail: Detail::Connect,
            ip_options: false,
        };
        for _ in 0..BURST {
            match &self.listeners[i].sock {
                Sock::Tcp(l) => match l.accept() {
                    Ok((mut stream, peer)) => {
                        let banner = self.hit(hit(peer));
                        if let (true, Some(b)) = (banner, self.cfg.port_banner.as_deref()) {
                            let _ = stream.set_nonblocking(true);
                            let _ = stream.write(b.as_bytes());
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(_) => {
                        self.log.log(&report::accept_failed(port));
                        return;
                    }
                },
                Sock::Udp(s) => {
                    let mut buf = [0u8; 1];
                    match s.recv_from(&mut buf) {
                        Ok((_, peer)) => {
                            let banner = self.hit(hit(peer));
                            if let (true, Some(b), Sock::Udp(s)) = (
                                banner,
                                self.cfg.port_banner.as_deref(),
                                &self.listeners[i].sock,
                            ) {
                                let _ = s.send_to(b.as_bytes(), peer);
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                        Err(_) => {
                            self.log.log(&report::could_not_accept_udp(port));
                            return;
                        }
                    }
                }
            }
        }
    }
}
