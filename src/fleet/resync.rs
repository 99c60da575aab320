//! When a pull reads more than what changed (pure): the whole stream again
//! (`startup=true`), or the decisions in force (a catch-up read).
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
    /// Pulls of what changed since the last catch-up or full read.
    deltas: u32,
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

    /// A pull at `now` worked: a full read (`full`) or one that brought `new` decisions.
    pub fn pulled(&mut self, now: u64, full: bool, new: usize) {
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

    /// A catch-up read is due now, right after a pull of what changed (see [`CATCHUP_AFTER`]).
    pub fn catchup_due(&self) -> bool {
        self.last_full.is_some() && self.deltas >= CATCHUP_AFTER
    }

    /// A catch-up read worked.
    pub fn caught_up(&mut self) {
        self.deltas = 0;
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
        // A catch-up read after every fifth pull of what changed (counted from a full read).
        r.pulled(75_000, true, 0);
        for t in 0..CATCHUP_AFTER {
            assert!(!r.catchup_due(), "after {t} pulls");
            r.pulled(75_000 + u64::from(t), false, 0);
        }
        assert!(r.catchup_due());
        r.caught_up();
        assert!(!r.catchup_due());
        r.pulled(76_000, false, 0);
        assert!(!r.catchup_due());
        // Another key: everything again.
        r.restart();
        assert!(!r.catchup_due(), "never before the first full read");
        assert!(r.due(75_001));
    }
}
