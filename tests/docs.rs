//! The README's configuration table is checked against the one definition of each key
//! (`config::KEYS`), so documentation cannot drift from the parser.

use portsentry::config::KEYS;

/// The table row the README must contain for a key.
fn row(k: &portsentry::config::KeyDef) -> String {
    let ext = if k.extension { " (extension)" } else { "" };
    format!("| `{}`{ext} | {} | {} |", k.name, k.doc, k.default)
}

#[test]
fn readme_documents_every_config_key_exactly() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let missing: Vec<String> = KEYS
        .iter()
        .map(row)
        .filter(|r| !readme.contains(r.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md lacks these rows (copy them into the configuration table):\n{}",
        missing.join("\n")
    );
}
