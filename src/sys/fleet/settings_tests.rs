//! `settings::load` with client certificates: what it reads, and each refusal naming key,
//! file and reason (issue 20). The LAPI is never contacted.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::settings::{describe, load};
use super::tls::tests::{CERT, KEY, OTHER_KEY};
use crate::config::Config;

fn write(p: &Path, text: &str, mode: u32) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory with a CA, a certificate and its key, a credentials file naming them,
/// and a config pulling with the same certificate as the bouncer's.
fn setup(url: &str) -> (tempfile::TempDir, Config) {
    let d = tempfile::tempdir().unwrap();
    let p = |f: &str| d.path().join(f);
    write(&p("ca.pem"), CERT, 0o644);
    write(&p("c.pem"), CERT, 0o644);
    write(&p("k.pem"), KEY, 0o600);
    write(
        &p("lapi.yaml"),
        &format!(
            "url: {url}\nca_cert_path: {}\ncert_path: {}\nkey_path: {}\n",
            p("ca.pem").display(),
            p("c.pem").display(),
            p("k.pem").display()
        ),
        0o600,
    );
    let conf = format!(
        "HISTORY_FILE=\"{d}/h\"\nBLOCK_METHOD=\"nftables\"\nCROWDSEC_CREDENTIALS=\"{d}/lapi.yaml\"\nCROWDSEC_BOUNCER_CERT_FILE=\"{d}/c.pem\"\nCROWDSEC_BOUNCER_CERT_KEY_FILE=\"{d}/k.pem\"\n",
        d = d.path().display()
    );
    let cfg = crate::config::parse(conf.as_bytes(), Path::new("/c")).config;
    (d, cfg)
}

fn errors(cfg: &Config) -> Vec<String> {
    load(cfg)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn certificates_for_push_and_pull_are_read_and_described() {
    let (d, cfg) = setup("https://192.0.2.1:8443/");
    let s = load(&cfg).unwrap().unwrap();
    let push = s.push.as_ref().unwrap();
    assert!(push.tls.identity.is_some() && push.tls.ca_pem.is_some());
    let pull = s.pull.as_ref().unwrap();
    assert_eq!(pull.key, None);
    assert_eq!(pull.key_path, d.path().join("c.pem"));
    assert!(pull.tls.identity.is_some() && pull.tls.ca_pem.is_some());
    let (lines, ok) = describe(&cfg);
    assert!(ok);
    let text = lines.join("\n");
    assert!(
        text.contains(&format!(
            "as the machine of certificate {}",
            d.path().join("c.pem").display()
        )) && text.contains("with the bouncer certificate of ")
            && text.contains("(CN web1, OU agent-ou) with key ")
            && text.contains("tls: agents_allowed_ou")
            && text.contains("tls: bouncers_allowed_ou"),
        "{text}"
    );
    assert!(!text.contains("PRIVATE"), "{text}");
}

#[test]
fn a_bad_certificate_or_key_stops_start_up_naming_key_file_and_reason() {
    let (d, cfg) = setup("https://192.0.2.1:8443/");
    let k = d.path().join("k.pem");
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = errors(&cfg);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(&format!(
            "CROWDSEC_CREDENTIALS: {}: client certificate: {}: readable by other users (mode 0644)",
            d.path().join("lapi.yaml").display(),
            k.display()
        )),
        "{e:?}"
    );
    assert!(
        e[1].starts_with(&format!(
            "CROWDSEC_BOUNCER_CERT_FILE: {}: client certificate: {}: readable",
            d.path().join("c.pem").display(),
            k.display()
        )),
        "{e:?}"
    );
    write(&k, OTHER_KEY, 0o600);
    let e = errors(&cfg);
    assert!(
        e.iter()
            .all(|l| l.contains("not the private key of the certificate")),
        "{e:?}"
    );
}

#[test]
fn a_bouncer_certificate_needs_https() {
    let (d, mut cfg) = setup("https://192.0.2.1:8443/");
    cfg.fleet.credentials = None;
    cfg.fleet.lapi_url = Some("http://192.0.2.1:8080/".into());
    let e = errors(&cfg);
    assert_eq!(
        e,
        [format!(
            "CROWDSEC_BOUNCER_CERT_FILE: {}: a client certificate needs an https:// LAPI url, not http://192.0.2.1:8080",
            d.path().join("c.pem").display()
        )]
    );
    // The credentials file refuses the same for the machine.
    let (_d, cfg) = setup("http://192.0.2.1:8080/");
    assert!(
        errors(&cfg)[0].contains("cert_path/key_path need an https:// url"),
        "{:?}",
        errors(&cfg)
    );
}
