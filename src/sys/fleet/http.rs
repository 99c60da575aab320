//! The HTTP side of the LAPI link (ureq; rustls with the CA of `ca_cert_path` when given,
//! else the system's CA store, and a client certificate when one is given, `tls`): login,
//! alerts, the alert search used after a request whose
//! outcome is unknown, and the decision stream. Blocking calls with short timeouts, made only
//! on the fleet thread.
//!
//! Secrets go into request headers and bodies only; no error message built here contains
//! one (a LAPI's error text is cut short and stripped of control bytes).

use std::sync::Arc;
use std::time::Duration;

use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::tls::{self, Identity, Tls};
use crate::fleet::creds::{LapiUrl, MachineAuth, Secret};
use crate::fleet::stream;

/// Connecting may take this long; a whole exchange this long (a 1,000-decision request took
/// the LAPI well under a second here).
const CONNECT: Duration = Duration::from_secs(3);
const EXCHANGE: Duration = Duration::from_secs(20);
/// Largest answer read whole: the alert search after an uncertain request (every alert of
/// the last minutes, a flood's included). The decision stream is not read whole (see
/// [`Client::stream`]).
const MAX_BODY: u64 = 256 << 20;
/// Largest error answer read (its message is cut to 200 characters anyway).
const ERROR_BODY: u64 = 64 << 10;

/// How a request went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing reached the LAPI (no connection): safe to send again.
    NotSent(String),
    /// The request may or may not have been processed (a reset or timeout after sending, a
    /// 5xx): ask before sending again.
    Unknown(String),
    /// An HTTP status other than success, with the LAPI's message.
    Status(u16, String),
    /// A success whose body is not what the API documents (not JSON, no token, ...).
    BadAnswer(String),
    /// The LAPI refused the client certificate (a TLS alert in the handshake, or a 401/403
    /// to a request made with it): why, in words naming the certificate's file.
    CertRefused(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotSent(m) | Failure::Unknown(m) => f.write_str(m),
            Failure::Status(s, m) => write!(f, "HTTP {s}: {m}"),
            Failure::BadAnswer(m) => write!(f, "bad answer: {m}"),
            Failure::CertRefused(m) => f.write_str(m),
        }
    }
}

/// An HTTP client for one LAPI.
pub struct Client {
    agent: Agent,
    /// The LAPI's URL.
    pub url: LapiUrl,
    /// The client certificate presented, if any (for messages).
    identity: Option<Identity>,
}

/// A login token and when it stops working (unix seconds; 0: unknown).
pub struct Token {
    /// The JWT (`Authorization: Bearer`).
    pub jwt: Secret,
    /// When it expires, unix seconds (0: unknown).
    pub expires_epoch: i64,
}

impl Client {
    /// `ca` is the PEM of `ca_cert_path` (https only with that CA); without it https trusts
    /// the system's store, as CrowdSec's own agent does: Debian's `/etc/ssl/certs` (what
    /// `update-ca-certificates` builds, read by rustls-native-certs through ureq's platform
    /// verifier; `SSL_CERT_FILE`/`SSL_CERT_DIR` override it as for OpenSSL).
    /// `tls.identity`, when given, is presented to the LAPI in every handshake.
    pub fn new(url: LapiUrl, tls: &Tls) -> Result<Client, String> {
        Client::with_timeouts(url, tls, CONNECT, EXCHANGE)
    }

    /// As [`Client::new`], with other limits on connecting and on a whole exchange.
    pub fn with_timeouts(
        url: LapiUrl,
        tls: &Tls,
        connect: Duration,
        exchange: Duration,
    ) -> Result<Client, String> {
        let roots = match tls.ca_pem.as_deref() {
            Some(pem) => {
                let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(pem)
                    .filter_map(|i| match i {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err("ca_cert_path holds no PEM certificate".to_string());
                }
                RootCerts::Specific(Arc::new(certs))
            }
            None => RootCerts::PlatformVerifier,
        };
        let cfg = Agent::config_builder()
            .timeout_connect(Some(connect))
            .timeout_global(Some(exchange))
            .http_status_as_error(false)
            // Never through a proxy from the environment, never following a redirect with
            // our credentials.
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("portsentry/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(roots)
                    .client_cert(tls.identity.as_ref().and_then(Identity::client_cert))
                    .build(),
            );
        Ok(Client {
            agent: cfg.build().into(),
            url,
            identity: tls.identity.clone(),
        })
    }

    /// POST /v1/watchers/login, with a password, or with the client certificate alone (the
    /// LAPI then names the machine `CN@address` and makes it at its first login; the body
    /// holds only the scenarios, as CrowdSec's agent sends it).
    pub fn login(&self, auth: &MachineAuth) -> Result<Token, Failure> {
        #[derive(serde::Serialize)]
        struct Req<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            machine_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            password: Option<&'a str>,
            scenarios: Vec<String>,
        }
        let scenarios = crate::fleet::alert::Scan::ALL
            .iter()
            .map(|s| s.scenario())
            .collect();
        let (machine_id, password) = match auth {
            MachineAuth::Password { login, password } => {
                (Some(login.as_str()), Some(password.expose()))
            }
            MachineAuth::Cert(_) => (None, None),
        };
        let body = serde_json::to_string(&Req {
            machine_id,
            password,
            scenarios,
        })
        .unwrap_or_default();
        let (status, bytes) = self.exchange(
            self.agent
                .post(&self.url.join("v1/watchers/login"))
                .header("Content-Type", "application/json")
                .send(body.as_bytes()),
            false,
        )?;
        let bytes = self.cert_status(status, bytes, "agents_allowed_ou")?;
        let bytes = ok_200(status, bytes)?;
        #[derive(serde::Deserialize)]
        struct Resp {
            token: Option<String>,
            expire: Option<String>,
        }
        let r: Resp = serde_json::from_slice(&bytes)
            .map_err(|_| Failure::BadAnswer("login answer is not JSON".to_string()))?;
        let jwt = r
            .token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Failure::BadAnswer("login answer has no token".to_string()))?;
        let expires_epoch = r
            .expire
            .as_deref()
            .and_then(parse_rfc3339_epoch)
            .unwrap_or(0);
        Ok(Token {
            jwt: Secret::new(jwt),
            expires_epoch,
        })
    }

    /// POST /v1/alerts with a JSON array built by `fleet::alert::body`.
    pub fn post_alerts(&self, token: &Token, body: &str) -> Result<(), Failure> {
        let (status, bytes) = self.exchange(
            self.agent
                .post(&self.url.join("v1/alerts"))
                .header("Content-Type", "application/json")
                .header("Authorization", &format!("Bearer {}", token.jwt.expose()))
                .send(body.as_bytes()),
            true,
        )?;
        match status {
            200 | 201 => Ok(()),
            500..=599 => Err(Failure::Unknown(format!(
                "HTTP {status}: {}",
                message(&bytes)
            ))),
            _ => Err(Failure::Status(status, message(&bytes))),
        }
    }

    /// GET /v1/alerts?since=...: alerts whose start is at most `since_s` old, every one.
    pub fn search_alerts(&self, token: &Token, since_s: u64) -> Result<Vec<u8>, Failure> {
        let (status, bytes) = self.exchange(
            self.agent
                .get(
                    &self
                        .url
                        .join(&format!("v1/alerts?since={since_s}s&limit=0")),
                )
                .header("Authorization", &format!("Bearer {}", token.jwt.expose()))
                .call(),
            false,
        )?;
        ok_200(status, bytes)
    }

    /// GET /v1/decisions/stream (every decision, not one per value: `dedup=false`), parsed
    /// as it is read within `caps` (issue 24: the answer is never held whole).
    /// `key`: the bouncer's API key (`X-Api-Key`), or None when the client certificate
    /// authenticates.
    pub fn stream(
        &self,
        key: &Option<Secret>,
        startup: bool,
        caps: &stream::Caps,
    ) -> Result<stream::Changes, Failure> {
        let q = if startup {
            "?startup=true&dedup=false"
        } else {
            "?dedup=false"
        };
        self.decisions(&format!("v1/decisions/stream{q}"), key, caps, |r, c| {
            stream::parse_reader(r, c)
        })
    }

    /// GET /v1/decisions of the local origins (`crowdsec`, `cscli`) on addresses and
    /// ranges: the decisions in force, for a catch-up read (`fleet::resync`), parsed as it is
    /// read within `caps`. It does not move the bouncer's last pull while that is under a
    /// minute old.
    pub fn active(
        &self,
        key: &Option<Secret>,
        caps: &stream::Caps,
    ) -> Result<stream::Changes, Failure> {
        self.decisions(
            "v1/decisions?scopes=ip,range&origins=crowdsec,cscli",
            key,
            caps,
            |r, c| stream::parse_list_reader(r, c),
        )
    }

    /// GET `path` with the bouncer key (or, `key` None, the client certificate alone); the
    /// answer parsed by `parse` as it is read.
    fn decisions(
        &self,
        path: &str,
        key: &Option<Secret>,
        caps: &stream::Caps,
        parse: impl FnOnce(&mut dyn std::io::Read, &stream::Caps) -> Result<stream::Changes, String>,
    ) -> Result<stream::Changes, Failure> {
        let mut req = self.agent.get(&self.url.join(path));
        if let Some(k) = key {
            req = req.header("X-Api-Key", k.expose());
        }
        let mut resp = req.call().map_err(|e| self.classify(&e, true))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let bytes = resp
                .body_mut()
                .with_config()
                .limit(ERROR_BODY)
                .read_to_vec()
                .unwrap_or_default();
            let bytes = self.cert_status(status, bytes, "bouncers_allowed_ou")?;
            return Err(Failure::Status(status, message(&bytes)));
        }
        // ureq's own limit one byte past ours, so ours (with its message) trips first.
        let mut reader = resp
            .body_mut()
            .with_config()
            .limit(caps.max_body.saturating_add(1))
            .reader();
        parse(&mut reader, caps).map_err(Failure::BadAnswer)
    }

    /// GET /v1/decisions?ip=127.0.0.1: checks a bouncer key (or certificate, `key` None)
    /// without changing its stream.
    pub fn check_key(&self, key: &Option<Secret>) -> Result<(), Failure> {
        let mut req = self.agent.get(&self.url.join("v1/decisions?ip=127.0.0.1"));
        if let Some(k) = key {
            req = req.header("X-Api-Key", k.expose());
        }
        let (status, bytes) = self.exchange(req.call(), false)?;
        let bytes = self.cert_status(status, bytes, "bouncers_allowed_ou")?;
        ok_200(status, bytes).map(drop)
    }

    /// A 401/403 to a request made with a client certificate is the certificate refused.
    fn cert_status(&self, status: u16, bytes: Vec<u8>, ou_key: &str) -> Result<Vec<u8>, Failure> {
        match (&self.identity, status) {
            // The LAPI's reason (revoked, which OU) comes after a long prefix: a longer cut.
            (Some(id), 401 | 403) => Err(Failure::CertRefused(id.http_refused(
                status,
                &message_max(&bytes, 400),
                ou_key,
            ))),
            _ => Ok(bytes),
        }
    }

    /// [`classify`], with a refused client certificate named as such: a TLS alert from
    /// the LAPI, or (TLS 1.3: the client may be writing its request when the LAPI's alert
    /// and close arrive) a broken or reset connection while the certificate is out of its
    /// dates.
    fn classify(&self, e: &ureq::Error, sent_matters: bool) -> Failure {
        if let Some(id) = &self.identity {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            if let Some(alert) = tls::alert_of(e) {
                return Failure::CertRefused(id.handshake_refused(Some(&alert), now));
            }
            let cut = matches!(e, ureq::Error::Io(io) if matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ));
            if cut && id.info.validity_problem(now).is_some() {
                return Failure::CertRefused(id.handshake_refused(None, now));
            }
        }
        classify(e, sent_matters)
    }

    fn exchange(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        sent_matters: bool,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let mut resp = r.map_err(|e| self.classify(&e, sent_matters))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| self.classify(&e, sent_matters && status / 100 == 2))?;
        Ok((status, bytes))
    }
}

/// Connection failures are "not sent"; anything after the request may have gone out is
/// "unknown" when that matters (alerts), else just a failure to retry.
fn classify(e: &ureq::Error, sent_matters: bool) -> Failure {
    use std::io::ErrorKind as K;
    use ureq::Timeout as T;
    let text = describe(e);
    let before_sending = match e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::BadUri(_) => true,
        ureq::Error::Timeout(T::Connect | T::Resolve) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            K::ConnectionRefused
                | K::NetworkUnreachable
                | K::HostUnreachable
                | K::AddrNotAvailable
                | K::NotFound
        ),
        ureq::Error::Tls(_) => true,
        _ => false,
    };
    if before_sending || !sent_matters {
        Failure::NotSent(text)
    } else {
        Failure::Unknown(text)
    }
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t:?})"),
        other => other.to_string(),
    }
}

/// The `message` of a LAPI error answer, or the start of the body; printable ASCII only,
/// at most 200 characters.
pub fn message(bytes: &[u8]) -> String {
    message_max(bytes, 200)
}

/// [`message`], at most `max` characters.
fn message_max(bytes: &[u8], max: usize) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        message: Option<String>,
    }
    // The LAPI may answer two objects in a row: a TLS login refused by its JWT middleware
    // writes `{"message":"access forbidden"}` and then gin-jwt's own object with the reason
    // (`{"code":401,"message":"while trying to validate client cert: ..."}`, crowdsec
    // 1.4.6). Their messages are joined.
    let objects: Result<Vec<E>, _> = serde_json::Deserializer::from_slice(bytes)
        .into_iter::<E>()
        .collect();
    let joined = objects.ok().map(|v| {
        v.into_iter()
            .filter_map(|e| e.message)
            .collect::<Vec<_>>()
            .join(": ")
    });
    let text = joined
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(max)
        .collect();
    if clean.is_empty() {
        "no message".to_string()
    } else {
        clean
    }
}

/// The body of a 200 answer; any other status is a `Failure::Status` with the LAPI's message.
fn ok_200(status: u16, bytes: Vec<u8>) -> Result<Vec<u8>, Failure> {
    if status == 200 {
        Ok(bytes)
    } else {
        Err(Failure::Status(status, message(&bytes)))
    }
}

/// `2026-11-30T13:24:02Z` (the login answer's `expire`; any RFC 3339 offset and fraction) as
/// unix seconds.
fn parse_rfc3339_epoch(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::super::fake_lapi::{Answer, FakeLapi};
    use super::*;

    fn client(f: &FakeLapi, exchange_ms: u64) -> Client {
        Client::with_timeouts(
            f.url.clone(),
            &Tls::default(),
            Duration::from_secs(1),
            Duration::from_millis(exchange_ms),
        )
        .unwrap()
    }

    fn token() -> Token {
        Token {
            jwt: Secret::new("t".into()),
            expires_epoch: 0,
        }
    }

    #[test]
    fn a_500_after_sending_alerts_is_unknown_and_other_errors_are_not() {
        let f = FakeLapi::start();
        f.script_post(&[
            Answer::Error500 { keep: true },
            Answer::Status(400),
            Answer::Status(401),
        ]);
        let c = client(&f, 2000);
        assert_eq!(
            c.post_alerts(&token(), "[]"),
            Err(Failure::Unknown("HTTP 500: database is locked".to_string()))
        );
        assert_eq!(
            c.post_alerts(&token(), "[]"),
            Err(Failure::Status(400, "scripted".to_string()))
        );
        assert_eq!(
            c.post_alerts(&token(), "[]"),
            Err(Failure::Status(401, "scripted".to_string()))
        );
        assert_eq!(c.post_alerts(&token(), "[]"), Ok(()));
    }

    #[test]
    fn garbage_json_is_a_bad_answer_never_a_token() {
        let f = FakeLapi::start();
        f.script_login(&[Answer::Garbage, Answer::Status(403)]);
        let c = client(&f, 2000);
        let pw = MachineAuth::Password {
            login: "m".into(),
            password: Secret::new("pw".into()),
        };
        assert!(matches!(
            c.login(&pw),
            Err(Failure::BadAnswer(m)) if m == "login answer is not JSON"
        ));
        assert!(matches!(c.login(&pw), Err(Failure::Status(403, _))));
        let t = c.login(&pw).unwrap();
        assert_eq!(t.expires_epoch, 4_070_908_800);
        // A garbage stream body is a bad answer.
        f.script_stream(&[Answer::Garbage]);
        assert!(matches!(
            c.stream(&Some(Secret::new("k".into())), true, &stream::Caps::default()),
            Err(Failure::BadAnswer(m)) if m.starts_with("bad JSON in the decision stream")
        ));
        // And a garbage alert list is an error, not "nothing arrived".
        f.script_search(&[Answer::Garbage]);
        let body = c.search_alerts(&t, 600).unwrap();
        assert!(crate::fleet::alert::delivered_seqs("id", &body).is_err());
    }

    #[test]
    fn a_slow_answer_times_out_as_unknown_for_alerts_and_a_refused_connection_is_not_sent() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Slow(Duration::from_millis(1500))]);
        f.script_login(&[Answer::Slow(Duration::from_millis(1500))]);
        let c = client(&f, 300);
        let t0 = std::time::Instant::now();
        assert!(matches!(
            c.post_alerts(&token(), "[]"),
            Err(Failure::Unknown(_))
        ));
        assert!(matches!(
            c.login(&MachineAuth::Password {
                login: "m".into(),
                password: Secret::new("pw".into())
            }),
            Err(Failure::NotSent(_))
        ));
        assert!(
            t0.elapsed() < Duration::from_millis(1400),
            "{:?}",
            t0.elapsed()
        );
        // Nothing listens: nothing was sent, safe to send again.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = LapiUrl::parse(&format!("http://{}/", l.local_addr().unwrap())).unwrap();
        drop(l);
        let c = Client::new(url, &Tls::default()).unwrap();
        assert!(matches!(
            c.post_alerts(&token(), "[]"),
            Err(Failure::NotSent(_))
        ));
    }

    #[test]
    fn expiry_times() {
        assert_eq!(parse_rfc3339_epoch("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_epoch("2026-11-22T21:39:02Z"),
            Some(1_795_383_542)
        );
        assert_eq!(
            parse_rfc3339_epoch("2026-11-22T22:39:02.5+01:00"),
            Some(1_795_383_542)
        );
        assert_eq!(parse_rfc3339_epoch("soon"), None);
    }

    #[test]
    fn error_messages_are_cut_and_clean() {
        assert_eq!(
            message(b"{\"code\":401,\"message\":\"incorrect Username or Password\"}"),
            "incorrect Username or Password"
        );
        assert_eq!(message(b"<h1>\x1b[31mbad</h1>"), "<h1>?[31mbad</h1>");
        // What crowdsec 1.4.6 answers to a TLS login whose certificate's OU is not allowed.
        assert_eq!(
            message(b"{\"message\":\"access forbidden\"}{\"code\":401,\"message\":\"while trying to validate client cert: client certificate OU ([bouncer-ou]) doesn't match expected OU ([agent-ou])\"}"),
            "access forbidden: while trying to validate client cert: client certificate OU ([bouncer-ou]) doesn't match expected OU ([agent-ou])"
        );
        assert_eq!(message(b""), "no message");
        assert_eq!(message(&[b'a'; 500]).len(), 200);
    }
}
