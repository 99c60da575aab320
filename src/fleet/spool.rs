//! The spool's format: what waits on disk for the LAPI (`/var/lib/portsentry/crowdsec.spool`).
//! Pure: bytes in and out; `sys::fleet::spool` owns the file.
//!
//! One line per entry, each ending in the CRC-32 of the rest of the line, so a line torn by
//! `kill -9` in the middle of a write (or left half-written by a power loss) is recognised
//! and dropped, never read as something else:
//!
//! ```text
//! PSPOOL 1 <spool id> <crc>                                   first line
//! R <seq> <epoch ms> <ip> <port> <mode> <scan> <ban s> <crc>  a record (the event loop)
//! S <first> <last> <crc>                                      a request with these records is about to go out
//! A <first> <last> <crc>                                      these records are done (delivered, or refused for good)
//! ```
//!
//! The file is only appended to (the event loop writes records, the fleet thread its `S` and
//! `A` lines, each line in one `write`), and replaced as a whole (a temp file renamed over
//! it) when it is compacted. Record numbers count up per spool id; a new id is drawn when
//! an empty spool starts over, so the numbers an alert names in the LAPI
//! (`portsentry_records`) are never reused.

use std::net::IpAddr;

use super::alert::{Numbered, Record, Scan};
use crate::config::mode::Mode;

/// First word of a spool file.
pub const MAGIC: &str = "PSPOOL";
/// The format's version.
pub const VERSION: u32 = 1;

fn crc(text: &str) -> String {
    format!("{:08x}", crc32fast::hash(text.as_bytes()))
}

fn sealed(text: String) -> String {
    let c = crc(&text);
    format!("{text} {c}\n")
}

/// The first line: magic, version, spool id.
pub fn header(id: &str) -> String {
    sealed(format!("{MAGIC} {VERSION} {id}"))
}

/// An `R` line: one record.
pub fn record_line(n: &Numbered) -> String {
    let r = &n.record;
    sealed(format!(
        "R {} {} {} {} {} {} {}",
        n.seq,
        r.epoch_ms,
        r.ip,
        r.port,
        r.mode.as_str(),
        r.scan.name(),
        r.ban_s
    ))
}

/// An `S` line: a request with these records is about to go out.
pub fn sent_line(first: u64, last: u64) -> String {
    sealed(format!("S {first} {last}"))
}

/// An `A` line: these records are done.
pub fn done_line(first: u64, last: u64) -> String {
    sealed(format!("A {first} {last}"))
}

/// One line of the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The first line.
    Header {
        /// The spool id.
        id: String,
    },
    /// An `R` line.
    Record(Numbered),
    /// An `S` line: first and last record number.
    Sent(u64, u64),
    /// An `A` line: first and last record number.
    Done(u64, u64),
}

/// Parses one line without its line feed. None: torn, corrupt, or not ours.
pub fn parse_line(line: &[u8]) -> Option<Line> {
    let text = std::str::from_utf8(line).ok()?;
    let (body, sum) = text.rsplit_once(' ')?;
    if sum.len() != 8 || crc(body) != sum {
        return None;
    }
    let f: Vec<&str> = body.split(' ').collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    match f.first().copied()? {
        MAGIC if f.len() == 3 && f.get(1) == Some(&"1") => Some(Line::Header {
            id: f.get(2)?.to_string(),
        }),
        "R" if f.len() == 8 => Some(Line::Record(Numbered {
            seq: num(1)?,
            record: Record {
                epoch_ms: f.get(2)?.parse().ok()?,
                ip: f.get(3)?.parse::<IpAddr>().ok()?,
                port: f.get(4)?.parse().ok()?,
                mode: Mode::from_name(f.get(5)?)?,
                scan: Scan::from_name(f.get(6)?)?,
                ban_s: num(7)?,
            },
        })),
        "S" if f.len() == 3 && num(1)? <= num(2)? => Some(Line::Sent(num(1)?, num(2)?)),
        "A" if f.len() == 3 && num(1)? <= num(2)? => Some(Line::Done(num(1)?, num(2)?)),
        _ => None,
    }
}

/// A set of record numbers as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// Adds `a..=b`.
    pub fn insert(&mut self, a: u64, b: u64) {
        let (mut a, mut b) = (a.min(b), a.max(b));
        let mut keep = Vec::with_capacity(self.0.len() + 1);
        for &(x, y) in &self.0 {
            if y.saturating_add(1) < a || b.saturating_add(1) < x {
                keep.push((x, y));
            } else {
                a = a.min(x);
                b = b.max(y);
            }
        }
        keep.push((a, b));
        keep.sort_unstable();
        self.0 = keep;
    }

    /// `n` is in the set.
    pub fn contains(&self, n: u64) -> bool {
        let i = self.0.partition_point(|&(_, y)| y < n);
        self.0.get(i).is_some_and(|&(x, _)| x <= n)
    }

    /// No number in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Numbers of `self` not in `other`.
    pub fn minus(&self, other: &Ranges) -> Vec<u64> {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            // In flight ranges are one request each: at most a few thousand numbers.
            for n in a..=b.min(a.saturating_add(1 << 20)) {
                if !other.contains(n) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// Forget everything at or below `n` (done records before the oldest waiting one).
    pub fn forget_upto(&mut self, n: u64) {
        self.0.retain(|&(_, b)| b > n);
        if let Some(first) = self.0.first_mut() {
            first.0 = first.0.max(n.saturating_add(1));
        }
    }
}

/// What a spool file holds, read at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    /// The spool id; None when the file is empty or its first line is unreadable.
    pub id: Option<String>,
    /// Bytes up to the end of the last whole, valid line: the rest is a torn tail.
    pub valid_len: usize,
    /// A torn tail was found (and is to be cut off).
    pub torn: bool,
    /// Lines that failed their check before the tail (corruption), skipped.
    pub bad_lines: u64,
    /// The number the next record gets.
    pub next_seq: u64,
    /// Records delivered or given up.
    pub done: Ranges,
    /// Requests that may have gone out, with records not marked done: the LAPI must be asked
    /// before these are sent again.
    pub in_flight: Ranges,
    /// Byte offset of the first record that still waits (None: none waits).
    pub first_waiting: Option<usize>,
    /// Records that still wait.
    pub waiting: u64,
}

/// Reads a whole spool file.
pub fn scan(bytes: &[u8]) -> Scanned {
    let mut s = Scanned {
        next_seq: 1,
        ..Scanned::default()
    };
    let mut off = 0usize;
    let mut records: Vec<(u64, usize)> = Vec::new();
    let mut first = true;
    while off < bytes.len() {
        let rest = &bytes[off..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            s.torn = true;
            break;
        };
        let line = parse_line(&rest[..nl]);
        let end = off + nl + 1;
        match (first, line) {
            (true, Some(Line::Header { id })) => s.id = Some(id),
            (true, _) => {
                // No header: nothing here can be trusted to belong to a spool id.
                s.valid_len = 0;
                s.id = None;
                s.bad_lines = 1;
                return s;
            }
            (false, Some(Line::Record(n))) => {
                records.push((n.seq, off));
                s.next_seq = s.next_seq.max(n.seq.saturating_add(1));
            }
            (false, Some(Line::Sent(a, b))) => s.in_flight.insert(a, b),
            (false, Some(Line::Done(a, b))) => s.done.insert(a, b),
            (false, Some(Line::Header { .. }) | None) => {
                // A bad line with more after it: corruption, not a torn tail. But if every
                // line after it is bad too, it is the tail.
                s.bad_lines += 1;
                off = end;
                continue;
            }
        }
        first = false;
        off = end;
        s.valid_len = end;
    }
    if s.valid_len < bytes.len() {
        s.torn = true;
        // Bad lines in the tail are the torn tail, not corruption.
        let tail = &bytes[s.valid_len..];
        let tail_lines = tail.iter().filter(|&&b| b == b'\n').count() as u64;
        s.bad_lines = s.bad_lines.saturating_sub(tail_lines);
    }
    let in_flight: Vec<u64> = s.in_flight.minus(&s.done);
    s.in_flight = Ranges::default();
    for n in in_flight {
        s.in_flight.insert(n, n);
    }
    for (seq, at) in records.into_iter().filter(|(_, at)| *at < s.valid_len) {
        if !s.done.contains(seq) {
            s.waiting += 1;
            if s.first_waiting.is_none() {
                s.first_waiting = Some(at);
            }
        }
    }
    s
}

/// The records in `bytes` (whole lines from a spool, read from some offset on) that are not
/// done, each with its offset in `bytes`; also how many bytes were whole lines (the reader
/// continues from there).
pub fn records_after(bytes: &[u8], done: &Ranges, max: usize) -> (Vec<(Numbered, usize)>, usize) {
    let mut out = Vec::new();
    let mut off = 0;
    while out.len() < max {
        let rest = &bytes[off..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            break;
        };
        if let Some(Line::Record(n)) = parse_line(&rest[..nl])
            && !done.contains(n.seq)
        {
            out.push((n, off));
        }
        off += nl + 1;
    }
    (out, off)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, ip: &str) -> Numbered {
        Numbered {
            seq,
            record: Record {
                epoch_ms: 1_795_383_542_123,
                ip: ip.parse().unwrap(),
                port: 11,
                mode: Mode::Stcp,
                scan: Scan::TcpSyn,
                ban_s: 3600,
            },
        }
    }

    #[test]
    fn lines_are_exact_and_round_trip() {
        let l = record_line(&rec(7, "192.0.2.7"));
        assert_eq!(
            l,
            format!(
                "R 7 1795383542123 192.0.2.7 11 stcp tcp-syn-scan 3600 {:08x}\n",
                crc32fast::hash(b"R 7 1795383542123 192.0.2.7 11 stcp tcp-syn-scan 3600")
            )
        );
        assert_eq!(
            parse_line(l.trim_end().as_bytes()),
            Some(Line::Record(rec(7, "192.0.2.7")))
        );
        let v6 = rec(8, "2001:db8::7");
        assert_eq!(
            parse_line(record_line(&v6).trim_end().as_bytes()),
            Some(Line::Record(v6))
        );
        assert_eq!(
            parse_line(header("a1b2").trim_end().as_bytes()),
            Some(Line::Header { id: "a1b2".into() })
        );
        assert_eq!(
            parse_line(sent_line(3, 9).trim_end().as_bytes()),
            Some(Line::Sent(3, 9))
        );
        assert_eq!(
            parse_line(done_line(3, 9).trim_end().as_bytes()),
            Some(Line::Done(3, 9))
        );
    }

    #[test]
    fn any_damage_to_a_line_is_detected() {
        let l = record_line(&rec(7, "192.0.2.7"));
        let l = l.trim_end().as_bytes();
        for cut in 0..l.len() {
            assert_eq!(parse_line(&l[..cut]), None, "cut at {cut}");
        }
        for i in 0..l.len() {
            let mut m = l.to_vec();
            m[i] ^= 0x01;
            assert_eq!(parse_line(&m), None, "bit flip at {i}");
        }
        assert_eq!(
            parse_line(sealed("S 9 3".into()).trim_end().as_bytes()),
            None
        );
        assert_eq!(
            parse_line(
                sealed("R 1 2 x 4 stcp tcp-syn-scan 5".into())
                    .trim_end()
                    .as_bytes()
            ),
            None
        );
    }

    fn file(lines: &[String]) -> Vec<u8> {
        lines.concat().into_bytes()
    }

    #[test]
    fn a_torn_tail_is_cut_and_nothing_is_duplicated() {
        let mut lines = vec![header("id1")];
        for i in 1..=5 {
            lines.push(record_line(&rec(i, "192.0.2.1")));
        }
        lines.push(sent_line(1, 3));
        lines.push(done_line(1, 3));
        lines.push(sent_line(4, 5));
        let whole = file(&lines);
        let s = scan(&whole);
        assert_eq!(s.id.as_deref(), Some("id1"));
        assert_eq!((s.valid_len, s.torn, s.bad_lines), (whole.len(), false, 0));
        assert_eq!((s.next_seq, s.waiting), (6, 2));
        assert_eq!(s.in_flight.ranges(), &[(4, 5)]);
        // kill -9 in the middle of appending record 6: every cut point.
        let six = record_line(&rec(6, "192.0.2.6"));
        for cut in 1..six.len() {
            let mut b = whole.clone();
            b.extend_from_slice(&six.as_bytes()[..cut]);
            let t = scan(&b);
            assert_eq!(t.valid_len, whole.len(), "cut {cut}");
            assert!(t.torn);
            assert_eq!((t.next_seq, t.waiting, t.bad_lines), (6, 2, 0));
        }
        // What follows the first waiting record is read back exactly once.
        let at = s.first_waiting.unwrap();
        let (recs, used) = records_after(&whole[at..], &s.done, 100);
        assert_eq!(recs.iter().map(|n| n.0.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(recs[0].1, 0);
        assert_eq!(used, whole.len() - at);
    }

    #[test]
    fn corruption_in_the_middle_is_skipped_and_counted() {
        let mut b = file(&[header("x"), record_line(&rec(1, "192.0.2.1"))]);
        b.extend_from_slice(b"R 2 garbage\n");
        b.extend(file(&[record_line(&rec(3, "192.0.2.3"))]));
        let s = scan(&b);
        assert_eq!(
            (s.bad_lines, s.waiting, s.next_seq, s.torn),
            (1, 2, 4, false)
        );
        // Zeros after a power loss: a torn tail, not corruption.
        let mut z = file(&[header("x"), record_line(&rec(1, "192.0.2.1"))]);
        let good = z.len();
        z.extend_from_slice(&[0u8; 300]);
        z.push(b'\n');
        let s = scan(&z);
        assert_eq!((s.valid_len, s.torn, s.bad_lines), (good, true, 0));
    }

    #[test]
    fn a_file_without_header_is_not_trusted() {
        let s = scan(record_line(&rec(1, "192.0.2.1")).as_bytes());
        assert_eq!((s.id, s.valid_len, s.bad_lines), (None, 0, 1));
        let s = scan(b"");
        assert_eq!((s.id, s.next_seq, s.torn), (None, 1, false));
    }

    #[test]
    fn ranges() {
        let mut r = Ranges::default();
        r.insert(5, 7);
        r.insert(1, 2);
        r.insert(3, 4);
        assert_eq!(r.ranges(), &[(1, 7)]);
        r.insert(10, 10);
        assert!(r.contains(7) && !r.contains(8) && r.contains(10) && !r.contains(0));
        let mut f = Ranges::default();
        f.insert(6, 11);
        assert_eq!(f.minus(&r), vec![8, 9, 11]);
        r.forget_upto(6);
        assert_eq!(r.ranges(), &[(7, 7), (10, 10)]);
    }
}
