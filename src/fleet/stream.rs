//! The LAPI's decision stream (`GET /v1/decisions/stream`, crowdsec v1.4.6): `{"new": [...],
//! "deleted": [...]}`, each a `Decision` with `id`, `type`, `scope`, `value`, `duration`
//! (Go's format, the time left when the LAPI answered), `origin`, `scenario`. Asked with
//! `dedup=false`: by default the LAPI returns one decision per value, so of two bans on one
//! address the stream could name one and later delete it while the other still stands.
//!
//! Only `ban` decisions on the `Ip` and `Range` scopes are applied (what a firewall can do);
//! the others are counted and skipped.
//!
//! The answer is read as it arrives (issue 24), never whole: a LAPI, or whatever answers in
//! its place, decides how large the body is, so the memory used here must not follow it.
//! [`parse_reader`] walks the two arrays one object at a time (a serde visitor over a
//! `Read`), keeps at most [`Caps::max_objects`] decisions of an answer (the rest are counted
//! and skipped), refuses an answer over [`Caps::max_body`] bytes or holding a JSON string
//! over [`Caps::max_string`] bytes (checked on the bytes as they are read, before serde
//! buffers anything), clips the strings it keeps, and skips and counts the objects that lack
//! an `id`, `type`, `scope`, `value` or `duration` or hold one of the wrong type. So an
//! answer costs at most about `max_objects` kept decisions, whatever the LAPI sends. Pure:
//! bytes come in through `Read`.

use std::fmt;
use std::io::{self, BufReader, Read};
use std::net::IpAddr;

use serde::Deserializer as _;
use serde::de::{self, Deserialize, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::span::Span;
use super::time::parse_go_duration;

/// Decisions (new and deleted together) kept from one answer; the rest are skipped and
/// counted. 100,000: ten of the 10,000-source floods measured in the README, or a large
/// community blocklist, in one answer.
pub const MAX_OBJECTS: usize = 100_000;
/// Largest answer read: 64 MiB, about 400,000 decisions of crowdsec 1.4.6 (~150 bytes each).
pub const MAX_BODY: u64 = 64 << 20;
/// Longest JSON string (a key or a value) in an answer, in bytes. A decision's longest
/// field of use is its scenario; crowdsec's own are well under 100 bytes.
pub const MAX_STRING: usize = 4096;
/// Kept length of `scenario` and `origin`, in characters (longer ones are clipped).
pub const CLIP_TEXT: usize = 64;
/// Longest `value` kept: an IPv6 range is at most 43 characters; longer is no address.
pub const MAX_VALUE: usize = 64;

/// The bounds of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Decisions kept per answer (see [`MAX_OBJECTS`]).
    pub max_objects: usize,
    /// Bytes read per answer (see [`MAX_BODY`]).
    pub max_body: u64,
    /// Bytes per JSON string (see [`MAX_STRING`]).
    pub max_string: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_objects: MAX_OBJECTS,
            max_body: MAX_BODY,
            max_string: MAX_STRING,
        }
    }
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
    /// `value` as the LAPI wrote it (at most [`MAX_VALUE`] bytes), for log lines.
    pub value: String,
    /// Its scenario (`portsentry/tcp-syn-scan`, `manual`, ...), clipped to [`CLIP_TEXT`]
    /// characters, unescaped (`report` escapes what it logs).
    pub scenario: String,
    /// Its origin (`crowdsec`, `cscli`, ...), clipped likewise.
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
    /// Objects skipped because they lack `id`, `type`, `scope`, `value` or `duration` (a
    /// deleted one: `id`), hold one of the wrong type, or are no object at all.
    pub malformed: u64,
    /// Objects beyond [`Caps::max_objects`], skipped unread.
    pub over_cap: u64,
}

/// Parses one whole answer held in memory (tests, the fuzz target).
pub fn parse(json: &[u8]) -> Result<Changes, String> {
    parse_reader(json, &Caps::default())
}

/// Parses one answer as it is read from `r`, within `caps`. Err: not the stream's JSON, or
/// over a cap (the message says why, briefly, and quotes nothing from the answer).
pub fn parse_reader<R: Read>(r: R, caps: &Caps) -> Result<Changes, String> {
    let mut guard = Guard::new(r, caps);
    let mut out = Changes::default();
    let result = {
        let mut de = serde_json::Deserializer::from_reader(BufReader::new(&mut guard));
        de.deserialize_map(Top {
            caps,
            out: &mut out,
            seen: 0,
        })
        .and_then(|()| de.end())
    };
    match (result, guard.tripped) {
        (Ok(()), _) => Ok(out),
        (Err(_), Some(why)) => Err(why),
        (Err(e), None) => Err(format!("bad JSON in the decision stream: {}", describe(&e))),
    }
}

/// Parses the answer of `GET /v1/decisions` (a catch-up read, see `fleet::resync`): an
/// array of decisions in force, or `null` when there are none, within `caps` as
/// [`parse_reader`]. The decisions are in [`Changes::new`]; nothing is deleted.
pub fn parse_list_reader<R: Read>(r: R, caps: &Caps) -> Result<Changes, String> {
    let mut guard = Guard::new(r, caps);
    let mut out = Changes::default();
    let result = {
        let mut de = serde_json::Deserializer::from_reader(BufReader::new(&mut guard));
        let mut top = Top {
            caps,
            out: &mut out,
            seen: 0,
        };
        List {
            deleted: false,
            top: &mut top,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
    };
    match (result, guard.tripped) {
        (Ok(()), _) => Ok(out),
        (Err(_), Some(why)) => Err(why),
        (Err(e), None) => Err(format!("bad JSON in the decisions list: {}", describe(&e))),
    }
}

/// serde_json's message without any text it quotes from the input (it quotes unexpected
/// strings): the category and the position only.
fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "syntax error",
        Category::Data => "not the stream's shape",
        Category::Eof => "unexpected end",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// Counts the bytes of the answer and the length of each JSON string token as they pass,
/// and stops the read (an I/O error for serde) past the caps: serde_json buffers a whole
/// string before it hands it over, so a long one must be refused before it is buffered.
struct Guard<R> {
    inner: R,
    max_body: u64,
    max_string: usize,
    read: u64,
    in_str: bool,
    escaped: bool,
    str_len: usize,
    /// Why the read was stopped (a cap, or the connection's error).
    tripped: Option<String>,
}

impl<R: Read> Guard<R> {
    fn new(inner: R, caps: &Caps) -> Guard<R> {
        Guard {
            inner,
            max_body: caps.max_body,
            max_string: caps.max_string,
            read: 0,
            in_str: false,
            escaped: false,
            str_len: 0,
            tripped: None,
        }
    }

    fn trip(&mut self, why: String) -> io::Error {
        let e = io::Error::other(why.clone());
        self.tripped = Some(why);
        e
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tripped.is_some() {
            return Err(io::Error::other("stopped"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(self.trip(format!("reading the decision stream failed: {e}"))),
        };
        self.read += n as u64;
        if self.read > self.max_body {
            let mib = self.max_body >> 20;
            return Err(self.trip(format!(
                "the decision stream answer is larger than {mib} MiB: refused"
            )));
        }
        for &b in &buf[..n] {
            if self.in_str {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_str = false;
                    continue;
                }
                self.str_len += 1;
                if self.str_len > self.max_string {
                    let max = self.max_string;
                    return Err(self.trip(format!(
                        "the decision stream holds a string longer than {max} bytes: refused"
                    )));
                }
            } else if b == b'"' {
                self.in_str = true;
                self.str_len = 0;
            }
        }
        Ok(n)
    }
}

/// The answer's object: `new` and `deleted` are walked, anything else is skipped.
struct Top<'a> {
    caps: &'a Caps,
    out: &'a mut Changes,
    seen: usize,
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the decision stream's object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<Key>()? {
            match k {
                Key::New | Key::Deleted => map.next_value_seed(List {
                    deleted: k == Key::Deleted,
                    top: &mut self,
                })?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    New,
    Deleted,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "new" => Key::New,
                    "deleted" => Key::Deleted,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// `new` or `deleted`: null, or an array walked one element at a time.
struct List<'a, 'b> {
    deleted: bool,
    top: &'a mut Top<'b>,
}

impl<'de> DeserializeSeed<'de> for List<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for List<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of decisions or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let top = self.top;
        loop {
            if top.seen >= top.caps.max_objects {
                // Over the cap: each further element is walked past without keeping it.
                match seq.next_element::<IgnoredAny>()? {
                    Some(_) => top.out.over_cap += 1,
                    None => return Ok(()),
                }
                continue;
            }
            let Some(obj) = seq.next_element::<Loose>()? else {
                return Ok(());
            };
            top.seen += 1;
            let out = &mut *top.out;
            if self.deleted {
                match obj.id {
                    Field::Good(id) => out.deleted.push(id),
                    _ => out.malformed += 1,
                }
            } else {
                match ban(obj) {
                    Intake::Ban(b) => out.new.push(b),
                    Intake::Skipped => out.skipped += 1,
                    Intake::Malformed => out.malformed += 1,
                }
            }
        }
    }
}

/// A field as found: absent (or null), of the right type, or of another type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Field<T> {
    #[default]
    Absent,
    Good(T),
    Bad,
}

impl<T> Field<T> {
    fn good(self) -> Option<T> {
        match self {
            Field::Good(t) => Some(t),
            _ => None,
        }
    }
}

/// One element of an array: the fields of a decision, or nothing (not an object).
#[derive(Debug, Default)]
struct Loose {
    id: Field<i64>,
    kind: Field<String>,
    scope: Field<String>,
    value: Field<String>,
    duration: Field<String>,
    scenario: Field<String>,
    origin: Field<String>,
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Loose, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

/// Walks past the rest of a sequence or map whose content is of no use.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decision")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        let mut o = Loose::default();
        while let Some(k) = map.next_key::<FieldKey>()? {
            match k {
                FieldKey::Id => o.id = map.next_value::<LooseInt>()?.0,
                FieldKey::Type => o.kind = map.next_value::<LooseStr>()?.0,
                FieldKey::Scope => o.scope = map.next_value::<LooseStr>()?.0,
                FieldKey::Value => o.value = map.next_value::<LooseStr>()?.0,
                FieldKey::Duration => o.duration = map.next_value::<LooseStr>()?.0,
                FieldKey::Scenario => o.scenario = map.next_value::<LooseStr>()?.0,
                FieldKey::Origin => o.origin = map.next_value::<LooseStr>()?.0,
                FieldKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(o)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose, E> {
        Ok(Loose::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Loose, E> {
        Ok(Loose::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Loose, E> {
        Ok(Loose::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Loose, E> {
        Ok(Loose::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Loose, E> {
        Ok(Loose::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose, A::Error> {
        drain_seq(seq)?;
        Ok(Loose::default())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKey {
    Id,
    Type,
    Scope,
    Value,
    Duration,
    Scenario,
    Origin,
    Other,
}

impl<'de> Deserialize<'de> for FieldKey {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<FieldKey, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FieldKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FieldKey, E> {
                Ok(match s {
                    "id" => FieldKey::Id,
                    "type" => FieldKey::Type,
                    "scope" => FieldKey::Scope,
                    "value" => FieldKey::Value,
                    "duration" => FieldKey::Duration,
                    "scenario" => FieldKey::Scenario,
                    "origin" => FieldKey::Origin,
                    _ => FieldKey::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// A string field, clipped to [`MAX_STRING`] characters at most (the guard already bounds
/// it in bytes); null is absent, any other type is bad.
struct LooseStr(Field<String>);

impl Default for LooseStr {
    fn default() -> Self {
        LooseStr(Field::Bad)
    }
}

impl<'de> Deserialize<'de> for LooseStr {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<LooseStr, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LooseStr, E> {
                Ok(LooseStr(Field::Good(clip(s, MAX_STRING))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LooseStr, E> {
                Ok(LooseStr(Field::Absent))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<LooseStr, E> {
                Ok(LooseStr::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<LooseStr, E> {
                Ok(LooseStr::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<LooseStr, E> {
                Ok(LooseStr::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LooseStr, E> {
                Ok(LooseStr::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<LooseStr, A::Error> {
                drain_seq(seq)?;
                Ok(LooseStr::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LooseStr, A::Error> {
                drain_map(map)?;
                Ok(LooseStr::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer field that fits an i64; null is absent, anything else is bad.
struct LooseInt(Field<i64>);

impl Default for LooseInt {
    fn default() -> Self {
        LooseInt(Field::Bad)
    }
}

impl<'de> Deserialize<'de> for LooseInt {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<LooseInt, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<LooseInt, E> {
                Ok(LooseInt(Field::Good(n)))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<LooseInt, E> {
                Ok(LooseInt(i64::try_from(n).map_or(Field::Bad, Field::Good)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LooseInt, E> {
                Ok(LooseInt(Field::Absent))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<LooseInt, E> {
                Ok(LooseInt::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LooseInt, E> {
                Ok(LooseInt::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<LooseInt, E> {
                Ok(LooseInt::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<LooseInt, A::Error> {
                drain_seq(seq)?;
                Ok(LooseInt::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LooseInt, A::Error> {
                drain_map(map)?;
                Ok(LooseInt::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// The first `max` characters of `s`.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// What one element of `new` gives.
enum Intake {
    Ban(Ban),
    /// Well-formed, but not for a firewall: another type or scope, or no address.
    Skipped,
    /// Not an object, or without a required field of the right type.
    Malformed,
}

fn ban(o: Loose) -> Intake {
    let (Some(id), Some(kind), Some(scope), Some(value), Some(duration)) = (
        o.id.good(),
        o.kind.good(),
        o.scope.good(),
        o.value.good(),
        o.duration.good(),
    ) else {
        return Intake::Malformed;
    };
    if !kind.eq_ignore_ascii_case("ban") {
        return Intake::Skipped;
    }
    let value = value.trim();
    if value.len() > MAX_VALUE {
        return Intake::Skipped;
    }
    let span = match scope.to_ascii_lowercase().as_str() {
        "ip" => value.parse::<IpAddr>().ok().map(Span::host),
        "range" => Span::parse_cidr(value),
        _ => None,
    };
    let (Some(span), Some(left_ms)) = (span, parse_go_duration(&duration)) else {
        return Intake::Skipped;
    };
    Intake::Ban(Ban {
        id,
        span,
        left_ms,
        value: value.to_string(),
        scenario: o
            .scenario
            .good()
            .map_or_else(String::new, |s| clip(&s, CLIP_TEXT)),
        origin: o
            .origin
            .good()
            .map_or_else(String::new, |s| clip(&s, CLIP_TEXT)),
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

    /// `GET /v1/decisions` of crowdsec 1.4.6: an array, or `null` when nothing is in force.
    #[test]
    fn the_decisions_list_is_read_as_new_decisions() {
        let list = r#"[{"duration":"3h59m58.81s","id":7,"origin":"crowdsec","scenario":"portsentry/tcp-syn-scan","scope":"Ip","type":"ban","value":"192.0.2.7"},
             {"duration":"1h","id":10,"origin":"cscli","scenario":"m","scope":"Country","type":"ban","value":"FR"},
             {"id":"x"}]"#;
        let c = parse_list_reader(list.as_bytes(), &Caps::default()).unwrap();
        assert_eq!(c.new.len(), 1);
        assert_eq!(c.new[0].id, 7);
        assert_eq!(c.new[0].span, Span::host("192.0.2.7".parse().unwrap()));
        assert_eq!((c.skipped, c.malformed, c.deleted.len()), (1, 1, 0));
        let none = Changes::default();
        assert_eq!(
            parse_list_reader(&b"null"[..], &Caps::default()),
            Ok(none.clone())
        );
        assert_eq!(parse_list_reader(&b"[]"[..], &Caps::default()), Ok(none));
        assert!(parse_list_reader(&b"{\"new\":[]}"[..], &Caps::default()).is_err());
        assert!(parse_list_reader(&b"[{}]x"[..], &Caps::default()).is_err());
        let caps = Caps {
            max_objects: 1,
            ..Caps::default()
        };
        let c = parse_list_reader(list.as_bytes(), &caps).unwrap();
        assert_eq!((c.new.len(), c.over_cap), (1, 2));
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
        assert_eq!((c.new.len(), c.skipped, c.malformed), (0, 2, 2));
        let mut rng = crate::testrng::Rng(3);
        let base = ANSWER.as_bytes();
        for _ in 0..2000 {
            let mut b = base.to_vec();
            let i = rng.below(b.len());
            b[i] = rng.next() as u8;
            let _ = parse(&b);
        }
    }

    const GOOD: &str = r#"{"duration":"1h","id":ID,"origin":"cscli","scenario":"s","scope":"Ip","type":"ban","value":"192.0.2.7"}"#;

    fn answer(n: usize, each: &str) -> Vec<u8> {
        let mut b = b"{\"deleted\":[],\"new\":[".to_vec();
        for i in 0..n {
            if i > 0 {
                b.push(b',');
            }
            b.extend_from_slice(each.replace("ID", &(i + 1).to_string()).as_bytes());
        }
        b.extend_from_slice(b"]}");
        b
    }

    #[test]
    fn objects_without_a_required_field_or_of_the_wrong_type_are_skipped_and_counted() {
        // Each lacks one of id, type, scope, value, duration, or has it of another type, or
        // is no object: skipped and counted, the good one around them kept.
        let c = parse(
            br#"{"new":[
              {"type":"ban","scope":"Ip","value":"192.0.2.1","duration":"1h"},
              {"id":2,"scope":"Ip","value":"192.0.2.2","duration":"1h"},
              {"id":3,"type":"ban","value":"192.0.2.3","duration":"1h"},
              {"id":4,"type":"ban","scope":"Ip","duration":"1h"},
              {"id":5,"type":"ban","scope":"Ip","value":"192.0.2.5"},
              {"id":"6","type":"ban","scope":"Ip","value":"192.0.2.6","duration":"1h"},
              {"id":7.5,"type":"ban","scope":"Ip","value":"192.0.2.7","duration":"1h"},
              {"id":8,"type":["ban"],"scope":"Ip","value":"192.0.2.8","duration":"1h"},
              {"id":9,"type":"ban","scope":{"a":[1,{"b":2}]},"value":"192.0.2.9","duration":"1h"},
              {"id":10,"type":"ban","scope":"Ip","value":null,"duration":"1h"},
              {"id":18446744073709551615,"type":"ban","scope":"Ip","value":"192.0.2.11","duration":"1h"},
              5, "x", null, true, [1,2,{"id":3}], {},
              {"id":12,"type":"ban","scope":"Ip","value":"192.0.2.12","duration":"1h","scenario":7,"extra":{"deep":[[[]]]}}
            ],"deleted":[{"id":"1"},{"id":30},7,{}],"other":{"new":[1]}}"#,
        )
        .unwrap();
        assert_eq!(c.new.len(), 1);
        assert_eq!(c.new[0].id, 12);
        assert_eq!(
            c.new[0].scenario, "",
            "a scenario of another type is left out"
        );
        assert_eq!(c.deleted, vec![30]);
        assert_eq!(c.malformed, 11 + 6 + 3);
        assert_eq!((c.skipped, c.over_cap), (0, 0));
    }

    #[test]
    fn at_most_max_objects_are_kept_the_rest_counted() {
        let caps = Caps {
            max_objects: 1000,
            ..Caps::default()
        };
        let body = answer(2500, GOOD);
        let c = parse_reader(&body[..], &caps).unwrap();
        assert_eq!((c.new.len(), c.over_cap), (1000, 1500));
        assert_eq!(c.new.last().map(|b| b.id), Some(1000));
        // Deleted ids count too (deleted comes first in crowdsec's answers).
        let mut b = b"{\"deleted\":[".to_vec();
        b.extend(
            (0..900)
                .map(|i| format!("{{\"id\":{i}}}"))
                .collect::<Vec<_>>()
                .join(",")
                .as_bytes(),
        );
        b.extend_from_slice(b"],\"new\":");
        b.extend_from_slice(&answer(300, GOOD)[20..]);
        let c = parse_reader(&b[..], &caps).unwrap();
        assert_eq!((c.deleted.len(), c.new.len(), c.over_cap), (900, 100, 200));
    }

    #[test]
    fn an_answer_over_the_byte_cap_or_with_a_long_string_is_refused_while_it_is_read() {
        let caps = Caps {
            max_body: 100_000,
            max_string: 100,
            max_objects: 1_000_000,
        };
        // An endless valid answer `{"new":[null,null,...`, counting what was taken from it:
        // the parse stops at the cap, not at the end (there is none).
        struct Nulls(u64);
        impl Read for Nulls {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let head = b"{\"new\":[null";
                let n = buf.len().min(4096);
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    let at = self.0 as usize + i;
                    *b = match head.get(at) {
                        Some(h) => *h,
                        None => b",null"[(at - head.len()) % 5],
                    };
                }
                self.0 += n as u64;
                Ok(n)
            }
        }
        let mut n = Nulls(0);
        let e = parse_reader(&mut n, &caps).unwrap_err();
        assert_eq!(
            e,
            "the decision stream answer is larger than 0 MiB: refused"
        );
        assert!(n.0 <= 100_000 + 8192, "read {} bytes", n.0);
        let caps_mib = Caps {
            max_body: 1 << 20,
            ..caps
        };
        let mut n = Nulls(0);
        assert_eq!(
            parse_reader(&mut n, &caps_mib).unwrap_err(),
            "the decision stream answer is larger than 1 MiB: refused"
        );
        // One string longer than the cap, even an escaped one, even a key.
        for body in [
            format!("{{\"new\":[{{\"scenario\":\"{}\"}}]}}", "a".repeat(101)),
            format!("{{\"new\":[{{\"scenario\":\"{}\"}}]}}", "\\\"".repeat(60)),
            format!("{{\"{}\":1}}", "k".repeat(200)),
        ] {
            assert_eq!(
                parse_reader(body.as_bytes(), &caps).unwrap_err(),
                "the decision stream holds a string longer than 100 bytes: refused"
            );
        }
        // Just under: fine, and clipped where kept.
        let long = "s".repeat(100);
        let body = GOOD
            .replace("\"s\"", &format!("\"{long}\""))
            .replace("ID", "1");
        let c = parse_reader(format!("{{\"new\":[{body}]}}").as_bytes(), &caps).unwrap();
        assert_eq!(c.new[0].scenario.chars().count(), CLIP_TEXT);
    }

    #[test]
    fn error_messages_quote_nothing_from_the_answer() {
        for bad in [
            &b"{\"new\":\"\x1b[2J evil\"}"[..],
            b"{\"new\":[{\"id\":1}], \"deleted\": \"\nforged line\"}",
            b"[\"\x1b]0;x\x07\"]",
            b"{\"new\":[]} trailing \x1b",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.chars().all(|c| !c.is_control()), "{e:?}");
            assert!(!e.contains("evil") && !e.contains("forged"), "{e}");
        }
    }

    #[test]
    fn a_large_answer_costs_memory_for_what_is_kept_only() {
        // 300,000 objects of which 50 are bans: everything else is counted, not kept.
        let mut b = b"{\"new\":[".to_vec();
        for i in 0..300_000u32 {
            if i > 0 {
                b.push(b',');
            }
            if i % 6000 == 0 {
                b.extend_from_slice(GOOD.replace("ID", &i.to_string()).as_bytes());
            } else {
                b.extend_from_slice(b"{}");
            }
        }
        b.extend_from_slice(b"]}");
        let c = parse(&b).unwrap();
        assert_eq!(c.new.len(), 17);
        assert_eq!(c.malformed + c.over_cap, 300_000 - 17);
        assert_eq!(c.over_cap, 200_000);
    }
}
