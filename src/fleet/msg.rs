//! Every log line of the fleet (new in this implementation; 1.2 has no equivalents). Each keeps
//! the `adminalert:` / `attackalert:` prefixes that watchers match. No line ever holds a
//! password, token or API key: none of these functions takes one. Pure.

use std::net::IpAddr;

pub fn started(url: &str, push: bool, pull: bool, waiting: u64) -> String {
    let what = match (push, pull) {
        (true, true) => "pushing alerts and pulling decisions",
        (true, false) => "pushing alerts",
        _ => "pulling decisions",
    };
    if push {
        format!("adminalert: CrowdSec LAPI {url}: {what}; {waiting} alerts waiting in the spool")
    } else {
        format!("adminalert: CrowdSec LAPI {url}: {what}")
    }
}

pub fn link_lost(url: &str, why: &str, skipped: u32) -> String {
    let more = if skipped > 0 {
        format!(" ({skipped} more changes of the link in the last minute not logged)")
    } else {
        String::new()
    };
    format!(
        "adminalert: CrowdSec LAPI {url} unreachable: {why}; alerts wait in the spool and are sent when it is back{more}"
    )
}

pub fn link_regained(url: &str, down_ms: u64, waiting: u64, skipped: u32) -> String {
    let more = if skipped > 0 {
        format!(" ({skipped} more changes of the link in the last minute not logged)")
    } else {
        String::new()
    };
    format!(
        "adminalert: CrowdSec LAPI {url} reachable again after {} s; {waiting} alerts waiting are being sent{more}",
        down_ms.div_ceil(1000)
    )
}

pub fn login_refused(url: &str, login: &str, file: &str, status: u16, why: &str) -> String {
    format!(
        "adminalert: ERROR: CrowdSec LAPI {url} refused the login of machine \"{login}\" (HTTP {status}: {why}): check login and password in {file} (cscli machines list; cscli machines add {login} --auto -f {file}); alerts wait in the spool"
    )
}

pub fn key_refused(url: &str, file: &str, status: u16) -> String {
    format!(
        "adminalert: ERROR: CrowdSec LAPI {url} refused the bouncer key of {file} (HTTP {status}): check it with cscli bouncers list; no decisions are pulled until it is fixed"
    )
}

pub fn batch_refused(url: &str, n: usize, status: u16, why: &str) -> String {
    format!(
        "adminalert: ERROR: CrowdSec LAPI {url} refused {n} alerts for good (HTTP {status}: {why}); they are dropped from the spool"
    )
}

pub fn spool_full(dropped: u64, max_bytes: u64) -> String {
    format!(
        "adminalert: WARNING: CrowdSec spool full ({} MiB): {dropped} alerts dropped since the last such line (they were blocked locally but not sent)",
        max_bytes >> 20
    )
}

pub fn spool_torn(bytes: u64) -> String {
    format!(
        "adminalert: CrowdSec spool: a torn record at its end ({bytes} bytes, from an interrupted write) was dropped"
    )
}

pub fn spool_corrupt(lines: u64) -> String {
    format!("adminalert: WARNING: CrowdSec spool: {lines} damaged lines skipped")
}

pub fn spool_unusable(path: &str, why: &str) -> String {
    format!("adminalert: ERROR: CrowdSec spool {path}: {why}; alerts are kept in memory only")
}

pub fn recovered(found: usize, resend: usize) -> String {
    format!(
        "adminalert: CrowdSec LAPI: a request's outcome was unknown; the LAPI has {found} of its alerts, {resend} are sent again"
    )
}

pub fn not_applied(id: i64, value: &str, scenario: &str, why: &str, whole: bool) -> String {
    if whole {
        format!(
            "securityalert: CrowdSec decision {id} (ban {value}, {scenario}) not applied: {why}"
        )
    } else {
        format!(
            "securityalert: CrowdSec decision {id} (ban {value}, {scenario}) applied except where {why}"
        )
    }
}

pub fn apply_failed(why: &str) -> String {
    format!(
        "adminalert: ERROR: cannot apply CrowdSec decisions to nftables sets fleet4/fleet6: {why}"
    )
}

pub fn grouped(total: u64, secs: u64, top: &[((IpAddr, u8), u64)]) -> String {
    let mut parts: Vec<String> = top
        .iter()
        .take(3)
        .map(|((a, l), n)| format!("{n} from {a}/{l}"))
        .collect();
    let rest: u64 = top.iter().skip(3).map(|x| x.1).sum();
    if rest > 0 {
        parts.push(format!("{rest} from other prefixes"));
    }
    format!(
        "attackalert: Fleet alert limit: {total} detections in the last {secs} seconds went to the LAPI grouped per prefix (portsentry/flood, one ban each): {}.",
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_exact() {
        assert_eq!(
            link_lost("http://192.0.2.1:8080", "connection refused", 0),
            "adminalert: CrowdSec LAPI http://192.0.2.1:8080 unreachable: connection refused; alerts wait in the spool and are sent when it is back"
        );
        assert_eq!(
            link_regained("http://l", 30_200, 200, 1),
            "adminalert: CrowdSec LAPI http://l reachable again after 31 s; 200 alerts waiting are being sent (1 more changes of the link in the last minute not logged)"
        );
        assert_eq!(
            grouped(
                9990,
                10,
                &[
                    (("2001:db8:3::".parse().unwrap(), 64), 9980),
                    (("198.51.100.0".parse().unwrap(), 24), 10)
                ]
            ),
            "attackalert: Fleet alert limit: 9990 detections in the last 10 seconds went to the LAPI grouped per prefix (portsentry/flood, one ban each): 9980 from 2001:db8:3::/64, 10 from 198.51.100.0/24."
        );
        assert!(
            not_applied(
                4,
                "192.0.2.1",
                "manual",
                "192.0.2.1 is an address of this host",
                true
            )
            .starts_with("securityalert: ")
        );
        assert_eq!(
            spool_full(5, 32 << 20),
            "adminalert: WARNING: CrowdSec spool full (32 MiB): 5 alerts dropped since the last such line (they were blocked locally but not sent)"
        );
    }
}
