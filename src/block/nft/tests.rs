use super::*;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

#[test]
fn prefixes_parse_and_reject_clearly() {
    assert_eq!(p("192.0.2.1"), Prefix::host("192.0.2.1".parse().unwrap()));
    assert!(p("192.0.2.1").is_host() && p("2001:db8::1/128").is_host());
    assert_eq!(p("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(p("2001:db8::/32").set(), Set::Nets6);
    assert_eq!(p("::ffff:192.0.2.9").to_string(), "192.0.2.9");
    assert_eq!(p("0.0.0.0/0").set(), Set::Nets4);
    assert_eq!(
        "10.0.0.1/8".parse::<Prefix>().unwrap_err().to_string(),
        "10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)"
    );
    for bad in [
        "",
        "x",
        "10.0.0.0/33",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "::/129",
        "1.2.3.4/a",
    ] {
        assert!(bad.parse::<Prefix>().is_err(), "{bad}");
    }
    let n = p("192.0.2.0/24");
    assert!(n.contains("192.0.2.200".parse().unwrap()));
    assert!(!n.contains("192.0.3.1".parse().unwrap()));
    assert!(!n.contains("2001:db8::1".parse().unwrap()));
    assert!(n.covers(&p("192.0.2.128/25")) && !p("192.0.2.128/25").covers(&n));
    assert!(p("::/0").contains("2001:db8::5".parse().unwrap()));
    assert!(p("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
}

#[test]
fn setup_script_is_exact() {
    assert_eq!(
        setup_script(2),
        "add table inet portsentry\n\
         add set inet portsentry blocked4 { type ipv4_addr; flags timeout; size 2; }\n\
         add set inet portsentry blocked6 { type ipv6_addr; flags timeout; size 2; }\n\
         add set inet portsentry nets4 { type ipv4_addr; flags interval,timeout; size 2; }\n\
         add set inet portsentry nets6 { type ipv6_addr; flags interval,timeout; size 2; }\n\
         add set inet portsentry fleet4 { type ipv4_addr; flags interval,timeout; size 2; }\n\
         add set inet portsentry fleet6 { type ipv6_addr; flags interval,timeout; size 2; }\n\
         add chain inet portsentry input { type filter hook input priority -10; policy accept; }\n\
         flush chain inet portsentry input\n\
         add rule inet portsentry input ip saddr @blocked4 drop\n\
         add rule inet portsentry input ip6 saddr @blocked6 drop\n\
         add rule inet portsentry input ip saddr @nets4 drop\n\
         add rule inet portsentry input ip6 saddr @nets6 drop\n\
         add rule inet portsentry input ip saddr @fleet4 drop\n\
         add rule inet portsentry input ip6 saddr @fleet6 drop\n"
    );
    assert_eq!(delete_table_script(), "delete table inet portsentry\n");
    assert!(flush_script().lines().count() == 4);
}

#[test]
fn element_batches_group_by_set_and_chunk() {
    let s = add_script(&[
        (p("192.0.2.2"), 60),
        (p("2001:db8::2"), 0),
        (p("192.0.2.3"), 0),
        (p("10.0.0.0/8"), 5),
    ]);
    assert_eq!(
        s,
        "add element inet portsentry blocked4 { 192.0.2.2 timeout 60s, 192.0.2.3 }\n\
         add element inet portsentry blocked6 { 2001:db8::2 }\n\
         add element inet portsentry nets4 { 10.0.0.0/8 timeout 5s }\n"
    );
    assert_eq!(add_script(&[]), "");
    assert_eq!(
        delete_script(&[p("2001:db8::/64")]),
        "delete element inet portsentry nets6 { 2001:db8::/64 }\n"
    );
    let many: Vec<(Prefix, u64)> = (0..(CHUNK as u32 + 5))
        .map(|i| (Prefix::host(IpAddr::V4(i.into())), 1))
        .collect();
    let s = add_script(&many);
    assert_eq!(s.lines().count(), 2);
    assert_eq!(s.lines().nth(1).unwrap().matches("timeout").count(), 5);
}

/// Output of nft 1.0.6 (`nft -T list table inet portsentry`), one list wrapped the way nft
/// wraps long lists, plus the non -T form of durations.
const LISTING: &str = "table inet portsentry {
	set blocked4 {
		type ipv4_addr
		size 2
		flags timeout
		elements = { 1.2.3.4 timeout 100s expires 99s, 1.2.3.5,
			     192.0.2.2 timeout 1m40s expires 1m39s968ms }
	}

	set blocked6 {
		type ipv6_addr
		size 2
		flags timeout
		elements = { 2001:db8::2 timeout 3600s expires 3599s }
	}

	set nets4 {
		type ipv4_addr
		size 2
		flags interval,timeout
		elements = { 10.0.0.0/8 timeout 100s expires 99s, 172.16.0.1-172.16.0.3 }
	}

	set nets6 {
		type ipv6_addr
		size 2
		flags interval,timeout
	}

	chain input {
		type filter hook input priority filter - 10; policy accept;
		ip saddr @blocked4 drop
	}
}
";

#[test]
fn listing_parses_every_element() {
    let e = parse_listing(LISTING).unwrap();
    let got: Vec<(Set, String, Option<u64>, Option<u64>)> = e
        .iter()
        .map(|e| (e.set, e.prefix.to_string(), e.timeout_ms, e.expires_ms))
        .collect();
    assert_eq!(
        got,
        [
            (Set::Hosts4, "1.2.3.4".into(), Some(100_000), Some(99_000)),
            (Set::Hosts4, "1.2.3.5".into(), None, None),
            (Set::Hosts4, "192.0.2.2".into(), Some(100_000), Some(99_968)),
            (
                Set::Hosts6,
                "2001:db8::2".into(),
                Some(3_600_000),
                Some(3_599_000)
            ),
            (Set::Nets4, "10.0.0.0/8".into(), Some(100_000), Some(99_000)),
            (Set::Nets4, "172.16.0.1".into(), None, None),
        ]
    );
    assert_eq!(parse_listing("").unwrap(), []);
    // Sets of other names are skipped.
    let other = "set other {\n elements = { 1.1.1.1 }\n}\n";
    assert_eq!(parse_listing(other).unwrap(), []);
}

#[test]
fn listing_errors_name_the_line_and_never_panic() {
    let e = parse_listing("set blocked4 {\n\telements = { 1.2.3.x }\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.to_string().contains("1.2.3.x"), "{e}");
    let e = parse_listing("set blocked4 {\nelements = { 1.2.3.4 expires 9q }").unwrap_err();
    assert!(e.reason.contains("bad expires \"9q\""), "{e}");
    let e = parse_listing("set blocked4 {\nelements = { 1.2.3.4,\n").unwrap_err();
    assert_eq!((e.line, e.reason.as_str()), (2, "elements list not closed"));
    // Junk of every shape: errors or elements, never a panic.
    let junk = [
        "elements = {",
        "set blocked6 {\nelements = { timeout }",
        "set blocked6 {\nelements = { ::1 timeout }",
        "set nets4 {\nelements = { -1.2.3.4 , , }",
        "set blocked4 {\nelements = { 1.2.3.4 counter packets 5 bytes 7 }",
        "set blocked4 \u{0}{\nelements = { \u{feff} }",
    ];
    for j in junk {
        let _ = parse_listing(j);
    }
    let c = parse_listing("set blocked4 {\nelements = { 1.2.3.4 counter packets 5 bytes 7 }\n");
    assert_eq!(c.unwrap().len(), 1);
}

#[test]
fn durations() {
    assert_eq!(parse_duration("99s"), Some(99_000));
    assert_eq!(parse_duration("1m39s968ms"), Some(99_968));
    assert_eq!(parse_duration("2d1h"), Some(2 * 86_400_000 + 3_600_000));
    assert_eq!(parse_duration("42"), Some(42_000));
    for bad in [
        "",
        "s",
        "1x",
        "1.5s",
        "99999999999999999999s",
        "18446744073709551615d",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
    assert_eq!(human_left(None), "never");
    assert_eq!(human_left(Some(1)), "1s");
    assert_eq!(human_left(Some(59_000)), "59s");
    assert_eq!(human_left(Some(61_000)), "1m01s");
    assert_eq!(human_left(Some(3_660_000)), "1h01m");
    assert_eq!(human_left(Some(90_000_000)), "1d01h");
}

#[test]
fn failures_and_blocked_lines() {
    let full = "Error: Could not process rule: Too many open files in system\nadd element ...\n";
    assert_eq!(classify_failure(full), Failure::SetFull);
    assert_eq!(
        first_error_line(full),
        "Error: Could not process rule: Too many open files in system"
    );
    assert_eq!(
        classify_failure("Error: Could not process rule: No such file or directory"),
        Failure::Missing
    );
    assert_eq!(classify_failure("Error: syntax error"), Failure::Other);
    assert_eq!(first_error_line(""), "no error output");
}

use crate::testrng::Rng;

/// Listings and prefixes built from the pieces nft prints, cut and mixed: errors name a line
/// inside the text, elements that parse are real prefixes, and nothing panics. A round trip
/// through `add_script`'s element syntax parses back to the same elements.
#[test]
fn fuzz_listing_and_prefix_parsers_never_panic() {
    const PIECES: &[&str] = &[
        "set blocked4 {",
        "set blocked6 {",
        "set nets4 {",
        "set other {",
        "chain input {",
        "elements = {",
        "}",
        "{",
        ",",
        " ",
        "\n",
        "\t",
        "timeout",
        "expires",
        "1m39s968ms",
        "99s",
        "3d",
        "ms",
        "192.0.2.1",
        "10.0.0.0/8",
        "2001:db8::2",
        "::/0",
        "172.16.0.1-172.16.0.3",
        "1.2.3",
        "/",
        "-",
        "counter packets 5 bytes 7",
        "\u{0}",
        "\u{fe0f}",
        "999999999999999999999d",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut parsed, mut failed, mut elements) = (0, 0, 0);
    for _ in 0..3000 {
        const ADDRS: &[&str] = &["192.0.2.1", "10.0.0.0/8", "2001:db8::2", "::/0", "1.2.3.4"];
        const TIMES: &[&str] = &["99s", "1m39s968ms", "1h", "2d3h", "5"];
        let mut text = String::new();
        // Most cases are shaped like a real listing, so elements are really parsed.
        if rng.below(4) != 0 {
            let set = ["blocked4", "blocked6", "nets4", "nets6", "x"][rng.below(5)];
            text.push_str(&format!(
                "table inet portsentry {{\n\tset {set} {{\n\t\telements = {{ "
            ));
            for i in 0..rng.below(6) {
                if i > 0 {
                    text.push_str([", ", ",\n\t\t\t     "][rng.below(2)]);
                }
                text.push_str(ADDRS[rng.below(ADDRS.len())]);
                for w in ["timeout", "expires"] {
                    if rng.below(2) == 0 {
                        text.push_str(&format!(" {w} {}", TIMES[rng.below(TIMES.len())]));
                    }
                }
            }
            text.push_str(" }\n\t}\n}\n");
        }
        for _ in 0..rng.below(6) {
            // Corrupt: a piece inserted at a random character boundary.
            let mut at = rng.below(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.insert_str(at, PIECES[rng.below(PIECES.len())]);
        }
        let lines = text.lines().count().max(1);
        match parse_listing(&text) {
            Ok(v) => {
                parsed += 1;
                elements += v.len();
                for e in v {
                    assert!(e.prefix.len <= if e.prefix.addr.is_ipv4() { 32 } else { 128 });
                    let again: Prefix = e.prefix.to_string().parse().unwrap();
                    assert_eq!(again, e.prefix);
                }
            }
            Err(e) => {
                failed += 1;
                assert!((1..=lines).contains(&e.line), "{e} in {text:?}");
            }
        }
        let word = text.split_whitespace().next().unwrap_or("");
        let _ = word.parse::<Prefix>();
        let _ = parse_duration(word);
    }
    assert!(
        parsed > 1500 && failed > 300 && elements > 1000,
        "weak fuzz coverage: {parsed} {failed} {elements}"
    );
    // Round trip: what we write, nft would print back the same way (elements part).
    let elems: Vec<(Prefix, u64)> = (0..50u32)
        .map(|i| {
            (
                Prefix::host(IpAddr::V4((0xc000_0200 + i).into())),
                u64::from(i),
            )
        })
        .collect();
    let script = add_script(&elems);
    let body = script.split_once('{').unwrap().1.replace('}', "");
    let listing = format!("set blocked4 {{\nelements = {{ {body} }}\n}}\n");
    let back = parse_listing(&listing).unwrap();
    assert_eq!(back.len(), 50);
    for (e, (p, t)) in back.iter().zip(&elems) {
        assert_eq!(e.prefix, *p);
        assert_eq!(e.timeout_ms, (*t > 0).then_some(t * 1000));
    }
}
