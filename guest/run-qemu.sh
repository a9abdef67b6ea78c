#!/bin/sh
# Run the test guest under QEMU, the second implementation its results are compared with.
#   guest/run-qemu.sh "scenario=hello" [extra qemu arguments...]
# Environment:
#   GUEST_ELF     the guest (build/guest.elf)
#   QEMU_MACHINE  microvm by default; q35 as soon as a PCI device is asked for (SeaBIOS: ~3-4 s)
#   QEMU_MEM      guest RAM (256M)
#   TIMEOUT       seconds (60)
#   QEMU_ACCEL    accelerator arguments ("-accel kvm -accel tcg": KVM where /dev/kvm works,
#                 else TCG with a one-line warning from QEMU; "-accel tcg" to force TCG)
#   BLK=IMG       attach IMG as virtio-blk-pci (raw, cache=none, discard=unmap, serial
#                 "qemu-blk0"); BLK_RO=1 attaches it read-only; BLK_OFF=BYTES starts the disk at
#                 that offset of IMG (the raw driver's offset=; cvmm's [blk] offset).
#                 BLK="A B ..." (space-separated) attaches several, serials qemu-blk0, 1, ...,
#                 in that order on the bus: the guest's blk0, blk1, ... (BLK_RO/BLK_OFF: all)
#   PMEM=IMG      attach IMG as virtio-pmem-pci (memory-backend-file, share=on); PMEM_SIZE
#                 (default: the file's size) must be a multiple of 2 MiB. PMEM="A B ..."
#                 attaches several (after the disks on the bus: pmem0, pmem1, ...); one file
#                 may be given twice (two MAP_SHARED mappings of it: coherent on the host)
#   SMP=N         -smp N (QEMU starts no APs for this guest: only the BSP runs it)
#   QEMU_OPTS     more arguments, word-split
# Exit status is the guest's, as cvmm reports it: 0 pass, 1 fail, 2 crash or bad command line;
# 124 timeout; 125 QEMU ended some other way (a triple fault with -no-reboot exits 0).
# QEMU's own start-up errors also exit 1, which reads as guest status 0: check its stderr.
cmdline=${1:-scenario=hello}
[ $# -gt 0 ] && shift
machine=${QEMU_MACHINE:-}
mem=${QEMU_MEM:-256M}
devs=
n=0
for f in ${BLK:-}; do
	extra=
	[ "${BLK_RO:-0}" = 1 ] && extra=,readonly=on
	[ -n "${BLK_OFF:-}" ] && extra="$extra,offset=$BLK_OFF"
	devs="$devs -drive file=$f,if=none,id=d$n,format=raw,cache=none,discard=unmap$extra"
	devs="$devs -device virtio-blk-pci,drive=d$n,serial=qemu-blk$n"
	machine=${machine:-q35}
	n=$((n + 1))
done
n=0
for f in ${PMEM:-}; do
	size=${PMEM_SIZE:-$(stat -c %s "$f")}
	n=$((n + 1))
	devs="$devs -object memory-backend-file,id=m$n,share=on,mem-path=$f,size=$size"
	devs="$devs -device virtio-pmem-pci,memdev=m$n"
	machine=${machine:-q35}
done
[ $n -gt 0 ] && mem="$mem,slots=$((n > 2 ? n : 2)),maxmem=2G"
machine=${machine:-microvm}
[ -n "${SMP:-}" ] && devs="$devs -smp $SMP"
# shellcheck disable=SC2086 # $devs, $QEMU_ACCEL and $QEMU_OPTS are lists of words
timeout "${TIMEOUT:-60}" qemu-system-x86_64 -M "$machine" ${QEMU_ACCEL:--accel kvm -accel tcg} \
	-m "$mem" -nographic -no-reboot -nodefaults -serial stdio \
	-device isa-debug-exit,iobase=0xf4,iosize=4 \
	-kernel "${GUEST_ELF:-build/guest.elf}" -append "$cmdline" $devs ${QEMU_OPTS:-} "$@"
rc=$?
[ $rc -eq 124 ] && exit 124
# isa-debug-exit makes QEMU exit with (value << 1) | 1
[ $((rc % 2)) -eq 1 ] && exit $(((rc - 1) / 2))
exit 125
