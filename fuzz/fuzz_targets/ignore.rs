//! Fuzz target `ignore`: the checks are `portsentry::fuzzcheck::ignore`, shared with the corpus
//! replay test (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portsentry::fuzzcheck::ignore(data));
