//! The few fields of an X.509 certificate (RFC 5280 §4.1) that a message about a refused
//! client certificate needs: the subject's CN and OU (CrowdSec's LAPI names the machine or
//! bouncer after the CN and admits it by the OU: `agents_allowed_ou`, `bouncers_allowed_ou`)
//! and the validity dates (an expired certificate is refused in the handshake with a bare
//! "bad certificate" alert). A small DER walk over the TBSCertificate, nothing verified:
//! rustls and the LAPI do that. Pure; never panics on any input (fuzzed below with
//! truncations and random bytes).

use std::fmt::Write as _;

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

/// One DER element: its tag, its content, and what follows it.
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    let (&tag, rest) = b.split_first().ok_or("truncated")?;
    let (&l0, rest) = rest.split_first().ok_or("truncated")?;
    let (len, rest) = if l0 < 0x80 {
        (usize::from(l0), rest)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad length");
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err("truncated");
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect(b: &[u8], want: u8) -> Result<(&[u8], &[u8]), &'static str> {
    match tlv(b)? {
        (t, c, r) if t == want => Ok((c, r)),
        _ => Err("unexpected element"),
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_OU: &[u8] = &[0x55, 0x04, 0x0b];

/// The subject and validity of a DER certificate.
pub fn info(der: &[u8]) -> Result<Info, &'static str> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    let (_serial, r) = expect(rest, 0x02)?;
    let (_alg, r) = expect(r, SEQUENCE)?;
    let (_issuer, r) = expect(r, SEQUENCE)?;
    let (validity, r) = expect(r, SEQUENCE)?;
    let (subject, _) = expect(r, SEQUENCE)?;
    let (t1, c1, r1) = tlv(validity)?;
    let (t2, c2, _) = tlv(r1)?;
    let not_before = time(t1, c1)?;
    let not_after = time(t2, c2)?;
    let (mut cn, mut ou) = (Vec::new(), Vec::new());
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (set, r) = expect(rdns, SET)?;
        rdns = r;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (atv, r) = expect(atvs, SEQUENCE)?;
            atvs = r;
            let (oid, r) = expect(atv, 0x06)?;
            let (_, value, _) = tlv(r)?;
            let text: String = String::from_utf8_lossy(value)
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .take(64)
                .collect();
            if oid == OID_CN {
                cn.push(text);
            } else if oid == OID_OU {
                ou.push(text);
            }
        }
    }
    Ok(Info {
        cn,
        ou,
        not_before,
        not_after,
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`, RFC 5280: YY < 50 is 20YY) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) as unix seconds.
fn time(tag: u8, c: &[u8]) -> Result<i64, &'static str> {
    let s = std::str::from_utf8(c).map_err(|_| "bad time")?;
    let digits = s.strip_suffix('Z').ok_or("time not in UTC")?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad time");
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i16 = digits[..2].parse().map_err(|_| "bad time")?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().map_err(|_| "bad time")?, &digits[4..]),
        _ => return Err("bad time"),
    };
    let n = |i: usize| rest[i..i + 2].parse::<i8>().map_err(|_| "bad time");
    let dt = jiff::civil::DateTime::new(year, n(0)?, n(2)?, n(4)?, n(6)?, n(8)?, 0)
        .map_err(|_| "bad time")?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(dt)
        .map(|t| t.as_second())
        .map_err(|_| "bad time")
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
        match ureq::tls::parse_pem(PEM.as_bytes()).next() {
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
            assert!(info(&d[..n]).is_err(), "{n}");
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
        assert!(info(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn times() {
        assert_eq!(time(0x17, b"700101000000Z"), Ok(0));
        assert_eq!(time(0x17, b"491231235959Z"), Ok(2_524_607_999));
        assert_eq!(time(0x18, b"20500101000000Z"), Ok(2_524_608_000));
        assert!(time(0x17, b"701301000000Z").is_err());
        assert!(time(0x17, b"700101000000").is_err());
        assert!(time(0x17, b"7001010000+0Z").is_err());
        assert!(time(0x05, b"700101000000Z").is_err());
    }
}
