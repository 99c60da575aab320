//! Lines of the fleet (issue 12: CrowdSec's Local API; 1.2 has no equivalents). They keep the
//! `adminalert:` / `attackalert:` / `securityalert:` prefixes that watchers match, and no line
//! ever holds a password, token or API key: none of these functions takes one. The fleet
//! thread formats them; the event loop logs them (`sys::fleet::Fleet::take_log`).

use std::net::IpAddr;
use std::path::Path;

/// Which side of the link a line is about: pushing alerts (the machine's login) or pulling
/// decisions (the bouncer key). They fail apart (a refused key, a LAPI that answers alerts
/// but not the stream), so each says what it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Alerts to the LAPI.
    Push,
    /// The decision stream from it.
    Pull,
}

/// Text from the LAPI (a decision's value or scenario, an error message, anything the
/// other end of the link chose) made safe for a log line (issue 24): at most `max`
/// characters of it (then `...`), printable ASCII kept, `\` written `\\`, every other
/// byte (control bytes such as LF and ESC, DEL, each byte of a non-ASCII character) written
/// as `\xHH`. So no LAPI can forge a second syslog line or send a terminal escape.
pub fn lapi_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 3);
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        if c == '\\' {
            out.push_str("\\\\");
        } else if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            let mut b = [0u8; 4];
            for x in c.encode_utf8(&mut b).bytes() {
                out.push_str(&format!("\\x{x:02x}"));
            }
        }
    }
    out
}

/// Clip of LAPI error messages and reasons in lines.
const WHY_MAX: usize = 200;
/// Clip of a decision's value and scenario in lines.
const FIELD_MAX: usize = 64;

/// ` (N more changes of the link in the last minute not logged)` when N > 0.
fn skipped_text(skipped: u32) -> String {
    if skipped > 0 {
        format!(
            " ({} of the link in the last minute not logged)",
            super::count(skipped.into(), "more change", "more changes")
        )
    } else {
        String::new()
    }
}

/// At start and reload: `adminalert: CrowdSec LAPI {url}: pushing alerts and pulling
/// decisions; {n} alerts waiting in the spool` (`pushing alerts; ...`, or `pulling decisions`
/// alone without the spool part).
pub fn fleet_started(url: &str, push: bool, pull: bool, waiting: u64) -> String {
    let what = match (push, pull) {
        (true, true) => "pushing alerts and pulling decisions",
        (true, false) => "pushing alerts",
        _ => "pulling decisions",
    };
    if push {
        format!(
            "adminalert: CrowdSec LAPI {url}: {what}; {} waiting in the spool",
            super::count(waiting, "alert", "alerts")
        )
    } else {
        format!("adminalert: CrowdSec LAPI {url}: {what}")
    }
}

/// The link was lost (at most one such line a minute, see `fleet::link`):
/// `adminalert: CrowdSec LAPI {url} unreachable: {why}; alerts wait in the spool and are sent
/// when it is back` (pushing), or `...; no decisions are pulled until it is back (those
/// applied stay until they end)` (pulling).
pub fn fleet_link_lost(side: Side, url: &str, why: &str, skipped: u32) -> String {
    let what = match side {
        Side::Push => "alerts wait in the spool and are sent when it is back",
        Side::Pull => {
            "no decisions are pulled until it is back (those applied stay until they end)"
        }
    };
    format!(
        "adminalert: CrowdSec LAPI {url} unreachable: {}; {what}{}",
        lapi_text(why, WHY_MAX),
        skipped_text(skipped)
    )
}

/// The link is back after a logged loss: `adminalert: CrowdSec LAPI {url} reachable again
/// after {s} s; {n} alerts waiting are being sent` (pushing) or `...; pulling decisions
/// again` (pulling).
pub fn fleet_link_regained(
    side: Side,
    url: &str,
    down_ms: u64,
    waiting: u64,
    skipped: u32,
) -> String {
    let what = match side {
        Side::Push if waiting == 1 => "1 alert waiting is being sent".to_string(),
        Side::Push => format!("{waiting} alerts waiting are being sent"),
        Side::Pull => "pulling decisions again".to_string(),
    };
    format!(
        "adminalert: CrowdSec LAPI {url} reachable again after {} s; {what}{}",
        down_ms.div_ceil(1000),
        skipped_text(skipped)
    )
}

/// The LAPI answers pulls slowly (logged at most once a minute): `adminalert: CrowdSec LAPI
/// {url} answers slowly ({ms} ms): pulling decisions every {n} s instead of {i} s until it is
/// fast again`.
pub fn fleet_pull_slow(url: &str, took_ms: u64, every_ms: u64, interval_ms: u64) -> String {
    format!(
        "adminalert: CrowdSec LAPI {url} answers slowly ({took_ms} ms): pulling decisions every {} s instead of {} s until it is fast again",
        every_ms.div_ceil(1000),
        interval_ms.div_ceil(1000)
    )
}

/// The LAPI answers pulls fast again (after a logged slowness): `adminalert: CrowdSec LAPI
/// {url} answers fast again ({ms} ms): pulling decisions every {i} s`.
pub fn fleet_pull_fast(url: &str, took_ms: u64, interval_ms: u64) -> String {
    format!(
        "adminalert: CrowdSec LAPI {url} answers fast again ({took_ms} ms): pulling decisions every {} s",
        interval_ms.div_ceil(1000)
    )
}

/// The LAPI refused the machine's login (logged once until it works):
/// `adminalert: ERROR: CrowdSec LAPI {url} refused the login of machine "{login}" (HTTP
/// {status}: {why}): check login and password in {file} (...); alerts wait in the spool`.
pub fn fleet_login_refused(url: &str, login: &str, file: &Path, status: u16, why: &str) -> String {
    let file = file.display();
    let why = lapi_text(why, WHY_MAX);
    format!(
        "adminalert: ERROR: CrowdSec LAPI {url} refused the login of machine \"{login}\" (HTTP {status}: {why}): check login and password in {file} (cscli machines list; cscli machines add {login} --auto -f {file}); alerts wait in the spool"
    )
}

/// The LAPI refused a client certificate (logged once until it works): `adminalert: ERROR:
/// CrowdSec LAPI {url}: {why}; alerts wait in the spool` (pushing) or `...; no decisions are
/// pulled until it is fixed` (pulling). `why` names the certificate's file and the reason
/// (`sys::fleet::tls`); it is ours, not the LAPI's, so it is not clipped.
pub fn fleet_cert_refused(side: Side, url: &str, why: &str) -> String {
    let what = match side {
        Side::Push => "alerts wait in the spool",
        Side::Pull => "no decisions are pulled until it is fixed",
    };
    format!("adminalert: ERROR: CrowdSec LAPI {url}: {why}; {what}")
}

/// The LAPI refused the bouncer key (logged once until it works).
pub fn fleet_key_refused(url: &str, file: &Path, status: u16) -> String {
    format!(
        "adminalert: ERROR: CrowdSec LAPI {url} refused the bouncer key of {} (HTTP {status}): check it with cscli bouncers list; no decisions are pulled until it is fixed",
        file.display()
    )
}

/// The LAPI refused a request for good (a 4xx other than 401/403): its alerts are dropped.
pub fn fleet_batch_refused(url: &str, n: usize, status: u16, why: &str) -> String {
    format!(
        "adminalert: ERROR: CrowdSec LAPI {url} refused {} for good (HTTP {status}: {}); {} dropped from the spool",
        super::count(n as u64, "alert", "alerts"),
        lapi_text(why, WHY_MAX),
        if n == 1 { "it is" } else { "they are" }
    )
}

/// The spool reached its bound: `adminalert: WARNING: CrowdSec spool full ({m} MiB): {n}
/// alerts dropped since the last such line (they were blocked locally but not sent)`.
pub fn fleet_spool_full(dropped: u64, max_bytes: u64) -> String {
    format!(
        "adminalert: WARNING: CrowdSec spool full ({} MiB): {} dropped since the last such line (blocked locally but not sent)",
        max_bytes >> 20,
        super::count(dropped, "alert", "alerts")
    )
}

/// At start: a line torn by an interrupted write was cut off the spool's end.
pub fn fleet_spool_torn(bytes: u64) -> String {
    format!(
        "adminalert: CrowdSec spool: a torn record at its end ({bytes} bytes, from an interrupted write) was dropped"
    )
}

/// At start: lines that failed their CRC before the end (corruption) were skipped.
pub fn fleet_spool_corrupt(lines: u64) -> String {
    format!("adminalert: WARNING: CrowdSec spool: {lines} damaged lines skipped")
}

/// At start: the spool had no readable first line; it was renamed, not trusted.
pub fn fleet_spool_set_aside(path: &Path, moved_to: &Path) -> String {
    format!(
        "adminalert: WARNING: CrowdSec spool {} had no readable header; moved aside to {}",
        path.display(),
        moved_to.display()
    )
}

/// The loop could not append to the spool: those records are lost for the fleet (the hosts
/// are blocked locally all the same).
pub fn fleet_spool_write_failed(path: &Path, why: &str, lost: usize) -> String {
    format!(
        "adminalert: ERROR: CrowdSec spool {}: {why}: {} not sent (blocked locally)",
        path.display(),
        super::count(lost as u64, "alert", "alerts")
    )
}

/// Compacting the spool failed (retried a minute later); nothing is lost, the file only
/// stays larger.
pub fn fleet_spool_compact_failed(path: &Path, why: &str) -> String {
    format!(
        "adminalert: WARNING: CrowdSec spool {}: cannot compact it: {why}; retried in a minute",
        path.display()
    )
}

/// The HTTP client for the LAPI cannot be made (the CA file changed under a running daemon
/// and holds no certificate now): nothing goes to or comes from it until a reload fixes it.
pub fn fleet_client_failed(url: &str, file: &Path, why: &str) -> String {
    format!(
        "adminalert: ERROR: CrowdSec LAPI {url}: {why} ({}); nothing is exchanged with it until this is fixed and portsentry reloaded",
        file.display()
    )
}

/// After a request whose outcome was unknown, the LAPI was asked what it has.
pub fn fleet_recovered(found: usize, resend: usize) -> String {
    format!(
        "adminalert: CrowdSec LAPI: a request's outcome was unknown; the LAPI has {found} of its alerts, {resend} are sent again"
    )
}

/// A pulled decision that covers a protected or ignored address (once per decision):
/// `securityalert: CrowdSec decision {id} (ban {value}, {scenario}) not applied: {why}`, or
/// `... applied except where {why}` when only part of a range is refused.
pub fn fleet_not_applied(id: i64, value: &str, scenario: &str, why: &str, whole: bool) -> String {
    let (value, scenario) = (lapi_text(value, FIELD_MAX), lapi_text(scenario, FIELD_MAX));
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

/// A pulled decision refused before it is applied (issue 24: wider than
/// CROWDSEC_WIDEST_BAN, over the caps), once per decision: `securityalert: CrowdSec
/// decision {id} (ban {value}, {scenario}) refused: {why}`.
pub fn fleet_refused(id: i64, value: &str, scenario: &str, why: &str) -> String {
    format!(
        "securityalert: CrowdSec decision {id} (ban {}, {}) refused: {why}",
        lapi_text(value, FIELD_MAX),
        lapi_text(scenario, FIELD_MAX)
    )
}

/// More refused (or partly applied) decisions in one answer than are logged one by one:
/// `securityalert: CrowdSec: {n} more decisions refused or not applied in this pull, not
/// logged one by one (ids {first} to {last}; cscli decisions list shows them)`.
pub fn fleet_refused_more(n: u64, first: i64, last: i64) -> String {
    format!(
        "securityalert: CrowdSec: {} refused or not applied in this pull, not logged one by one (ids {first} to {last}; cscli decisions list shows them)",
        super::count(n, "more decision", "more decisions")
    )
}

/// Objects of a stream answer that were skipped (at most one line a minute, counting since
/// the last): `adminalert: WARNING: CrowdSec LAPI {url}: {m} malformed decisions skipped (no
/// id, type, scope, value or duration, or one of another type), {k} beyond the cap of {cap}
/// per answer skipped`.
pub fn fleet_stream_skipped(url: &str, malformed: u64, over_cap: u64, cap: usize) -> String {
    let mut parts = Vec::new();
    if malformed > 0 {
        parts.push(format!(
            "{} skipped (no id, type, scope, value or duration, or one of another type)",
            super::count(malformed, "malformed decision", "malformed decisions")
        ));
    }
    if over_cap > 0 {
        parts.push(format!(
            "{} beyond the cap of {cap} per answer skipped",
            super::count(over_cap, "decision", "decisions")
        ));
    }
    format!(
        "adminalert: WARNING: CrowdSec LAPI {url}: {}",
        parts.join(", ")
    )
}

/// The LAPI URL's host name does not resolve (logged once until it does): its addresses
/// cannot be protected from blocking meanwhile.
pub fn fleet_lapi_unresolved(name: &str, why: &str) -> String {
    format!(
        "adminalert: WARNING: CrowdSec LAPI host {} cannot be resolved ({}): its addresses are not protected from blocking until it is (tried again every minute)",
        lapi_text(name, FIELD_MAX),
        lapi_text(why, WHY_MAX)
    )
}

/// The LAPI URL's host name resolved to other addresses than before (at start, after a
/// reload): `adminalert: CrowdSec LAPI host {name} is {a}, {b}: never blocked`.
pub fn fleet_lapi_resolved(name: &str, addrs: &[IpAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!(
        "adminalert: CrowdSec LAPI host {} is {}: never blocked",
        lapi_text(name, FIELD_MAX),
        if list.is_empty() {
            "no address".to_string()
        } else {
            list.join(", ")
        }
    )
}

/// The LAPI is reached over plain http on the network (`--check`: `warning: ` before it;
/// at start-up [`fleet_plain_http`]).
pub fn fleet_plain_http_text(url: &str, from: &str) -> String {
    format!(
        "CrowdSec LAPI {url} ({from}) is plain http to another host: the bouncer key, the machine's password and its login token cross the network unencrypted; serve the LAPI over https (README \"Fleets\", \"https\")"
    )
}

/// At start-up and reload: `adminalert: WARNING: CrowdSec LAPI {url} ({from}) is plain http
/// to another host: ...`.
pub fn fleet_plain_http(url: &str, from: &str) -> String {
    format!("adminalert: WARNING: {}", fleet_plain_http_text(url, from))
}

/// The fleet thread caught a panic (at most one line a minute): a bug, reported as such;
/// detection and local blocking are not affected, the thread tries again.
pub fn fleet_thread_failed(why: &str) -> String {
    format!(
        "adminalert: ERROR: CrowdSec fleet thread failed ({}); it tries again in 10 s, reading the whole decision stream; detection and local blocking go on",
        lapi_text(why, WHY_MAX)
    )
}

/// nft refused the change of the fleet sets (at most one line a minute).
pub fn fleet_apply_failed(why: &str) -> String {
    format!(
        "adminalert: ERROR: cannot apply CrowdSec decisions to nftables sets fleet4/fleet6: {why}"
    )
}

/// Every 10 s while the alert limits group: `attackalert: Fleet alert limit: {n} detections in
/// the last {s} seconds went to the LAPI in grouped alerts (portsentry/flood, one ban each):
/// {n1} from {prefix1}, ... .` (the three largest source prefixes, then the rest of `n`).
pub fn fleet_grouped(total: u64, secs: u64, top: &[((IpAddr, u8), u64)]) -> String {
    let mut parts: Vec<String> = top
        .iter()
        .take(3)
        .map(|((a, l), n)| format!("{n} from {a}/{l}"))
        .collect();
    let named: u64 = top.iter().take(3).map(|x| x.1).sum();
    let rest = total.saturating_sub(named);
    if rest > 0 {
        parts.push(format!("{rest} from other prefixes"));
    }
    format!(
        "attackalert: Fleet alert limit: {} in the last {secs} seconds went to the LAPI in grouped alerts (portsentry/flood, one ban each): {}.",
        super::count(total, "detection", "detections"),
        parts.join(", ")
    )
}

/// Pulling was turned off by a reload: the bans it had applied are removed.
pub fn fleet_pull_stopped(removed: usize) -> String {
    format!(
        "adminalert: CrowdSec decisions no longer pulled (CROWDSEC_BOUNCER_KEY_FILE unset): {} removed from sets fleet4/fleet6",
        super::count(removed as u64, "piece", "pieces")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::report::fixtures::*;

    #[test]
    fn start_and_link_lines_are_exact() {
        assert_eq!(
            fleet_started("http://192.0.2.1:8080/", true, true, 3),
            "adminalert: CrowdSec LAPI http://192.0.2.1:8080/: pushing alerts and pulling decisions; 3 alerts waiting in the spool"
        );
        assert_eq!(
            fleet_started("http://l/", true, false, 0),
            "adminalert: CrowdSec LAPI http://l/: pushing alerts; 0 alerts waiting in the spool"
        );
        assert_eq!(
            fleet_started("http://l/", false, true, 9),
            "adminalert: CrowdSec LAPI http://l/: pulling decisions"
        );
        assert_eq!(
            fleet_link_lost(Side::Push, "http://192.0.2.1:8080", "connection refused", 0),
            "adminalert: CrowdSec LAPI http://192.0.2.1:8080 unreachable: connection refused; alerts wait in the spool and are sent when it is back"
        );
        assert_eq!(
            fleet_link_lost(Side::Pull, "http://l", "timed out", 2),
            "adminalert: CrowdSec LAPI http://l unreachable: timed out; no decisions are pulled until it is back (those applied stay until they end) (2 more changes of the link in the last minute not logged)"
        );
        assert_eq!(
            fleet_link_regained(Side::Push, "http://l", 30_200, 200, 1),
            "adminalert: CrowdSec LAPI http://l reachable again after 31 s; 200 alerts waiting are being sent (1 more change of the link in the last minute not logged)"
        );
        assert_eq!(
            fleet_link_regained(Side::Push, "http://l", 1_000, 1, 0),
            "adminalert: CrowdSec LAPI http://l reachable again after 1 s; 1 alert waiting is being sent"
        );
        assert_eq!(
            fleet_started("http://l", true, false, 1),
            "adminalert: CrowdSec LAPI http://l: pushing alerts; 1 alert waiting in the spool"
        );
        assert_eq!(
            fleet_batch_refused("http://l", 1, 422, "bad"),
            "adminalert: ERROR: CrowdSec LAPI http://l refused 1 alert for good (HTTP 422: bad); it is dropped from the spool"
        );
        assert_eq!(
            fleet_link_regained(Side::Pull, "http://l", 2_000, 0, 0),
            "adminalert: CrowdSec LAPI http://l reachable again after 2 s; pulling decisions again"
        );
    }

    #[test]
    fn refusal_lines_are_exact_and_name_the_file() {
        let file = Path::new("/etc/portsentry/crowdsec-lapi.yaml");
        assert_eq!(
            fleet_login_refused(
                "http://l/",
                "web1",
                file,
                401,
                "incorrect Username or Password"
            ),
            "adminalert: ERROR: CrowdSec LAPI http://l/ refused the login of machine \"web1\" (HTTP 401: incorrect Username or Password): check login and password in /etc/portsentry/crowdsec-lapi.yaml (cscli machines list; cscli machines add web1 --auto -f /etc/portsentry/crowdsec-lapi.yaml); alerts wait in the spool"
        );
        assert_eq!(
            fleet_key_refused("http://l/", Path::new("/k"), 403),
            "adminalert: ERROR: CrowdSec LAPI http://l/ refused the bouncer key of /k (HTTP 403): check it with cscli bouncers list; no decisions are pulled until it is fixed"
        );
        assert_eq!(
            fleet_cert_refused(
                Side::Push,
                "https://l",
                "the LAPI refused the client certificate /a.pem (CN web1, OU x) (HTTP 403: access forbidden): why"
            ),
            "adminalert: ERROR: CrowdSec LAPI https://l: the LAPI refused the client certificate /a.pem (CN web1, OU x) (HTTP 403: access forbidden): why; alerts wait in the spool"
        );
        assert_eq!(
            fleet_cert_refused(Side::Pull, "https://l", "why"),
            "adminalert: ERROR: CrowdSec LAPI https://l: why; no decisions are pulled until it is fixed"
        );
        assert_eq!(
            fleet_batch_refused("http://l/", 7, 400, "bad request"),
            "adminalert: ERROR: CrowdSec LAPI http://l/ refused 7 alerts for good (HTTP 400: bad request); they are dropped from the spool"
        );
    }

    #[test]
    fn spool_lines_are_exact() {
        assert_eq!(
            fleet_spool_full(5, 32 << 20),
            "adminalert: WARNING: CrowdSec spool full (32 MiB): 5 alerts dropped since the last such line (blocked locally but not sent)"
        );
        assert_eq!(
            fleet_spool_torn(25),
            "adminalert: CrowdSec spool: a torn record at its end (25 bytes, from an interrupted write) was dropped"
        );
        assert_eq!(
            fleet_spool_corrupt(2),
            "adminalert: WARNING: CrowdSec spool: 2 damaged lines skipped"
        );
        assert_eq!(
            fleet_spool_set_aside(
                Path::new("/s/crowdsec.spool"),
                Path::new("/s/crowdsec.spool.bad")
            ),
            "adminalert: WARNING: CrowdSec spool /s/crowdsec.spool had no readable header; moved aside to /s/crowdsec.spool.bad"
        );
        assert_eq!(
            fleet_spool_write_failed(
                Path::new("/s/crowdsec.spool"),
                "No space left on device (os error 28)",
                3
            ),
            "adminalert: ERROR: CrowdSec spool /s/crowdsec.spool: No space left on device (os error 28): 3 alerts not sent (blocked locally)"
        );
        assert_eq!(
            fleet_spool_compact_failed(
                Path::new("/s/crowdsec.spool"),
                "Read-only file system (os error 30)"
            ),
            "adminalert: WARNING: CrowdSec spool /s/crowdsec.spool: cannot compact it: Read-only file system (os error 30); retried in a minute"
        );
        assert_eq!(
            fleet_client_failed(
                "https://l",
                Path::new("/etc/portsentry/crowdsec-lapi.yaml"),
                "ca_cert_path holds no PEM certificate"
            ),
            "adminalert: ERROR: CrowdSec LAPI https://l: ca_cert_path holds no PEM certificate (/etc/portsentry/crowdsec-lapi.yaml); nothing is exchanged with it until this is fixed and portsentry reloaded"
        );
        assert_eq!(
            fleet_recovered(3, 2),
            "adminalert: CrowdSec LAPI: a request's outcome was unknown; the LAPI has 3 of its alerts, 2 are sent again"
        );
    }

    #[test]
    fn decision_lines_are_exact() {
        assert_eq!(
            fleet_not_applied(
                4,
                "192.0.2.1",
                "manual",
                "192.0.2.1 is an address of this host",
                true
            ),
            "securityalert: CrowdSec decision 4 (ban 192.0.2.1, manual) not applied: 192.0.2.1 is an address of this host"
        );
        assert_eq!(
            fleet_not_applied(
                5,
                "192.0.2.0/24",
                "manual",
                "192.0.2.1 is an address of this host",
                false
            ),
            "securityalert: CrowdSec decision 5 (ban 192.0.2.0/24, manual) applied except where 192.0.2.1 is an address of this host"
        );
        assert_eq!(
            fleet_apply_failed("Error: No such file or directory"),
            "adminalert: ERROR: cannot apply CrowdSec decisions to nftables sets fleet4/fleet6: Error: No such file or directory"
        );
        assert_eq!(
            fleet_pull_stopped(12),
            "adminalert: CrowdSec decisions no longer pulled (CROWDSEC_BOUNCER_KEY_FILE unset): 12 pieces removed from sets fleet4/fleet6"
        );
    }

    #[test]
    fn text_from_the_lapi_is_escaped_and_clipped_in_every_line() {
        assert_eq!(
            lapi_text("manual 'ban' from 'x'", 64),
            "manual 'ban' from 'x'"
        );
        assert_eq!(
            lapi_text("a\nattackalert: forged\x1b[2J\u{7f}\\é", 64),
            "a\\x0aattackalert: forged\\x1b[2J\\x7f\\\\\\xc3\\xa9"
        );
        assert_eq!(lapi_text(&"x".repeat(100), 10), "xxxxxxxxxx...");
        let evil = "s\n\x1b]0;pwned\x07\r";
        for line in [
            fleet_not_applied(1, evil, evil, "192.0.2.1 is an address of this host", true),
            fleet_refused(1, evil, evil, "wider than /8 (CROWDSEC_WIDEST_BAN)"),
            fleet_link_lost(Side::Pull, "http://l", evil, 0),
            fleet_login_refused("http://l", "m", Path::new("/f"), 401, evil),
            fleet_batch_refused("http://l", 1, 400, evil),
            fleet_lapi_unresolved(evil, evil),
        ] {
            assert!(line.chars().all(|c| !c.is_control()), "{line:?}");
            assert!(line.contains("s\\x0a\\x1b]0;pwned\\x07\\x0d"), "{line}");
        }
        let long = "y".repeat(10_000);
        assert!(fleet_refused(1, &long, &long, "w").len() < 200);
    }

    #[test]
    fn hardening_lines_are_exact() {
        assert_eq!(
            fleet_refused(
                7,
                "0.0.0.0/0",
                "manual 'ban' from 'cscli'",
                "wider than /8 (CROWDSEC_WIDEST_BAN)"
            ),
            "securityalert: CrowdSec decision 7 (ban 0.0.0.0/0, manual 'ban' from 'cscli') refused: wider than /8 (CROWDSEC_WIDEST_BAN)"
        );
        assert_eq!(
            fleet_refused_more(99_980, 21, 100_000),
            "securityalert: CrowdSec: 99980 more decisions refused or not applied in this pull, not logged one by one (ids 21 to 100000; cscli decisions list shows them)"
        );
        assert_eq!(
            fleet_stream_skipped("http://l", 3, 0, 100_000),
            "adminalert: WARNING: CrowdSec LAPI http://l: 3 malformed decisions skipped (no id, type, scope, value or duration, or one of another type)"
        );
        assert_eq!(
            fleet_stream_skipped("http://l", 1, 5, 100_000),
            "adminalert: WARNING: CrowdSec LAPI http://l: 1 malformed decision skipped (no id, type, scope, value or duration, or one of another type), 5 decisions beyond the cap of 100000 per answer skipped"
        );
        assert_eq!(
            fleet_lapi_unresolved(
                "lapi.example",
                "failed to lookup address information: Name or service not known"
            ),
            "adminalert: WARNING: CrowdSec LAPI host lapi.example cannot be resolved (failed to lookup address information: Name or service not known): its addresses are not protected from blocking until it is (tried again every minute)"
        );
        assert_eq!(
            fleet_lapi_resolved("lapi.example", &[v4(192, 0, 2, 10), v6("2001:db8::10")]),
            "adminalert: CrowdSec LAPI host lapi.example is 192.0.2.10, 2001:db8::10: never blocked"
        );
        assert_eq!(
            fleet_plain_http(
                "http://192.0.2.10:8080",
                "the url of /etc/portsentry/crowdsec-lapi.yaml"
            ),
            "adminalert: WARNING: CrowdSec LAPI http://192.0.2.10:8080 (the url of /etc/portsentry/crowdsec-lapi.yaml) is plain http to another host: the bouncer key, the machine's password and its login token cross the network unencrypted; serve the LAPI over https (README \"Fleets\", \"https\")"
        );
    }

    #[test]
    fn grouped_line_names_the_three_largest_prefixes_then_the_rest() {
        assert_eq!(
            fleet_grouped(
                9990,
                10,
                &[
                    ((v6("2001:db8:3::"), 64), 9980),
                    ((v4(198, 51, 100, 0), 24), 10)
                ]
            ),
            "attackalert: Fleet alert limit: 9990 detections in the last 10 seconds went to the LAPI in grouped alerts (portsentry/flood, one ban each): 9980 from 2001:db8:3::/64, 10 from 198.51.100.0/24."
        );
        assert_eq!(
            fleet_grouped(
                10,
                10,
                &[
                    ((v4(192, 0, 2, 0), 24), 4),
                    ((v4(198, 51, 100, 0), 24), 3),
                    ((v4(203, 0, 113, 0), 24), 1),
                    ((v4(10, 0, 0, 0), 24), 1),
                    ((v4(10, 0, 1, 0), 24), 1)
                ]
            ),
            "attackalert: Fleet alert limit: 10 detections in the last 10 seconds went to the LAPI in grouped alerts (portsentry/flood, one ban each): 4 from 192.0.2.0/24, 3 from 198.51.100.0/24, 1 from 203.0.113.0/24, 2 from other prefixes."
        );
        // More prefixes than the limiter names: the rest of the total still counts.
        assert_eq!(
            fleet_grouped(20, 10, &[((v4(192, 0, 2, 0), 24), 4)]),
            "attackalert: Fleet alert limit: 20 detections in the last 10 seconds went to the LAPI in grouped alerts (portsentry/flood, one ban each): 4 from 192.0.2.0/24, 16 from other prefixes."
        );
    }
}
