#!/bin/bash
# Check the page-cache protocol model with SPIN: the model must verify clean, and every
# deliberately broken variant must be caught. Needs spin and a C compiler. Prints TAP-ish lines.
set -u
cd "$(dirname "$0")"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cp pcache.pml "$W/"
cd "$W"
fail=0
check() { # name want(0 = no errors, 1 = errors) defines...
	local name=$1 want=$2; shift 2
	rm -f pan pan.* ./*.trail
	spin "$@" -a pcache.pml >/dev/null && gcc -O2 -DSAFETY -DCOLLAPSE -o pan pan.c 2>/dev/null || {
		echo "not ok - model $name (build)"; fail=1; return; }
	local out errs
	out=$(./pan -m200000 2>&1)
	errs=$(printf '%s\n' "$out" | sed -n 's/.*errors: \([0-9]*\).*/\1/p' | tail -1)
	if { [ "$want" = 0 ] && [ "$errs" = 0 ]; } || { [ "$want" = 1 ] && [ "${errs:-0}" != 0 ]; }; then
		echo "ok - model $name ($(printf '%s\n' "$out" | grep -m1 -E 'states, stored' | awk '{print $1}') states)"
	else
		echo "not ok - model $name (errors: ${errs:-?})"; printf '%s\n' "$out" | head -5; fail=1
	fi
}
check "protocol verifies" 0
for bug in BUG_APPLY_LATE BUG_NO_REPROTECT BUG_PIN_UNLOCKED BUG_NO_DRAIN BUG_NO_LAUNDER; do
	check "catches $bug" 1 -D$bug
done
exit $fail
