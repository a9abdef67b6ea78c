#!/bin/bash
# `make test`: every test, one verdict. Unit tests (ASan+UBSan), integration tests that boot the
# guest under cvmm (SKIP, loudly, where /dev/kvm is missing), the same guest under QEMU, and a
# short fuzz run. Ends with "N passed, N failed" and exits nonzero if anything failed.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
. tests/run-unit.sh
. tests/integration/boot.sh
. tests/integration/pmem.sh
. tests/integration/coherency.sh
. tests/integration/devices.sh
. tests/integration/logs.sh
. tests/integration/faults.sh
. tests/integration/hardening.sh

echo "# unit tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
unit_run build/tests/test_*
echo "# concurrency tests under ThreadSanitizer"
UNIT_LABEL="tsan: " TSAN_OPTIONS=halt_on_error=1 unit_run build/tsan/test_*
# Run a script that prints its own ok / not ok / SKIP lines, and count them here. A script that
# exits nonzero without saying why is a failure too.
run_sub() {
	local name=$1 line fails=$FAIL rc=0; shift
	while IFS= read -r line; do
		case "$line" in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*) notok "${line#not ok - }" ;;
		"SKIP - "*) SKIP=$((SKIP + 1)); echo "$line" ;;
		__rc=*) rc=${line#__rc=} ;;
		*) echo "#   $line" ;;
		esac
	done < <("$@" 2>&1; echo "__rc=$?")
	if [ "$rc" != 0 ] && [ "$FAIL" -eq "$fails" ]; then
		notok "$name: $1 exited $rc"
	fi
}
echo "# model check of the page-cache protocol (spin)"
if command -v spin >/dev/null; then
	run_sub model tests/model/run.sh
else
	skip "model check" "spin is not installed"
fi
echo "# integration: cvmm boots the bundled guest"
boot_tests
echo "# integration: virtio-blk"
blk_tests
echo "# integration: virtio-pmem and the page cache"
pmem_tests
echo "# integration: one file as pmem window and blk disk, kept coherent (the protocol)"
coherency_tests
echo "# integration: several disks and pmem windows at once (multi; issue 15)"
devices_tests
echo "# integration: write logs from a running VM: guest marks, power cut (issue 16)"
log_tests
echo "# integration: fault injection seen from the guest, rules changed at run time (faults; issue 15)"
faults_tests
echo "# integration: fsx, random pmem and blk operations against a shadow model"
fsx_tests
echo "# integration: crash test, cvmm killed with SIGKILL at random moments (issue 12)"
. tests/integration/crash.sh
crash_tests
echo "# integration: power cut and every crash state of the write log (issue 16; the pipeline runs without a VM too)"
. tests/integration/powercut.sh
powercut_pipeline_tests
powercut_tests
echo "# integration: hardening (created files, serial budget, control clients, seccomp)"
hardening_tests
echo "# interop: the same guest under QEMU"
qemu_tests
echo "# interop: two disks and two pmem windows under QEMU (KVM, else TCG: runs without /dev/kvm)"
qemu_devices_tests
echo "# interop: scenario faults under QEMU without rules (KVM, else TCG)"
qemu_faults_tests
if [ -x tests/fuzz/run.sh ]; then
	echo "# fuzz (short run)"
	. tests/fuzz/run.sh
	fuzz_tests
fi
echo "# Linux: the Debian cloud kernel boots far enough to read our e820, cmdline and ACPI (~4.5 min)"
if [ "${CVMM_SKIP_LINUX:-0}" = 1 ]; then
	skip "linux: boot the Debian kernel" "CVMM_SKIP_LINUX=1: the Linux boot did NOT run"
else
	run_sub linux tests/linux/run.sh
fi
echo "# Linux guest: a small test kernel runs the storage checks in userspace (ext4 -o dax on pmem, blk, fsx, 2 vCPUs)"
if [ "${CVMM_SKIP_LINUX:-0}" = 1 ]; then
	skip "linux-guest: the Linux-guest suite" "CVMM_SKIP_LINUX=1: the Linux guest did NOT run"
else
	run_sub linux-guest tests/linux/guest.sh
fi
summary
