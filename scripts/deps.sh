#!/bin/sh
# Install what cvmm needs, on Debian (as root, with apt-get), by group:
#   build  gcc make pkg-config libelf-dev (cvmm, cvmmctl, the guest: a plain `make`)
#   test   libcmocka-dev (unit tests), clang + libclang-rt-14-dev (libFuzzer, TSan), qemu-system-x86
#          (the peer the guest is checked against), spin (model checks), acpica-tools (iasl),
#          busybox-static (Linux initramfs), python3
#   bench  fio (the host's ceiling), gnuplot-nox (results.png), linux-perf, liburing-dev
#   scripts/deps.sh [GROUP...]                      install what is missing (default: all)
#   scripts/deps.sh --check-or-install GROUP...     quiet when all is there (make calls this)
#   scripts/deps.sh --pkg NAME...                   these packages (mkkernel.sh, mklinux.sh and
#                                                   tests/linux/guest.sh use it)
set -eu

[ "${1:-}" = --check-or-install ] && shift
PKGS=""
if [ "${1:-}" = --pkg ]; then
	shift
	PKGS="$*"
	set --
else
	[ $# -gt 0 ] || set -- build test bench
fi
for g in "$@"; do
	case "$g" in
	build) PKGS="$PKGS gcc make pkg-config libelf-dev" ;;
	test)  PKGS="$PKGS libcmocka-dev clang libclang-rt-14-dev qemu-system-x86 spin acpica-tools \
busybox-static python3" ;;
	bench) PKGS="$PKGS fio gnuplot-nox linux-perf liburing-dev" ;;
	*) echo "deps: unknown group '$g' (build, test, bench)" >&2; exit 64 ;;
	esac
done

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
	echo "deps: missing packages:$missing; run 'sudo scripts/deps.sh $*' once" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2 2>/dev/null ||
	{ apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends $missing >&2; }
