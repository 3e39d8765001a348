#!/usr/bin/env bash
# Installs the system packages the tests need, and only those missing; safe to run again.
#
#   faketime     libfaketime, which `converge certify --nemesis clock` preloads into process
#                nodes to move their wall clocks (tests/clock.rs).
#   redis-tools  redis-cli: tests/cluster.rs reserves a seat with it on a real cluster (an
#                ordinary Redis client, not only the test's own RESP code, must be able to),
#                and scripts/bench-cas.sh drives the cluster with it.
#   redis-server the primary and replica that examples/redis-replica.toml certifies
#                (`converge certify --cluster`, workload session).
#   etcd-server  etcd 3.4, the three members that examples/etcd/etcd.toml certifies (lin-kv);
#   etcd-client  etcdctl, to look at such a cluster by hand (the adapter does not need it).
#
# Both server packages ship a system service that their postinst would start on the default
# ports (6379, 2379/2380). The certify runs start their own servers on ports of their own, and a
# system-wide one would only be a stray process (and a stray open port) on a CI machine, so this
# script forbids service starts while it installs (policy-rc.d), and stops any that ran anyway.
#
# Runs as root without a terminal (CI); as another user it uses sudo when there is one.
set -euo pipefail

packages=(faketime redis-tools redis-server etcd-server etcd-client)

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

# invoke-rc.d (which the postinst scripts call) asks /usr/sbin/policy-rc.d whether it may start a
# service; exit code 101 means "forbidden". A machine may already have one (Docker images ship
# one that forbids everything): then it is left as it is. Otherwise one is put in place for this
# install only and removed on every way out of the script.
policy=/usr/sbin/policy-rc.d
added_policy=0
cleanup() {
    if [ "$added_policy" -eq 1 ]; then
        "${sudo[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Put here by converge scripts/install-deps.sh for one install; removed after it.\nexit 101\n' |
        "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    added_policy=1
fi

"${sudo[@]}" "${apt[@]}" update
"${sudo[@]}" "${apt[@]}" install -y --no-install-recommends "${missing[@]}"

# A machine running systemd starts units without asking policy-rc.d in some paths (a socket or a
# preset): stop and disable them too, so nothing is left listening on the default ports. Where
# there is no systemd (CI's containers) these are no-ops.
for svc in redis-server etcd; do
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        "${sudo[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$svc" ]; then
        "${sudo[@]}" "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
done
