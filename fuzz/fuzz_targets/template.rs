//! Fuzz target `template`: the checks are `portsentry::fuzzcheck::template`, shared with the corpus
//! replay test (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portsentry::fuzzcheck::template(data));
