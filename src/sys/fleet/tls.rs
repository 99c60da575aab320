//! TLS for the LAPI link (issue 20): the CA to trust, and the client certificate a machine
//! (`cert_path`/`key_path` in its credentials file) or the bouncer side
//! (`CROWDSEC_BOUNCER_CERT_FILE`/`_KEY_FILE`) logs in with instead of a password or an API
//! key, as CrowdSec's LAPI allows (its `api.server.tls`: `client_verification`,
//! `ca_cert_path`, `agents_allowed_ou`, `bouncers_allowed_ou`, `crl_path`).
//!
//! The files are read and checked here, before a client is made: the private key must be
//! private (as every secret file, `creds::check_private`) and must belong to the
//! certificate, checked with rustls itself (ureq would panic on a key that does not match).
//! Also: the words of a refused certificate, from the TLS alert or the HTTP status the LAPI
//! answers with. The key's bytes never reach `Debug` output or a message.

use std::fmt;
use std::path::PathBuf;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey};

use crate::fleet::creds::{self, CertFiles, FileError};
use crate::fleet::x509;

/// What https trusts and presents: the CA of `ca_cert_path` (else the system's store) and a
/// client certificate, each if given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// The PEM of `ca_cert_path`.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate.
    pub identity: Option<Identity>,
}

/// A client certificate and its key, read and checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// Where they were read.
    pub files: CertFiles,
    /// The certificate and any intermediates after it (DER).
    chain: Vec<Vec<u8>>,
    /// The key file's PEM (checked to hold exactly one key, that of the certificate).
    key_pem: Vec<u8>,
    /// The certificate's subject and validity, for messages.
    pub info: x509::Info,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("files", &self.files)
            .field("info", &self.info)
            .field("key", &"***")
            .finish()
    }
}

/// Why a client certificate cannot be used (the caller adds the key that names it).
#[derive(Debug)]
pub enum IdentityError {
    /// A file cannot be read.
    Read(PathBuf, std::io::Error),
    /// The key file is not private.
    Private(PathBuf, FileError),
    /// The certificate file holds no PEM certificate.
    NoCert(PathBuf),
    /// The key file holds no PEM private key, or more than one.
    NoKey(PathBuf, &'static str),
    /// The key does not belong to the certificate, or rustls cannot use it: why.
    Mismatch(PathBuf, PathBuf, String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Read(p, e) => write!(f, "{}: {e}", p.display()),
            IdentityError::Private(p, e) => write!(f, "{}: {e}", p.display()),
            IdentityError::NoCert(p) => {
                write!(f, "{}: holds no PEM certificate", p.display())
            }
            IdentityError::NoKey(p, why) => write!(f, "{}: {why}", p.display()),
            IdentityError::Mismatch(k, c, why) => write!(
                f,
                "{}: not the private key of the certificate {}: {why}",
                k.display(),
                c.display()
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

/// Reads and checks a certificate and its key. `euid`: the daemon's, which may own the key.
pub fn load_identity(files: &CertFiles, euid: u32) -> Result<Identity, IdentityError> {
    use std::os::unix::fs::MetadataExt;
    let (cp, kp) = (&files.cert_path, &files.key_path);
    let cert_pem = std::fs::read(cp).map_err(|e| IdentityError::Read(cp.clone(), e))?;
    let meta = std::fs::metadata(kp).map_err(|e| IdentityError::Read(kp.clone(), e))?;
    creds::check_private(meta.mode(), meta.uid(), euid)
        .map_err(|e| IdentityError::Private(kp.clone(), e))?;
    let key_pem = std::fs::read(kp).map_err(|e| IdentityError::Read(kp.clone(), e))?;
    let chain: Vec<Vec<u8>> = ureq::tls::parse_pem(&cert_pem)
        .filter_map(|i| match i {
            Ok(PemItem::Certificate(c)) => Some(c.der().to_vec()),
            _ => None,
        })
        .collect();
    let Some(first) = chain.first() else {
        return Err(IdentityError::NoCert(cp.clone()));
    };
    let info = x509::info(first).map_err(|e| {
        IdentityError::Mismatch(kp.clone(), cp.clone(), format!("certificate: {e}"))
    })?;
    let key = match only_key(&key_pem) {
        Ok(k) => k,
        Err(why) => return Err(IdentityError::NoKey(kp.clone(), why)),
    };
    // The check rustls makes when ureq builds its config, made first so that a wrong key is
    // an error here rather than a panic on the fleet thread.
    let provider = rustls::crypto::ring::default_provider();
    let der_chain = chain
        .iter()
        .map(|c| rustls::pki_types::CertificateDer::from(c.clone()))
        .collect();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.der().to_vec())
        .map_err(|e| IdentityError::Mismatch(kp.clone(), cp.clone(), e.to_string()))?;
    rustls::sign::CertifiedKey::from_der(der_chain, key_der, &provider)
        .map_err(|e| IdentityError::Mismatch(kp.clone(), cp.clone(), e.to_string()))?;
    Ok(Identity {
        files: files.clone(),
        chain,
        key_pem,
        info,
    })
}

/// The one private key of a PEM file.
fn only_key(pem: &[u8]) -> Result<PrivateKey<'static>, &'static str> {
    let mut keys = ureq::tls::parse_pem(pem).filter_map(|i| match i {
        Ok(PemItem::PrivateKey(k)) => Some(k),
        _ => None,
    });
    match (keys.next(), keys.next()) {
        (Some(k), None) => Ok(k),
        (None, _) => Err("holds no PEM private key"),
        (Some(_), Some(_)) => Err("holds more than one PEM private key"),
    }
}

impl Identity {
    /// The certificate and key as ureq takes them; None only if the key no longer parses,
    /// which [`load_identity`] has ruled out.
    pub fn client_cert(&self) -> Option<ClientCert> {
        let chain: Vec<Certificate<'static>> = self
            .chain
            .iter()
            .map(|c| Certificate::from_der(c).to_owned())
            .collect();
        let key = only_key(&self.key_pem).ok()?;
        Some(ClientCert::new_with_certs(&chain, key))
    }

    /// `the client certificate /etc/portsentry/agent.pem (CN web1, OU agent-ou)`.
    pub fn describe(&self) -> String {
        format!(
            "the client certificate {} ({})",
            self.files.cert_path.display(),
            self.info.subject_text()
        )
    }

    /// Why the LAPI ended the handshake (with this TLS alert, or by closing the
    /// connection), in words: the certificate's own dates first (what the LAPI checks
    /// first), else what else it checks there.
    pub fn handshake_refused(&self, alert: Option<&str>, now_epoch: i64) -> String {
        let why = match self.info.validity_problem(now_epoch) {
            Some(p) => p,
            None => "not signed by the CA of the LAPI's tls: ca_cert_path, or refused by its client_verification".to_string(),
        };
        let how = match alert {
            Some(a) => format!("alert {a}"),
            None => "connection closed".to_string(),
        };
        format!(
            "the LAPI refused {} in the TLS handshake ({how}): {why}",
            self.describe()
        )
    }

    /// Why the LAPI answered 401/403 to a request made with this certificate: CrowdSec
    /// answers "access forbidden" alike for an OU not allowed and for a revoked certificate
    /// (its log says which).
    pub fn http_refused(&self, status: u16, message: &str, allowed_ou_key: &str) -> String {
        format!(
            "the LAPI refused {} (HTTP {status}: {message}): its OU must be in the LAPI's tls: {allowed_ou_key}, and it must not be revoked (crl_path); the LAPI's log says which failed",
            self.describe()
        )
    }
}

/// The TLS alert the LAPI sent when it ended the handshake, if that is what `e` is.
pub fn alert_of(e: &ureq::Error) -> Option<String> {
    let rustls_err = match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    }?;
    match rustls_err {
        rustls::Error::AlertReceived(a) => Some(format!("{a:?}")),
        _ => None,
    }
}

/// Reads the client certificate of `files` for the key `key` (checked as every secret file).
pub fn read(files: &CertFiles) -> Result<Identity, IdentityError> {
    load_identity(files, nix::unistd::geteuid().as_raw())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    // `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650
    // -subj '/OU=agent-ou/CN=web1'` and another key (`openssl genpkey -algorithm EC`): test
    // material only.
    pub(in crate::sys::fleet) const CERT: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBmTCCAT+gAwIBAgIUfairY6s3UxjS0UJfJ7SaEC7LkqQwCgYIKoZIzj0EAwIw\n\
IjERMA8GA1UECwwIYWdlbnQtb3UxDTALBgNVBAMMBHdlYjEwHhcNMjYxMjA2MjAz\n\
MjUwWhcNMzYxMjAzMjAzMjUwWjAiMREwDwYDVQQLDAhhZ2VudC1vdTENMAsGA1UE\n\
AwwEd2ViMTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABARKxIBl1K+bChMNgJxF\n\
W2VMuzIEj5IwSJ/+V7niBYfka4PTpaBO2uNaVE4iViEiFjmuIH49OwVym9PLgpPt\n\
ijijUzBRMB0GA1UdDgQWBBQPMXDHLm2nGl/k2BpnSJFOkKMczzAfBgNVHSMEGDAW\n\
gBQPMXDHLm2nGl/k2BpnSJFOkKMczzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49\n\
BAMCA0gAMEUCIB/M6gHTtfDV34CGbDKRGlqQW0LcMURU08kIW1xZ2uRyAiEA/wMD\n\
s7bA22FryImy7My/SD2zghaCQ+LDHMEOVKSwdas=\n\
-----END CERTIFICATE-----\n";
    pub(in crate::sys::fleet) const KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFIAtZVOUt7SMtgrN\n\
6hMbUmzHQZ1JaT+HSZRGtfhMrI2hRANCAAQESsSAZdSvmwoTDYCcRVtlTLsyBI+S\n\
MEif/le54gWH5GuD06WgTtrjWlROIlYhIhY5riB+PTsFcpvTy4KT7Yo4\n\
-----END PRIVATE KEY-----\n";
    pub(in crate::sys::fleet) const OTHER_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZTDQdkRuZo3sKEVF\n\
RDaqlsBYOAJdwVe/SPUfbiDoRSChRANCAARtKvh5N2CUuLpifh4xbSP4sGMfEu4g\n\
ubHw4M+7xEHvoo7M3w7szKf9grSiGaQEYowp8T2dC3Gdjf6ug9aWT8PK\n\
-----END PRIVATE KEY-----\n";

    fn files(dir: &std::path::Path, cert: &str, key: &str, mode: u32) -> CertFiles {
        let f = CertFiles {
            cert_path: dir.join("c.pem"),
            key_path: dir.join("k.pem"),
        };
        std::fs::write(&f.cert_path, cert).unwrap();
        std::fs::write(&f.key_path, key).unwrap();
        std::fs::set_permissions(&f.key_path, std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    fn euid() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    #[test]
    fn a_certificate_and_its_key_load_and_make_a_client_cert() {
        let d = tempfile::tempdir().unwrap();
        let id = load_identity(&files(d.path(), CERT, KEY, 0o600), euid()).unwrap();
        assert_eq!(id.info.subject_text(), "CN web1, OU agent-ou");
        assert!(id.client_cert().is_some());
        let dbg = format!("{id:?}");
        assert!(!dbg.contains("PRIVATE") && dbg.contains("***"), "{dbg}");
        assert!(
            id.describe().ends_with("c.pem (CN web1, OU agent-ou)"),
            "{}",
            id.describe()
        );
        // The same file may hold both.
        let both = format!("{CERT}{KEY}");
        let f = files(d.path(), &both, &both, 0o600);
        assert!(load_identity(&f, euid()).is_ok());
    }

    #[test]
    fn a_wrong_missing_or_exposed_key_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let e = |cert: &str, key: &str, mode: u32| {
            load_identity(&files(d.path(), cert, key, mode), euid())
                .unwrap_err()
                .to_string()
        };
        let m = e(CERT, OTHER_KEY, 0o600);
        assert!(
            m.contains("k.pem: not the private key of the certificate") && m.contains("c.pem"),
            "{m}"
        );
        assert!(e(CERT, CERT, 0o600).ends_with("k.pem: holds no PEM private key"));
        assert!(
            e(CERT, &format!("{KEY}{OTHER_KEY}"), 0o600)
                .ends_with("k.pem: holds more than one PEM private key")
        );
        assert!(e(KEY, KEY, 0o600).ends_with("c.pem: holds no PEM certificate"));
        assert!(
            e(CERT, KEY, 0o644).contains("k.pem: readable by other users (mode 0644)"),
            "{}",
            e(CERT, KEY, 0o644)
        );
        let gone = CertFiles {
            cert_path: d.path().join("none.pem"),
            key_path: d.path().join("k.pem"),
        };
        assert!(
            load_identity(&gone, euid())
                .unwrap_err()
                .to_string()
                .contains("none.pem: No such file")
        );
    }

    #[test]
    fn refusals_say_why() {
        let d = tempfile::tempdir().unwrap();
        let id = load_identity(&files(d.path(), CERT, KEY, 0o600), euid()).unwrap();
        let late = id.info.not_after + 1;
        let m = id.handshake_refused(Some("BadCertificate"), late);
        assert!(
            m.starts_with("the LAPI refused the client certificate ")
                && m.contains("in the TLS handshake (alert BadCertificate): it expired on "),
            "{m}"
        );
        let m = id.handshake_refused(None, id.info.not_before + 1);
        assert!(
            m.contains("in the TLS handshake (connection closed): not signed by the CA"),
            "{m}"
        );
        assert!(m.ends_with("not signed by the CA of the LAPI's tls: ca_cert_path, or refused by its client_verification"), "{m}");
        let m = id.http_refused(403, "access forbidden", "bouncers_allowed_ou");
        assert!(
            m.contains("(HTTP 403: access forbidden): its OU must be in the LAPI's tls: bouncers_allowed_ou, and it must not be revoked (crl_path)"),
            "{m}"
        );
    }
}
