#!/bin/sh
# Install what cvmm needs to build and test, on Debian (as root, with apt-get).
#   scripts/deps.sh                     install everything missing
#   scripts/deps.sh --check-or-install  quiet when all is there (make calls this)
# Build: gcc make libelf-dev libcmocka-dev liburing-dev.  Tests: clang (libFuzzer, sanitizers),
# qemu-system-x86 (the peer the guest is checked against), spin (model checks), acpica-tools
# (iasl), busybox-static, fio, gnuplot-nox and linux-perf (benchmarks: make bench).
set -eu

PKGS="gcc make pkg-config libelf-dev libcmocka-dev liburing-dev clang libclang-rt-14-dev \
qemu-system-x86 spin acpica-tools busybox-static fio python3 gnuplot-nox linux-perf"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing packages:$missing (not a Debian system: install them by hand)" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing; run 'sudo scripts/deps.sh' once" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
