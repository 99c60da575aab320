//! Fuzz target `stream`: the checks are `portsentry::fuzzcheck::stream`, shared with the corpus
//! replay test (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portsentry::fuzzcheck::stream(data));
