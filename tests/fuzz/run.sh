#!/bin/bash
# Fuzz targets (libFuzzer): build each tests/fuzz/fuzz_*.c with clang's fuzzer + ASan + UBSan
# and run it for a bounded time. tests/run-all.sh sources this file (after tests/lib.sh, for
# ok/notok/skip) and calls fuzz_tests; run it directly for a standalone verdict:
#   tests/fuzz/run.sh                     every target, FUZZ_SECONDS each (default 20)
#   FUZZ_SECONDS=300 tests/fuzz/run.sh fuzz_blk
# Binaries, corpora and crash/leak/timeout artifacts go to FUZZ_OUT (default build/fuzz);
# checked-in seeds, if any, are read from tests/fuzz/corpus/<target>/.

# The host sources each target links (kept here rather than linking libcvmm, whose other
# objects would need KVM and would be instrumented for nothing).
fuzz_sources() {
	case "$1" in
	fuzz_virtq)  echo "devices/virtqueue.c devices/virtio.c lib/guest_mem.c lib/iov.c" ;;
	fuzz_blk)    echo "devices/blk.c devices/fault.c devices/virtqueue.c devices/virtio.c lib/guest_mem.c lib/iov.c" ;;
	fuzz_config) echo "vmm/config.c vmm/power_cut_plan.c devices/fault.c devices/virtio.c devices/virtqueue.c lib/guest_mem.c lib/iov.c" ;;
	fuzz_elf)    echo "vmm/loader_elf.c lib/file.c lib/guest_mem.c" ;;
	fuzz_control) echo "vmm/control_json.c" ;;
	fuzz_blk_window) echo "devices/blk.c devices/fault.c devices/blk_pcache.c devices/virtqueue.c devices/virtio.c $(ls lib/*.c mm/*.c | tr '\n' ' ')" ;;
	fuzz_linux)  echo "vmm/linux.c vmm/loader_elf.c lib/file.c lib/guest_mem.c vmm/acpi.c vmm/boot.c vmm/cpuid.c" ;;
	*) return 1 ;;
	esac
}

fuzz_libs() {
	case "$1" in
	fuzz_elf|fuzz_linux) echo "-lelf" ;;
	*) echo "-pthread" ;;
	esac
}

fuzz_tests() {
	local secs=${FUZZ_SECONDS:-20} out=${FUZZ_OUT:-build/fuzz}
	local cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -D_GNU_SOURCE"
	local src name srcs bin corpus seeds log rc execs
	if ! command -v clang >/dev/null 2>&1; then
		skip "fuzz: every target" "clang is not installed: the fuzz targets did NOT run"
		return 0
	fi
	mkdir -p "$out"
	for src in tests/fuzz/fuzz_*.c; do
		name=$(basename "$src" .c)
		if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then
			continue
		fi
		if ! srcs=$(fuzz_sources "$name"); then
			notok "fuzz: $name" "no source list for $name in tests/fuzz/run.sh (fuzz_sources)"
			continue
		fi
		bin="$out/$name"
		# shellcheck disable=SC2086,SC2046 # word splitting of the flag and source lists is wanted
		if ! log=$(clang $cflags -o "$bin" "$src" $srcs $(fuzz_libs "$name") 2>&1); then
			notok "fuzz: $name builds" "$log"
			continue
		fi
		corpus="$out/$name.corpus"
		mkdir -p "$corpus"
		seeds=""
		[ -d "tests/fuzz/corpus/$name" ] && seeds="tests/fuzz/corpus/$name"
		# shellcheck disable=SC2086
		log=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
			timeout $((secs + 60)) "$bin" -max_total_time="$secs" -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/$name-" \
			"$corpus" $seeds 2>&1)
		rc=$?
		execs=$(printf '%s\n' "$log" | sed -n 's/^stat::number_of_executed_units: *//p' | tail -1)
		if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
			ok "fuzz: $name (${execs} runs in ${secs} s, corpus $(find "$corpus" -type f | wc -l))"
		else
			notok "fuzz: $name (exit $rc; reproduce: $bin $out/$name-crash-*)" \
				"$(printf '%s\n' "$log" | grep -v '^cvmm: ' | tail -n 40)"
		fi
	done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	cd "$(dirname "$0")/../.." || exit 1
	. tests/lib.sh
	fuzz_tests "$@"
	summary
fi
