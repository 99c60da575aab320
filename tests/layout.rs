//! The shape of the source tree (issue 21): no import circles between files, and no source
//! file over 700 lines outside tests. Both rules are read from the files themselves, so a
//! new file or a new `use` is checked without anyone listing it here.
//!
//! What counts as test code, for both rules:
//! - a file named `tests.rs`, or any file under a folder named `tests` inside `src/`;
//! - a file declared by a `#[cfg(test)] mod NAME;` (for example `src/testrng.rs`);
//! - inside any other file, the item that follows a `#[cfg(test)]` attribute (usually an
//!   inline `mod tests { ... }` block, from the attribute's line to its closing brace).
//!
//! Import circle: file A refers to an item of file B and file B refers to an item of file A
//! (directly, or through a longer loop A → B → C → A). A reference is a `crate::...` or
//! `super::...` path anywhere in non-test code (in `use` or in an expression, braces of a
//! `use` expanded), resolved to the file that defines the deepest module the path names. A
//! parent's `mod child;` declaration is not a reference: the module tree is not a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 700;

/// Known exceptions (none left: the fleet's, issue 21 item 3, were split and broken). An
/// entry that is no longer needed fails the test, so the list only shrinks.
const LONG_FILE_EXCEPTIONS: &[&str] = &[];
const CIRCLE_EXCEPTIONS: &[&[&str]] = &[];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Rust source to tokens with their line numbers, comments, strings and chars dropped
/// (enough of Rust's lexer for paths, attributes and braces).
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0usize, 1usize);
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && (at(i + 1) == '"' || (at(i + 1) == '#' && matches!(at(i + 2), '"' | '#')))
            || c == 'b' && at(i + 1) == 'r' && matches!(at(i + 2), '"' | '#')
        {
            // Raw string: r"..", r#".."#, br"..".
            i += if c == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1; // the opening quote
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                if b[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            i += if c == 'b' { 2 } else { 1 };
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            // A char literal ('x', '\n', '\u{..}', b'x') or a lifetime ('a).
            let j = if c == 'b' { i + 1 } else { i };
            if at(j + 1) == '\\' {
                i = j + 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(j + 2) == '\'' {
                i = j + 3;
            } else {
                i = j + 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let s = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(b[s..i].iter().collect()), line));
        } else if c == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// Index just past the item that starts at `i` (ends at a `;` or a closing brace at depth 0).
fn item_end(toks: &[(Tok, usize)], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < toks.len() {
        match toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth <= 0 {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Is `toks[i..]` the attribute `#[cfg(test)]`? Returns the index after it.
fn cfg_test(toks: &[(Tok, usize)], i: usize) -> Option<usize> {
    let want = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    let ok = want
        .iter()
        .enumerate()
        .all(|(k, w)| toks.get(i + k).map(|t| &t.0) == Some(w));
    ok.then_some(i + want.len())
}

/// One source file: its module path, its non-test tokens (with the inline module each sits
/// in), the lines its test items take, and the `#[cfg(test)] mod NAME;` it declares.
struct Parsed {
    /// (path segments as written, starting with `crate` or `super`, inline-module depth path)
    refs: Vec<(Vec<String>, Vec<String>)>,
    test_lines: BTreeSet<usize>,
    test_mods: Vec<String>,
}

/// Expands the path starting at `toks[i]` (just after `crate` or `super`'s `::`) into
/// full paths, braces included; returns them and the index after the path.
fn paths(toks: &[(Tok, usize)], mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut cur = prefix;
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(s)) => {
                cur.push(s.clone());
                i += 1;
                if toks.get(i).map(|t| &t.0) == Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
                return (vec![cur], i);
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                let mut all = Vec::new();
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Punct('}')) | None => return (all, i + 1),
                        Some(Tok::Punct(',')) => i += 1,
                        Some(Tok::Ident(s)) if s == "as" => i += 2,
                        _ => {
                            let (p, j) = paths(toks, i, cur.clone());
                            all.extend(p);
                            i = j.max(i + 1);
                        }
                    }
                }
            }
            Some(Tok::Punct('*')) => return (vec![cur], i + 1),
            _ => return (vec![cur], i),
        }
    }
}

fn parse(src: &str) -> Parsed {
    let toks = lex(src);
    let mut p = Parsed {
        refs: Vec::new(),
        test_lines: BTreeSet::new(),
        test_mods: Vec::new(),
    };
    // Inline modules open at this point: (name, brace depth at which it closes).
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < toks.len() {
        if let Some(after) = cfg_test(&toks, i) {
            let end = item_end(&toks, after);
            // `#[cfg(test)] mod NAME;` names a test-only file.
            if ident(toks.get(after)) == Some("mod")
                && toks.get(after + 2).map(|t| &t.0) == Some(&Tok::Punct(';'))
            {
                p.test_mods
                    .push(ident(toks.get(after + 1)).unwrap().to_string());
            }
            let last = toks[end.saturating_sub(1).max(i)].1;
            p.test_lines.extend(toks[i].1..=last);
            i = end;
            continue;
        }
        match &toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().map(|m| m.1) == Some(depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            Tok::Ident(m) if m == "mod" => {
                if let (Some(name), Some((Tok::Punct('{'), _))) =
                    (ident(toks.get(i + 1)), toks.get(i + 2))
                {
                    inline.push((name.to_string(), depth + 1));
                }
            }
            Tok::Ident(k)
                if (k == "crate" || k == "super")
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep) =>
            {
                {
                    // `super::super::x` is one path: collect the leading supers.
                    let mut j = i;
                    let mut prefix = Vec::new();
                    while matches!(ident(toks.get(j)), Some("crate" | "super"))
                        && toks.get(j + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                    {
                        prefix.push(ident(toks.get(j)).unwrap().to_string());
                        j += 2;
                    }
                    let (ps, end) = paths(&toks, j, prefix);
                    let here: Vec<String> = inline.iter().map(|m| m.0.clone()).collect();
                    p.refs.extend(ps.into_iter().map(|x| (x, here.clone())));
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    p
}

/// The module path of a file under src/ (`src/lib.rs` is the crate root; `main.rs` and
/// `bin/*` are roots of their own crates and are given their file name).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts == ["lib"] {
        return Vec::new();
    }
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

struct Tree {
    /// relative path → parsed file, for every non-test file.
    files: BTreeMap<String, (Vec<String>, Parsed, usize)>,
}

fn tree() -> Tree {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    rust_files(&src, &mut all);
    let mut parsed = BTreeMap::new();
    for f in all {
        let rel = f.strip_prefix(&src).unwrap().to_path_buf();
        let text = std::fs::read_to_string(&f).unwrap();
        let lines = text.lines().count();
        parsed.insert(rel, (parse(&text), lines));
    }
    // Test-only files: tests.rs, anything under a tests/ folder, `#[cfg(test)] mod x;`.
    let mut test_files: BTreeSet<PathBuf> = BTreeSet::new();
    for (rel, (p, _)) in &parsed {
        let dir = rel.parent().unwrap();
        let own_dir = if rel.file_name().unwrap() == "mod.rs" || rel == Path::new("lib.rs") {
            dir.to_path_buf()
        } else {
            dir.join(rel.file_stem().unwrap())
        };
        for m in &p.test_mods {
            test_files.insert(own_dir.join(format!("{m}.rs")));
            test_files.insert(own_dir.join(m).join("mod.rs"));
        }
        if rel.file_name().unwrap() == "tests.rs" || rel.iter().any(|s| s == "tests") {
            test_files.insert(rel.clone());
        }
    }
    let files = parsed
        .into_iter()
        .filter(|(rel, _)| !test_files.contains(rel))
        .map(|(rel, (p, n))| {
            let key = rel.to_string_lossy().replace('\\', "/");
            (key, (module_of(&rel), p, n))
        })
        .collect();
    Tree { files }
}

#[test]
fn no_source_file_outside_tests_is_over_700_lines() {
    let t = tree();
    let mut long = Vec::new();
    let mut still_long = BTreeSet::new();
    for (rel, (_, p, n)) in &t.files {
        let counted = n - p.test_lines.len();
        if counted > MAX_LINES {
            if LONG_FILE_EXCEPTIONS.contains(&rel.as_str()) {
                still_long.insert(rel.as_str());
            } else {
                long.push(format!("src/{rel}: {counted} lines besides its tests"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines (split them by concern, or move inline tests to a \
         tests.rs):\n{}",
        long.join("\n")
    );
    for e in LONG_FILE_EXCEPTIONS {
        assert!(
            still_long.contains(e),
            "src/{e} is no longer over {MAX_LINES} lines: remove it from LONG_FILE_EXCEPTIONS"
        );
    }
}

/// Every file's references to other files (self references dropped).
fn edges(t: &Tree) -> BTreeMap<&str, BTreeSet<&str>> {
    let by_module: BTreeMap<&[String], &str> = t
        .files
        .iter()
        .filter(|(rel, _)| !rel.starts_with("bin/") && rel.as_str() != "main.rs")
        .map(|(rel, (m, _, _))| (m.as_slice(), rel.as_str()))
        .collect();
    let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (rel, (module, p, _)) in &t.files {
        let set = out.entry(rel.as_str()).or_default();
        for (path, inline) in &p.refs {
            let mut here: Vec<String> = module.clone();
            here.extend(inline.iter().cloned());
            let mut abs: Vec<String> = Vec::new();
            let mut rest = path.as_slice();
            if rest.first().map(String::as_str) == Some("crate") {
                rest = &rest[1..];
            } else {
                abs = here;
                while rest.first().map(String::as_str) == Some("super") {
                    abs.pop();
                    rest = &rest[1..];
                }
            }
            abs.extend(rest.iter().cloned());
            // The deepest module named that has a file of its own.
            let target = (0..=abs.len())
                .rev()
                .find_map(|k| by_module.get(&abs[..k]).copied());
            if let Some(target) = target.filter(|t| t != rel) {
                set.insert(target);
            }
        }
    }
    out
}

/// Strongly connected components with more than one file (Tarjan).
fn circles<'a>(g: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    struct St<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, g: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut St<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        for &w in g.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = St {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for &v in g.keys() {
        if !s.index.contains_key(v) {
            visit(v, g, &mut s);
        }
    }
    s.out
}

#[test]
fn no_import_circles_between_files() {
    let t = tree();
    let g = edges(&t);
    let found = circles(&g);
    let known: Vec<Vec<&str>> = CIRCLE_EXCEPTIONS.iter().map(|c| c.to_vec()).collect();
    let new: Vec<String> = found
        .iter()
        .filter(|c| !known.contains(c))
        .map(|c| {
            // Show who refers to whom inside the circle.
            let inside: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    g[a].iter()
                        .filter(|b| c.contains(b))
                        .map(move |b| format!("  src/{a} -> src/{b}"))
                })
                .collect();
            format!("circle of {} files:\n{}", c.len(), inside.join("\n"))
        })
        .collect();
    assert!(
        new.is_empty(),
        "import circles between files (move the shared items to the file both can use, or \
         pass what one needs as an argument):\n{}",
        new.join("\n")
    );
    for k in &known {
        assert!(
            found.contains(k),
            "{k:?} is no longer a circle: remove it from CIRCLE_EXCEPTIONS"
        );
    }
}

/// The checker itself: a circle made of `use crate::` and `super::` paths inside braces
/// is found, test code is not counted, and strings and comments are not read as paths.
#[test]
fn the_checker_finds_circles_and_skips_tests_strings_and_comments() {
    let p = parse(
        "use crate::{a::{b::X, c}, d::Y as Z};\n\
         // crate::e::F in a comment\n\
         const S: &str = \"crate::f::G\";\n\
         const C: char = '{';\n\
         fn f<'a>(x: &'a u8) { super::super::g::h(x) }\n\
         #[cfg(test)]\n\
         mod tests {\n    use crate::t::U;\n}\n\
         #[cfg(test)] mod testonly;\n",
    );
    let got: Vec<String> = p.refs.iter().map(|r| r.0.join("::")).collect();
    assert_eq!(
        got,
        [
            "crate::a::b::X",
            "crate::a::c",
            "crate::d::Y",
            "super::super::g::h"
        ]
    );
    assert_eq!(p.test_lines, (6..=10).collect());
    assert_eq!(p.test_mods, ["testonly"]);
    let mut g: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    g.insert("a.rs", ["b.rs"].into());
    g.insert("b.rs", ["c.rs"].into());
    g.insert("c.rs", ["a.rs"].into());
    g.insert("d.rs", ["a.rs"].into());
    assert_eq!(circles(&g), vec![vec!["a.rs", "b.rs", "c.rs"]]);
}
