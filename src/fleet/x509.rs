//! The few fields of an X.509 certificate (RFC 5280 §4.1) that a message about a refused
//! client certificate needs: the subject's CN and OU (CrowdSec's LAPI names the machine or
//! bouncer after the CN and admits it by the OU: `agents_allowed_ou`, `bouncers_allowed_ou`)
//! and the validity dates (an expired certificate is refused in the handshake with a bare
//! "bad certificate" alert). Nothing is verified here: rustls and the LAPI do that.
//!
//! The certificate is read with **x509-parser** (rusticata), the field's widely used X.509
//! parser, with fuzz targets of its own, rather than a DER walk of our own. Not webpki,
//! already in the build: it gives the subject only as raw DER and keeps the validity private.
//! Not RustCrypto's x509-cert 0.2, smaller: it refuses a whole certificate whose notBefore is
//! before 1970 (UTCTime runs from 1950). Figures in doc/dependencies.md. Pure; never panics
//! on any input (tested below with every truncation and with random byte changes).

use std::fmt::Write as _;

use x509_parser::certificate::X509CertificateParser;
use x509_parser::error::X509Error;
use x509_parser::nom::{self, Parser as _};
use x509_parser::x509::AttributeTypeAndValue;

/// What messages say about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The subject's common names (usually one).
    pub cn: Vec<String>,
    /// The subject's organizational units.
    pub ou: Vec<String>,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
}

impl Info {
    /// `CN web1, OU agent-ou` (`no OU` when it has none).
    pub fn subject_text(&self) -> String {
        let list = |v: &[String]| v.join("+");
        let mut s = String::new();
        if self.cn.is_empty() {
            s.push_str("no CN");
        } else {
            let _ = write!(s, "CN {}", list(&self.cn));
        }
        if self.ou.is_empty() {
            s.push_str(", no OU");
        } else {
            let _ = write!(s, ", OU {}", list(&self.ou));
        }
        s
    }

    /// `it expired on 2026-12-01T10:00:00Z`, `it is not valid before ...`, or None.
    pub fn validity_problem(&self, now_epoch: i64) -> Option<String> {
        if now_epoch > self.not_after {
            Some(format!("it expired on {}", date(self.not_after)))
        } else if now_epoch < self.not_before {
            Some(format!("it is not valid before {}", date(self.not_before)))
        } else {
            None
        }
    }
}

fn date(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch).map_or_else(|_| format!("@{epoch}"), |t| t.to_string())
}

/// An attribute's value for a message: its text, lossily decoded, control characters as `?`,
/// at most 64 characters (the value comes from a file an attacker may have written).
fn text(atv: &AttributeTypeAndValue<'_>) -> String {
    String::from_utf8_lossy(atv.as_slice())
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(64)
        .collect()
}

/// The words for why a certificate could not be read: `truncated`, `bad length`, `bad time`
/// or `unexpected element`.
fn why(e: nom::Err<X509Error>) -> &'static str {
    use x509_parser::asn1_rs::{DerConstraint, Error as Der};
    let e = match e {
        nom::Err::Incomplete(_) => return "truncated",
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
    };
    match e {
        X509Error::Der(Der::Incomplete(_)) | X509Error::NomError(nom::error::ErrorKind::Eof) => {
            "truncated"
        }
        X509Error::Der(
            Der::InvalidLength
            | Der::IndefiniteLengthUnexpected
            | Der::DerConstraintFailed(DerConstraint::IndefiniteLength),
        ) => "bad length",
        X509Error::InvalidDate | X509Error::Der(Der::InvalidDateTime) => "bad time",
        _ => "unexpected element",
    }
}

/// The subject and validity of a DER certificate.
pub fn info(der: &[u8]) -> Result<Info, &'static str> {
    // Extensions are not needed: left unparsed, one this parser does not know cannot stop the
    // message.
    let (_, cert) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
        .map_err(why)?;
    let subject = cert.subject();
    let validity = cert.validity();
    Ok(Info {
        cn: subject.iter_common_name().map(text).collect(),
        ou: subject.iter_organizational_unit().map(text).collect(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1
    /// -subj '/O=test-org/OU=agent-ou/CN=web1'` (OpenSSL 3.0, Debian 12), 2026-12-06.
    const PEM: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBvjCCAWWgAwIBAgIUOI6THmh58sxAo6s7SRruUA8lWI4wCgYIKoZIzj0EAwIw\n\
NTERMA8GA1UECgwIdGVzdC1vcmcxETAPBgNVBAsMCGFnZW50LW91MQ0wCwYDVQQD\n\
DAR3ZWIxMB4XDTI2MTIwNjIwMjYxOFoXDTI2MTIwNzIwMjYxOFowNTERMA8GA1UE\n\
CgwIdGVzdC1vcmcxETAPBgNVBAsMCGFnZW50LW91MQ0wCwYDVQQDDAR3ZWIxMFkw\n\
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFYOcdp0yASJOF9vxYq78EKx7gtnMqkJy\n\
p1AJ+WAspML65bx5PomECwLxg1wEINjMifcEtZYv9IfNIRiZ/y/XpaNTMFEwHQYD\n\
VR0OBBYEFIAgvB6B3rm9jlvNtMGyXW2vPxurMB8GA1UdIwQYMBaAFIAgvB6B3rm9\n\
jlvNtMGyXW2vPxurMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIg\n\
KoeGSPNNiRQhFOemqd2/hObO0Wm8UBcmCcFV/NLaJpwCIBjcQPHEyKbtdAws+vSI\n\
b2MfRqZMlGGgsAMohe7TsTW9\n\
-----END CERTIFICATE-----";

    fn der() -> Vec<u8> {
        der_of(PEM)
    }

    fn der_of(pem: &str) -> Vec<u8> {
        match ureq::tls::parse_pem(pem.as_bytes()).next() {
            Some(Ok(ureq::tls::PemItem::Certificate(c))) => c.der().to_vec(),
            _ => panic!("fixture"),
        }
    }

    #[test]
    fn subject_and_dates_of_an_openssl_certificate() {
        let i = info(&der()).unwrap();
        assert_eq!(i.cn, ["web1"]);
        assert_eq!(i.ou, ["agent-ou"]);
        assert_eq!(i.subject_text(), "CN web1, OU agent-ou");
        // `date -d "$(openssl x509 -noout -startdate)" +%s`, and -enddate.
        assert_eq!((i.not_before, i.not_after), (1_796_588_778, 1_796_675_178));
        assert_eq!(i.validity_problem(1_796_600_000), None);
        assert_eq!(
            i.validity_problem(1_796_675_179).unwrap(),
            "it expired on 2026-12-07T20:26:18Z"
        );
        assert_eq!(
            i.validity_problem(1_796_588_777).unwrap(),
            "it is not valid before 2026-12-06T20:26:18Z"
        );
        let none = Info {
            cn: vec![],
            ou: vec![],
            not_before: 0,
            not_after: 0,
        };
        assert_eq!(none.subject_text(), "no CN, no OU");
    }

    #[test]
    fn truncated_or_garbled_bytes_are_an_error_never_a_panic() {
        let d = der();
        for n in 0..d.len() {
            assert_eq!(info(&d[..n]), Err("truncated"), "{n}");
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut b = d.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % b.len() as u64) as usize;
                b[at] = (x >> 32) as u8;
            }
            let _ = info(&b);
        }
        assert_eq!(
            info(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err("truncated")
        );
        // BER's indefinite length, which DER forbids.
        assert_eq!(
            info(&[0x30, 0x80, 0x30, 0x80, 0, 0, 0, 0]),
            Err("bad length")
        );
    }

    /// A version 1 certificate (no version field) whose notBefore is the last UTCTime
    /// second and notAfter the first GeneralizedTime one (RFC 5280 §4.1.2.5), two OUs:
    /// `openssl ca -selfsign -startdate 491231235959Z -enddate 20500101000000Z` (OpenSSL 3.0,
    /// Debian 12) of a request for `/OU=bouncer-ou/OU=second ou/CN=fw-2`.
    const PEM_2049_2050: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBWjCCAQACAQEwCgYIKoZIzj0EAwIwODENMAsGA1UEAwwEZnctMjETMBEGA1UE\n\
CwwKYm91bmNlci1vdTESMBAGA1UECwwJc2Vjb25kIG91MCAXDTQ5MTIzMTIzNTk1\n\
OVoYDzIwNTAwMTAxMDAwMDAwWjA4MQ0wCwYDVQQDDARmdy0yMRMwEQYDVQQLDApi\n\
b3VuY2VyLW91MRIwEAYDVQQLDAlzZWNvbmQgb3UwWTATBgcqhkjOPQIBBggqhkjO\n\
PQMBBwNCAARuWyh67m5MbIXqLGwumxYkCYBxbae8ud31NDHpS2DWIcM8T+wwURH2\n\
MOXBb8yC4W37TlZ0G+d0osE5kP2OdViQMAoGCCqGSM49BAMCA0gAMEUCIDhjvSmt\n\
4HH08ITs3UZmIlDeSKKEhwe1YUIXww3ZHFtDAiEA5Xz8RBzd8OKMBXBCXT31vmhF\n\
SDGpgWxinSncq1RndIU=\n\
-----END CERTIFICATE-----";

    /// `d` with the first occurrence of `from` replaced by `to` (same length).
    fn patched(d: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = d.windows(from.len()).position(|w| w == from).unwrap();
        let mut d = d.to_vec();
        d[at..at + to.len()].copy_from_slice(to);
        d
    }

    #[test]
    fn times() {
        let i = info(&der_of(PEM_2049_2050)).unwrap();
        assert_eq!((i.not_before, i.not_after), (2_524_607_999, 2_524_608_000));
        assert_eq!(i.subject_text(), "CN fw-2, OU bouncer-ou+second ou");
        // The first certificate's notBefore, 261206202618Z, rewritten in place.
        let d = der();
        let epoch = patched(&d, b"261206202618Z", b"700101000000Z");
        assert_eq!(info(&epoch).unwrap().not_before, 0);
        // UTCTime's first year (RFC 5280: 1950 to 2049), which a notBefore may be.
        let d1950 = patched(&d, b"261206202618Z", b"500101000000Z");
        assert_eq!(info(&d1950).unwrap().not_before, -631_152_000);
        for bad in [&b"261306202618Z"[..], b"2612062026180", b"26120620261+Z"] {
            let b = patched(&d, b"261206202618Z", bad);
            assert_eq!(
                info(&b),
                Err("bad time"),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
