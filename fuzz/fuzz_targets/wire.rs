//! Fuzz target `wire`: the checks are `portsentry::fuzzcheck::wire`, shared with the corpus
//! replay test (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portsentry::fuzzcheck::wire(data));
