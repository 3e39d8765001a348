//! converge-node's peer-link frame decoder on arbitrary bytes: see `fuzz/bodies/peer_frame.rs`.
#![no_main]

#[path = "../bodies/peer_frame.rs"]
mod body;
#[path = "../bodies/split.rs"]
mod split;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::peer_frame(data));
