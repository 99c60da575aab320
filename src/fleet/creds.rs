//! The LAPI credentials file, in CrowdSec's own `local_api_credentials.yaml` format, so the
//! file `cscli machines add NAME --auto -f FILE` writes can be used as it is:
//!
//! ```yaml
//! url: http://127.0.0.1:8080/
//! login: NAME
//! password: ...
//! ca_cert_path: /etc/crowdsec/ssl/ca.pem   # optional: https with this CA only (else the system store)
//! ```
//!
//! or, for a machine that logs in with a TLS client certificate (CrowdSec's `cert_path` and
//! `key_path`; the LAPI names the machine `CN@address` and checks the certificate's OU
//! against its `agents_allowed_ou`), the same without `login` and `password`:
//!
//! ```yaml
//! url: https://lapi.example:8080/
//! ca_cert_path: /etc/portsentry/crowdsec-ca.pem
//! cert_path: /etc/portsentry/agent.pem
//! key_path: /etc/portsentry/agent-key.pem
//! ```
//!
//! A password and a certificate together are refused, as CrowdSec's own agent refuses
//! them ("mutually exclusive", pkg/csconfig/api.go). Parsed with serde-saphyr (pure Rust
//! YAML, see doc/dependencies.md); other keys CrowdSec may add are ignored. Also: the LAPI
//! URL, the bouncer key file, and the rule that these files must not be readable by other
//! users. Pure: the shell
//! reads the files and their metadata. Secrets never appear in `Debug` output or messages.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// A password, token or API key: `Debug` and `Display` print `***`, so a secret cannot reach
/// a log line through formatting by mistake.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret read from a file or an answer.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    /// The secret itself: only for the HTTP request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The LAPI's base URL: `http://` or `https://`, a host, an optional port and path prefix.
/// Endpoints are joined to it (`v1/watchers/login`), with or without its trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LapiUrl {
    base: String,
    https: bool,
}

impl LapiUrl {
    /// Checks an `http://` or `https://` URL and keeps it with a trailing `/`.
    pub fn parse(s: &str) -> Result<LapiUrl, String> {
        let s = s.trim();
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "url must start with http:// or https://, got \"{}\"",
                shorten(s)
            ));
        };
        let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host_port.is_empty() {
            return Err(format!("url has no host: \"{}\"", shorten(s)));
        }
        if host_port.contains('@') {
            return Err(
                "url must not hold a user or password (they go in login and password)".to_string(),
            );
        }
        if rest.contains(['?', '#']) || s.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "url has a query, fragment or blank: \"{}\"",
                shorten(s)
            ));
        }
        let base = if s.ends_with('/') {
            s.to_string()
        } else {
            format!("{s}/")
        };
        Ok(LapiUrl { base, https })
    }

    /// `v1/decisions/stream` → `http://host:8080/v1/decisions/stream`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }

    /// The URL is `https://`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The URL without a trailing slash, for messages.
    pub fn as_str(&self) -> &str {
        self.base.trim_end_matches('/')
    }

    /// The host and port: an address literal (`[2001:db8::1]` unbracketed), or a name to
    /// resolve. The port is the URL's, else 80 or 443.
    pub fn host(&self) -> (LapiHost, u16) {
        let rest = self
            .base
            .split_once("://")
            .map_or(self.base.as_str(), |x| x.1);
        let hp = rest.split('/').next().unwrap_or("");
        let default = if self.https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = hp.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, p)) => (h, p.strip_prefix(':')),
                None => (v6, None),
            }
        } else {
            match hp.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                _ => (hp, None),
            }
        };
        let port = port.and_then(|p| p.parse().ok()).unwrap_or(default);
        match host.parse::<IpAddr>() {
            Ok(ip) => (LapiHost::Ip(ip.to_canonical()), port),
            Err(_) => (LapiHost::Name(host.to_ascii_lowercase()), port),
        }
    }

    /// Plain `http://` to a host that is not this one: keys and passwords cross the network
    /// in clear. Loopback addresses and `localhost` (RFC 6761: `*.localhost` too) are fine.
    pub fn plain_remote(&self) -> bool {
        if self.https {
            return false;
        }
        match self.host().0 {
            LapiHost::Ip(ip) => !ip.is_loopback(),
            LapiHost::Name(n) => n != "localhost" && !n.ends_with(".localhost"),
        }
    }
}

/// The host of a LAPI URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LapiHost {
    /// An address literal.
    Ip(IpAddr),
    /// A name (lower case) to resolve.
    Name(String),
}

/// A parsed credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The LAPI's URL (`url:`).
    pub url: LapiUrl,
    /// How the machine logs in.
    pub auth: MachineAuth,
    /// A CA file for https (`ca_cert_path:`), if any.
    pub ca_cert_path: Option<PathBuf>,
}

/// How a machine logs in to the LAPI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineAuth {
    /// `login:` and `password:` (what `cscli machines add` writes).
    Password {
        /// The machine's name.
        login: String,
        /// Its password.
        password: Secret,
    },
    /// `cert_path:` and `key_path:`: a TLS client certificate (https only).
    Cert(CertFiles),
}

impl MachineAuth {
    /// The `login:` of a password login; empty with a certificate (the LAPI names that
    /// machine, and the HTTP client reports its refusals as the certificate's).
    pub fn login(&self) -> &str {
        match self {
            MachineAuth::Password { login, .. } => login,
            MachineAuth::Cert(_) => "",
        }
    }

    /// The machine as messages name it: `machine "web1"`, or `the machine of certificate
    /// /etc/portsentry/agent.pem` (the LAPI names it CN@address).
    pub fn describe(&self) -> String {
        match self {
            MachineAuth::Password { login, .. } => format!("machine \"{login}\""),
            MachineAuth::Cert(c) => {
                format!("the machine of certificate {}", c.cert_path.display())
            }
        }
    }
}

/// A client certificate and its private key: two PEM files (they may be the same file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate (and any intermediate certificates after it).
    pub cert_path: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1 PEM).
    pub key_path: PathBuf,
}

#[derive(Deserialize)]
struct Raw {
    url: Option<String>,
    login: Option<String>,
    password: Option<String>,
    ca_cert_path: Option<String>,
    cert_path: Option<String>,
    key_path: Option<String>,
}

/// Why a credentials or key file was refused (the caller adds the file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// Not YAML of the expected shape: the parser's message (line and column included).
    Yaml(String),
    /// A required key is missing or empty.
    Missing(&'static str),
    /// `url:` is no http(s) URL: why.
    BadUrl(String),
    /// Group or others may access it.
    Exposed {
        /// The file's permission bits.
        mode: u32,
    },
    /// Not owned by root (or by the daemon's user).
    Owner {
        /// The file's owner.
        uid: u32,
    },
    /// The bouncer key file holds no key, or more than one line, or odd bytes.
    BadKey(String),
    /// `login`/`password` and `cert_path`/`key_path` together, or one of the latter alone,
    /// or a certificate with an `http://` url: why.
    BadAuth(&'static str),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Yaml(m) => write!(f, "not a CrowdSec credentials file: {m}"),
            FileError::Missing(k) => write!(f, "\"{k}\" is missing or empty"),
            FileError::BadUrl(m) => f.write_str(m),
            FileError::Exposed { mode } => write!(
                f,
                "readable by other users (mode {mode:04o}); it holds a secret: chmod 600 it"
            ),
            FileError::Owner { uid } => {
                write!(
                    f,
                    "owned by uid {uid}, not root; it holds a secret: chown root it"
                )
            }
            FileError::BadKey(m) => f.write_str(m),
            FileError::BadAuth(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FileError {}

/// Parses a credentials file. The password never appears in an error: a YAML error names the
/// line and column only (the parser's message is cut before any quoted text).
pub fn parse(text: &str) -> Result<Credentials, FileError> {
    let raw: Raw =
        serde_saphyr::from_str(text).map_err(|e| FileError::Yaml(redact(&e.to_string())))?;
    let need = |v: Option<String>, k: &'static str| match v {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(FileError::Missing(k)),
    };
    let url = LapiUrl::parse(&need(raw.url, "url")?).map_err(FileError::BadUrl)?;
    let path = |p: Option<String>| {
        p.filter(|p| !p.trim().is_empty())
            .map(|p| PathBuf::from(p.trim()))
    };
    let ca_cert_path = path(raw.ca_cert_path);
    let (cert_path, key_path) = (path(raw.cert_path), path(raw.key_path));
    let password_given =
        raw.login.as_deref().is_some_and(|l| !l.trim().is_empty()) || raw.password.is_some();
    let auth = match (cert_path, key_path) {
        (Some(_), Some(_)) if password_given => {
            return Err(FileError::BadAuth(
                "login/password and cert_path/key_path are mutually exclusive (as for CrowdSec's own agent): keep one",
            ));
        }
        (Some(_), Some(_)) if !url.is_https() => {
            return Err(FileError::BadAuth(
                "cert_path/key_path need an https:// url (a client certificate is a TLS login)",
            ));
        }
        (Some(cert_path), Some(key_path)) => MachineAuth::Cert(CertFiles {
            cert_path,
            key_path,
        }),
        (Some(_), None) => {
            return Err(FileError::BadAuth(
                "cert_path is set without key_path: a client certificate needs both",
            ));
        }
        (None, Some(_)) => {
            return Err(FileError::BadAuth(
                "key_path is set without cert_path: a client certificate needs both",
            ));
        }
        (None, None) => {
            let login = need(raw.login, "login")?;
            // The password is used as written (CrowdSec generates 64 alphanumerics), not
            // trimmed.
            let password = match raw.password {
                Some(p) if !p.is_empty() => Secret(p),
                _ => return Err(FileError::Missing("password")),
            };
            MachineAuth::Password { login, password }
        }
    };
    Ok(Credentials {
        url,
        auth,
        ca_cert_path,
    })
}

/// The first line of a YAML error, without anything it quotes from the file (which may be
/// the password).
fn redact(m: &str) -> String {
    let first = m.lines().next().unwrap_or("");
    let cut = first.find(['"', '\'', '`']).unwrap_or(first.len());
    first[..cut].trim_end_matches([' ', ':']).to_string()
}

/// The bouncer key file: one key (what `cscli bouncers add NAME` prints), optionally followed
/// by a line feed.
pub fn parse_key(text: &str) -> Result<Secret, FileError> {
    let key = text.trim_end_matches(['\n', '\r']);
    if key.is_empty() {
        return Err(FileError::BadKey("holds no key".to_string()));
    }
    if key.contains('\n') {
        return Err(FileError::BadKey(
            "holds more than one line; it must hold the key alone".to_string(),
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FileError::BadKey(
            "holds spaces or non-printable bytes; it must hold the key alone".to_string(),
        ));
    }
    Ok(Secret(key.to_string()))
}

/// A file with a secret must be root's (or the daemon's, `euid`) and closed to group and
/// others: a secret another user can read is a secret they have.
pub fn check_private(mode: u32, uid: u32, euid: u32) -> Result<(), FileError> {
    if uid != 0 && uid != euid {
        return Err(FileError::Owner { uid });
    }
    if mode & 0o077 != 0 {
        return Err(FileError::Exposed {
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `cscli machines add portsentry-a --password ... -f FILE` writes (crowdsec 1.4.6).
    const CSCLI: &str = "url: http://192.0.2.1:8080\nlogin: portsentry-a\npassword: Zb3kQ9\n";

    #[test]
    fn cscli_output_parses_as_it_is() {
        let c = parse(CSCLI).unwrap();
        assert_eq!(
            c.url.join("v1/watchers/login"),
            "http://192.0.2.1:8080/v1/watchers/login"
        );
        let pw = |c: &Credentials| match &c.auth {
            MachineAuth::Password { login, password } => {
                (login.clone(), password.expose().to_string())
            }
            MachineAuth::Cert(_) => panic!("{c:?}"),
        };
        assert_eq!(pw(&c), ("portsentry-a".into(), "Zb3kQ9".into()));
        assert_eq!(c.auth.describe(), "machine \"portsentry-a\"");
        assert_eq!(c.ca_cert_path, None);
        assert!(!c.url.is_https());
        let t = "url: https://lapi.example:8443/\nlogin: a\npassword: 'p w'\nca_cert_path: /etc/ca.pem\nunknown_key: x\n";
        let c = parse(t).unwrap();
        assert!(c.url.is_https());
        assert_eq!(c.url.as_str(), "https://lapi.example:8443");
        assert_eq!(
            c.url.join("/v1/alerts"),
            "https://lapi.example:8443/v1/alerts"
        );
        assert_eq!(pw(&c).1, "p w");
        assert_eq!(c.ca_cert_path, Some(PathBuf::from("/etc/ca.pem")));
    }

    /// CrowdSec's TLS login (pkg/csconfig/api.go): cert_path and key_path instead of login
    /// and password, never both.
    #[test]
    fn a_client_certificate_instead_of_a_password() {
        let c = parse(
            "url: https://lapi.example:8443/\nca_cert_path: /etc/ca.pem\ncert_path: /etc/a.pem\nkey_path: ' /etc/a.key '\n",
        )
        .unwrap();
        assert_eq!(
            c.auth,
            MachineAuth::Cert(CertFiles {
                cert_path: "/etc/a.pem".into(),
                key_path: "/etc/a.key".into()
            })
        );
        assert_eq!(c.auth.describe(), "the machine of certificate /etc/a.pem");
        let bad = |t: &str| parse(t).unwrap_err().to_string();
        assert!(
            bad("url: https://x/\nlogin: a\npassword: b\ncert_path: c\nkey_path: d\n")
                .contains("mutually exclusive"),
        );
        assert!(
            bad("url: https://x/\npassword: b\ncert_path: c\nkey_path: d\n")
                .contains("mutually exclusive")
        );
        assert_eq!(
            bad("url: https://x/\ncert_path: c\n"),
            "cert_path is set without key_path: a client certificate needs both"
        );
        assert_eq!(
            bad("url: https://x/\nkey_path: c\n"),
            "key_path is set without cert_path: a client certificate needs both"
        );
        assert!(bad("url: http://x/\ncert_path: c\nkey_path: d\n").contains("https://"));
        // Neither: the password login, with its own errors.
        assert_eq!(
            parse("url: https://x/\ncert_path: ''\n"),
            Err(FileError::Missing("login"))
        );
    }

    #[test]
    fn secrets_never_print() {
        let c = parse(CSCLI).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("Zb3kQ9") && dbg.contains("***"), "{dbg}");
        // A YAML error must not quote the line that holds the password.
        let e = parse("url: http://x/\nlogin: a\npassword: [Zb3kQ9\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("Zb3kQ9"), "{e}");
        assert!(e.starts_with("not a CrowdSec credentials file"), "{e}");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert_eq!(
            parse("login: a\npassword: b\n"),
            Err(FileError::Missing("url"))
        );
        assert_eq!(
            parse("url: http://x\npassword: b\n"),
            Err(FileError::Missing("login"))
        );
        assert_eq!(
            parse("url: http://x\nlogin: a\npassword: ''\n"),
            Err(FileError::Missing("password"))
        );
        assert!(matches!(
            parse("url: ftp://x\nlogin: a\npassword: b\n"),
            Err(FileError::BadUrl(_))
        ));
        assert!(matches!(parse("- a\n- b\n"), Err(FileError::Yaml(_))));
        assert!(parse("").is_err());
        assert!(
            matches!(parse("url: x\nurl: y\n"), Err(FileError::Yaml(_))),
            "duplicate key"
        );
        assert!(parse("\u{0}\u{1}:::").is_err());
    }

    #[test]
    fn urls() {
        for bad in [
            "",
            "127.0.0.1:8080",
            "http://",
            "http:///v1",
            "http://u:p@h/",
            "http://h/?a",
            "http://h /",
        ] {
            assert!(LapiUrl::parse(bad).is_err(), "{bad}");
        }
        let u = LapiUrl::parse("http://[2001:db8::1]:8080/crowdsec").unwrap();
        assert_eq!(
            u.join("v1/alerts"),
            "http://[2001:db8::1]:8080/crowdsec/v1/alerts"
        );
    }

    #[test]
    fn hosts_ports_and_plain_http_to_another_host() {
        let h = |u: &str| LapiUrl::parse(u).unwrap().host();
        let ip = |s: &str| LapiHost::Ip(s.parse().unwrap());
        assert_eq!(h("http://192.0.2.1:8080/"), (ip("192.0.2.1"), 8080));
        assert_eq!(h("http://192.0.2.1"), (ip("192.0.2.1"), 80));
        assert_eq!(h("https://[2001:db8::1]/x"), (ip("2001:db8::1"), 443));
        assert_eq!(h("https://[2001:db8::1]:8443/x"), (ip("2001:db8::1"), 8443));
        assert_eq!(
            h("http://LAPI.example:8080"),
            (LapiHost::Name("lapi.example".into()), 8080)
        );
        let plain = |u: &str| LapiUrl::parse(u).unwrap().plain_remote();
        for remote in [
            "http://192.0.2.1:8080/",
            "http://lapi.example:8080",
            "http://[2001:db8::1]:8080",
        ] {
            assert!(plain(remote), "{remote}");
        }
        for fine in [
            "http://127.0.0.1:8080/",
            "http://127.1.2.3/",
            "http://[::1]:8080",
            "http://localhost:8080",
            "http://lapi.localhost:8080",
            "https://192.0.2.1:8443/",
        ] {
            assert!(!plain(fine), "{fine}");
        }
    }

    #[test]
    fn key_files() {
        assert_eq!(parse_key("abc123\n").unwrap().expose(), "abc123");
        assert_eq!(parse_key("abc123").unwrap().expose(), "abc123");
        for bad in ["", "\n", "a b\n", "a\nb\n", "a\t"] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_private_files_are_accepted() {
        assert_eq!(check_private(0o100600, 0, 0), Ok(()));
        assert_eq!(check_private(0o100400, 0, 0), Ok(()));
        assert_eq!(
            check_private(0o100644, 0, 0).unwrap_err().to_string(),
            "readable by other users (mode 0644); it holds a secret: chmod 600 it"
        );
        assert!(check_private(0o100640, 0, 0).is_err());
        assert!(check_private(0o100602, 0, 0).is_err());
        assert_eq!(
            check_private(0o100600, 1000, 0),
            Err(FileError::Owner { uid: 1000 })
        );
        assert_eq!(check_private(0o100600, 1000, 1000), Ok(()));
    }
}
