//! The LAPI's decision stream (`GET /v1/decisions/stream`, crowdsec v1.4.6): `{"new": [...],
//! "deleted": [...]}`, each a `Decision` with `id`, `type`, `scope`, `value`, `duration`
//! (Go's format, the time left when the LAPI answered), `origin`, `scenario`. Asked with
//! `dedup=false`: by default the LAPI returns one decision per value, so of two bans on one
//! address the stream could name one and later delete it while the other still stands.
//!
//! Only `ban` decisions on the `Ip` and `Range` scopes are applied (what a firewall can do);
//! the others are counted and skipped. Pure.

use std::net::IpAddr;

use serde::Deserialize;

use super::bans::Span;
use super::time::parse_go_duration;

#[derive(Deserialize)]
struct Raw {
    new: Option<Vec<RawDecision>>,
    deleted: Option<Vec<RawDecision>>,
}

#[derive(Deserialize)]
struct RawDecision {
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    scope: Option<String>,
    value: Option<String>,
    duration: Option<String>,
    scenario: Option<String>,
    origin: Option<String>,
}

/// One decision to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The decision's id.
    pub id: i64,
    /// The addresses it bans.
    pub span: Span,
    /// Time left when the LAPI answered, ms (<= 0: already over).
    pub left_ms: i64,
    /// `value` as the LAPI wrote it, and where it came from, for log lines.
    pub value: String,
    /// Its scenario (`portsentry/tcp-syn-scan`, `manual`, ...).
    pub scenario: String,
    /// Its origin (`crowdsec`, `cscli`, ...).
    pub origin: String,
}

/// One answer of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Decisions added.
    pub new: Vec<Ban>,
    /// Ids of decisions deleted or expired.
    pub deleted: Vec<i64>,
    /// Decisions skipped: not a ban, another scope, or a value that is no address.
    pub skipped: u64,
}

/// Parses one stream answer. Err: not the stream's JSON (the message says why, briefly).
pub fn parse(json: &[u8]) -> Result<Changes, String> {
    let raw: Raw = serde_json::from_slice(json)
        .map_err(|e| format!("bad JSON in the decision stream: {e}"))?;
    let mut c = Changes::default();
    for d in raw.new.unwrap_or_default() {
        match ban(&d) {
            Some(b) => c.new.push(b),
            None => c.skipped += 1,
        }
    }
    for d in raw.deleted.unwrap_or_default() {
        match d.id {
            Some(id) => c.deleted.push(id),
            None => c.skipped += 1,
        }
    }
    Ok(c)
}

/// When to read the whole stream again (`startup=true`) rather than what changed.
///
/// The LAPI's incremental answer lists the decisions *created* after the bouncer's last pull
/// (crowdsec 1.4.6, `QueryNewDecisionsSinceWithFilters`: `created_at > last_pull`). A
/// decision created before a pull but committed after it (the LAPI inserts a large alert's
/// decisions in chunks) is never listed: measured here, 50 of a 10,000-source flood missed
/// one host for good. Every bouncer of that API has this race, crowdsec-firewall-bouncer
/// included. So the whole stream is read again [`AFTER_NEW_MS`] after new decisions came
/// (at most every [`MIN_GAP_MS`]), and every [`EVERY_MS`] whatever happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resync {
    /// When the whole stream was last read (None: never, with this key).
    last_full: Option<u64>,
    /// When new decisions first came since then.
    new_since: Option<u64>,
}

/// A full read this long after new decisions came (the chunks of a large alert are
/// committed within a few hundred ms of each other).
pub const AFTER_NEW_MS: u64 = 5_000;
/// Full reads brought on by new decisions are at least this far apart (a flood's 10,000
/// decisions make a stream answer of a few MB).
pub const MIN_GAP_MS: u64 = 30_000;
/// A full read at least this often.
pub const EVERY_MS: u64 = 300_000;

impl Resync {
    /// The next pull at `now` is to read the whole stream.
    pub fn due(&self, now: u64) -> bool {
        match self.last_full {
            None => true,
            Some(t) => {
                let since = now.saturating_sub(t);
                since >= EVERY_MS
                    || (since >= MIN_GAP_MS
                        && self
                            .new_since
                            .is_some_and(|n| now.saturating_sub(n) >= AFTER_NEW_MS))
            }
        }
    }

    /// A pull at `now` worked: a full read (`full`) or one that brought `new` decisions.
    pub fn pulled(&mut self, now: u64, full: bool, new: usize) {
        if full {
            self.last_full = Some(now);
            self.new_since = None;
        } else if new > 0 && self.new_since.is_none() {
            self.new_since = Some(now);
        }
    }

    /// Another key or LAPI: the next pull reads everything.
    pub fn restart(&mut self) {
        *self = Resync::default();
    }
}

fn ban(d: &RawDecision) -> Option<Ban> {
    if !d.kind.as_deref()?.eq_ignore_ascii_case("ban") {
        return None;
    }
    let value = d.value.as_deref()?.trim();
    let span = match d.scope.as_deref()?.to_ascii_lowercase().as_str() {
        "ip" => Span::host(value.parse::<IpAddr>().ok()?),
        "range" => Span::parse_cidr(value)?,
        _ => return None,
    };
    Some(Ban {
        id: d.id?,
        span,
        left_ms: parse_go_duration(d.duration.as_deref()?)?,
        value: value.to_string(),
        scenario: d.scenario.clone().unwrap_or_default(),
        origin: d.origin.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer of crowdsec 1.4.6 (`startup=true`, after `cscli decisions add` and one of our
    /// alerts), trimmed to a few decisions.
    const ANSWER: &str = r#"{"deleted":[{"duration":"-3.5s","id":3,"origin":"cscli","scenario":"manual","scope":"Ip","type":"ban","value":"192.0.2.50"}],
      "new":[{"duration":"3h59m58.81s","id":7,"origin":"crowdsec","scenario":"portsentry/tcp-syn-scan","scope":"Ip","type":"ban","value":"192.0.2.7"},
             {"duration":"23h59m0s","id":8,"origin":"cscli","scenario":"manual 'ban' from 'x'","scope":"Range","type":"ban","value":"198.51.100.0/24"},
             {"duration":"1h","id":9,"origin":"cscli","scenario":"m","scope":"Ip","type":"captcha","value":"192.0.2.9"},
             {"duration":"1h","id":10,"origin":"cscli","scenario":"m","scope":"Country","type":"ban","value":"FR"},
             {"duration":"59m","id":11,"origin":"crowdsec","scenario":"portsentry/udp-scan","scope":"Ip","type":"ban","value":"2001:db8::7"},
             {"duration":"59m","id":12,"origin":"cscli","scenario":"m","scope":"Range","type":"ban","value":"2001:db8:1::5/48"}]}"#;

    #[test]
    fn bans_on_addresses_and_ranges_are_taken_the_rest_counted() {
        let c = parse(ANSWER.as_bytes()).unwrap();
        assert_eq!(c.deleted, vec![3]);
        assert_eq!(c.skipped, 2);
        let ids: Vec<i64> = c.new.iter().map(|b| b.id).collect();
        assert_eq!(ids, [7, 8, 11, 12]);
        assert_eq!(c.new[0].left_ms, 14_398_810);
        assert_eq!(c.new[0].span, Span::host("192.0.2.7".parse().unwrap()));
        assert_eq!(c.new[1].span, Span::parse_cidr("198.51.100.0/24").unwrap());
        assert_eq!(c.new[0].scenario, "portsentry/tcp-syn-scan");
        // Host bits in a range are cleared, as the LAPI itself does (Go's ParseCIDR).
        assert_eq!(c.new[3].span, Span::parse_cidr("2001:db8:1::/48").unwrap());
    }

    #[test]
    fn the_whole_stream_is_read_at_first_after_new_decisions_and_every_five_minutes() {
        let mut r = Resync::default();
        assert!(r.due(0), "the first pull reads everything");
        r.pulled(0, true, 3);
        assert!(!r.due(1000));
        // Nothing new: only the periodic read.
        r.pulled(1000, false, 0);
        assert!(!r.due(EVERY_MS - 1));
        assert!(r.due(EVERY_MS));
        // New decisions at 40 s: a full read 5 s later (the last was long enough ago).
        r.pulled(40_000, false, 120);
        r.pulled(41_000, false, 7);
        assert!(!r.due(44_999));
        assert!(r.due(45_000));
        r.pulled(45_000, true, 10_000);
        // More at 46 s: not before 30 s after the last full read.
        r.pulled(46_000, false, 1);
        assert!(!r.due(74_999));
        assert!(r.due(75_000));
        // Another key: everything again.
        r.pulled(75_000, true, 0);
        r.restart();
        assert!(r.due(75_001));
    }

    #[test]
    fn empty_and_null_answers() {
        assert_eq!(
            parse(br#"{"new":null,"deleted":null}"#),
            Ok(Changes::default())
        );
        assert_eq!(parse(br#"{"new":[],"deleted":[]}"#), Ok(Changes::default()));
        assert_eq!(parse(b"{}"), Ok(Changes::default()));
    }

    #[test]
    fn garbage_is_an_error_or_skipped_never_a_panic() {
        assert!(parse(b"").is_err());
        assert!(parse(b"<html>502 Bad Gateway</html>").is_err());
        assert!(parse(br#"{"new": 5}"#).is_err());
        let c = parse(br#"{"new":[{"id":1},{"type":"ban","scope":"Ip","value":"300.1.1.1","duration":"1h","id":2},{"type":"ban","scope":"Ip","value":"192.0.2.1","duration":"soon","id":3}],"deleted":[{}]}"#).unwrap();
        assert_eq!((c.new.len(), c.skipped), (0, 4));
        let mut rng = crate::testrng::Rng(3);
        let base = ANSWER.as_bytes();
        for _ in 0..2000 {
            let mut b = base.to_vec();
            let i = rng.below(b.len());
            b[i] = rng.next() as u8;
            let _ = parse(&b);
        }
    }
}
