//! The replica's peer messages on arbitrary bytes: see `converge::fuzzing::replica_msg`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| converge::fuzzing::replica_msg(data));
