//! The documentation is checked, not only written: the admin guide's configuration table
//! against the one definition of each key (`config::KEYS`), so it cannot drift from the
//! parser; the README stays a front door (at most 300 lines) that links every file of `doc/`;
//! and every relative link of README.md and doc/*.md reaches an existing file and heading.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use portsentry::config::KEYS;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every doc/*.md, sorted.
fn documents() -> Vec<PathBuf> {
    let mut v = vec![Path::new(ROOT).join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("doc"))
        .expect("doc/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    v.extend(docs);
    v
}

/// The table row the admin guide must contain for a key.
fn row(k: &portsentry::config::KeyDef) -> String {
    let ext = if k.extension { " (extension)" } else { "" };
    format!("| `{}`{ext} | {} | {} |", k.name, k.doc, k.default)
}

#[test]
fn admin_guide_documents_every_config_key_exactly() {
    let guide = read(&Path::new(ROOT).join("doc/admin-guide.md"));
    let missing: Vec<String> = KEYS
        .iter()
        .map(row)
        .filter(|r| !guide.contains(r.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "doc/admin-guide.md lacks these rows (copy them into the configuration table):\n{}",
        missing.join("\n")
    );
}

#[test]
fn readme_is_a_front_door_of_at_most_300_lines() {
    let readme = read(&Path::new(ROOT).join("README.md"));
    let n = readme.lines().count();
    assert!(
        n <= 300,
        "README.md has {n} lines (at most 300): move reference text into a doc/*.md file \
         and link it"
    );
}

#[test]
fn readme_links_every_doc_file() {
    let readme = read(&Path::new(ROOT).join("README.md"));
    let targets: BTreeSet<String> = links(&readme)
        .into_iter()
        .map(|l| l.split('#').next().unwrap().to_string())
        .collect();
    let unlinked: Vec<String> = documents()
        .iter()
        .skip(1)
        .map(|p| format!("doc/{}", p.file_name().unwrap().to_string_lossy()))
        .filter(|d| !targets.contains(d))
        .collect();
    assert!(
        unlinked.is_empty(),
        "README.md does not link these (add them to its \"Documentation\" list): {unlinked:?}"
    );
}

#[test]
fn every_relative_link_reaches_a_file_and_heading() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = read(&doc);
        let dir = doc.parent().unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match link.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                doc.clone()
            } else {
                dir.join(file)
            };
            let name = doc.strip_prefix(ROOT).unwrap().display().to_string();
            if !target.exists() {
                broken.push(format!("{name}: ({link}): no file {}", target.display()));
                continue;
            }
            if let Some(a) = anchor
                && (target.extension().is_none_or(|x| x != "md")
                    || !anchors(&read(&target)).contains(a))
            {
                broken.push(format!("{name}: ({link}): no heading with anchor #{a}"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_repository_path_named_in_the_docs_exists() {
    let mut missing = Vec::new();
    for doc in documents() {
        let name = doc.strip_prefix(ROOT).unwrap().display().to_string();
        for p in repo_paths(&read(&doc)) {
            if !Path::new(ROOT).join(&p).exists() {
                missing.push(format!("{name}: {p}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name files that do not exist (moved or renamed? update the text):\n{}",
        missing.join("\n")
    );
}

/// The paths under the repository's source folders that `text` names (`src/sys/exec.rs`,
/// `tests/docs.rs`, `src/engine/`): from the folder name to the last character that can be
/// part of a path, without a trailing `.` or `-` (the end of a sentence).
fn repo_paths(text: &str) -> BTreeSet<String> {
    const ROOTS: [&str; 7] = [
        "src/",
        "tests/",
        "bench/",
        "debian/",
        "man/",
        "fuzz/",
        "examples/",
    ];
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let part = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-');
    for (i, _) in text.char_indices() {
        if i > 0 && (part(b[i - 1])) {
            continue;
        }
        if !ROOTS.iter().any(|r| text[i..].starts_with(r)) {
            continue;
        }
        let mut end = i;
        while end < b.len() && part(b[end]) {
            end += 1;
        }
        let p = text[i..end].trim_end_matches(['.', '-']);
        out.insert(p.to_string());
    }
    out
}

/// The targets of the inline links `[text](target)` outside fenced blocks and `code spans`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'`' => in_code = !in_code,
                b']' if !in_code && b.get(i + 1) == Some(&b'(') => {
                    if let Some(end) = line[i + 2..].find(')') {
                        out.push(line[i + 2..i + 2 + end].to_string());
                        i += 2 + end;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

/// The anchors a Markdown renderer (GitHub's rule) gives the headings of `text`: lower case,
/// everything but letters, digits, spaces, `-` and `_` dropped, spaces as `-`; a repeated
/// anchor gets `-1`, `-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while seen.contains(&unique) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
        seen.insert(unique);
    }
    seen
}

#[test]
fn the_anchor_rule_matches_githubs_for_this_projects_headings() {
    let a = anchors(
        "# Scenario E: `-atcp` under a forged sweep, with blocking\n\
         ## Stealth and advanced modes against Debian's 1.2\n## Tests\n## Tests\n",
    );
    let want: BTreeSet<String> = [
        "scenario-e--atcp-under-a-forged-sweep-with-blocking",
        "stealth-and-advanced-modes-against-debians-12",
        "tests",
        "tests-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(a, want);
    assert_eq!(
        repo_paths("see `src/sys/exec.rs`, src/engine/ and (tests/docs.rs). Not xsrc/a.rs.")
            .into_iter()
            .collect::<Vec<_>>(),
        ["src/engine/", "src/sys/exec.rs", "tests/docs.rs"]
    );
    assert_eq!(
        links("see [a](x.md#b), `[not](code)`, and [c](y.md)\n```\n[fenced](z)\n```\n"),
        ["x.md#b", "y.md"]
    );
}
