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

echo "# unit tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
unit_run build/tests/test_*
echo "# concurrency tests under ThreadSanitizer"
UNIT_LABEL="tsan: " TSAN_OPTIONS=halt_on_error=1 unit_run build/tsan/test_*
echo "# model check of the page-cache protocol (spin)"
if command -v spin >/dev/null; then
	while IFS= read -r line; do
		case "$line" in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*) notok "${line#not ok - }" ;;
		*) echo "#   $line" ;;
		esac
	done < <(tests/model/run.sh 2>&1)
else
	skip "model check" "spin is not installed"
fi
echo "# integration: cvmm boots the bundled guest"
boot_tests
echo "# integration: virtio-blk"
blk_tests
echo "# integration: virtio-pmem and the page cache"
pmem_tests
echo "# interop: the same guest under QEMU"
qemu_tests
if [ -x tests/fuzz/run.sh ]; then
	echo "# fuzz (short run)"
	. tests/fuzz/run.sh
	fuzz_tests
fi
summary
