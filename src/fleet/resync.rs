//! What a pull reads (pure): the whole stream again (`startup=true`), what changed, or the
//! decisions in force (a catch-up read; and, while they are few, every pull: see
//! [`LIST_MAX`]).
//!
//! Why: the LAPI's answer of what changed lists the decisions *created* after the bouncer's
//! last pull, and sets that last pull to the time the request *started* (crowdsec 1.4.6,
//! `StreamDecision`: `created_at > last_pull`, then `last_pull = streamStartTime`; the same
//! in crowdsec's main branch of 2026). A decision whose `created_at` is stamped before a
//! pull starts, but which is written to the database after that pull's query (its INSERT
//! waited for the database while the pull's query ran), is listed in neither that answer
//! nor any later one. Every bouncer of that API has this race, crowdsec-firewall-bouncer
//! included; how often it strikes grows with the pull rate and with how long the LAPI's
//! writes wait for the database (measured in doc/fleets.md "Scale").
//!
//! The two ways back: a full read, which lists everything (costly when the LAPI holds a
//! community blocklist); and a catch-up read, `GET /v1/decisions` of the local origins
//! (`crowdsec`, `cscli`: what the fleet's hosts and admins decide), which lists the
//! decisions in force without moving the bouncer's last pull (crowdsec 1.4.6 moves it there
//! only when it is a minute old; the catch-up read comes right after a pull) and writes
//! nothing on the LAPI. Its answer only adds: a decision already known is the same decision
//! (by id), never applied twice; deletions still come from the stream.

/// A pull of what is new lists the decisions in force (`GET /v1/decisions` of the local
/// origins, as a catch-up read) instead of reading the stream while the last such list held at
/// most this many. Measured on crowdsec 1.4.6 with bare curl loops (doc/fleets.md "Scale"):
/// with nothing in force the list costs the LAPI and its database 41-46% of a stream pull on
/// PostgreSQL and 60-64% on SQLite (one SELECT and no write, where the stream makes two
/// SELECTs and an `UPDATE` of the bouncer's last pull every time); its cost grows with what it
/// lists (73% of a stream pull with 100 in force on PostgreSQL, 3-7.5 times with 1,000), and
/// on SQLite it stops paying at about 50.
pub const LIST_MAX: usize = 50;
/// While pulls list, the stream is still read this often: it brings deletions, the other
/// origins (community blocklists) and keeps the bouncer's last pull fresh (the list moves it
/// only when it is a minute old, which would lose what the stream has not yet listed).
pub const STREAM_EVERY_MS: u64 = 10_000;

/// When to read the whole stream again (`startup=true`) rather than what changed, and when a
/// pull lists the decisions in force instead (see [`LIST_MAX`]).
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
    /// Pulls of what changed since the last catch-up or full read.
    deltas: u32,
    /// When the stream (whole or what changed) was last read.
    last_stream: Option<u64>,
    /// How many decisions the last list of those in force held (None: none read yet with
    /// this key; `usize::MAX` after a list failed).
    listed: Option<usize>,
}

/// A full read this long after new decisions came (the chunks of a large alert are
/// committed within a few hundred ms of each other).
pub const AFTER_NEW_MS: u64 = 5_000;
/// Full reads brought on by new decisions are at least this far apart (a flood's 10,000
/// decisions make a stream answer of a few MB).
pub const MIN_GAP_MS: u64 = 30_000;
/// A full read at least this often.
pub const EVERY_MS: u64 = 300_000;
/// A catch-up read (the decisions in force, `GET /v1/decisions`) follows every this many
/// pulls of what changed.
pub const CATCHUP_AFTER: u32 = 5;

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

    /// The next pull at `now` (not a full read) is to list the decisions in force rather
    /// than read what changed: the last list held at most [`LIST_MAX`], and the stream was
    /// read less than [`STREAM_EVERY_MS`] ago.
    pub fn list_due(&self, now: u64) -> bool {
        self.last_full.is_some()
            && self.listed.is_some_and(|n| n <= LIST_MAX)
            && self
                .last_stream
                .is_some_and(|t| now.saturating_sub(t) < STREAM_EVERY_MS)
    }

    /// A list of the decisions in force (a pull or a catch-up read) worked at `now`; it held
    /// `count`.
    pub fn listed(&mut self, count: usize) {
        self.listed = Some(count);
        self.deltas = 0;
    }

    /// A list of the decisions in force failed: pulls read the stream, with a catch-up read
    /// after every [`CATCHUP_AFTER`] of them, until a list works again.
    pub fn list_failed(&mut self) {
        self.listed = Some(usize::MAX);
        self.deltas = 0;
    }

    /// A read of the stream at `now` worked: a full read (`full`) or one that brought `new`
    /// decisions.
    pub fn pulled(&mut self, now: u64, full: bool, new: usize) {
        self.last_stream = Some(now);
        if full {
            self.last_full = Some(now);
            self.new_since = None;
            self.deltas = 0;
        } else {
            self.deltas = self.deltas.saturating_add(1);
            if new > 0 && self.new_since.is_none() {
                self.new_since = Some(now);
            }
        }
    }

    /// A catch-up read is due now, right after a pull of what changed (see [`CATCHUP_AFTER`]),
    /// or to learn how many decisions are in force when no list was read yet.
    pub fn catchup_due(&self) -> bool {
        self.last_full.is_some() && (self.deltas >= CATCHUP_AFTER || self.listed.is_none())
    }

    /// Another key or LAPI: the next pull reads everything.
    pub fn restart(&mut self) {
        *self = Resync::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // With more decisions in force than a list pull pays for: a catch-up read after
        // every fifth pull of what changed (counted from a full read).
        r.pulled(75_000, true, 0);
        r.listed(LIST_MAX + 1);
        for t in 0..CATCHUP_AFTER {
            assert!(!r.catchup_due(), "after {t} pulls");
            r.pulled(75_000 + u64::from(t), false, 0);
        }
        assert!(r.catchup_due());
        assert!(
            !r.list_due(75_010),
            "too many in force to list at every pull"
        );
        r.listed(LIST_MAX + 1);
        assert!(!r.catchup_due());
        r.pulled(76_000, false, 0);
        assert!(!r.catchup_due());
        // Another key: everything again.
        r.restart();
        assert!(!r.catchup_due(), "never before the first full read");
        assert!(r.due(75_001));
    }

    #[test]
    fn pulls_list_what_is_in_force_while_it_is_short_and_read_the_stream_every_ten_seconds() {
        let mut r = Resync::default();
        assert!(!r.list_due(0), "the first pull reads the whole stream");
        r.pulled(0, true, 3);
        assert!(!r.list_due(1000), "how many are in force is not known yet");
        // The first pull of what changed is followed by a list, to learn how many.
        r.pulled(1000, false, 0);
        assert!(r.catchup_due());
        r.listed(3);
        assert!(!r.catchup_due());
        // From then on every pull lists, and the stream is read again 10 s after it was.
        for t in (2000..STREAM_EVERY_MS + 1000).step_by(1000) {
            assert!(r.list_due(t), "at {t} ms");
            r.listed(3);
            assert!(!r.catchup_due(), "a list is a catch-up read");
        }
        assert!(!r.list_due(STREAM_EVERY_MS + 1000));
        r.pulled(STREAM_EVERY_MS + 1000, false, 1);
        assert!(r.list_due(STREAM_EVERY_MS + 2000));
        // More in force than pays: back to the stream, with a catch-up read after every
        // fifth pull; a short list again: lists again.
        r.listed(LIST_MAX + 1);
        assert!(!r.list_due(STREAM_EVERY_MS + 2000));
        for t in 0..u64::from(CATCHUP_AFTER) {
            r.pulled(STREAM_EVERY_MS + 3000 + t * 1000, false, 0);
        }
        assert!(r.catchup_due());
        r.listed(LIST_MAX);
        assert!(r.list_due(STREAM_EVERY_MS + 8000));
        // A full read keeps what the last list said; another key forgets it.
        r.pulled(STREAM_EVERY_MS + 9000, true, 100);
        assert!(r.list_due(STREAM_EVERY_MS + 10_000));
        // A list that fails: the stream until a catch-up read lists again.
        r.list_failed();
        assert!(!r.list_due(STREAM_EVERY_MS + 10_000));
        assert!(!r.catchup_due());
        for t in 0..u64::from(CATCHUP_AFTER) {
            r.pulled(STREAM_EVERY_MS + 11_000 + t * 1000, false, 0);
        }
        assert!(r.catchup_due());
        r.listed(0);
        assert!(r.list_due(STREAM_EVERY_MS + 16_000));
        r.restart();
        assert!(!r.list_due(STREAM_EVERY_MS + 16_000));
    }
}
