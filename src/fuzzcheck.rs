//! The checks behind the fuzz targets (`fuzz/fuzz_targets/*.rs`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`): one function per parser of outside input, bytes in, a panic out
//! when an invariant breaks. Written once here so that the fuzzer and `cargo test` check the
//! same things (issue 5, item 3: every parser of outside input is fuzzed and its corpus is
//! replayed by ordinary tests).
//!
//! Each function must accept any byte string: the fuzz input is decoded without ever failing
//! (a short input reads as zeros). Only the parser under test may panic; a panic raised by an
//! `assert!` here is a found bug, with a message saying which invariant broke.
//!
//! Must never: be called by the daemon or the builder (it panics by design), do I/O, or check
//! something the module's documentation does not promise.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use crate::block::template;
use crate::config::cli::Cli;
use crate::config::ignore::{self, Line, Net};
use crate::config::ignore_builder::{self, Add, BuildInput};
use crate::config::mode::{Mode, Proto};
use crate::config::{self, Diagnostic};

/// A check: returns for an input the parser handles correctly, panics otherwise.
pub type Check = fn(&[u8]);

/// Every fuzz target, by name: the names of `fuzz/fuzz_targets/<name>.rs` and of
/// `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("config", config),
    ("ignore", ignore),
    ("template", template),
    ("cli", cli),
    ("ignore_builder", ignore_builder),
    ("wire", wire),
    ("defrag", defrag),
    ("admin", admin),
    ("defaults", defaults),
    ("stream", stream),
];

/// The path `config` gives the parser; every diagnostic must name it.
pub const CONFIG_PATH: &str = "/etc/portsentry/portsentry.conf";

/// Reads typed values off the front of the fuzz input; past the end everything is zero, so
/// every input decodes.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        for b in &mut out {
            *b = self.u8();
        }
        out
    }

    /// One tag byte (even: v4, odd: v6), then 4 or 16 address bytes.
    fn addr(&mut self) -> IpAddr {
        if self.u8().is_multiple_of(2) {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>()))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>()))
        }
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// Number of physical lines as a 1-based line number can count them: one more than the LFs.
fn physical_lines(data: &[u8]) -> usize {
    data.iter().filter(|&&b| b == b'\n').count() + 1
}

/// portsentry.conf: `config::parse` and `Config::validate` for every mode set the command line
/// accepts (one mode, or one TCP plus one UDP mode) never panic, and every diagnostic names
/// the file, a line that exists and a known key, and carries no control characters (it goes
/// to syslog and terminals as it is).
pub fn config(data: &[u8]) {
    let path = Path::new(CONFIG_PATH);
    let parsed = config::parse(data, path);
    let lines = physical_lines(data);
    check_diagnostics(&parsed.diagnostics, path, lines);
    let mut sets: Vec<Vec<Mode>> = Mode::ALL.iter().map(|&m| vec![m]).collect();
    for t in Mode::ALL.iter().filter(|m| m.proto() == Proto::Tcp) {
        for u in Mode::ALL.iter().filter(|m| m.proto() == Proto::Udp) {
            sets.push(vec![*t, *u]);
        }
    }
    for modes in &sets {
        let diags = parsed.config.validate(modes, path);
        check_diagnostics(&diags, path, lines);
    }
}

fn check_diagnostics(diags: &[Diagnostic], path: &Path, lines: usize) {
    let shown_path = path.display().to_string();
    for d in diags {
        let shown = d.to_string();
        assert_eq!(d.path, path, "diagnostic for another file: {shown}");
        assert!(
            shown.contains(&shown_path),
            "diagnostic does not name the file: {shown}"
        );
        if let Some(line) = d.line {
            assert!(
                (1..=lines).contains(&line),
                "line {line} outside 1..={lines}: {shown}"
            );
        }
        if let Some(key) = &d.key {
            assert!(config::key(key).is_some(), "unknown key {key:?}: {shown}");
        }
        assert!(
            !shown.chars().any(char::is_control),
            "control character in diagnostic: {shown:?}"
        );
    }
}

/// The ignore file: `ignore::parse` never panics; each invalid line gives exactly one warning
/// with its line number and a reason free of control characters; every entry's network
/// contains the address written on its line (also in IPv4-mapped form), is in the list, and
/// reads back as itself from its `Display` form.
pub fn ignore(data: &[u8]) {
    let (list, warnings) = ignore::parse(data);
    let mut expected_warnings = Vec::new();
    let mut entries = 0;
    for (i, raw) in ignore::split_lines(data).enumerate() {
        let Ok(text) = std::str::from_utf8(raw) else {
            expected_warnings.push(i + 1);
            continue;
        };
        match ignore::parse_line(text) {
            Line::Skip => {}
            Line::Invalid(_) => expected_warnings.push(i + 1),
            Line::Entry(net) => {
                entries += 1;
                check_entry(text, net, &list);
            }
        }
    }
    let got: Vec<usize> = warnings.iter().map(|w| w.line).collect();
    assert_eq!(
        got, expected_warnings,
        "warnings are not one per invalid line"
    );
    for w in &warnings {
        assert!(
            !w.reason.chars().any(char::is_control),
            "control character in reason: {:?}",
            w.reason
        );
    }
    assert!(list.len() <= entries, "more networks than entry lines");
}

fn check_entry(text: &str, net: Net, list: &ignore::IgnoreList) {
    // The address as written: before any comment, without blanks, before any '/'. std's
    // parser is the independent oracle: it accepts exactly the strict dotted quad and v6.
    let body = text.split('#').next().unwrap_or("");
    let body = body.trim_matches([' ', '\t', '\r']);
    let addr_text = body.split('/').next().unwrap_or("");
    let addr: IpAddr = match addr_text.parse() {
        Ok(a) => a,
        Err(_) => panic!("entry {net} from {text:?}, but std rejects address {addr_text:?}"),
    };
    assert!(
        net.contains(addr),
        "{net} (from {text:?}) does not contain {addr}"
    );
    assert!(
        list.contains(addr),
        "list does not contain {addr} ({text:?})"
    );
    if let IpAddr::V4(a) = addr {
        let mapped = IpAddr::V6(a.to_ipv6_mapped());
        assert!(list.contains(mapped), "list misses mapped form of {addr}");
    }
    assert!(list.nets().contains(&net), "{net} missing from the list");
    assert_eq!(Net::new(net.addr, net.prefix), Some(net), "host bits set");
    assert_eq!(
        ignore::parse_line(&net.to_string()),
        Line::Entry(net),
        "{net} does not read back as itself"
    );
}

/// `$TARGET$` substitution: input = port (2 bytes), mode (1), address (tag + 4 or 16), then the
/// template (lossy UTF-8). No macro survives in the result (values are never rescanned); the
/// target appears when the template names it; nothing but the template's own characters and
/// those of an address, a port number and a mode name appear (no shell metacharacter can be
/// introduced); a template without `$` is returned unchanged; substitution is idempotent.
pub fn template(data: &[u8]) {
    let mut b = Bytes(data);
    let port = u16::from_be_bytes(b.array::<2>());
    let mode = Mode::ALL[usize::from(b.u8()) % Mode::ALL.len()];
    let target = b.addr();
    let text = String::from_utf8_lossy(b.rest());
    let out = template::substitute(&text, target, port, mode);

    for m in [template::TARGET, template::PORT, template::MODE] {
        assert!(!out.contains(m), "{m} survives in {out:?} from {text:?}");
    }
    if template::has_target(&text) {
        assert!(out.contains(&target.to_string()), "target missing: {out:?}");
    }
    if !text.contains('$') {
        assert_eq!(out, text, "template without macros changed");
    }
    let inserted =
        |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.' || mode.as_str().contains(c);
    for c in out.chars() {
        assert!(
            text.contains(c) || inserted(c),
            "{c:?} in {out:?} comes from neither template {text:?} nor a value"
        );
    }
    assert_eq!(
        template::substitute(&out, target, port, mode),
        out,
        "substitution is not idempotent"
    );
}

/// The command line: input = argv after `argv[0]`, arguments separated by NUL bytes (as argv
/// strings are; other bytes, non-UTF-8 included, are kept). Parsing never panics; a success has
/// one or two modes, at most one per protocol (or none with `--check`, which then reads the
/// modes from /etc/default/portsentry); an error renders.
pub fn cli(data: &[u8]) {
    let args: Vec<OsString> = std::iter::once(OsString::from("portsentry"))
        .chain(
            data.split(|&b| b == 0)
                .filter(|_| !data.is_empty())
                .map(|a| OsString::from_vec(a.to_vec())),
        )
        .collect();
    assert_eq!(
        crate::config::cli::normalise(args.clone()).len(),
        args.len(),
        "normalise changed the number of arguments"
    );
    match Cli::parse_from_args(args) {
        Ok(cli) => {
            let modes = cli.modes();
            assert!(
                !modes.is_empty() || cli.check,
                "parsed without a mode: {cli:?}"
            );
            for proto in [Proto::Tcp, Proto::Udp] {
                let n = modes.iter().filter(|m| m.proto() == proto).count();
                assert!(n <= 1, "{n} {proto:?} modes accepted: {cli:?}");
            }
        }
        Err(e) => {
            let _ = e.render().to_string();
        }
    }
}

/// `portsentry-build-ignore-file`: input = interface-address count (1 byte, mod 4), the
/// addresses (tag + 4 or 16 bytes each), a network (address, prefix byte), then the static
/// file. The built file reads back without warnings and covers every static entry and every
/// interface address; its warnings are those of the static file. `add_entry` and
/// `remove_entry` (for the decoded network and for the static file's first entry) agree with
/// the parser and with each other.
pub fn ignore_builder(data: &[u8]) {
    let mut b = Bytes(data);
    let count = b.u8() % 4;
    let ifaces: Vec<IpAddr> = (0..count).map(|_| b.addr()).collect();
    let addr = b.addr();
    let max = if addr.is_ipv4() { 33 } else { 129 };
    let net = Net::new(addr, b.u8() % max).unwrap_or(Net::host(addr));
    let static_text = b.rest();

    let built = ignore_builder::build(&BuildInput {
        static_path: ignore_builder::DEFAULT_STATIC,
        output_path: ignore_builder::DEFAULT_OUTPUT,
        static_text,
        interface_addrs: &ifaces,
    });
    let (static_list, static_warnings) = ignore::parse(static_text);
    assert_eq!(built.warnings, static_warnings, "build and parse disagree");
    let (out_list, out_warnings) = ignore::parse(built.text.as_bytes());
    assert!(
        out_warnings.is_empty(),
        "built file has invalid lines: {out_warnings:?}"
    );
    for n in static_list.nets() {
        assert!(out_list.nets().contains(n), "static entry {n} lost");
    }
    for ip in &ifaces {
        assert!(
            out_list.nets().contains(&Net::host(*ip)),
            "interface {ip} missing"
        );
    }

    check_add_remove(static_text, &net);
    if let Some(first) = static_list.nets().first() {
        check_add_remove(static_text, first);
    }
}

fn check_add_remove(static_text: &[u8], net: &Net) {
    let (list, _) = ignore::parse(static_text);
    let lines: Vec<&[u8]> = ignore::split_lines(static_text).collect();
    let line_is =
        |raw: &[u8]| std::str::from_utf8(raw).map(ignore::parse_line) == Ok(Line::Entry(*net));
    let with_net = match ignore_builder::add_entry(static_text, net) {
        Add::Exists { line } => {
            let raw = lines.get(line.wrapping_sub(1)).copied().unwrap_or_default();
            assert!(line_is(raw), "Exists points at line {line}, not {net}");
            assert!(
                list.nets().contains(net),
                "Exists, but {net} not in the list"
            );
            static_text.to_vec()
        }
        Add::Append(s) => {
            assert!(
                !list.nets().contains(net),
                "{net} listed but appended again"
            );
            let mut t = static_text.to_vec();
            t.extend_from_slice(s.as_bytes());
            let (after, _) = ignore::parse(&t);
            assert!(
                after.nets().contains(net),
                "appended {s:?}, {net} not listed"
            );
            assert!(
                matches!(ignore_builder::add_entry(&t, net), Add::Exists { .. }),
                "{net} appended twice"
            );
            t
        }
    };

    let (kept, removed) = ignore_builder::remove_entry(&with_net, net);
    assert!(!removed.is_empty(), "{net} present but nothing removed");
    let all: Vec<&[u8]> = ignore::split_lines(&with_net).collect();
    for &l in &removed {
        let raw = all.get(l.wrapping_sub(1)).copied().unwrap_or_default();
        assert!(line_is(raw), "removed line {l} is not {net}");
    }
    let (after, _) = ignore::parse(&kept);
    assert!(
        !after.nets().contains(net),
        "{net} still listed after removal"
    );
    let (again, none) = ignore_builder::remove_entry(&kept, net);
    assert!(
        none.is_empty() && again == kept,
        "removal is not idempotent"
    );
}

/// Packets (`wire::parse`), as the capture hands them over (IP header first), with each
/// checksum status the capture can report. A parsed probe is internally consistent: a UDP
/// probe carries no flags, the address families of source and destination agree, and
/// `ip_options` is only possible with a longer IPv4 header or IPv6 extension headers; a
/// fragment's offset is a multiple of 8 and its data fits its length; a packet accepted
/// without a checksum status is also accepted when the kernel says it verified it (nothing
/// but the checksum depends on the status). The flag byte classifies without panicking.
pub fn wire(data: &[u8]) {
    use crate::capture::wire::{Csum, Meta, Packet, parse};
    let first = data.first().copied().unwrap_or(0);
    let whole = parse(data, Meta::whole(data.len()));
    for csum in [Csum::Unknown, Csum::Partial, Csum::Valid] {
        let m = Meta {
            csum,
            ..Meta::whole(data.len())
        };
        match parse(data, m) {
            Ok(Packet::Probe(p)) => {
                assert_eq!(p.src.is_ipv4(), p.dst.is_ipv4(), "mixed families: {p:?}");
                if p.proto == Proto::Udp {
                    assert_eq!(p.tcp_flags, 0, "UDP probe with flags: {p:?}");
                } else {
                    let _ = crate::capture::classify::classify_tcp(p.tcp_flags);
                }
                if p.ip_options && first >> 4 == 4 {
                    assert!(first & 0x0f > 5, "options without a longer header: {p:?}");
                }
            }
            Ok(Packet::Other(o)) => {
                assert_eq!(o.src.is_ipv4(), o.dst.is_ipv4(), "mixed families: {o:?}");
                if !o.kind.is_sctp() {
                    assert_eq!((o.src_port, o.dst_port), (0, 0), "ICMP with ports: {o:?}");
                }
            }
            Ok(Packet::Fragment(f)) => {
                assert_eq!(f.offset % 8, 0, "fragment offset {f:?}");
                assert!(f.data.len() <= f.data_len as usize, "data past its length");
                assert!(!f.header.is_empty() && f.nh_at < f.header.len(), "{f:?}");
            }
            Err(e) => {
                let _ = e.kind();
                if csum != Csum::Unknown {
                    assert!(
                        !e.is_bad_checksum() || e == crate::capture::wire::WireError::BadIpChecksum
                    );
                }
            }
        }
        if whole.is_ok() {
            assert!(
                parse(data, m).is_ok(),
                "accepted unverified, refused with {csum:?}"
            );
        }
    }
}

/// Reassembly (`defrag`): fragments built from the input (each record: family, source,
/// identification, offset in 8-byte units, flags, ECN, length, then its data), pushed at
/// rising times into a small cache. The cache never holds more than its cap after a push;
/// a completed datagram is at least its header long, parses without panicking (as a whole
/// packet), keeps the fragments' addresses and is never fragmented itself; counters add up.
pub fn defrag(data: &[u8]) {
    use crate::capture::defrag::{Defrag, Limits, Outcome};
    use crate::capture::wire::{Fragment, Meta, Packet, parse};
    let limits = Limits {
        mem_cap: 64 * 1024,
        source_share: 16 * 1024,
        timeout_ms: 1_000,
        max_dist: 4,
    };
    let mut d = Defrag::new(limits);
    let mut b = Bytes(data);
    let mut now = 0u64;
    let mut pushed = 0u64;
    while !b.0.is_empty() {
        let kind = b.u8();
        let v6 = kind & 1 == 1;
        let src_byte = b.u8() & 3;
        let id = u32::from(b.u8() & 3);
        let off = u32::from(u16::from_be_bytes(b.array::<2>()) & 0x1fff) * 8;
        let flags = b.u8();
        let len = usize::from(b.u8());
        now += u64::from(b.u8()) * 8;
        let body: Vec<u8> = b.0.iter().take(len).copied().collect();
        b.0 = b.0.get(len..).unwrap_or_default();
        let (src, dst, header): (IpAddr, IpAddr, Vec<u8>) = if v6 {
            let s = Ipv6Addr::new(0x2001, 0xdb8, u16::from(src_byte), 0, 0, 0, 0, 2);
            let t = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
            let mut h = vec![0x60 | ((flags >> 4) & 3), 0, 0, 0, 0, 0, 44, 64];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&t.octets());
            (s.into(), t.into(), h)
        } else {
            let s = Ipv4Addr::new(198, 51, 100, 2 + src_byte);
            let t = Ipv4Addr::new(198, 51, 100, 1);
            let mut h = vec![0x45, (flags >> 4) & 3, 0, 0, 0, id as u8, 0, 0, 64, 6, 0, 0];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&t.octets());
            (s.into(), t.into(), h)
        };
        let f = Fragment {
            src,
            dst,
            id,
            proto: [6u8, 17, 58, 132][usize::from(kind >> 1) & 3],
            offset: off,
            more: flags & 1 == 1,
            ecn: (flags >> 4) & 3,
            header: &header,
            nh_at: if v6 { 6 } else { 9 },
            data: &body,
            data_len: body.len() as u32,
        };
        pushed += 1;
        match d.push(now, &f, kind & 0x80 == 0) {
            Outcome::Complete(p) => {
                assert!(p.len() >= header.len(), "datagram shorter than its header");
                let m = Meta {
                    reassembled: true,
                    ..Meta::whole(p.len())
                };
                match parse(&p, m) {
                    Ok(Packet::Probe(x)) => assert_eq!((x.src, x.dst), (src, dst)),
                    Ok(Packet::Other(x)) => assert_eq!((x.src, x.dst), (src, dst)),
                    Ok(Packet::Fragment(x)) => panic!("reassembled into a fragment: {x:?}"),
                    Err(_) => {}
                }
            }
            Outcome::Stored | Outcome::Dropped(_) | Outcome::Ignored => {}
        }
        assert!(
            d.bytes() <= limits.mem_cap,
            "{} bytes over the cap",
            d.bytes()
        );
        let st = d.stats();
        assert_eq!(st.fragments, pushed);
        assert!(st.peak_bytes >= d.bytes());
    }
    d.expire(now + limits.timeout_ms);
    assert!(d.is_empty(), "datagrams left after the timeout");
    assert_eq!(d.bytes(), 0, "bytes left with nothing in progress");
}

/// The admin command line (`portsentry blocked ...`): argv after `blocked`, arguments
/// separated by NUL bytes. Never panics; errors render.
pub fn admin(data: &[u8]) {
    let args: Vec<OsString> = ["portsentry", "blocked"]
        .into_iter()
        .map(OsString::from)
        .chain(
            data.split(|&b| b == 0)
                .filter(|_| !data.is_empty())
                .map(|a| OsString::from_vec(a.to_vec())),
        )
        .collect();
    assert!(crate::block::admin::selected(&args));
    match crate::block::admin::Admin::parse_from_args(args.into_iter().skip(1)) {
        Ok(a) => {
            let _ = format!("{a:?}");
        }
        Err(e) => {
            let _ = e.render().to_string();
        }
    }
}

/// `/etc/default/portsentry` (`portsentry modes`): the first byte picks `--systemd` (odd),
/// the rest is the file. A parse error names the file and an existing line; a result is at
/// most one valid mode per protocol; an invalid mode names its key, value and line; the exit
/// status is 0 with options printed, 1 or 2/255 with a message and nothing printed.
pub fn defaults(data: &[u8]) {
    use crate::config::defaults::{self, DEFAULTS_FILE, ModesArgs};
    let (systemd, text) = match data.split_first() {
        Some((&b, rest)) => (b & 1 == 1, rest),
        None => (false, data),
    };
    let lines = physical_lines(text);
    let m = ModesArgs {
        file: DEFAULTS_FILE.to_string(),
        systemd,
    };
    let (out, err, code) = defaults::command(&m, Some(text));
    let invalid = if systemd { 255 } else { 2 };
    match code {
        0 => {
            assert!(err.is_empty(), "a message with exit 0: {err:?}");
            let words: Vec<&str> = out.trim_end_matches('\n').split(' ').collect();
            assert!((1..=2).contains(&words.len()), "{out:?}");
            let tcp = ["-tcp", "-stcp", "-atcp"];
            let udp = ["-udp", "-sudp", "-audp"];
            assert!(
                tcp.contains(&words[0]) || udp.contains(&words[0]),
                "{out:?}"
            );
            if let Some(w) = words.get(1) {
                assert!(tcp.contains(&words[0]) && udp.contains(w), "{out:?}");
            }
        }
        1 => assert!(out.is_empty() && err.contains("no modes in"), "{err:?}"),
        c if c == invalid => {
            assert!(out.is_empty(), "{out:?}");
            assert!(
                !err.trim_end_matches('\n').chars().any(char::is_control),
                "control characters in {err:?}"
            );
            let line =
                if let Some(rest) = err.strip_prefix(&format!("portsentry: {DEFAULTS_FILE}:")) {
                    rest.split(':').next()
                } else {
                    assert!(err.contains("is not a valid mode"), "{err:?}");
                    // The value itself may hold "(line ": the key's line is the last one.
                    err.rsplit("(line ")
                        .next()
                        .and_then(|r| r.split(')').next())
                };
            let n: usize = line
                .and_then(|l| l.parse().ok())
                .unwrap_or_else(|| panic!("no line number in {err:?}"));
            assert!((1..=lines).contains(&n), "line {n} of {lines}: {err:?}");
        }
        c => panic!("exit status {c}"),
    }
}

/// Target `stream`: the LAPI's decision stream (`fleet::stream::parse_reader`, issue 24), with
/// the daemon's caps and with small ones (50 objects, 64 KiB, strings of 256 bytes) so the
/// fuzzer reaches them; then the answer taken by a `fleet::bans::Model` with small bounds.
/// The input is the answer. Never a panic; an error message free of control characters; a
/// result within the caps (kept objects, clipped strings), each ban's span the one its
/// value names; every log line made from what was kept free of control characters; the
/// model within its bounds, no refused decision in force.
pub fn stream(data: &[u8]) {
    use crate::fleet::bans::{self, Bounds, Model};
    use crate::fleet::span::Span;
    use crate::fleet::stream::{self, CLIP_TEXT, Caps, MAX_VALUE};
    let small = Caps {
        max_objects: 50,
        max_body: 64 << 10,
        max_string: 256,
    };
    for caps in [Caps::default(), small] {
        match stream::parse_reader(data, &caps) {
            Err(m) => assert!(!m.chars().any(char::is_control), "control in {m:?}"),
            Ok(c) => {
                assert!(c.new.len() + c.deleted.len() <= caps.max_objects);
                for b in &c.new {
                    assert!(b.value.len() <= MAX_VALUE, "{:?}", b.value);
                    assert!(b.scenario.chars().count() <= CLIP_TEXT);
                    assert!(b.origin.chars().count() <= CLIP_TEXT);
                    assert!(b.span.start <= b.span.end);
                    let named = match b.value.parse::<IpAddr>() {
                        Ok(ip) => Span::host(ip),
                        Err(_) => Span::parse_cidr(&b.value).expect("a kept value is a range"),
                    };
                    assert_eq!(named, b.span, "{:?}", b.value);
                    for line in [
                        crate::observe::report::fleet_refused(b.id, &b.value, &b.scenario, "why"),
                        crate::observe::report::fleet_not_applied(
                            b.id,
                            &b.value,
                            &b.scenario,
                            "w",
                            false,
                        ),
                    ] {
                        assert!(!line.chars().any(char::is_control), "{line:?}");
                    }
                }
                let bounds = Bounds {
                    widest: (24, 64),
                    max_active: 5,
                };
                let mut m = Model::new(bounds);
                let refused = m.apply(0, &c, true);
                assert!(m.len() <= 5);
                let (v4, v6) = m.covered();
                assert!(v4 <= bounds.cover_cap(false) && v6 <= bounds.cover_cap(true));
                // The pieces are disjoint parts of what the decisions in force cover.
                let (d, _) = m.desired(0, &[]);
                let v4_pieces: u128 = d.keys().filter(|s| !s.v6).map(bans::cover).sum();
                assert!(v4_pieces <= v4, "{v4_pieces} > {v4}");
                for r in &refused {
                    assert!(!r.why.chars().any(char::is_control), "{:?}", r.why);
                    assert!(c.new.iter().any(|b| b.id == r.id), "refused an unknown id");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each check passes on a well-formed input and on the empty one.
    #[test]
    fn checks_accept_good_and_empty_input() {
        config(b"TCP_PORTS=\"1,11\"\nBLOCK_TCP=\"1\"\n");
        ignore(b"127.0.0.1/32\n10.1.2.3/8 # lan\r\n::ffff:192.0.2.0/120\n");
        template(b"\x00\x50\x01\x00\xc0\x00\x02\x07route add $TARGET$ $PORT$ $MODE$");
        cli(b"-atcp\0-audp\0--config\0/tmp/x.conf");
        ignore_builder(b"\x01\x00\x0a\x00\x00\x01\x00\xc0\x00\x02\x00\x18127.0.0.1\n10.0.0.0/8\n");
        for (_, check) in TARGETS {
            check(b"");
        }
    }

    /// The checks can fail: an invariant that a broken parser would violate is caught.
    #[test]
    fn entry_check_catches_a_wrong_network() {
        let list: ignore::IgnoreList = [Net::host("10.0.0.1".parse().unwrap())]
            .into_iter()
            .collect();
        let wrong = Net::host("10.0.0.1".parse().unwrap());
        let r = std::panic::catch_unwind(|| check_entry("10.0.0.2", wrong, &list));
        assert!(r.is_err());
    }

    #[test]
    fn diagnostic_check_catches_a_missing_path_and_control_bytes() {
        let d = |path: &str, message: &str| Diagnostic {
            path: path.into(),
            line: Some(1),
            key: Some("TCP_PORTS".into()),
            severity: config::Severity::Error,
            message: message.into(),
        };
        let path = Path::new(CONFIG_PATH);
        check_diagnostics(&[d(CONFIG_PATH, "fine")], path, 1);
        for bad in [d("/other", "x"), d(CONFIG_PATH, "a\x1b[2Jb")] {
            let r = std::panic::catch_unwind(|| check_diagnostics(&[bad], path, 1));
            assert!(r.is_err());
        }
        let r = std::panic::catch_unwind(|| check_diagnostics(&[d(CONFIG_PATH, "x")], path, 0));
        assert!(r.is_err(), "line 1 of a 0-line file accepted");
    }
}
