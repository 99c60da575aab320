//! Fuzz target `defaults`: /etc/default/portsentry as `portsentry modes` reads it. The checks
//! are `portsentry::fuzzcheck::defaults`, shared with the corpus replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portsentry::fuzzcheck::defaults(data));
