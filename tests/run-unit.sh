#!/bin/bash
# Run cmocka unit test binaries (built with ASan + UBSan); count their test cases.
# Usage: tests/run-unit.sh BIN... ; prints per-binary results. Sourced by run-all.sh via unit_run.
set -u
. "$(dirname "$0")/lib.sh"
unit_run() {
	for bin in "$@"; do
		name="${UNIT_LABEL:-}$(basename "$bin")"
		out=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			timeout 300 "$bin" 2>&1)
		rc=$?
		p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
		f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
		p=${p:-0}; f=${f:-0}
		if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] && [ "$p" -gt 0 ]; then
			PASS=$((PASS + p)); echo "ok - $name ($p cases)"
		else
			PASS=$((PASS + p))
			notok "$name (exit $rc, $f of $((p + f)) cases failed)" "$out"
		fi
	done
}
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	unit_run "$@"
	summary
fi
