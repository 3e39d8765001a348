//! The wire format of every core type on arbitrary bytes: see `converge::fuzzing::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| converge::fuzzing::decode(data));
