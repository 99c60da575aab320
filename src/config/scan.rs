//! The byte-level half of the portsentry.conf reader: how 1.2 cuts the file into lines and how
//! its `ConfigTokenRetrieve` finds one key and extracts its value (reference §2.1).
//!
//! Everything here reproduces 1.2 exactly, quirks included; deciding what to *say* about a
//! quirk is left to `mod.rs`. Pure: no I/O, no allocation beyond the segment list, never
//! panics on any input (no indexing of untrusted data without a bound check).

/// 1.2 reads with `fgets(buffer, MAXBUF = 1024, ...)`: at most 1023 bytes per read (§2.1).
pub const FGETS_MAX: usize = 1023;

/// One `fgets` result: a physical line, or a 1023-byte piece of a longer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// 1-based physical line number (pieces of a split line share it).
    pub line: usize,
    /// The bytes 1.2's string functions see: the piece up to its first NUL, if any
    /// (`strstr` and friends stop there). Includes the trailing `\n` when there is one.
    pub text: &'a [u8],
    /// The piece had a NUL byte, so `text` was cut there.
    pub nul_cut: bool,
    /// This piece is not the start of its physical line (the line was longer than 1023 bytes).
    pub continuation: bool,
}

/// Cuts `input` the way repeated `fgets` calls with a 1024-byte buffer do. Also returns the
/// physical line numbers that were split because they were longer than 1023 bytes.
pub fn segments(input: &[u8]) -> (Vec<Segment<'_>>, Vec<usize>) {
    let mut out = Vec::new();
    let mut split = Vec::new();
    let mut rest = input;
    let mut line = 1;
    let mut continuation = false;
    while !rest.is_empty() {
        let window = rest.get(..FGETS_MAX).unwrap_or(rest);
        let len = match window.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => window.len(),
        };
        let (piece, tail) = rest.split_at(len);
        let (text, nul_cut) = match piece.iter().position(|&b| b == 0) {
            Some(i) => (piece.get(..i).unwrap_or(&[]), true),
            None => (piece, false),
        };
        out.push(Segment {
            line,
            text,
            nul_cut,
            continuation,
        });
        if piece.last() == Some(&b'\n') {
            line += 1;
            continuation = false;
        } else {
            if !tail.is_empty() && !continuation {
                split.push(line);
            }
            continuation = true;
        }
        rest = tail;
    }
    (out, split)
}

/// `strstr(haystack, needle) != NULL`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// 1.2's match test for key `key` on one segment (§2.1 rules 1 and 2): not a `#` line, the key
/// occurs anywhere, and the byte at offset `len(key)` is `=` or a space.
pub fn matches_1_2(text: &[u8], key: &str) -> bool {
    let key = key.as_bytes();
    // Cheap test first: it rejects almost every line without a substring search.
    text.first() != Some(&b'#')
        && matches!(text.get(key.len()), Some(b'=' | b' '))
        && contains(text, key)
}

/// How a segment starts relative to a key name, for the quirk warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lead {
    /// Column 0 holds the key, then `=` or a space: the intended form.
    Proper,
    /// Column 0 holds the key, then this byte (`None` = end of line), which 1.2 does not accept.
    BadSeparator(Option<u8>),
    /// The key follows leading spaces or tabs (§2.1: 1.2 ignores such a line).
    Indented,
    /// The line does not start with this key.
    Other,
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Classifies how `text` starts with respect to `key` (a longer name such as
/// `KILL_RUN_CMD_FIRST` is not `KILL_RUN_CMD`).
pub fn lead(text: &[u8], key: &str) -> Lead {
    let key = key.as_bytes();
    if let Some(after) = text.strip_prefix(key) {
        return match after.first().copied() {
            Some(b'=' | b' ') => Lead::Proper,
            Some(b) if is_ident(b) => Lead::Other,
            Some(b'\n') | None => Lead::BadSeparator(None),
            Some(b'\r') if after.len() == 1 || after.get(1) == Some(&b'\n') => {
                Lead::BadSeparator(None)
            }
            other => Lead::BadSeparator(other),
        };
    }
    let trimmed = text.trim_ascii_start();
    if trimmed.len() < text.len()
        && let Some(after) = trimmed.strip_prefix(key)
        && !after.first().is_some_and(|&b| is_ident(b))
    {
        return Lead::Indented;
    }
    Lead::Other
}

/// C-locale `isprint`: 1.2 calls no `setlocale`, so only 0x20..=0x7E are printable (§2.1).
fn is_print(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// Why the value stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// At a closing `"`: the intended form.
    Quote,
    /// At the end of the line (LF, CRLF, end of file, or the end of a 1023-byte piece) with no
    /// closing quote.
    EndOfLine,
    /// At a byte 1.2 treats as unprintable (TAB, CR, NUL, any byte >= 0x80, ...), before any
    /// closing quote; `column` is 1-based.
    Cut { byte: u8, column: usize },
}

/// A value as 1.2 extracts it (§2.1 rule 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Only printable ASCII, never a `"`, at most 1022 bytes.
    pub value: String,
    pub stop: Stop,
    /// 0-based offset of the opening quote in the segment.
    pub open_quote: usize,
}

/// Extracts the value the way `ConfigTokenRetrieve` does: from after the first `"` anywhere on
/// the line to the next `"` or the first unprintable byte. `None` when the line has no `"`
/// ("Quotes missing", so 1.2 treats the key as absent).
pub fn extract(seg: &Segment<'_>) -> Option<Extracted> {
    let open = seg.text.iter().position(|&b| b == b'"')?;
    let rest = seg.text.get(open + 1..).unwrap_or(&[]);
    // 1.2 copies at most MAXBUF - 1 bytes; a segment is never longer than that anyway.
    let len = rest
        .iter()
        .take(FGETS_MAX - 1)
        .take_while(|&&b| is_print(b) && b != b'"')
        .count();
    let value_bytes = rest.get(..len).unwrap_or(&[]);
    let stop = match rest.get(len).copied() {
        Some(b'"') => Stop::Quote,
        Some(b'\n') => Stop::EndOfLine,
        Some(b'\r') if matches!(rest.get(len + 1), None | Some(b'\n')) && !seg.nul_cut => {
            Stop::EndOfLine
        }
        Some(byte) => Stop::Cut {
            byte,
            column: open + 1 + len + 1,
        },
        None if seg.nul_cut => Stop::Cut {
            byte: 0,
            column: open + 1 + len + 1,
        },
        None => Stop::EndOfLine,
    };
    Some(Extracted {
        value: String::from_utf8_lossy(value_bytes).into_owned(),
        stop,
        open_quote: open,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &[u8]) -> Segment<'_> {
        Segment {
            line: 1,
            text,
            nul_cut: false,
            continuation: false,
        }
    }

    #[test]
    fn segments_follow_fgets() {
        let (s, split) = segments(b"a\nb\r\n\nc");
        let texts: Vec<&[u8]> = s.iter().map(|s| s.text).collect();
        assert_eq!(texts, [&b"a\n"[..], b"b\r\n", b"\n", b"c"]);
        assert_eq!(s.iter().map(|s| s.line).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert!(split.is_empty());
    }

    #[test]
    fn long_line_is_split_at_1023_bytes() {
        let mut input = vec![b'x'; 2100];
        input.extend_from_slice(b"\nnext\n");
        let (s, split) = segments(&input);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].text.len(), 1023);
        assert_eq!(s[1].text.len(), 1023);
        assert_eq!(s[2].text.len(), 55);
        assert!(!s[0].continuation && s[1].continuation && s[2].continuation);
        assert_eq!((s[2].line, s[3].line), (1, 2));
        assert!(!s[3].continuation);
        assert_eq!(split, [1]);
        // Exactly 1023 bytes at the end of the file: one piece, no split.
        let (s, split) = segments(&[b'y'; 1023]);
        assert_eq!(s.len(), 1);
        assert!(split.is_empty());
    }

    #[test]
    fn nul_cuts_the_visible_text_but_not_the_line_count() {
        let (s, _) = segments(b"TCP_PORTS=\0\"1\"\nX\n");
        assert_eq!(s[0].text, b"TCP_PORTS=");
        assert!(s[0].nul_cut);
        assert_eq!(s[1].line, 2);
    }

    #[test]
    fn match_rule_of_1_2() {
        assert!(matches_1_2(b"TCP_PORTS=\"1\"\n", "TCP_PORTS"));
        assert!(matches_1_2(b"TCP_PORTS \"1\"\n", "TCP_PORTS"));
        assert!(!matches_1_2(b"TCP_PORTS\t=\"1\"\n", "TCP_PORTS"));
        assert!(!matches_1_2(b"  TCP_PORTS=\"1\"\n", "TCP_PORTS"));
        assert!(!matches_1_2(b"#TCP_PORTS=\"1\"\n", "TCP_PORTS"));
        assert!(!matches_1_2(b"KILL_RUN_CMD_FIRST=\"1\"\n", "KILL_RUN_CMD"));
        // Cross-key hijack: same length, the name anywhere in the line.
        assert!(matches_1_2(b"UDP_PORTS=\"1\" # TCP_PORTS\n", "TCP_PORTS"));
        // Ten spaces put a space at offset 9, so 1.2 matches this indented line.
        assert!(matches_1_2(b"          TCP_PORTS=\"1\"\n", "TCP_PORTS"));
        assert!(!matches_1_2(b"TCP_PORTS", "TCP_PORTS"));
    }

    #[test]
    fn lead_classification() {
        assert_eq!(lead(b"BLOCK_TCP=\"1\"", "BLOCK_TCP"), Lead::Proper);
        assert_eq!(
            lead(b"BLOCK_TCP\t\"1\"", "BLOCK_TCP"),
            Lead::BadSeparator(Some(b'\t'))
        );
        assert_eq!(
            lead(b"BLOCK_TCP\r\n", "BLOCK_TCP"),
            Lead::BadSeparator(None)
        );
        assert_eq!(lead(b"BLOCK_TCP", "BLOCK_TCP"), Lead::BadSeparator(None));
        assert_eq!(lead(b" \tBLOCK_TCP=\"1\"", "BLOCK_TCP"), Lead::Indented);
        assert_eq!(lead(b"  BLOCK_TCPX=\"1\"", "BLOCK_TCP"), Lead::Other);
        assert_eq!(
            lead(b"KILL_RUN_CMD_FIRST=\"1\"", "KILL_RUN_CMD"),
            Lead::Other
        );
        assert_eq!(lead(b"", "KILL_RUN_CMD"), Lead::Other);
    }

    #[test]
    fn extraction_rules() {
        let e = extract(&seg(b"PORT_BANNER=\"HELLO #not; a comment\" trailing\n")).unwrap();
        assert_eq!(e.value, "HELLO #not; a comment");
        assert_eq!(e.stop, Stop::Quote);

        let e = extract(&seg(b"X = \"v\r\n")).unwrap();
        assert_eq!((e.value.as_str(), e.stop), ("v", Stop::EndOfLine));
        let e = extract(&seg(b"X=\"v")).unwrap();
        assert_eq!((e.value.as_str(), e.stop), ("v", Stop::EndOfLine));

        let e = extract(&seg(b"X=\"a\tb\"\n")).unwrap();
        assert_eq!(e.value, "a");
        assert_eq!(
            e.stop,
            Stop::Cut {
                byte: b'\t',
                column: 5
            }
        );
        let e = extract(&seg("X=\"caf\u{e9}\"".as_bytes())).unwrap();
        assert_eq!(e.value, "caf");
        assert!(matches!(e.stop, Stop::Cut { byte: 0xc3, .. }));
        let e = extract(&seg(b"X=\"a\rb\"")).unwrap();
        assert!(matches!(e.stop, Stop::Cut { byte: b'\r', .. }));

        // First quote anywhere; no quote at all means "Quotes missing".
        let e = extract(&seg(b"X=1 \"two\"")).unwrap();
        assert_eq!((e.value.as_str(), e.open_quote), ("two", 4));
        assert_eq!(extract(&seg(b"X=1\n")), None);
        assert_eq!(extract(&seg(b"X=\"\"")).unwrap().value, "");
        // Not trimmed.
        assert_eq!(extract(&seg(b"X=\" 1\"")).unwrap().value, " 1");

        let nul = Segment {
            line: 1,
            text: b"X=\"ab",
            nul_cut: true,
            continuation: false,
        };
        let e = extract(&nul).unwrap();
        assert_eq!(
            (e.value.as_str(), e.stop),
            ("ab", Stop::Cut { byte: 0, column: 6 })
        );
    }
}
