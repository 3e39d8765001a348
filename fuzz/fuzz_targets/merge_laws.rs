//! Every CRDT law on fuzzer-built traces: see `converge::fuzzing::merge_laws`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| converge::fuzzing::merge_laws(data));
