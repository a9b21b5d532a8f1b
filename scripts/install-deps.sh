#!/usr/bin/env bash
# Installs what building and testing corio needs, from Debian's packages.
# Usage: scripts/install-deps.sh [group ...]   groups: base (default), cross, peers, python
set -euo pipefail

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(base)

pkgs=()
for g in "${groups[@]}"; do
    case "$g" in
    base) pkgs+=(build-essential clang libclang-rt-14-dev valgrind python3 prometheus tmux) ;;
    cross) pkgs+=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
    peers) pkgs+=(nginx-light wrk libuv1-dev golang-go python3-uvloop gnuplot-nox) ;;
    python) pkgs+=(python3-dev python3-setuptools python3-uvloop libpython3.11-testsuite) ;;
    *) echo "unknown group: $g" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing: ${missing[*]}"

# Packages such as nginx and prometheus start their daemons on install;
# nothing here wants them running (the benchmarks start their own), so
# service starts are refused for the length of the install, unless the
# machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
