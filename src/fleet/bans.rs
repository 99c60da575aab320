//! The bans pulled from the LAPI, as nftables elements: the decisions in force (by id), and
//! the disjoint intervals with their end times that sets `fleet4`/`fleet6` of table inet
//! portsentry must hold for them (`flags interval, timeout`: ranges fit, and each element
//! expires by itself when its ban ends). Pure.
//!
//! Why intervals computed here rather than one element per decision: decisions overlap (two
//! hosts report the same scanner, an address ban inside a range ban), and an interval set
//! refuses overlapping elements. So every point covered by some ban gets the latest end of
//! the bans covering it, cut into disjoint pieces; deleting one decision changes exactly the
//! pieces it covered. Protected addresses (this host's, gateways, loopback, ...) and
//! ignore-file networks are holes that no piece covers: such a ban is never applied there,
//! whatever the LAPI says.
//!
//! The shell keeps what it has applied and asks [`diff`] for the changes, which [`script`]
//! turns into one `nft -f` transaction. Local blocks (`blocked4`, `nets4`, ...) are other
//! sets: nothing here ever touches them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::span::{Span, max_of};
use super::stream::{Ban, Changes};

/// An address span no ban may cover, and why (for the log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    /// The addresses.
    pub span: Span,
    /// Why (`192.0.2.1 is an address of this host`), for the log line.
    pub why: String,
}

/// A decision in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The addresses it bans.
    pub span: Span,
    /// Monotonic ms when it ends.
    pub until: u64,
    /// The decision's `value` as the LAPI wrote it.
    pub value: String,
    /// The decision's scenario.
    pub scenario: String,
}

/// Decisions in force at most (issue 24): a LAPI cannot grow the model, the sets and the
/// nft transactions without bound. Ten of the README's 10,000-source floods.
pub const MAX_ACTIVE: usize = 100_000;
/// The bans in force may cover at most this many IPv4 addresses: one /8, 1/256 of the
/// IPv4 space (more when CROWDSEC_WIDEST_BAN allows one wider ban).
pub const COVER_V4: u128 = 1 << 24;
/// ... and this many IPv6 /64 networks (one /32, the unit an RIR allocates to an ISP). A
/// /64 is IPv6's unit: one host's subnet; counting single addresses would make any /64
/// 2^64 of them.
pub const COVER_V6: u128 = 1 << 32;

/// What pulled decisions may ban (issue 24): no ban wider than `widest`, at most
/// `max_active` decisions in force, and together at most [`Bounds::cover_cap`] addresses
/// per family. So neither a rogue LAPI nor `cscli decisions add --range 0.0.0.0/0` typed by
/// mistake can cut a host off; what is refused is logged with its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Widest ban as prefix lengths (IPv4, IPv6): CROWDSEC_WIDEST_BAN.
    pub widest: (u8, u8),
    /// Decisions in force at most.
    pub max_active: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            widest: super::keys::WIDEST_BAN,
            max_active: MAX_ACTIVE,
        }
    }
}

impl Bounds {
    fn widest_of(&self, v6: bool) -> u8 {
        if v6 { self.widest.1 } else { self.widest.0 }
    }

    /// The span is wider than the family's widest ban.
    pub fn too_wide(&self, s: &Span) -> bool {
        let host_bits = max_of(s.v6).checked_shr(u32::from(self.widest_of(s.v6)));
        s.end - s.start > host_bits.unwrap_or(0)
    }

    /// The family's cover cap, in [`cover`] units: [`COVER_V4`] / [`COVER_V6`], or one
    /// widest ban when that is larger.
    pub fn cover_cap(&self, v6: bool) -> u128 {
        let widest = Span {
            v6,
            start: 0,
            end: max_of(v6)
                .checked_shr(u32::from(self.widest_of(v6)))
                .unwrap_or(0),
        };
        cover(&widest).max(if v6 { COVER_V6 } else { COVER_V4 })
    }
}

/// How much a span covers: IPv4 addresses, or IPv6 /64 networks (a part of one counts as
/// one).
pub fn cover(s: &Span) -> u128 {
    if s.v6 {
        ((s.end - s.start) >> 64) + 1
    } else {
        s.end - s.start + 1
    }
}

/// The decisions in force, by id.
#[derive(Debug, Clone, Default)]
pub struct Model {
    active: HashMap<i64, Active>,
    bounds: Bounds,
}

/// A decision refused when it came (issue 24), with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The decision's id in the LAPI.
    pub id: i64,
    /// The decision's `value` as the LAPI wrote it.
    pub value: String,
    /// The decision's scenario.
    pub scenario: String,
    /// Why (`wider than /8 (CROWDSEC_WIDEST_BAN)`).
    pub why: String,
}

/// A decision that a hole keeps from being applied (wholly or in part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The decision's id in the LAPI.
    pub id: i64,
    /// The decision's `value` as the LAPI wrote it.
    pub value: String,
    /// The decision's scenario.
    pub scenario: String,
    /// Why it was not (wholly) applied: the hole's reason.
    pub hole: String,
    /// The whole decision is refused (else it is applied around the hole).
    pub whole: bool,
}

impl Model {
    /// An empty model with these bounds.
    pub fn new(bounds: Bounds) -> Model {
        Model {
            active: HashMap::new(),
            bounds,
        }
    }

    /// Other bounds (a reload): they judge the decisions that come from now on (the puller
    /// reads the whole stream again, so all of them).
    pub fn set_bounds(&mut self, b: Bounds) {
        self.bounds = b;
    }

    /// The bounds in force.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Takes one stream answer. `startup`: it lists every decision in force, so anything not
    /// in it is gone. New decisions are taken in id order, each within the [`Bounds`]; the
    /// refused ones come back (never stored).
    pub fn apply(&mut self, now: u64, c: &Changes, startup: bool) -> Vec<Refused> {
        if startup {
            self.active.clear();
        }
        for id in &c.deleted {
            self.active.remove(id);
        }
        self.active.retain(|_, a| a.until > now);
        let mut covered = [0u128; 2];
        for a in self.active.values() {
            covered[usize::from(a.span.v6)] += cover(&a.span);
        }
        let mut new: Vec<&Ban> = c.new.iter().collect();
        new.sort_by_key(|b| b.id);
        let mut refused = Vec::new();
        for b in new {
            if let Some(old) = self.active.remove(&b.id) {
                covered[usize::from(old.span.v6)] -= cover(&old.span);
            }
            if b.left_ms <= 0 {
                continue;
            }
            let fam = usize::from(b.span.v6);
            let why = if self.bounds.too_wide(&b.span) {
                Some(format!(
                    "wider than /{} (CROWDSEC_WIDEST_BAN)",
                    self.bounds.widest_of(b.span.v6)
                ))
            } else if covered[fam] + cover(&b.span) > self.bounds.cover_cap(b.span.v6) {
                Some(if b.span.v6 {
                    format!(
                        "the fleet's bans would cover more than {} IPv6 /64 networks",
                        self.bounds.cover_cap(true)
                    )
                } else {
                    format!(
                        "the fleet's bans would cover more than {} IPv4 addresses",
                        self.bounds.cover_cap(false)
                    )
                })
            } else if self.active.len() >= self.bounds.max_active {
                Some(format!(
                    "{} decisions are in force already",
                    self.bounds.max_active
                ))
            } else {
                None
            };
            if let Some(why) = why {
                refused.push(Refused {
                    id: b.id,
                    value: b.value.clone(),
                    scenario: b.scenario.clone(),
                    why,
                });
                continue;
            }
            covered[fam] += cover(&b.span);
            self.active.insert(
                b.id,
                Active {
                    span: b.span,
                    until: now.saturating_add(b.left_ms as u64),
                    value: b.value.clone(),
                    scenario: b.scenario.clone(),
                },
            );
        }
        refused
    }

    /// What the decisions in force cover, per family ([`cover`] units: IPv4, IPv6).
    pub fn covered(&self) -> (u128, u128) {
        let mut c = [0u128; 2];
        for a in self.active.values() {
            c[usize::from(a.span.v6)] += cover(&a.span);
        }
        (c[0], c[1])
    }

    /// Decisions in force.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// No decision in force.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The pieces the sets must hold at `now`, and the decisions the holes cut into. Ended
    /// decisions are forgotten.
    pub fn desired(&mut self, now: u64, holes: &[Hole]) -> (BTreeMap<Span, u64>, Vec<Refusal>) {
        self.active.retain(|_, a| a.until > now);
        let mut refused = Vec::new();
        let mut ids: Vec<&i64> = self.active.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let a = &self.active[id];
            // One line per decision: the first hole that cuts into it (an address can be a
            // hole for two reasons).
            if let Some(h) = holes.iter().find(|h| h.span.overlaps(&a.span)) {
                refused.push(Refusal {
                    id: *id,
                    value: a.value.clone(),
                    scenario: a.scenario.clone(),
                    hole: h.why.clone(),
                    whole: h.span.start <= a.span.start && a.span.end <= h.span.end,
                });
            }
        }
        let mut out = BTreeMap::new();
        for v6 in [false, true] {
            let spans: Vec<(Span, u64)> = self
                .active
                .values()
                .filter(|a| a.span.v6 == v6)
                .map(|a| (a.span, a.until))
                .collect();
            let hs: Vec<Span> = holes
                .iter()
                .filter(|h| h.span.v6 == v6)
                .map(|h| h.span)
                .collect();
            for (s, u) in pieces(v6, &spans, &hs) {
                out.insert(s, u);
            }
        }
        (out, refused)
    }
}

/// Disjoint pieces of one family: every point covered by `spans` and no hole, with the latest
/// end of the spans covering it; neighbours with the same end are merged.
fn pieces(v6: bool, spans: &[(Span, u64)], holes: &[Span]) -> Vec<(Span, u64)> {
    // Boundaries: +until at start, -until after end (None: past the last address).
    let mut ev: Vec<(u128, bool, u64)> = Vec::with_capacity(spans.len() * 2);
    for &(s, u) in spans {
        ev.push((s.start, true, u));
        if s.end < max_of(v6) {
            ev.push((s.end + 1, false, u));
        }
    }
    ev.sort_unstable();
    let mut live: BTreeMap<u64, u32> = BTreeMap::new();
    let mut raw: Vec<(Span, u64)> = Vec::new();
    let mut i = 0;
    while i < ev.len() {
        let at = ev[i].0;
        while i < ev.len() && ev[i].0 == at {
            let (_, start, u) = ev[i];
            if start {
                *live.entry(u).or_insert(0) += 1;
            } else if let Some(c) = live.get_mut(&u) {
                *c -= 1;
                if *c == 0 {
                    live.remove(&u);
                }
            }
            i += 1;
        }
        if let Some((&u, _)) = live.last_key_value() {
            let end = ev.get(i).map_or(max_of(v6), |e| e.0 - 1);
            raw.push((Span { v6, start: at, end }, u));
        }
    }
    // Cut the holes out.
    let mut hs: Vec<Span> = holes.to_vec();
    hs.sort_unstable();
    let mut cut: Vec<(Span, u64)> = Vec::with_capacity(raw.len());
    for (mut s, u) in raw {
        let mut gone = false;
        let over: Vec<Span> = hs.iter().filter(|h| h.overlaps(&s)).copied().collect();
        for h in over {
            if h.start > s.start {
                cut.push((
                    Span {
                        end: h.start - 1,
                        ..s
                    },
                    u,
                ));
            }
            if h.end >= s.end {
                gone = true;
                break;
            }
            s.start = h.end + 1;
        }
        if !gone {
            cut.push((s, u));
        }
    }
    // Merge touching neighbours with the same end.
    let mut out: Vec<(Span, u64)> = Vec::with_capacity(cut.len());
    for (s, u) in cut {
        match out.last_mut() {
            Some((p, pu)) if *pu == u && p.end.checked_add(1) == Some(s.start) => p.end = s.end,
            _ => out.push((s, u)),
        }
    }
    out
}

/// Ends this close (ms) count as the same: a re-read of the stream or of the set moves them
/// by a few ms, and the set keeps whole seconds.
pub const SLACK_MS: u64 = 2000;

/// What to change in the sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Pieces to take out of the sets.
    pub delete: Vec<Span>,
    /// Piece and its timeout in whole seconds.
    pub add: Vec<(Span, u64)>,
}

impl Plan {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.add.is_empty()
    }
}

/// The changes from `applied` (what the sets hold, with the ends they were given) to
/// `desired`. A piece that is about to end by itself (within [`SLACK_MS`]) is left to its
/// timeout rather than deleted: deleting an element the kernel has just dropped would fail
/// the whole transaction.
pub fn diff(now: u64, applied: &BTreeMap<Span, u64>, desired: &BTreeMap<Span, u64>) -> Plan {
    let mut p = Plan::default();
    for (s, &u) in applied {
        let keep = desired.get(s).is_some_and(|&d| d.abs_diff(u) <= SLACK_MS);
        if !keep && u > now + SLACK_MS {
            p.delete.push(*s);
        }
    }
    for (s, &d) in desired {
        let same = applied
            .get(s)
            .is_some_and(|&u| d.abs_diff(u) <= SLACK_MS && u > now + SLACK_MS);
        if !same && d > now {
            p.add
                .push((*s, (d - now).div_ceil(1000).clamp(1, MAX_TIMEOUT_S)));
        }
    }
    p
}

/// Element timeouts are capped at one year, as `BLOCK_TIMEOUT` (older kernels keep them in
/// a 32-bit field of milliseconds... times 1000 jiffies); a longer ban is renewed by the
/// next start-up.
pub const MAX_TIMEOUT_S: u64 = 365 * 24 * 3600;

/// The sets for a family.
pub fn set_name(v6: bool) -> &'static str {
    if v6 { "fleet6" } else { "fleet4" }
}

/// One `nft -f` script (one transaction) for `plan`: deletes first, so a piece that changes
/// its end is deleted and added again.
pub fn script(plan: &Plan) -> String {
    let mut s = String::new();
    for v6 in [false, true] {
        let del: Vec<String> = plan
            .delete
            .iter()
            .filter(|x| x.v6 == v6)
            .map(Span::nft_text)
            .collect();
        for chunk in del.chunks(crate::block::nft::CHUNK) {
            let _ = writeln!(
                s,
                "delete element inet portsentry {} {{ {} }}",
                set_name(v6),
                chunk.join(", ")
            );
        }
    }
    for v6 in [false, true] {
        let add: Vec<String> = plan
            .add
            .iter()
            .filter(|x| x.0.v6 == v6)
            .map(|(x, t)| format!("{} timeout {t}s", x.nft_text()))
            .collect();
        for chunk in add.chunks(crate::block::nft::CHUNK) {
            let _ = writeln!(
                s,
                "add element inet portsentry {} {{ {} }}",
                set_name(v6),
                chunk.join(", ")
            );
        }
    }
    s
}

/// What the sets hold according to a listing (`crate::block::nft::parse_listing`): the fleet
/// elements with their ends (`now` + time left).
pub fn from_listing(now: u64, elems: &[crate::block::nft::Element]) -> BTreeMap<Span, u64> {
    let mut out = BTreeMap::new();
    for e in elems.iter().filter(|e| e.set.is_fleet()) {
        let first = Span::host(e.prefix.addr);
        let span = match e.end {
            Some(last) => Span {
                end: Span::host(last).start,
                ..first
            },
            None => Span::parse_cidr(&e.prefix.to_string()).unwrap_or(first),
        };
        let left = e
            .expires_ms
            .or(e.timeout_ms)
            .unwrap_or(MAX_TIMEOUT_S * 1000);
        out.insert(span, now + left);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> Span {
        match s.split_once('-') {
            Some((a, b)) => Span {
                end: Span::host(b.parse().unwrap()).start,
                ..Span::host(a.parse().unwrap())
            },
            None => Span::parse_cidr(s).unwrap(),
        }
    }

    fn ban(id: i64, v: &str, left_ms: i64) -> Ban {
        Ban {
            id,
            span: sp(v),
            left_ms,
            value: v.to_string(),
            scenario: "s".into(),
            origin: "crowdsec".into(),
        }
    }

    fn changes(new: Vec<Ban>, deleted: Vec<i64>) -> Changes {
        Changes {
            new,
            deleted,
            ..Changes::default()
        }
    }

    fn texts(m: &BTreeMap<Span, u64>) -> Vec<(String, u64)> {
        m.iter().map(|(s, u)| (s.nft_text(), *u)).collect()
    }

    #[test]
    fn spans_print_as_nft_does() {
        assert_eq!(sp("192.0.2.7").nft_text(), "192.0.2.7");
        assert_eq!(sp("198.51.100.0/24").nft_text(), "198.51.100.0/24");
        assert_eq!(sp("198.51.100.77/24").nft_text(), "198.51.100.0/24");
        assert_eq!(sp("0.0.0.0/0").nft_text(), "0.0.0.0/0");
        assert_eq!(sp("::/0").nft_text(), "::/0");
        assert_eq!(sp("2001:db8::/32").nft_text(), "2001:db8::/32");
        assert_eq!(sp("192.0.2.0-192.0.2.6").nft_text(), "192.0.2.0-192.0.2.6");
        assert_eq!(sp("192.0.2.8-192.0.2.15").nft_text(), "192.0.2.8/29");
        assert_eq!(sp("::ffff:192.0.2.1").nft_text(), "192.0.2.1");
        assert!(Span::parse_cidr("192.0.2.0/33").is_none());
        assert!(Span::parse_cidr("x/3").is_none());
    }

    #[test]
    fn an_address_inside_a_range_keeps_the_later_end() {
        let mut m = Model::default();
        m.apply(
            0,
            &changes(
                vec![ban(1, "192.0.2.0/24", 60_000), ban(2, "192.0.2.7", 120_000)],
                vec![],
            ),
            true,
        );
        let (d, r) = m.desired(0, &[]);
        assert!(r.is_empty());
        assert_eq!(
            texts(&d),
            [
                ("192.0.2.0-192.0.2.6".to_string(), 60_000),
                ("192.0.2.7".to_string(), 120_000),
                ("192.0.2.8-192.0.2.255".to_string(), 60_000)
            ]
        );
        // The range deleted: only the address is left.
        m.apply(10, &changes(vec![], vec![1]), false);
        let (d2, _) = m.desired(10, &[]);
        assert_eq!(texts(&d2), [("192.0.2.7".to_string(), 120_000)]);
        let p = diff(10, &d, &d2);
        assert_eq!(p.delete.len(), 2);
        assert!(p.add.is_empty(), "the address keeps its element");
        assert_eq!(
            script(&p),
            "delete element inet portsentry fleet4 { 192.0.2.0-192.0.2.6, 192.0.2.8-192.0.2.255 }\n"
        );
    }

    #[test]
    fn two_bans_on_one_address_last_as_long_as_the_longer() {
        let mut m = Model::default();
        m.apply(
            0,
            &changes(
                vec![ban(1, "2001:db8::7", 10_000), ban(2, "2001:db8::7", 50_000)],
                vec![],
            ),
            false,
        );
        let (d, _) = m.desired(0, &[]);
        assert_eq!(texts(&d), [("2001:db8::7".to_string(), 50_000)]);
        let p = diff(0, &BTreeMap::new(), &d);
        assert_eq!(
            script(&p),
            "add element inet portsentry fleet6 { 2001:db8::7 timeout 50s }\n"
        );
        // Deleting the longer one shortens the element: delete and add in one transaction.
        m.apply(1000, &changes(vec![], vec![2]), false);
        let (d2, _) = m.desired(1000, &[]);
        let p = diff(1000, &d, &d2);
        assert_eq!(
            script(&p),
            "delete element inet portsentry fleet6 { 2001:db8::7 }\nadd element inet portsentry fleet6 { 2001:db8::7 timeout 9s }\n"
        );
        // Deleting both removes it.
        m.apply(2000, &changes(vec![], vec![1]), false);
        let (d3, _) = m.desired(2000, &[]);
        assert!(d3.is_empty());
        assert_eq!(diff(2000, &d2, &d3).delete, vec![sp("2001:db8::7")]);
    }

    #[test]
    fn protected_addresses_and_ignored_networks_are_never_covered() {
        let holes = [
            Hole {
                span: sp("192.0.2.1"),
                why: "192.0.2.1 is an address of this host".into(),
            },
            Hole {
                span: sp("10.0.0.0/8"),
                why: "10.0.0.0/8 is in the ignore file".into(),
            },
        ];
        let mut m = Model::default();
        m.apply(
            0,
            &changes(
                vec![
                    ban(1, "192.0.2.1", 5000),
                    ban(2, "192.0.2.0/30", 5000),
                    ban(3, "10.1.2.3", 5000),
                    ban(4, "192.0.2.9", 5000),
                ],
                vec![],
            ),
            true,
        );
        let (d, r) = m.desired(0, &holes);
        assert_eq!(
            texts(&d),
            [
                ("192.0.2.0".to_string(), 5000),
                ("192.0.2.2/31".to_string(), 5000),
                ("192.0.2.9".to_string(), 5000)
            ]
        );
        let why: Vec<(i64, bool)> = r.iter().map(|x| (x.id, x.whole)).collect();
        assert_eq!(why, [(1, true), (2, false), (3, true)]);
        assert_eq!(r[0].hole, "192.0.2.1 is an address of this host");
    }

    #[test]
    fn ended_decisions_are_dropped_and_a_startup_answer_replaces_everything() {
        let mut m = Model::default();
        m.apply(
            0,
            &changes(
                vec![
                    ban(1, "192.0.2.1", 1000),
                    ban(2, "192.0.2.2", 9000),
                    ban(3, "192.0.2.3", -5),
                ],
                vec![],
            ),
            false,
        );
        assert_eq!(m.len(), 2);
        let (d, _) = m.desired(1000, &[]);
        assert_eq!(texts(&d), [("192.0.2.2".to_string(), 9000)]);
        m.apply(
            2000,
            &changes(vec![ban(5, "192.0.2.5", 1000)], vec![]),
            true,
        );
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn diff_leaves_what_ends_by_itself_and_tolerates_jitter() {
        let applied: BTreeMap<Span, u64> =
            [(sp("192.0.2.1"), 10_000), (sp("192.0.2.2"), 3_000)].into();
        let desired: BTreeMap<Span, u64> = [(sp("192.0.2.1"), 11_500)].into();
        let p = diff(2_000, &applied, &desired);
        // .1 within the slack: unchanged; .2 ends within the slack: left to its timeout.
        assert!(p.is_empty(), "{p:?}");
        let p = diff(0, &applied, &desired);
        assert_eq!(p.delete, vec![sp("192.0.2.2")]);
    }

    #[test]
    fn pieces_match_a_brute_force_model() {
        // Small universe 192.0.2.0/28, random bans and holes, checked point by point.
        let mut rng = crate::testrng::Rng(11);
        for round in 0..300 {
            let mut m = Model::default();
            let n = rng.below(6) + 1;
            let mut bans = Vec::new();
            for id in 0..n {
                let a = rng.below(16) as u8;
                let b = (a as usize + rng.below(16 - a as usize)) as u8;
                let left = (rng.below(5) as i64 + 1) * 1000;
                bans.push((a, b, left));
                let v = format!("192.0.2.{a}-192.0.2.{b}");
                m.apply(0, &changes(vec![ban(id as i64, &v, left)], vec![]), false);
            }
            let h = rng.below(16) as u8;
            let holes = [Hole {
                span: sp(&format!("192.0.2.{h}")),
                why: "x".into(),
            }];
            let (d, _) = m.desired(0, &holes);
            for x in 0..16u8 {
                let want = bans
                    .iter()
                    .filter(|(a, b, _)| *a <= x && x <= *b)
                    .map(|b| b.2 as u64)
                    .max();
                let want = if x == h { None } else { want };
                let p = sp(&format!("192.0.2.{x}"));
                let got = d
                    .iter()
                    .find(|(s, _)| s.start <= p.start && p.start <= s.end)
                    .map(|(_, u)| *u);
                assert_eq!(got, want, "round {round} point {x} bans {bans:?} hole {h}");
            }
            // Disjoint and merged.
            let v: Vec<(&Span, &u64)> = d.iter().collect();
            for w in v.windows(2) {
                assert!(w[0].0.end < w[1].0.start);
                assert!(!(w[0].0.end + 1 == w[1].0.start && w[0].1 == w[1].1));
            }
        }
    }

    #[test]
    fn bans_wider_than_the_floor_are_refused_and_the_rest_applied() {
        let mut m = Model::default();
        let r = m.apply(
            0,
            &changes(
                vec![
                    ban(1, "0.0.0.0/0", 60_000),
                    ban(2, "::/0", 60_000),
                    ban(3, "10.0.0.0/7", 60_000),
                    ban(4, "2001:db8::/31", 60_000),
                    ban(5, "10.0.0.0/8", 60_000),
                    ban(6, "2001:db8::/32", 60_000),
                    ban(7, "192.0.2.7", 60_000),
                ],
                vec![],
            ),
            true,
        );
        let why: Vec<(i64, &str)> = r.iter().map(|x| (x.id, x.why.as_str())).collect();
        assert_eq!(
            why,
            [
                (1, "wider than /8 (CROWDSEC_WIDEST_BAN)"),
                (2, "wider than /32 (CROWDSEC_WIDEST_BAN)"),
                (3, "wider than /8 (CROWDSEC_WIDEST_BAN)"),
                (4, "wider than /32 (CROWDSEC_WIDEST_BAN)"),
                // The /8 and the /32 fill the cover caps: one address more is refused.
                (
                    7,
                    "the fleet's bans would cover more than 16777216 IPv4 addresses"
                ),
            ]
        );
        assert_eq!(r[0].value, "0.0.0.0/0");
        assert_eq!(m.len(), 2);
        assert_eq!(m.covered(), (1 << 24, 1 << 32));
        // The /8 deleted: room again; a re-listed refused decision is judged again.
        let r = m.apply(
            1000,
            &changes(vec![ban(7, "192.0.2.7", 60_000)], vec![5]),
            false,
        );
        assert!(r.is_empty(), "{r:?}");
        assert_eq!(m.covered(), (1, 1 << 32));
        // Another floor (a reload): a /16 and a /48 at most.
        m.set_bounds(Bounds {
            widest: (16, 48),
            max_active: MAX_ACTIVE,
        });
        let r = m.apply(
            2000,
            &changes(
                vec![
                    ban(8, "198.51.0.0/15", 60_000),
                    ban(9, "198.51.0.0/16", 60_000),
                ],
                vec![],
            ),
            false,
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].why, "wider than /16 (CROWDSEC_WIDEST_BAN)");
        // A floor of /0: one ::/0 is allowed (the cap grows to one widest ban), two are not.
        let mut m = Model::new(Bounds {
            widest: (0, 0),
            max_active: MAX_ACTIVE,
        });
        let r = m.apply(
            0,
            &changes(
                vec![
                    ban(1, "::/0", 1000),
                    ban(2, "0.0.0.0/0", 1000),
                    ban(3, "2001:db8::1", 1000),
                ],
                vec![],
            ),
            true,
        );
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].id, 3);
    }

    #[test]
    fn at_most_max_active_decisions_are_in_force() {
        let mut m = Model::new(Bounds {
            widest: WIDEST,
            max_active: 3,
        });
        let bans: Vec<Ban> = (1..=5)
            .map(|i| ban(i, &format!("192.0.2.{i}"), 1000))
            .collect();
        let r = m.apply(0, &changes(bans, vec![]), true);
        assert_eq!(m.len(), 3);
        assert_eq!(
            r.iter().map(|x| (x.id, x.why.as_str())).collect::<Vec<_>>(),
            [
                (4, "3 decisions are in force already"),
                (5, "3 decisions are in force already")
            ]
        );
        // Ended decisions make room.
        let r = m.apply(
            2000,
            &changes(vec![ban(6, "192.0.2.6", 1000)], vec![]),
            false,
        );
        assert!(r.is_empty());
        assert_eq!(m.len(), 1);
    }

    const WIDEST: (u8, u8) = crate::fleet::keys::WIDEST_BAN;
}
