#!/bin/sh
# Run the test guest under QEMU, the second implementation its results are compared with.
#   guest/run-qemu.sh "scenario=hello" [extra qemu arguments...]
# Environment: GUEST_ELF (build/guest.elf), QEMU_MACHINE (microvm; q35 for PCI devices, which
# boots through SeaBIOS in ~3 s here), QEMU_MEM (256M), TIMEOUT seconds (60).
# Exit status is the guest's, as cvmm reports it: 0 pass, 1 fail, 2 crash or bad command line;
# 124 timeout; 125 QEMU ended some other way (a triple fault with -no-reboot exits 0).
# QEMU's own start-up errors also exit 1, which reads as guest status 0: check its stderr.
cmdline=${1:-scenario=hello}
[ $# -gt 0 ] && shift
timeout "${TIMEOUT:-60}" qemu-system-x86_64 -M "${QEMU_MACHINE:-microvm}" -accel kvm \
	-m "${QEMU_MEM:-256M}" -nographic -no-reboot -nodefaults -serial stdio \
	-device isa-debug-exit,iobase=0xf4,iosize=4 \
	-kernel "${GUEST_ELF:-build/guest.elf}" -append "$cmdline" "$@"
rc=$?
[ $rc -eq 124 ] && exit 124
# isa-debug-exit makes QEMU exit with (value << 1) | 1
[ $((rc % 2)) -eq 1 ] && exit $(((rc - 1) / 2))
exit 125
