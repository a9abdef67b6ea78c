#!/bin/bash
# Build the Linux test image under build/linux/ from Debian packages (no kernel build):
#   vmlinux           the uncompressed kernel ELF of linux-image-*-cloud-amd64, taken out of its
#                     bzImage like the kernel's scripts/extract-vmlinux does (cvmm boots it
#                     without the ~90 s decompression the bzImage costs on hosts where ring 0
#                     is emulated)
#   vmlinuz           the package's bzImage itself (cvmm boots it too)
#   initramfs.cpio    busybox-static, the virtio-pci / virtio-blk / virtio-pmem / nd_pmem modules of
#                     the same package, and /init (tests/linux/init.sh); uncompressed, since
#                     inflating it would be ring-0 work too
#   shared.img        64 MiB: an ext4 file system (4 KiB blocks, for DAX) in its first 48 MiB.
#                     configs/linux.conf gives it to the guest twice: as virtio-pmem (/dev/pmem0,
#                     mounted -o dax) and as virtio-blk (/dev/vda), two views of one file.
# Usage: scripts/mklinux.sh [BUILD_DIR]   (default build; idempotent: reuses what is there)
# Needs: apt-get (Debian), dpkg, lz4/zstd/xz/gzip, cpio, mkfs.ext4 (e2fsprogs), busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}/linux
mkdir -p "$B"
B=$(cd "$B" && pwd)
say() { echo "mklinux: $*" >&2; }
die() { echo "mklinux: error: $*" >&2; exit 1; }

need() {
	scripts/deps.sh --pkg "$@" || die "cannot install:$*"
}
need busybox-static cpio lz4 zstd xz-utils e2fsprogs

# ---- the kernel package ------------------------------------------------------------------
if [ ! -s "$B/vmlinuz" ] || [ ! -d "$B/pkg/lib/modules" ]; then
	# The metapackage names the current cloud kernel; download that one (no install).
	dep=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
	if [ -z "$dep" ]; then
		apt-get update -qq >&2 || true
		dep=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
			sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
	fi
	[ -n "$dep" ] || die "apt-cache knows no linux-image-cloud-amd64 (is this Debian 12 with apt sources?)"
	say "downloading $dep"
	rm -rf "$B/dl" "$B/pkg"
	mkdir -p "$B/dl"
	(cd "$B/dl" && apt-get download "$dep" >&2 2>/dev/null) || (cd "$B/dl" && apt-get download "$dep" >&2)
	deb=$(ls "$B"/dl/*.deb | head -1)
	dpkg -x "$deb" "$B/pkg"
	cp "$(ls "$B"/pkg/boot/vmlinuz-* | head -1)" "$B/vmlinuz"
	cp "$(ls "$B"/pkg/boot/config-* | head -1)" "$B/config"
	rm -rf "$B/dl" "$B/vmlinux"
fi
KVER=$(ls "$B/pkg/lib/modules" | head -1)

# ---- vmlinux out of the bzImage (scripts/extract-vmlinux's method) ------------------------
# Find each compression format's magic in the image and try to decompress from there; the
# first result that is an ELF is the kernel. The config names the one it used.
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }
try_decompress() { # MAGIC(printf escapes) NAME COMMAND...
	local magic=$1 name=$2; shift 2
	local pos
	for pos in $(LC_ALL=C grep -abo -F "$(printf "$magic")" "$B/vmlinuz" | cut -d: -f1 | head -8); do
		tail -c +$((pos + 1)) "$B/vmlinuz" | "$@" > "$B/vmlinux.tmp" 2>/dev/null || true
		if is_elf "$B/vmlinux.tmp"; then
			mv "$B/vmlinux.tmp" "$B/vmlinux"
			say "vmlinux: $name payload at offset $pos of the bzImage"
			return 0
		fi
	done
	rm -f "$B/vmlinux.tmp"
	return 1
}
if [ ! -s "$B/vmlinux" ]; then
	comp=$(sed -n 's/^CONFIG_KERNEL_\(GZIP\|XZ\|ZSTD\|LZ4\|LZMA\|BZIP2\|LZO\)=y$/\1/p' "$B/config")
	say "kernel $KVER, compressed with ${comp:-?}"
	case "$comp" in
	LZ4)  try_decompress '\002!L\030' lz4 lz4 -dc ;;
	ZSTD) try_decompress '(\265/\375' zstd zstd -dcq ;;
	XZ)   try_decompress '\3757zXZ\000' xz xz -dcq ;;
	GZIP) try_decompress '\037\213\010' gzip gzip -dcq ;;
	*)    false ;;
	esac ||
	try_decompress '\002!L\030' lz4 lz4 -dc ||
	try_decompress '(\265/\375' zstd zstd -dcq ||
	try_decompress '\3757zXZ\000' xz xz -dcq ||
	try_decompress '\037\213\010' gzip gzip -dcq ||
	die "no vmlinux found inside $B/vmlinuz"
fi

# ---- initramfs ---------------------------------------------------------------------------
MODS="virtio_pci virtio_blk virtio_pmem nd_pmem"
R="$B/initramfs"
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,dev,proc,sys,mnt,tmp,lib/modules}
cp /bin/busybox "$R/bin/busybox"
for app in $("$R/bin/busybox" --list); do
	[ "$app" = busybox ] || ln -sf busybox "$R/bin/$app"
done
# Modules and their dependencies (from each .ko's .modinfo "depends="), in load order.
declare -A seen=()
order=()
add_mod() {
	local m=$1 f d
	[ -n "${seen[$m]:-}" ] && return 0
	seen[$m]=1
	f=$(find "$B/pkg/lib/modules/$KVER" -name "$m.ko" | head -1)
	[ -n "$f" ] || die "module $m not in the kernel package"
	for d in $(tr '\0' '\n' < "$f" | sed -n 's/^depends=//p' | tr ',' ' '); do
		add_mod "$d"
	done
	cp "$f" "$R/lib/modules/"
	order+=("$m")
}
for m in $MODS; do add_mod "$m"; done
printf '%s\n' "${order[@]}" > "$R/lib/modules/load-order"
install -m 0755 tests/linux/init.sh "$R/init"
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$B/initramfs.cpio"
say "initramfs: $(du -k "$B/initramfs.cpio" | cut -f1) KiB, modules: ${order[*]}"

# ---- the shared disk / pmem image ---------------------------------------------------------
if [ ! -s "$B/shared.img" ] || [ tests/linux/init.sh -nt "$B/shared.img" ]; then
	rm -f "$B/shared.img"
	truncate -s 64M "$B/shared.img"
	mkfs.ext4 -q -F -b 4096 -L cvmm-dax -E root_owner=0:0 "$B/shared.img" 48M
	say "shared.img: 64 MiB, ext4 in the first 48 MiB"
fi
say "done: $B/{vmlinux,vmlinuz,initramfs.cpio,shared.img}"
