//! Detection modes and protocols: the six 1.2 command-line modes and the strings derived from
//! them (`$MODE$`, the blocked-file suffix, the `TCP`/`UDP` words in log and file lines).
//! Pure: no I/O.

use std::fmt;

/// Transport protocol a mode watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `TCP` or `UDP`, as 1.2 prints it in log and file lines.
    pub fn upper(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.upper())
    }
}

/// One of 1.2's six modes (`-tcp -udp -stcp -sudp -atcp -audp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// `-tcp`: bind TCP_PORTS, react to full connects.
    Tcp,
    /// `-udp`: bind UDP_PORTS, react to datagrams.
    Udp,
    /// `-stcp`: watch TCP_PORTS without binding.
    Stcp,
    /// `-sudp`: watch UDP_PORTS without binding.
    Sudp,
    /// `-atcp`: watch every unused TCP port below ADVANCED_PORTS_TCP.
    Atcp,
    /// `-audp`: watch every unused UDP port below ADVANCED_PORTS_UDP.
    Audp,
}

/// How a mode watches its ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bound sockets, full connects (`-tcp`, `-udp`).
    Classic,
    /// Listed ports watched without binding (`-stcp`, `-sudp`).
    Stealth,
    /// Every unused port below `ADVANCED_PORTS_*` (`-atcp`, `-audp`).
    Advanced,
}

impl Mode {
    /// Every mode, in 1.2's order.
    pub const ALL: [Mode; 6] = [
        Mode::Tcp,
        Mode::Udp,
        Mode::Stcp,
        Mode::Sudp,
        Mode::Atcp,
        Mode::Audp,
    ];

    /// The mode string: `$MODE$`, the blocked-file suffix, the argument without its `-`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Udp => "udp",
            Mode::Stcp => "stcp",
            Mode::Sudp => "sudp",
            Mode::Atcp => "atcp",
            Mode::Audp => "audp",
        }
    }

    /// The mode of a command-line name (`tcp`, `stcp`, ...).
    pub fn from_name(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Its protocol.
    pub fn proto(self) -> Proto {
        match self {
            Mode::Tcp | Mode::Stcp | Mode::Atcp => Proto::Tcp,
            Mode::Udp | Mode::Sudp | Mode::Audp => Proto::Udp,
        }
    }

    /// Classic, stealth or advanced.
    pub fn kind(self) -> Kind {
        match self {
            Mode::Tcp | Mode::Udp => Kind::Classic,
            Mode::Stcp | Mode::Sudp => Kind::Stealth,
            Mode::Atcp | Mode::Audp => Kind::Advanced,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_protocols() {
        for m in Mode::ALL {
            assert_eq!(Mode::from_name(m.as_str()), Some(m));
        }
        assert_eq!(Mode::from_name("-tcp"), None);
        assert_eq!(Mode::Atcp.proto(), Proto::Tcp);
        assert_eq!(Mode::Sudp.proto(), Proto::Udp);
        assert_eq!(Mode::Udp.kind(), Kind::Classic);
        assert_eq!(Proto::Udp.upper(), "UDP");
    }
}
