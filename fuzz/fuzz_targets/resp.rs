//! converge-node's RESP2 decoder and session on arbitrary bytes: see `fuzz/bodies/resp.rs`.
#![no_main]

#[path = "../bodies/resp.rs"]
mod body;
#[path = "../bodies/split.rs"]
mod split;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::resp(data));
