#!/usr/bin/env bash
# Installs the system packages the tests need, and only those missing; safe to run again.
#
#   faketime     libfaketime, which `converge certify --nemesis clock` preloads into process
#                nodes to move their wall clocks (tests/clock.rs).
#   redis-tools  redis-cli: tests/cluster.rs reserves a seat with it on a real cluster (an
#                ordinary Redis client, not only the test's own RESP code, must be able to),
#                and scripts/bench-cas.sh drives the cluster with it.
#
# Runs as root without a terminal (CI); as another user it uses sudo when there is one.
set -euo pipefail

packages=(faketime redis-tools)

missing=()
for p in "${packages[@]}"; do
    # `dpkg -s` also knows removed-but-configured packages: require the installed state.
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: already installed: ${packages[*]}"
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "install-deps: missing ${missing[*]}, and no apt-get here: install them by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
        sudo=(sudo -n)
    else
        echo "install-deps: missing ${missing[*]}; run this script as root" >&2
        exit 1
    fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Waits for another apt or dpkg run (another checkout's CI) instead of failing on its lock.
apt=(apt-get -q -o DPkg::Lock::Timeout=300)
"${sudo[@]}" "${apt[@]}" update
"${sudo[@]}" "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
