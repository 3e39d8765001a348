#!/usr/bin/env bash
# Runs one fuzz target under libFuzzer (cargo-fuzz, nightly) for a while.
#
#   scripts/fuzz.sh TARGET [SECONDS]
#
# New interesting inputs land in fuzz/corpus/TARGET/ (minimize with `cargo +nightly fuzz cmin
# TARGET` before committing); a crash is written to fuzz/artifacts/TARGET/ and makes this script
# exit non-zero. Copy a crash to fuzz/regressions/TARGET/ so `cargo test` replays it.
# fuzz/TARGET.dict, if present, is passed to libFuzzer as its dictionary.
set -euo pipefail

targets=(merge_laws decode replica_msg resp peer_frame)

usage() {
    echo "usage: $0 TARGET [SECONDS]" >&2
    echo "  TARGET:  one of: ${targets[*]}" >&2
    echo "  SECONDS: how long to fuzz (default 60)" >&2
    exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
target=$1
seconds=${2:-60}
known=no
for t in "${targets[@]}"; do
    if [[ $t == "$target" ]]; then known=yes; fi
done
[[ $known == yes ]] || { echo "unknown fuzz target: $target" >&2; usage; }
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "SECONDS must be a positive integer: $seconds" >&2; usage; }

cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it" >&2
    cargo install --locked cargo-fuzz
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "cargo fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi

mkdir -p "fuzz/corpus/$target"
args=(-max_total_time="$seconds")
# A target's libFuzzer dictionary (tokens the mutator splices in), if it has one.
if [[ -f "fuzz/$target.dict" ]]; then
    args+=(-dict="fuzz/$target.dict")
fi
# libFuzzer exits non-zero when it finds a crash, a leak or a timeout; exec passes that on.
exec cargo +nightly fuzz run "$target" -- "${args[@]}"
