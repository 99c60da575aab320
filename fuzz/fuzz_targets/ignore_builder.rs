//! Fuzz target `ignore_builder`: the checks are `portsentry::fuzzcheck::ignore_builder`, shared with the corpus
//! replay test (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portsentry::fuzzcheck::ignore_builder(data));
