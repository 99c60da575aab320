//! The fleet's settings: the keys and files of portsentry.conf read and checked ([`load`]),
//! described for `portsentry fleet check` ([`describe`]) and tried against the LAPI for
//! `portsentry fleet test` ([`test_login`]). The thread itself is in `worker`.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::config::ignore::Net;
use crate::fleet::creds::{self, CertFiles, Credentials, FileError, LapiHost, LapiUrl, Secret};
use crate::observe::report;

use super::http::Client;
use super::tls::{self, IdentityError, Tls};

/// Everything the thread needs, read and checked by [`load`]. The default is all off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// Push alerts (CROWDSEC_CREDENTIALS set).
    pub push: Option<Push>,
    /// Pull decisions (CROWDSEC_BOUNCER_KEY_FILE set).
    pub pull: Option<Pull>,
    /// The ignore file: its networks are never banned from the fleet either.
    pub ignore_file: Option<PathBuf>,
    /// Every LAPI URL of the configuration (the credentials' url, CROWDSEC_LAPI_URL): their
    /// addresses are never blocked (issue 24).
    pub lapi_urls: Vec<LapiUrl>,
    /// NEVER_BLOCK: never banned from the fleet either.
    pub never_block: Vec<Net>,
}

impl Settings {
    /// The addresses written in the LAPI URLs (no lookup: names are resolved by the thread).
    pub fn literal_addrs(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .lapi_urls
            .iter()
            .filter_map(|u| match u.host().0 {
                LapiHost::Ip(ip) => Some(ip),
                LapiHost::Name(_) => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The LAPI URLs that are plain `http://` to another host, with the key or file that
    /// names each (issue 24: the bouncer key and the machine's password cross the network
    /// in clear).
    pub fn plain_http(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(p) = &self.push
            && p.creds.url.plain_remote()
        {
            out.push((
                p.creds.url.as_str().to_string(),
                format!("the url of {}", p.creds_path.display()),
            ));
        }
        if let Some(p) = &self.pull
            && p.url.plain_remote()
            && self.push.as_ref().is_none_or(|q| q.creds.url != p.url)
        {
            out.push((p.url.as_str().to_string(), "CROWDSEC_LAPI_URL".to_string()));
        }
        out
    }
}

/// The push side's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The machine's credentials (CrowdSec's `local_api_credentials.yaml`).
    pub creds: Credentials,
    /// Where they were read (for log lines).
    pub creds_path: PathBuf,
    /// The PEM of `ca_cert_path` and the client certificate (`cert_path`), each if given.
    pub tls: Tls,
    /// Ban length of a pushed decision (CROWDSEC_BAN_DURATION), seconds.
    pub ban_s: u64,
    /// CROWDSEC_SEND_LOG_ONLY: BLOCK_x=0 reports go too, without a decision.
    pub send_log_only: bool,
    /// The spool (beside HISTORY_FILE).
    pub spool_path: PathBuf,
}

/// The pull side's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    /// The LAPI (the credentials' url, or CROWDSEC_LAPI_URL).
    pub url: LapiUrl,
    /// The bouncer key; None when the client certificate of `tls` authenticates instead
    /// (CROWDSEC_BOUNCER_CERT_FILE).
    pub key: Option<Secret>,
    /// Where the key, or the certificate, was read (for log lines).
    pub key_path: PathBuf,
    /// The PEM of the credentials' `ca_cert_path`, and the bouncer's client certificate.
    pub tls: Tls,
    /// CROWDSEC_PULL_INTERVAL in ms.
    pub interval_ms: u64,
    /// CROWDSEC_WIDEST_BAN: IPv4 and IPv6 prefix lengths.
    pub widest: (u8, u8),
}

/// The spool beside `HISTORY_FILE` (Debian: /var/lib/portsentry/crowdsec.spool).
pub fn spool_path(cfg: &Config) -> PathBuf {
    cfg.history_file
        .as_deref()
        .and_then(Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("/var/lib/portsentry"))
        .join("crowdsec.spool")
}

/// A fleet file that cannot be used: the key that names it, the file, and why. Its text
/// never holds a secret.
#[derive(Debug)]
pub struct LoadError {
    /// `CROWDSEC_CREDENTIALS`, `CROWDSEC_BOUNCER_KEY_FILE` or `CROWDSEC_LAPI_URL`.
    pub key: &'static str,
    /// The file (or the URL's text for CROWDSEC_LAPI_URL).
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a fleet file.
#[derive(Debug)]
pub enum Problem {
    /// It cannot be read.
    Read(io::Error),
    /// It is not UTF-8 text.
    NotText,
    /// Its content or its permissions (`creds::FileError`).
    File(FileError),
    /// The credentials' `ca_cert_path` cannot be read.
    CaRead {
        /// The CA file.
        ca: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// The credentials' `ca_cert_path` holds no PEM certificate.
    CaEmpty {
        /// The CA file.
        ca: PathBuf,
    },
    /// CROWDSEC_LAPI_URL is no http(s) URL (checked when the config is parsed; kept here
    /// so `load` never trusts an unchecked value).
    Url(String),
    /// The client certificate or its key cannot be used.
    Cert(IdentityError),
    /// A client certificate with a plain `http://` LAPI URL (the URL's text).
    CertNeedsHttps(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, path) = (self.key, self.path.display());
        match &self.problem {
            Problem::Read(e) => write!(f, "{key}: {path}: {e}"),
            Problem::NotText => write!(f, "{key}: {path}: not UTF-8 text"),
            Problem::File(e) => write!(f, "{key}: {path}: {e}"),
            Problem::CaRead { ca, err } => {
                write!(f, "{key}: {path}: ca_cert_path {}: {err}", ca.display())
            }
            Problem::CaEmpty { ca } => write!(
                f,
                "{key}: {path}: ca_cert_path {} holds no PEM certificate",
                ca.display()
            ),
            Problem::Url(e) => write!(f, "{key}: {e}"),
            Problem::Cert(e) => write!(f, "{key}: {path}: client certificate: {e}"),
            Problem::CertNeedsHttps(u) => write!(
                f,
                "{key}: {path}: a client certificate needs an https:// LAPI url, not {u}"
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads a file that holds a secret: it must be private (see `creds::check_private`).
fn read_secret_file(key: &'static str, path: &Path) -> Result<String, LoadError> {
    use std::os::unix::fs::MetadataExt;
    let err = |problem| LoadError {
        key,
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(Problem::Read(e)))?;
    creds::check_private(meta.mode(), meta.uid(), nix::unistd::geteuid().as_raw())
        .map_err(|e| err(Problem::File(e)))?;
    let bytes = std::fs::read(path).map_err(|e| err(Problem::Read(e)))?;
    String::from_utf8(bytes).map_err(|_| err(Problem::NotText))
}

/// The credentials file, its CA when it names one (checked to hold a certificate), and its
/// client certificate when it names one (checked to match its key).
fn read_credentials(path: &Path) -> Result<(Credentials, Tls), LoadError> {
    const KEY: &str = "CROWDSEC_CREDENTIALS";
    let err = |problem| LoadError {
        key: KEY,
        path: path.to_path_buf(),
        problem,
    };
    let text = read_secret_file(KEY, path)?;
    let c = creds::parse(&text).map_err(|e| err(Problem::File(e)))?;
    let identity = match &c.auth {
        creds::MachineAuth::Cert(files) => {
            Some(tls::read(files).map_err(|e| err(Problem::Cert(e)))?)
        }
        creds::MachineAuth::Password { .. } => None,
    };
    let Some(ca) = &c.ca_cert_path else {
        return Ok((
            c,
            Tls {
                ca_pem: None,
                identity,
            },
        ));
    };
    let pem = std::fs::read(ca).map_err(|e| {
        err(Problem::CaRead {
            ca: ca.clone(),
            err: e,
        })
    })?;
    let tls = Tls {
        ca_pem: Some(pem),
        identity,
    };
    // The same check the thread's client makes, so a bad CA stops start-up, not the link.
    if Client::new(c.url.clone(), &tls).is_err() {
        return Err(err(Problem::CaEmpty { ca: ca.clone() }));
    }
    Ok((c, tls))
}

/// CROWDSEC_BOUNCER_CERT_FILE and its key, for a LAPI at `url`.
fn read_bouncer_cert(
    cert: &Path,
    key: Option<&Path>,
    url: Option<&LapiUrl>,
) -> Result<tls::Identity, LoadError> {
    let err = |problem| LoadError {
        key: "CROWDSEC_BOUNCER_CERT_FILE",
        path: cert.to_path_buf(),
        problem,
    };
    if let Some(u) = url
        && !u.is_https()
    {
        return Err(err(Problem::CertNeedsHttps(u.as_str().to_string())));
    }
    // A missing key file is the config's error (`fleet::validate`); this is never reached
    // with one, but is kept an error rather than an assumption.
    let Some(key) = key else {
        return Err(err(Problem::Cert(IdentityError::NoKey(
            cert.to_path_buf(),
            "CROWDSEC_BOUNCER_CERT_KEY_FILE is not set",
        ))));
    };
    tls::read(&CertFiles {
        cert_path: cert.to_path_buf(),
        key_path: key.to_path_buf(),
    })
    .map_err(|e| err(Problem::Cert(e)))
}

/// The fleet settings of `cfg` with its files read and checked; None when no fleet key is
/// set. Err: every problem, each naming its key, file and reason (never a secret). The
/// checks between keys (pull needs BLOCK_METHOD="nftables" and a URL) are the config's
/// (`fleet::validate`); a config that passed them is assumed here.
pub fn load(cfg: &Config) -> Result<Option<Settings>, Vec<LoadError>> {
    let k = &cfg.fleet;
    if !k.enabled() {
        return Ok(None);
    }
    let mut errors = Vec::new();
    let mut push = None;
    let mut ca_pem = None;
    if let Some(p) = &k.credentials {
        match read_credentials(p) {
            Ok((c, tls)) => {
                ca_pem.clone_from(&tls.ca_pem);
                push = Some(Push {
                    creds: c,
                    creds_path: p.clone(),
                    tls,
                    ban_s: k.ban_duration_s(cfg.block_timeout),
                    send_log_only: k.send_log_only,
                    spool_path: spool_path(cfg),
                });
            }
            Err(e) => errors.push(e),
        }
    }
    let mut pull = None;
    if let Some(p) = k.bouncer_key_file.as_ref().or(k.bouncer_cert_file.as_ref()) {
        const KEY: &str = "CROWDSEC_BOUNCER_KEY_FILE";
        let url = match (&push, &k.lapi_url) {
            (Some(p), _) => Some(p.creds.url.clone()),
            (None, Some(u)) => LapiUrl::parse(u)
                .map_err(|e| {
                    errors.push(LoadError {
                        key: "CROWDSEC_LAPI_URL",
                        path: PathBuf::from(u),
                        problem: Problem::Url(e),
                    })
                })
                .ok(),
            // Push failed (already an error), or the config check was skipped.
            (None, None) => None,
        };
        // The API key, or (CROWDSEC_BOUNCER_CERT_FILE) the client certificate instead.
        let auth = match (&k.bouncer_key_file, &k.bouncer_cert_file) {
            (Some(_), _) => read_secret_file(KEY, p).and_then(|t| {
                creds::parse_key(&t)
                    .map(|k| (Some(k), None))
                    .map_err(|e| LoadError {
                        key: KEY,
                        path: p.clone(),
                        problem: Problem::File(e),
                    })
            }),
            (None, _) => read_bouncer_cert(p, k.bouncer_cert_key_file.as_deref(), url.as_ref())
                .map(|id| (None, Some(id))),
        };
        match (auth, url) {
            (Ok((key, identity)), Some(url)) => {
                pull = Some(Pull {
                    url,
                    key,
                    key_path: p.clone(),
                    tls: Tls { ca_pem, identity },
                    interval_ms: k.pull_interval_s() * 1000,
                    widest: k.widest_ban(),
                });
            }
            (Err(e), _) => errors.push(e),
            (Ok(_), None) => {}
        }
    }
    // Both URLs are protected: the one used, and CROWDSEC_LAPI_URL even when the
    // credentials' url is used instead (it names a LAPI the admin depends on all the same).
    let mut lapi_urls: Vec<LapiUrl> = push.iter().map(|p| p.creds.url.clone()).collect();
    lapi_urls.extend(pull.iter().map(|p| p.url.clone()));
    lapi_urls.extend(k.lapi_url.as_deref().and_then(|u| LapiUrl::parse(u).ok()));
    lapi_urls.dedup();
    if errors.is_empty() {
        Ok(Some(Settings {
            push,
            pull,
            ignore_file: cfg.ignore_file.clone(),
            lapi_urls,
            never_block: cfg.never_block.clone(),
        }))
    } else {
        Err(errors)
    }
}

/// What `--check` prints about the fleet (no secret), and whether the files are good.
pub fn describe(cfg: &Config) -> (Vec<String>, bool) {
    match load(cfg) {
        Ok(None) => (
            vec!["fleet: off (no CROWDSEC_CREDENTIALS, no CROWDSEC_BOUNCER_KEY_FILE)".to_string()],
            true,
        ),
        Ok(Some(s)) => {
            let mut out = Vec::new();
            if let Some(p) = &s.push {
                out.push(format!(
                    "fleet: push to {} as {} ({}), bans of {} s{}, spool {}",
                    p.creds.url.as_str(),
                    p.creds.auth.describe(),
                    p.creds_path.display(),
                    p.ban_s,
                    if p.send_log_only {
                        ", log-only reports too"
                    } else {
                        ""
                    },
                    p.spool_path.display()
                ));
            }
            if let Some(p) = &s.pull {
                out.push(format!(
                    "fleet: pull from {} with the bouncer {} of {} every {} s into sets fleet4/fleet6",
                    p.url.as_str(),
                    if p.key.is_some() { "key" } else { "certificate" },
                    p.key_path.display(),
                    p.interval_ms / 1000
                ));
            }
            let ids = s.push.iter().map(|p| (&p.tls, "agents_allowed_ou"));
            let ids = ids.chain(s.pull.iter().map(|p| (&p.tls, "bouncers_allowed_ou")));
            for (t, ou_key) in ids {
                let Some(id) = &t.identity else { continue };
                out.extend(cert_lines(id, ou_key, now_epoch()));
            }
            let https = s.push.as_ref().is_some_and(|p| p.creds.url.is_https())
                || s.pull.as_ref().is_some_and(|p| p.url.is_https());
            for (url, from) in s.plain_http() {
                out.push(format!(
                    "warning: {}",
                    report::fleet_plain_http_text(&url, &from)
                ));
            }
            if https {
                let ca = s.push.as_ref().and_then(|p| p.creds.ca_cert_path.as_ref());
                out.push(match ca {
                    Some(path) => format!(
                        "fleet: https: the LAPI's certificate must come from the CA of {}",
                        path.display()
                    ),
                    None => "fleet: https: the LAPI's certificate is checked against the system's CA store (/etc/ssl/certs, or SSL_CERT_FILE / SSL_CERT_DIR)".to_string(),
                });
            }
            (out, true)
        }
        Err(e) => (
            e.into_iter().map(|l| format!("error: {l}")).collect(),
            false,
        ),
    }
}

/// What `--check` says about a client certificate: its subject and dates, and a warning
/// when the LAPI is bound to refuse it for its dates.
fn cert_lines(id: &tls::Identity, ou_key: &str, now: i64) -> Vec<String> {
    let date =
        |t: i64| jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |t| t.to_string());
    let mut out = vec![format!(
        "fleet: https: {} with key {}, valid {} to {}; the LAPI admits it when its OU is in tls: {ou_key}",
        id.describe(),
        id.files.key_path.display(),
        date(id.info.not_before),
        date(id.info.not_after)
    )];
    if let Some(p) = id.info.validity_problem(now) {
        out.push(format!(
            "warning: {}: {p}: the LAPI refuses it",
            id.files.cert_path.display()
        ));
    }
    out
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `portsentry fleet test`: the login and the bouncer key, against the LAPI. Lines to print
/// and whether all worked.
pub fn test_login(s: &Settings) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut ok = true;
    if let Some(p) = &s.push {
        // `as "web1"` (as before certificates), or `as the machine of certificate FILE`.
        let who = match &p.creds.auth {
            creds::MachineAuth::Password { login, .. } => format!("\"{login}\""),
            cert => cert.describe(),
        };
        match Client::new(p.creds.url.clone(), &p.tls)
            .map_err(|e| e.to_string())
            .and_then(|c| c.login(&p.creds.auth).map_err(|e| e.to_string()))
        {
            Ok(_) => out.push(format!(
                "fleet: login to {} as {who}: OK",
                p.creds.url.as_str()
            )),
            Err(e) => {
                ok = false;
                out.push(format!(
                    "fleet: login to {} as {who} FAILED: {e}",
                    p.creds.url.as_str()
                ));
            }
        }
    }
    if let Some(p) = &s.pull {
        let what = if p.key.is_some() {
            "key"
        } else {
            "certificate"
        };
        match Client::new(p.url.clone(), &p.tls)
            .map_err(|e| e.to_string())
            .and_then(|c| c.check_key(&p.key).map_err(|e| e.to_string()))
        {
            Ok(()) => out.push(format!(
                "fleet: bouncer {what} of {} at {}: OK",
                p.key_path.display(),
                p.url.as_str()
            )),
            Err(e) => {
                ok = false;
                out.push(format!(
                    "fleet: bouncer {what} of {} at {} FAILED: {e}",
                    p.key_path.display(),
                    p.url.as_str()
                ));
            }
        }
    }
    (out, ok)
}

/// `portsentry fleet check|test`: prints the settings (and the test's results); the exit code.
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    use crate::fleet::cli::{FleetCli, FleetCmd};
    let a = match FleetCli::parse_from_args(args.into_iter().skip(1)) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let cfg = match std::fs::read(&a.config) {
        Ok(b) => {
            let p = crate::config::parse(&b, &a.config);
            let mut d = p.diagnostics;
            d.extend(crate::fleet::validate(&p.config, &a.config));
            for x in &d {
                eprintln!("{x}");
            }
            if crate::config::has_errors(&d) {
                return 1;
            }
            p.config
        }
        Err(e) => {
            eprintln!("portsentry fleet: {}: {e}", a.config.display());
            return 1;
        }
    };
    let (lines, ok) = describe(&cfg);
    for l in &lines {
        if l.starts_with("warning: ") {
            eprintln!("{l}");
        } else {
            println!("{l}");
        }
    }
    if !ok {
        return 1;
    }
    if a.cmd == FleetCmd::Test
        && let Ok(Some(s)) = load(&cfg)
    {
        let (lines, ok) = test_login(&s);
        for l in &lines {
            println!("{l}");
        }
        if !ok {
            return 1;
        }
    }
    0
}
