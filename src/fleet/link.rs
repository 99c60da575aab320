//! The link to the LAPI: retries with exponential back-off and jitter, and the "lost" and
//! "regained" log lines, rate-limited so a flapping link gives at most one line a minute.
//! Pure: time and randomness come in as arguments.

/// First retry after 1 s, doubling up to 60 s.
pub const BACKOFF_FIRST_MS: u64 = 1000;
/// Longest retry delay.
pub const BACKOFF_MAX_MS: u64 = 60_000;
/// At most one lost/regained line per this interval; the next says how many were skipped.
pub const LINE_INTERVAL_MS: u64 = 60_000;

/// Delay before retry number `attempt` (0-based), with `rand` (any u64) spreading it over
/// 75%-125% so many hosts that lost the same LAPI do not come back in step.
pub fn backoff_ms(attempt: u32, rand: u64) -> u64 {
    let base = BACKOFF_FIRST_MS
        .saturating_mul(1u64 << attempt.min(16))
        .min(BACKOFF_MAX_MS);
    base * 3 / 4 + rand % (base / 2 + 1)
}

/// The wait after a pull that worked: the interval spread over 90%-110% by `rand` (any u64),
/// so that hosts started together (a fleet rebooted, a configuration rolled out) drift apart
/// instead of pulling the LAPI in lock-step; on average it is the interval.
pub fn pull_gap_ms(interval_ms: u64, rand: u64) -> u64 {
    let spread = interval_ms / 10;
    interval_ms - spread + rand % (2 * spread + 1)
}

/// The wait before the first pull after start-up: a random moment of the interval, at most
/// [`FIRST_PULL_SPREAD_MS`] (the sets are restored from disk before it).
pub fn first_pull_ms(interval_ms: u64, rand: u64) -> u64 {
    rand % interval_ms.clamp(1, FIRST_PULL_SPREAD_MS)
}

/// The first pulls of hosts started together are spread over this much at most.
pub const FIRST_PULL_SPREAD_MS: u64 = 1000;

/// A pull answer slower than this, for pulls every `interval_ms`, is slow: half the interval,
/// at least [`SLOW_FLOOR_MS`]. An answer in under half of it is fast again.
pub fn slow_ms(interval_ms: u64) -> u64 {
    (interval_ms / 2).max(SLOW_FLOOR_MS)
}

/// No answer under this is slow, whatever the interval.
pub const SLOW_FLOOR_MS: u64 = 500;
/// Slow answers stretch the pull interval at most this many times.
pub const MAX_STRETCH: u64 = 8;

/// The pulls' pace: a LAPI that answers slowly is asked less often (the interval doubled at
/// each slow answer, up to [`MAX_STRETCH`] times), and as often as configured again once it
/// answers fast (halved at each fast answer). Errors are the [`Link`]'s back-off. A pull
/// asks for what changed since the last one, so a stretched interval delays decisions but
/// never loses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    stretch: u64,
    /// The last answer's time (ms).
    took: u64,
    /// When the last pull worked (or the pulls started: never yet).
    last_ok: u64,
    /// The current slowness was logged (so its end is too).
    slow_logged: bool,
    last_line: Option<u64>,
}

/// What to log about the pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceNews {
    /// The LAPI answers slowly: pulls every `every_ms` instead of the interval.
    Slow {
        /// The answer's time.
        took_ms: u64,
        /// The stretched interval.
        every_ms: u64,
    },
    /// It answers fast again: back to the interval.
    Fast {
        /// The answer's time.
        took_ms: u64,
    },
}

impl Pace {
    /// Pulls starting at `now`.
    pub fn new(now: u64) -> Pace {
        Pace {
            stretch: 1,
            took: 0,
            last_ok: now,
            slow_logged: false,
            last_line: None,
        }
    }

    /// A pull worked at `now`, answered in `took_ms`: the pace for pulls every
    /// `interval_ms`, and a line to log when the LAPI turned slow or fast again (at most
    /// one a minute; an end is logged when its start was).
    pub fn answered(&mut self, now: u64, took_ms: u64, interval_ms: u64) -> Option<PaceNews> {
        self.took = took_ms;
        self.last_ok = now;
        let slow = slow_ms(interval_ms);
        let was = self.stretch;
        if took_ms > slow {
            self.stretch = (self.stretch * 2).min(MAX_STRETCH);
        } else if took_ms < slow / 2 {
            self.stretch = (self.stretch / 2).max(1);
        }
        if was == 1 && self.stretch > 1 {
            let quiet = self
                .last_line
                .is_none_or(|t| now.saturating_sub(t) >= LINE_INTERVAL_MS);
            if quiet {
                self.last_line = Some(now);
                self.slow_logged = true;
                return Some(PaceNews::Slow {
                    took_ms,
                    every_ms: self.every_ms(interval_ms),
                });
            }
        } else if was > 1 && self.stretch == 1 && std::mem::take(&mut self.slow_logged) {
            self.last_line = Some(now);
            return Some(PaceNews::Fast { took_ms });
        }
        None
    }

    /// The interval the pulls keep now (the configured one, stretched).
    pub fn every_ms(&self, interval_ms: u64) -> u64 {
        interval_ms.saturating_mul(self.stretch)
    }

    /// The wait after a pull that worked: [`pull_gap_ms`] of the stretched interval.
    pub fn gap_ms(&self, interval_ms: u64, rand: u64) -> u64 {
        pull_gap_ms(self.every_ms(interval_ms), rand)
    }

    /// The last answer's time (ms).
    pub fn took_ms(&self) -> u64 {
        self.took
    }

    /// How far this host may be behind the LAPI's decisions: the time since the last pull
    /// that worked, once that is over twice the configured interval (at least 2 s); 0 while
    /// it keeps pace.
    pub fn behind_ms(&self, now: u64, interval_ms: u64) -> u64 {
        let since = now.saturating_sub(self.last_ok);
        if since > 2 * interval_ms.max(1000) {
            since
        } else {
            0
        }
    }
}

/// Up, down, and what to log about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// None: never tried yet.
    up: Option<bool>,
    /// When it last changed (ms).
    since: u64,
    last_line: Option<u64>,
    /// Changes not logged because of the rate limit.
    unlogged: u32,
    /// The current loss was logged (so its end is too).
    lost_logged: bool,
    /// New credentials since the last request: its failure is news ([`Link::renew`]).
    renewed: bool,
    /// Failures in a row (for the back-off).
    pub failures: u32,
}

/// What the link state is, for `portsentry status` (issue 13) and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not tried yet.
    Unknown,
    /// The last request worked.
    Up,
    /// The last request failed; down since then.
    Down {
        /// When it went down (monotonic ms).
        since_ms: u64,
    },
}

impl Default for Link {
    fn default() -> Self {
        Link::new()
    }
}

impl Link {
    /// A link never tried.
    pub fn new() -> Link {
        Link {
            up: None,
            since: 0,
            last_line: None,
            unlogged: 0,
            lost_logged: false,
            renewed: false,
            failures: 0,
        }
    }

    /// The link now uses other credentials (another key or client certificate, after a
    /// reload): a failure of the next request is logged even within a minute of the last
    /// line, or while the link is already down, so that an admin who reloads a refused
    /// credential sees the new one's verdict at once (issue 20).
    pub fn renew(&mut self) {
        self.renewed = true;
    }

    /// Up, down or not tried yet.
    pub fn state(&self) -> State {
        match self.up {
            None => State::Unknown,
            Some(true) => State::Up,
            Some(false) => State::Down {
                since_ms: self.since,
            },
        }
    }

    /// A failure right after start, or the first loss after a quiet minute, is logged; a
    /// loss within a minute of the last logged one is counted instead. A return is logged
    /// when its loss was.
    pub fn failed(&mut self, now: u64) -> Option<(u32, Option<u64>)> {
        self.failures = self.failures.saturating_add(1);
        let renewed = std::mem::take(&mut self.renewed);
        if self.up == Some(false) && !renewed {
            return None;
        }
        let was_up = match self.up {
            Some(false) => None,
            up => up.map(|_| now.saturating_sub(self.since)),
        };
        if self.up != Some(false) {
            self.since = now;
        }
        self.up = Some(false);
        match self.last_line {
            Some(t) if now.saturating_sub(t) < LINE_INTERVAL_MS && !renewed => {
                self.unlogged += 1;
                self.lost_logged = false;
                None
            }
            _ => {
                self.last_line = Some(now);
                self.lost_logged = true;
                Some((std::mem::take(&mut self.unlogged), was_up))
            }
        }
    }

    /// A request worked: Some(how long it was down, changes not logged) when it just came
    /// back from a logged loss.
    pub fn ok(&mut self, now: u64) -> Option<(u64, u32)> {
        self.failures = 0;
        self.renewed = false;
        match self.up {
            Some(true) => None,
            None => {
                self.up = Some(true);
                self.since = now;
                None
            }
            Some(false) => {
                let down = now.saturating_sub(self.since);
                self.up = Some(true);
                self.since = now;
                if std::mem::take(&mut self.lost_logged) {
                    Some((down, 0))
                } else {
                    self.unlogged += 1;
                    None
                }
            }
        }
    }

    /// When to try again after the last failure.
    pub fn retry_in(&self, rand: u64) -> u64 {
        backoff_ms(self.failures.saturating_sub(1), rand)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_are_spread_around_the_interval_and_average_it() {
        assert_eq!(pull_gap_ms(1000, 0), 900);
        assert_eq!(pull_gap_ms(1000, 200), 1100);
        assert_eq!(pull_gap_ms(10_000, 1000), 10_000);
        let gaps: Vec<u64> = (0..10_000u64)
            .map(|r| pull_gap_ms(1000, r.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7))
            .collect();
        assert!(gaps.iter().all(|g| (900..=1100).contains(g)));
        let mean = gaps.iter().sum::<u64>() / gaps.len() as u64;
        assert!((990..=1010).contains(&mean), "{mean}");
        // Ten hosts started in the same ms: their next pulls are not all in one 10 ms.
        let next: Vec<u64> = (0..10u64).map(|r| pull_gap_ms(1000, r * 37)).collect();
        assert!(next.iter().max().unwrap() - next.iter().min().unwrap() > 10);
        // One second is the floor of the interval: the gap is never 0.
        assert_eq!(pull_gap_ms(1, 5), 1);
        assert!((0..1000).all(|r| first_pull_ms(1000, r) < 1000));
        assert!((0..1000).all(|r| first_pull_ms(60_000, r * 977) < FIRST_PULL_SPREAD_MS));
        assert_eq!(first_pull_ms(0, 5), 0);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        assert_eq!(backoff_ms(0, 0), 750);
        assert_eq!(backoff_ms(0, 500), 1250);
        assert_eq!(backoff_ms(1, 0), 1500);
        assert_eq!(backoff_ms(10, 0), 45_000);
        assert_eq!(backoff_ms(40, u64::MAX), 45_000 + u64::MAX % 30_001);
        for r in 0..1000 {
            let d = backoff_ms(3, r * 7919);
            assert!((6000..=10_000).contains(&d));
        }
    }

    #[test]
    fn lost_and_regained_are_logged_once_each_and_flapping_is_rate_limited() {
        let mut l = Link::new();
        assert_eq!(l.state(), State::Unknown);
        assert_eq!(l.ok(0), None, "the first success is no news");
        assert_eq!(l.failed(1000), Some((0, Some(1000))));
        assert_eq!(l.failed(2000), None, "still down: no new line");
        assert_eq!(l.state(), State::Down { since_ms: 1000 });
        assert_eq!(l.failures, 2);
        // Back: logged (its loss was). Lost again within the minute: counted, and so is
        // the return from it.
        assert_eq!(l.ok(31_000), Some((30_000, 0)));
        assert_eq!(l.failed(32_000), None);
        assert_eq!(l.ok(33_000), None);
        // The next loss after a quiet minute is logged with the count.
        assert_eq!(l.failed(70_000), Some((2, Some(37_000))));
        assert_eq!(l.ok(75_000), Some((5_000, 0)));
        assert_eq!(l.state(), State::Up);
        assert_eq!(l.failures, 0);
        // A daemon that starts while the LAPI is down says so at once.
        let mut l = Link::new();
        assert_eq!(l.failed(5), Some((0, None)));
    }

    #[test]
    fn new_credentials_fail_loudly_even_within_the_minute_or_while_down() {
        let mut l = Link::new();
        assert_eq!(l.ok(0), None);
        assert_eq!(l.failed(1000), Some((0, Some(1000))));
        assert_eq!(l.ok(2000), Some((1000, 0)));
        // Another certificate after a reload, refused: logged although a line was logged
        // a second ago (without renew() it would be counted).
        l.renew();
        assert_eq!(l.failed(3000), Some((0, Some(1000))));
        // Yet another, refused too, while down: logged again; still down since 3000.
        l.renew();
        assert_eq!(l.failed(4000), Some((0, None)));
        assert_eq!(l.state(), State::Down { since_ms: 3000 });
        assert_eq!(l.failed(5000), None, "the same credentials: no news");
        // The return is logged, as that loss was.
        assert_eq!(l.ok(6000), Some((3000, 0)));
        // A renewal that works clears the flag: the next loss is rate-limited as ever.
        l.renew();
        assert_eq!(l.ok(7000), None);
        assert_eq!(l.failed(8000), None);
    }

    #[test]
    fn a_slow_lapi_is_pulled_less_often_and_as_often_again_once_fast() {
        let i = 1000;
        assert_eq!(slow_ms(i), 500);
        assert_eq!(slow_ms(10_000), 5000);
        let mut p = Pace::new(0);
        assert_eq!(p.answered(1000, 40, i), None, "fast: no news");
        assert_eq!(p.every_ms(i), 1000);
        // Slow: the interval doubles at each slow answer, up to 8 times; logged once.
        assert_eq!(
            p.answered(2000, 700, i),
            Some(PaceNews::Slow {
                took_ms: 700,
                every_ms: 2000
            })
        );
        assert_eq!(p.answered(4000, 900, i), None);
        assert_eq!(p.every_ms(i), 4000);
        for t in 0..5 {
            assert_eq!(p.answered(8000 + t * 8000, 3000, i), None);
        }
        assert_eq!(p.every_ms(i), 8000, "capped at MAX_STRETCH");
        assert!((7200..=8800).contains(&p.gap_ms(i, 12_345)));
        // Between half of slow and slow: held where it is.
        assert_eq!(p.answered(60_000, 300, i), None);
        assert_eq!(p.every_ms(i), 8000);
        // Fast again: halved at each fast answer; its end is logged once.
        assert_eq!(p.answered(68_000, 20, i), None);
        assert_eq!(p.answered(72_000, 20, i), None);
        assert_eq!(p.every_ms(i), 2000);
        assert_eq!(
            p.answered(74_000, 20, i),
            Some(PaceNews::Fast { took_ms: 20 })
        );
        assert_eq!(p.every_ms(i), 1000);
        assert_eq!(p.took_ms(), 20);
        // Flapping within the minute of the last line: not logged, and so neither is its end.
        assert_eq!(p.answered(75_000, 800, i), None);
        assert_eq!(p.every_ms(i), 2000);
        assert_eq!(p.answered(77_000, 10, i), None);
        assert_eq!(p.every_ms(i), 1000);
        // After a quiet minute, slowness is told again.
        assert!(matches!(
            p.answered(140_000, 800, i),
            Some(PaceNews::Slow { .. })
        ));
    }

    #[test]
    fn a_host_is_behind_once_its_last_pull_is_two_intervals_old() {
        let mut p = Pace::new(10_000);
        assert_eq!(p.behind_ms(11_500, 1000), 0, "first pull not due yet");
        assert_eq!(p.behind_ms(12_001, 1000), 2001, "never pulled for 2 s");
        p.answered(13_000, 30, 1000);
        assert_eq!(p.behind_ms(14_000, 1000), 0);
        assert_eq!(p.behind_ms(15_500, 1000), 2500);
        assert_eq!(p.behind_ms(30_000, 10_000), 0, "at 10 s, 17 s is on time");
        assert_eq!(p.behind_ms(34_000, 10_000), 21_000);
    }
}
