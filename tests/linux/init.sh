#!/bin/busybox sh
# /init of the Linux test initramfs (scripts/mklinux.sh). Loads the virtio and nvdimm modules,
# then checks the two views cvmm gives of one file (configs/linux.conf): /dev/pmem0 (virtio-pmem,
# ext4 mounted -o dax) and /dev/vda (virtio-blk). Reports on the serial console in the bundled
# guest's format ("ok N - name", "N passed, N failed") and powers off (ACPI S5: cvmm exits).
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "cvmm-init: userspace reached after $(cut -d' ' -f1 /proc/uptime) s of kernel time"

N=0; PASS=0; FAIL=0
ok() { N=$((N + 1)); PASS=$((PASS + 1)); echo "ok $N - $1"; }
notok() { N=$((N + 1)); FAIL=$((FAIL + 1)); echo "not ok $N - $1"; }
check() { name=$1; shift; if "$@"; then ok "$name"; else notok "$name"; fi; }
finish() {
	echo "$PASS passed, $FAIL failed"
	sync
	poweroff -f
	sleep 5
	echo "cvmm-init: poweroff failed"
	while :; do sleep 100; done
}

for m in $(cat /lib/modules/load-order); do
	insmod /lib/modules/$m.ko || echo "cvmm-init: insmod $m failed"
done
wait_for() { i=0; while [ ! -b "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; [ -b "$1" ]; }
check "virtio-blk disk /dev/vda appeared" wait_for /dev/vda
check "virtio-pmem region /dev/pmem0 appeared" wait_for /dev/pmem0
[ -b /dev/vda ] && [ -b /dev/pmem0 ] || finish

STAMP="cvmm-dax-$(cat /proc/sys/kernel/random/uuid)"
# 1. ext4 on the pmem view, mounted with DAX: stores go straight to the host's page cache.
check "mount -o dax /dev/pmem0" mount -t ext4 -o dax /dev/pmem0 /mnt
grep -q ' /mnt ext4 .*dax' /proc/mounts && ok "the mount uses DAX" || notok "the mount uses DAX"
echo "$STAMP" > /mnt/stamp && sync
check "write + sync through the DAX mount" [ "$(cat /mnt/stamp)" = "$STAMP" ]
echo 3 > /proc/sys/vm/drop_caches
check "read back through the DAX mount" [ "$(cat /mnt/stamp)" = "$STAMP" ]
# The same bytes, seen through the block device: cvmm keeps the two views coherent.
check "the DAX write is visible through /dev/vda" grep -q "$STAMP" /dev/vda

# 2. A block write past the file system (it ends at 48 MiB of the 64 MiB), read back through
#    the disk and through the pmem view at the same offset.
PAT="cvmm-blk-$STAMP"
printf '%s' "$PAT" | dd of=/dev/vda bs=4096 seek=14336 conv=fsync,sync 2>/dev/null
check "write + read back through /dev/vda" \
	[ "$(dd if=/dev/vda bs=4096 skip=14336 count=1 2>/dev/null | head -c ${#PAT})" = "$PAT" ]
check "the disk write is visible through /dev/pmem0" \
	[ "$(dd if=/dev/pmem0 bs=4096 skip=14336 count=1 2>/dev/null | head -c ${#PAT})" = "$PAT" ]
umount /mnt
finish
