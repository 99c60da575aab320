//! The fleet's portsentry.conf keys (parsed by `config::keys`, defined there once each) as one
//! typed value, the checks between them and other keys, and the defaults that depend on other
//! keys (`CROWDSEC_BAN_DURATION` follows `BLOCK_TIMEOUT`). Pure.

use std::path::{Path, PathBuf};

use crate::config::{BlockMethod, Config, Diagnostic, Severity};

/// Ban length when neither `CROWDSEC_BAN_DURATION` nor `BLOCK_TIMEOUT` gives one: CrowdSec's
/// own default profile bans for 4 hours. Never "forever": a fleet-wide ban on a forged
/// address must end by itself.
pub const DEFAULT_BAN_S: u64 = 4 * 3600;
/// Longest ban and pull interval accepted (one year, as `BLOCK_TIMEOUT`; one hour).
pub const MAX_BAN_S: u64 = 365 * 24 * 3600;
/// Longest CROWDSEC_PULL_INTERVAL accepted, in seconds (one hour).
pub const MAX_PULL_S: u64 = 3600;
/// Widest pulled ban applied by default (CROWDSEC_WIDEST_BAN), as prefix lengths: an IPv4
/// /8 and an IPv6 /32. Why: a /8 is the largest block IANA ever handed to one holder, and a
/// /32 the standard allocation an RIR makes to one ISP (RIPE-738, ARIN NRPM 6.5.2), so a ban
/// of one adversary's network never needs more; wider is "a part of the Internet", which no
/// decision about scans justifies and which `0.0.0.0/0`, typed by mistake or sent by a
/// rogue LAPI, would turn into a host cut off from everything.
pub const WIDEST_BAN: (u8, u8) = (8, 32);

/// `8,32`, `/16,/48` (spaces allowed): IPv4 and IPv6 prefix lengths.
pub fn parse_widest(v: &str) -> Option<(u8, u8)> {
    let (a, b) = v.split_once(',')?;
    let num = |s: &str, max: u8| {
        let s = s.trim();
        let s = s.strip_prefix('/').unwrap_or(s);
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u8>().ok().filter(|n| *n <= max)
    };
    Some((num(a, 32)?, num(b, 128)?))
}

/// The fleet keys as read from portsentry.conf. All absent: no fleet (nothing changes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keys {
    /// `CROWDSEC_CREDENTIALS`: CrowdSec's `local_api_credentials.yaml` format; set = push on.
    pub credentials: Option<PathBuf>,
    /// `CROWDSEC_BOUNCER_KEY_FILE`: one bouncer API key; set = pull on.
    pub bouncer_key_file: Option<PathBuf>,
    /// `CROWDSEC_BOUNCER_CERT_FILE`: a TLS client certificate instead of the key; set =
    /// pull on.
    pub bouncer_cert_file: Option<PathBuf>,
    /// `CROWDSEC_BOUNCER_CERT_KEY_FILE`: that certificate's private key.
    pub bouncer_cert_key_file: Option<PathBuf>,
    /// `CROWDSEC_LAPI_URL`: the LAPI when only pulling (else the credentials' url is used).
    pub lapi_url: Option<String>,
    /// `CROWDSEC_PULL_INTERVAL` seconds (1 when absent).
    pub pull_interval_s: Option<u64>,
    /// `CROWDSEC_BAN_DURATION` seconds (absent: see [`Keys::ban_duration_s`]).
    pub ban_duration_s: Option<u64>,
    /// `CROWDSEC_SEND_LOG_ONLY`: also send `BLOCK_x=0` reports, as alerts without a decision.
    pub send_log_only: bool,
    /// `CROWDSEC_WIDEST_BAN`: IPv4 and IPv6 prefix lengths (absent: [`WIDEST_BAN`]).
    pub widest_ban: Option<(u8, u8)>,
}

impl Keys {
    /// Push (alerts) is on.
    pub fn push(&self) -> bool {
        self.credentials.is_some()
    }

    /// Pull (decision stream) is on.
    pub fn pull(&self) -> bool {
        self.bouncer_key_file.is_some() || self.bouncer_cert_file.is_some()
    }

    /// The key that switches pull on, for messages: the key file's, else the certificate's.
    pub fn pull_key(&self) -> &'static str {
        if self.bouncer_key_file.is_none() && self.bouncer_cert_file.is_some() {
            "CROWDSEC_BOUNCER_CERT_FILE"
        } else {
            "CROWDSEC_BOUNCER_KEY_FILE"
        }
    }

    /// Any fleet key is set: push or pull.
    pub fn enabled(&self) -> bool {
        self.push() || self.pull()
    }

    /// CROWDSEC_WIDEST_BAN (default [`WIDEST_BAN`]).
    pub fn widest_ban(&self) -> (u8, u8) {
        self.widest_ban.unwrap_or(WIDEST_BAN)
    }

    /// CROWDSEC_PULL_INTERVAL in seconds (default 1).
    pub fn pull_interval_s(&self) -> u64 {
        self.pull_interval_s.unwrap_or(1)
    }

    /// `CROWDSEC_BAN_DURATION`, else `BLOCK_TIMEOUT`, else 4 hours (`BLOCK_TIMEOUT=0` means a
    /// local block never expires; a fleet ban always does).
    pub fn ban_duration_s(&self, block_timeout: u64) -> u64 {
        match (self.ban_duration_s, block_timeout) {
            (Some(s), _) => s,
            (None, 0) => DEFAULT_BAN_S,
            (None, t) => t.min(MAX_BAN_S),
        }
    }
}

/// Checks between the fleet keys and the rest of the config (the values themselves were
/// checked by their parsers). Files are not read here: `sys::fleet::load` does that.
pub fn validate(cfg: &Config, path: &Path) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let k = &cfg.fleet;
    let mut push = |severity, key: &str, message: String| {
        out.push(Diagnostic {
            path: path.to_path_buf(),
            line: cfg.lines.get(key).copied(),
            key: Some(key.to_string()),
            severity,
            message,
        })
    };
    if k.bouncer_key_file.is_some() && k.bouncer_cert_file.is_some() {
        push(
            Severity::Error,
            "CROWDSEC_BOUNCER_CERT_FILE",
            "and CROWDSEC_BOUNCER_KEY_FILE are mutually exclusive: the LAPI takes an API key or a client certificate, keep one".to_string(),
        );
    }
    for (set, key, other) in [
        (
            k.bouncer_cert_file.is_some() && k.bouncer_cert_key_file.is_none(),
            "CROWDSEC_BOUNCER_CERT_FILE",
            "needs CROWDSEC_BOUNCER_CERT_KEY_FILE (its private key)",
        ),
        (
            k.bouncer_cert_key_file.is_some() && k.bouncer_cert_file.is_none(),
            "CROWDSEC_BOUNCER_CERT_KEY_FILE",
            "has no effect without CROWDSEC_BOUNCER_CERT_FILE",
        ),
    ] {
        if set {
            push(Severity::Error, key, other.to_string());
        }
    }
    if k.pull() && cfg.block_method != BlockMethod::Nftables {
        push(
            Severity::Error,
            k.pull_key(),
            "needs BLOCK_METHOD=\"nftables\": pulled bans go into the fleet4/fleet6 sets of table inet portsentry".to_string(),
        );
    }
    if k.pull() && !k.push() && k.lapi_url.is_none() {
        push(
            Severity::Error,
            k.pull_key(),
            "needs CROWDSEC_LAPI_URL (or CROWDSEC_CREDENTIALS, whose url is then used)".to_string(),
        );
    }
    if k.push() && k.lapi_url.is_some() {
        push(
            Severity::Warning,
            "CROWDSEC_LAPI_URL",
            "is ignored: the url of CROWDSEC_CREDENTIALS is used for pushing and pulling"
                .to_string(),
        );
    }
    if !k.pull() && k.pull_interval_s.is_some() {
        push(
            Severity::Warning,
            "CROWDSEC_PULL_INTERVAL",
            "has no effect without CROWDSEC_BOUNCER_KEY_FILE".to_string(),
        );
    }
    if !k.pull() && k.widest_ban.is_some() {
        push(
            Severity::Warning,
            "CROWDSEC_WIDEST_BAN",
            "has no effect without CROWDSEC_BOUNCER_KEY_FILE".to_string(),
        );
    }
    if !k.push() && k.lapi_url.is_some() && !k.pull() {
        push(
            Severity::Warning,
            "CROWDSEC_LAPI_URL",
            "has no effect without CROWDSEC_BOUNCER_KEY_FILE".to_string(),
        );
    }
    for (key, set) in [
        ("CROWDSEC_BAN_DURATION", k.ban_duration_s.is_some()),
        ("CROWDSEC_SEND_LOG_ONLY", k.send_log_only),
    ] {
        if set && !k.push() {
            push(
                Severity::Warning,
                key,
                "has no effect without CROWDSEC_CREDENTIALS".to_string(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{has_errors, parse};

    const FILES: &str = "IGNORE_FILE=\"/i\"\nHISTORY_FILE=\"/h\"\nBLOCKED_FILE=\"/b\"\n";

    fn check(extra: &str) -> (Keys, Vec<String>) {
        let text = format!("{FILES}{extra}");
        let p = parse(text.as_bytes(), Path::new("/c"));
        let mut d: Vec<String> = p.diagnostics.iter().map(ToString::to_string).collect();
        d.extend(
            validate(&p.config, Path::new("/c"))
                .iter()
                .map(|d| d.to_string()),
        );
        (p.config.fleet, d)
    }

    #[test]
    fn absent_keys_change_nothing() {
        let (k, d) = check("");
        assert_eq!(k, Keys::default());
        assert!(!k.enabled() && d.is_empty());
        assert_eq!(k.pull_interval_s(), 1);
    }

    #[test]
    fn push_and_pull_are_switched_on_by_their_files() {
        let (k, d) = check(
            "BLOCK_METHOD=\"nftables\"\nCROWDSEC_CREDENTIALS=\"/etc/portsentry/crowdsec-lapi.yaml\"\nCROWDSEC_BOUNCER_KEY_FILE=\"/etc/portsentry/crowdsec-bouncer.key\"\nCROWDSEC_PULL_INTERVAL=\"5\"\nCROWDSEC_BAN_DURATION=\"600\"\nCROWDSEC_SEND_LOG_ONLY=\"1\"\n",
        );
        assert!(d.is_empty(), "{d:?}");
        assert!(k.push() && k.pull() && k.send_log_only);
        assert_eq!(
            k.credentials.as_deref(),
            Some(Path::new("/etc/portsentry/crowdsec-lapi.yaml"))
        );
        assert_eq!((k.pull_interval_s(), k.ban_duration_s(0)), (5, 600));
    }

    #[test]
    fn ban_duration_follows_block_timeout_and_is_never_forever() {
        let k = Keys::default();
        assert_eq!(k.ban_duration_s(0), DEFAULT_BAN_S);
        assert_eq!(k.ban_duration_s(3600), 3600);
        let k = Keys {
            ban_duration_s: Some(60),
            ..Keys::default()
        };
        assert_eq!(k.ban_duration_s(3600), 60);
    }

    #[test]
    fn pull_needs_nftables_and_a_url() {
        let (_, d) = check("CROWDSEC_BOUNCER_KEY_FILE=\"/k\"\n");
        assert_eq!(
            d,
            [
                "error: /c:4: CROWDSEC_BOUNCER_KEY_FILE: needs BLOCK_METHOD=\"nftables\": pulled bans go into the fleet4/fleet6 sets of table inet portsentry",
                "error: /c:4: CROWDSEC_BOUNCER_KEY_FILE: needs CROWDSEC_LAPI_URL (or CROWDSEC_CREDENTIALS, whose url is then used)",
            ]
        );
        let (k, d) = check(
            "BLOCK_METHOD=\"nftables\"\nCROWDSEC_BOUNCER_KEY_FILE=\"/k\"\nCROWDSEC_LAPI_URL=\"http://192.0.2.1:8080/\"\n",
        );
        assert!(d.is_empty(), "{d:?}");
        assert!(k.pull() && !k.push());
    }

    #[test]
    fn a_bouncer_certificate_pulls_instead_of_a_key_and_needs_its_key() {
        let (k, d) = check(
            "BLOCK_METHOD=\"nftables\"\nCROWDSEC_BOUNCER_CERT_FILE=\"/b.pem\"\nCROWDSEC_BOUNCER_CERT_KEY_FILE=\"/b.key\"\nCROWDSEC_LAPI_URL=\"https://192.0.2.1:8080/\"\n",
        );
        assert!(d.is_empty(), "{d:?}");
        assert!(k.pull() && !k.push());
        assert_eq!(k.pull_key(), "CROWDSEC_BOUNCER_CERT_FILE");
        let (_, d) = check("BLOCK_METHOD=\"nftables\"\nCROWDSEC_BOUNCER_CERT_FILE=\"/b.pem\"\n");
        assert_eq!(
            d,
            [
                "error: /c:5: CROWDSEC_BOUNCER_CERT_FILE: needs CROWDSEC_BOUNCER_CERT_KEY_FILE (its private key)",
                "error: /c:5: CROWDSEC_BOUNCER_CERT_FILE: needs CROWDSEC_LAPI_URL (or CROWDSEC_CREDENTIALS, whose url is then used)",
            ]
        );
        let (_, d) = check("CROWDSEC_BOUNCER_CERT_KEY_FILE=\"/b.key\"\n");
        assert_eq!(
            d,
            [
                "error: /c:4: CROWDSEC_BOUNCER_CERT_KEY_FILE: has no effect without CROWDSEC_BOUNCER_CERT_FILE"
            ]
        );
        let (_, d) = check(
            "BLOCK_METHOD=\"nftables\"\nCROWDSEC_CREDENTIALS=\"/c.yaml\"\nCROWDSEC_BOUNCER_KEY_FILE=\"/k\"\nCROWDSEC_BOUNCER_CERT_FILE=\"/b.pem\"\nCROWDSEC_BOUNCER_CERT_KEY_FILE=\"/b.key\"\n",
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("mutually exclusive"), "{d:?}");
    }

    #[test]
    fn keys_without_their_feature_warn() {
        let (_, d) = check(
            "CROWDSEC_PULL_INTERVAL=\"2\"\nCROWDSEC_BAN_DURATION=\"60\"\nCROWDSEC_SEND_LOG_ONLY=\"1\"\nCROWDSEC_LAPI_URL=\"http://192.0.2.1:8080\"\n",
        );
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d.iter().all(|l| l.starts_with("warning:")));
        let (_, d) = check(
            "CROWDSEC_CREDENTIALS=\"/c.yaml\"\nCROWDSEC_LAPI_URL=\"http://192.0.2.1:8080\"\n",
        );
        assert_eq!(
            d,
            [
                "warning: /c:5: CROWDSEC_LAPI_URL: is ignored: the url of CROWDSEC_CREDENTIALS is used for pushing and pulling"
            ]
        );
        assert!(!has_errors(&[]));
    }
}
