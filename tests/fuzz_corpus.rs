//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/*`) through the same checks the
//! fuzz targets run (`portsentry::fuzzcheck`), so every input the fuzzer found interesting,
//! and every crash it once found, is checked by a plain `cargo test` (issue 5, item 3).
//!
//! A missing or empty corpus directory fails: a corpus that silently vanished would turn this
//! test into one that cannot fail.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use portsentry::fuzzcheck::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The files of one corpus, sorted so failures are reported in a stable order.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("reading the corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

fn replay(target: &str) {
    let check = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no check for target {target}"));
    let mut failed = Vec::new();
    for file in corpus_files(target) {
        let data = std::fs::read(&file).expect("reading a corpus file");
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: failing inputs: {failed:#?}");
}

#[test]
fn corpus_config() {
    replay("config");
}

#[test]
fn corpus_ignore() {
    replay("ignore");
}

#[test]
fn corpus_template() {
    replay("template");
}

#[test]
fn corpus_cli() {
    replay("cli");
}

#[test]
fn corpus_ignore_builder() {
    replay("ignore_builder");
}

#[test]
fn corpus_defrag() {
    replay("defrag");
}

/// The targets replayed by the tests above. A new target (e.g. `wire`) added to
/// `fuzzcheck::TARGETS` fails here until it gets its own `corpus_<name>` test.
const REPLAYED: &[&str] = &[
    "config",
    "ignore",
    "template",
    "cli",
    "ignore_builder",
    "wire",
    "defrag",
    "admin",
    "defaults",
    "stream",
];

/// Every target has a replay test, a fuzz target source and a corpus, and every corpus has a
/// target: a target without a committed corpus fails here, as does a stray directory.
#[test]
fn every_target_has_a_corpus_and_back() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names, REPLAYED,
        "fuzzcheck::TARGETS and the replay tests differ"
    );
    for (name, _) in TARGETS {
        assert!(!corpus_files(name).is_empty());
        let src =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fuzz/fuzz_targets/{name}.rs"));
        assert!(src.is_file(), "{} is missing", src.display());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for e in std::fs::read_dir(&root).expect("fuzz/corpus exists") {
        let name = e.expect("reading fuzz/corpus").file_name();
        let name = name.to_string_lossy();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/corpus/{name} has no check in fuzzcheck::TARGETS"
        );
    }
}

/// The harness itself can fail: a missing corpus directory is reported, not skipped.
#[test]
#[should_panic(expected = "is missing")]
fn missing_corpus_fails() {
    corpus_files("no-such-target");
}

#[test]
fn corpus_wire() {
    replay("wire");
}

#[test]
fn corpus_admin() {
    replay("admin");
}

#[test]
fn corpus_defaults() {
    replay("defaults");
}

#[test]
fn corpus_stream() {
    replay("stream");
}
