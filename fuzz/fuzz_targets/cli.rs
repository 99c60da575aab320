//! Fuzz target `cli`: the checks are `portsentry::fuzzcheck::cli`, shared with the corpus
//! replay test (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portsentry::fuzzcheck::cli(data));
