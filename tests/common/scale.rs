//! A fleet of N hosts in namespaces for the scale benchmark (issue 20, `bench/fleet-scale.sh`):
//! a LAPI namespace holding a bridge (10.77.0.1/16, fd77::1/64), N host namespaces and one
//! scanner namespace joined to it by veth pairs. Host i (1-based) is 10.77.A.B with
//! A = 1 + (i-1)/250, B = 1 + (i-1)%250, and fd77::1:i; scanners are 10.77.250.x. These
//! addresses live only inside the namespaces. Everything made is removed on drop.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::must;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Host i's IPv4 address (1-based).
pub fn addr4(i: u32) -> String {
    format!("10.77.{}.{}", 1 + (i - 1) / 250, 1 + (i - 1) % 250)
}

/// Host i's IPv6 address.
pub fn addr6(i: u32) -> String {
    format!("fd77::1:{i:x}")
}

/// Scanner address number k (0-based).
pub fn scanner4(k: u32) -> String {
    format!("10.77.250.{}", 10 + k)
}

/// The LAPI's address and port on the bridge.
pub const LAPI: &str = "10.77.0.1:8080";

pub struct Scale {
    pub lapi: String,
    pub scanner: String,
    pub scanner_if: String,
    /// Host namespaces, host 1 first.
    pub hosts: Vec<String>,
}

impl Scale {
    /// The LAPI namespace, `n` hosts and the scanner (with `scanners` addresses).
    pub fn new(n: u32, scanners: u32) -> Scale {
        let k = SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{k}", std::process::id() % 10_000);
        let s = Scale {
            lapi: format!("psL{id}"),
            scanner: format!("psS{id}"),
            scanner_if: format!("z{id}s"),
            hosts: (1..=n).map(|i| format!("psH{id}x{i}")).collect(),
        };
        let l = &s.lapi;
        let mut script = format!(
            "set -e\nip netns add {l}\nip -n {l} link set lo up\n\
             ip -n {l} link add br0 type bridge\nip -n {l} link set br0 up\n\
             ip -n {l} addr add 10.77.0.1/16 dev br0\nip -n {l} addr add fd77::1/64 dev br0 nodad\n"
        );
        let mut add = |ns: &str, dev: &str, a4: &str, a6: &str| {
            script.push_str(&format!(
                "ip netns add {ns}\nip -n {ns} link set lo up\n\
                 ip link add {dev} netns {ns} type veth peer name p{dev} netns {l}\n\
                 ip -n {l} link set p{dev} master br0\nip -n {l} link set p{dev} up\n\
                 ip -n {ns} addr add {a4}/16 dev {dev}\nip -n {ns} addr add {a6}/64 dev {dev} nodad\n\
                 ip -n {ns} link set {dev} up\n"
            ));
        };
        for (i, ns) in s.hosts.iter().enumerate() {
            let i = i as u32 + 1;
            add(ns, &format!("z{id}h{i}"), &addr4(i), &addr6(i));
        }
        add(&s.scanner, &s.scanner_if, "10.77.250.1", "fd77::250:1");
        for k in 0..scanners {
            script.push_str(&format!(
                "ip -n {} addr add {}/16 dev {}\n",
                s.scanner,
                scanner4(k),
                s.scanner_if
            ));
        }
        let path = std::env::temp_dir().join(format!("{}.sh", s.lapi));
        std::fs::write(&path, script).unwrap();
        must(&format!("sh {}", path.display()));
        let _ = std::fs::remove_file(path);
        s
    }
}

impl Drop for Scale {
    fn drop(&mut self) {
        let mut all = vec![self.lapi.clone(), self.scanner.clone()];
        all.extend(self.hosts.iter().cloned());
        let script: String = all
            .iter()
            .map(|ns| format!("ip netns del {ns} 2>/dev/null\n"))
            .collect();
        let _ = Command::new("sh").arg("-c").arg(script).status();
    }
}
