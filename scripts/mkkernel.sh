#!/bin/bash
# Build the Linux-guest suite's kernel (make test-linux-guest, tests/linux/guest.sh):
# Debian's linux-source-6.1, `make tinyconfig` + tests/linux/kernel/cvmm.config, with
# tests/linux/kernel/*.patch applied, built as an uncompressed vmlinux (cvmm boots it without a
# decompressor: every ring-0 instruction is emulated on the project's hosts).
#
# The result is cached OUTSIDE the clone, keyed by a hash of (source package version, config
# fragment, patches), so a machine builds it once:
#   $CVMM_KERNEL_CACHE/<key>/vmlinux      (default /var/cache/cvmm/kernel; what cvmm boots)
#   $CVMM_KERNEL_CACHE/<key>/bzImage      (the same kernel for QEMU's -kernel; config, System.map)
# The unpacked, built tree stays in $CVMM_KERNEL_CACHE/tree-<version+fragment hash>/ so that a
# changed patch rebuilds a few files, not the kernel (CVMM_KERNEL_KEEP_TREE=0 removes it after).
# Usage: scripts/mkkernel.sh [--print-path] [OUTDIR]   links vmlinux and bzImage into OUTDIR;
#        --print-path only prints the cache directory the kernel is or would be in.
# Env:   CVMM_KERNEL_JOBS (2), CVMM_KERNEL_NICE (10).
# Needs: root for apt-get on first use (linux-source-6.1, build tools).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
say() { echo "mkkernel: $*" >&2; }
die() { echo "mkkernel: error: $*" >&2; exit 1; }

PRINT=0
if [ "${1:-}" = --print-path ]; then PRINT=1; shift; fi
OUT=${1:-}
CACHE=${CVMM_KERNEL_CACHE:-/var/cache/cvmm/kernel}
JOBS=${CVMM_KERNEL_JOBS:-2}
NICE=${CVMM_KERNEL_NICE:-10}
FRAG=tests/linux/kernel/cvmm.config
PATCHES=$(ls tests/linux/kernel/*.patch 2>/dev/null | LC_ALL=C sort || true)
SRCPKG=linux-source-6.1

need() {
	scripts/deps.sh --pkg "$@" || die "cannot install:$*"
}
[ "$PRINT" = 1 ] || need $SRCPKG build-essential flex bison bc libelf-dev libssl-dev xz-utils patch
VER=$(dpkg-query -W -f='${Version}' $SRCPKG 2>/dev/null || true)
[ -n "$VER" ] || { [ "$PRINT" = 1 ] && VER=none; } || die "$SRCPKG is not installed"
TARBALL=/usr/src/$SRCPKG.tar.xz

# The cache keys: the tree by (version, fragment); the result by (version, fragment, patches).
TREEKEY=$( { echo "$SRCPKG $VER"; cat "$FRAG"; } | sha256sum | cut -c1-16)
KEY=$( { echo "$SRCPKG $VER"; cat "$FRAG"; for p in $PATCHES; do echo "== $p"; cat "$p"; done; } |
	sha256sum | cut -c1-16)
RES=$CACHE/$KEY
if [ "$PRINT" = 1 ]; then echo "$RES"; exit 0; fi

# Copies, not hard links: a later write into OUTDIR must not change the cache.
publish() {
	local f
	[ -n "$OUT" ] || return 0
	mkdir -p "$OUT"
	for f in vmlinux bzImage; do
		rm -f "$OUT/$f"
		cp "$RES/$f" "$OUT/$f"
	done
}
# A cached result counts only if its files still have the checksums recorded when it was built.
done_already() {
	[ -s "$RES/vmlinux" ] && [ -s "$RES/bzImage" ] && [ -s "$RES/SHA256SUMS" ] &&
		(cd "$RES" && sha256sum -c --quiet --status SHA256SUMS)
}
if done_already; then
	say "cached: $RES/vmlinux ($SRCPKG $VER)"
	publish; exit 0
fi

mkdir -p "$CACHE"
# One build per machine at a time (CI jobs and developers may share the cache).
exec 9>"$CACHE/.lock"
say "waiting for the build lock $CACHE/.lock"
flock 9
if done_already; then say "cached (built meanwhile): $RES/vmlinux"; publish; exit 0; fi

t0=$(date +%s)
TREE=$CACHE/tree-$TREEKEY
K=$TREE/$SRCPKG
if [ ! -f "$K/.cvmm-unpacked" ]; then
	[ -s "$TARBALL" ] || die "$TARBALL is missing (reinstall $SRCPKG)"
	say "unpacking $TARBALL ($SRCPKG $VER) into $TREE"
	# Trees of older versions or fragments are not used again: keep one per machine.
	for old in "$CACHE"/tree-*; do [ "$old" = "$TREE" ] || rm -rf "$old"; done
	rm -rf "$TREE"; mkdir -p "$TREE"
	nice -n "$NICE" tar -C "$TREE" -xf "$TARBALL"
	touch "$K/.cvmm-unpacked"
fi

# Patches: undo the ones applied to this tree before if they changed, then apply ours.
cat $PATCHES /dev/null > "$TREE/want.patch"
if ! cmp -s "$TREE/want.patch" "$K/.cvmm-applied.patch" 2>/dev/null; then
	if [ -s "$K/.cvmm-applied.patch" ]; then
		say "reverting the previously applied patches"
		patch -d "$K" -p1 -R -s < "$K/.cvmm-applied.patch" || die "could not revert the old patches in $K"
	fi
	rm -f "$K/.cvmm-applied.patch"
	for p in $PATCHES; do
		say "applying $p"
		patch -d "$K" -p1 -s --no-backup-if-mismatch < "$REPO/$p" || die "$p does not apply to $SRCPKG $VER"
	done
	cp "$TREE/want.patch" "$K/.cvmm-applied.patch"
fi

MK=(nice -n "$NICE" make -C "$K" ARCH=x86_64 -j"$JOBS")
if [ ! -f "$K/.config" ] || ! cmp -s "$REPO/$FRAG" "$K/.cvmm-fragment"; then
	say "configuring: tinyconfig + $FRAG"
	"${MK[@]}" -s tinyconfig >&2
	(cd "$K" && scripts/kconfig/merge_config.sh -m -O . .config "$REPO/$FRAG" >/dev/null)
	"${MK[@]}" -s olddefconfig >&2
	# Every line of the fragment must have survived (a dependency we missed drops it silently).
	bad=""
	while IFS= read -r l; do
		case "$l" in
		CONFIG_*=*) grep -qxF "$l" "$K/.config" || bad="$bad ${l%%=*}" ;;
		"# CONFIG_"*" is not set") s=${l#\# }; s=${s%% *}
			grep -q "^$s=" "$K/.config" && bad="$bad $s(wanted off)" ;;
		esac
	done < "$REPO/$FRAG"
	[ -z "$bad" ] || die "config lines that did not stick (missing dependencies?):$bad"
	cp "$REPO/$FRAG" "$K/.cvmm-fragment"
fi

say "building vmlinux and bzImage with: nice -n $NICE make -j$JOBS (about 12 minutes on 2 idle cores)"
LOG=$TREE/build.log
"${MK[@]}" vmlinux bzImage > "$LOG" 2>&1 &
mk=$!
while kill -0 $mk 2>/dev/null; do
	sleep 30
	kill -0 $mk 2>/dev/null || break
	say "  ... $(( $(date +%s) - t0 )) s, $(grep -c '^  CC ' "$LOG") files compiled; last: $(tail -1 "$LOG" | cut -c1-90)"
done
wait $mk || { tail -30 "$LOG" >&2; die "kernel build failed (log: $LOG)"; }
mkdir -p "$RES.tmp"
cp "$K/vmlinux" "$K/arch/x86/boot/bzImage" "$K/.config" "$K/System.map" "$RES.tmp/"
echo "$SRCPKG $VER; $FRAG; patches: $PATCHES" > "$RES.tmp/SOURCE"
(cd "$RES.tmp" && sha256sum vmlinux bzImage > SHA256SUMS)
rm -rf "$RES"; mv "$RES.tmp" "$RES"
[ "${CVMM_KERNEL_KEEP_TREE:-1}" = 1 ] || rm -rf "$TREE"
say "built $RES/vmlinux ($(du -m "$RES/vmlinux" | cut -f1) MiB) in $(( $(date +%s) - t0 )) s"
publish
