#!/usr/bin/env bash
# Builds the reference node's two test builds for the rolling-upgrade nemesis into
# target/upgrade/: `converge-wire-next` (an add-only change: its Hello carries an extension older
# nodes ignore) and `converge-wire-breaking` (the framing version bumped: older nodes refuse its
# links). Never for deployment. Then rebuilds the default binary, which the builds overwrite in
# target/release/ (sharing the target directory rebuilds only the two crates that differ).
#
#   scripts/build-upgrade-builds.sh && converge certify --cluster examples/converge-tcp.toml \
#       --workload or-set --upgrade-bin target/upgrade/converge-wire-next
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/upgrade
for feature in wire-next wire-breaking; do
    cargo build --locked --release --features "$feature"
    cp target/release/converge "target/upgrade/converge-$feature"
done
cargo build --locked --release
echo "build-upgrade-builds: target/upgrade/converge-wire-next, target/upgrade/converge-wire-breaking"
