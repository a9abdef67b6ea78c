#!/bin/bash
# Check the page-cache protocol models with SPIN: each must verify clean, and every deliberately
# broken variant must be caught. Needs spin and a C compiler. Prints TAP-ish lines.
#   pcache.pml            one page: guest, flusher, invalidator, DMA, breaker
#   pcache.pml -DDIRECT   one page: guest, direct writer, direct reader, DMA, breaker
#   pcache.pml -DFLUSHRACE one page: guest, flusher, direct reader, invalidator, DMA
#   pins.pml              two pages: all-or-nothing pins vs a break; a DISCARD of its own buffers
#   granule.pml -DHARVEST two pages in one granule: guest, invalidator (or direct writer),
#                         flusher, direct reader; the harvest reads the writable bit without the
#                         slot lock (finding 1)
#   granule.pml -DPARTIAL guest, DMA into half a page, direct write of its other half, flusher,
#                         a failing shadow unmap (findings 2 and 4)
#   granule.pml -DFLUSH2  guest, two FLUSHes on the blk device's cursor and one on pmem's (or a
#                         blk read), a failing writeback write (finding 3, and the read side)
set -u
cd "$(dirname "$0")"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cp pcache.pml pins.pml granule.pml "$W/"
cd "$W"
fail=0
check() { # model name want(0 = no errors, 1 = errors) defines...
	local model=$1 name=$2 want=$3; shift 3
	rm -f pan pan.* ./*.trail
	# A broken variant is caught within a few thousand states, mostly: compiling pan.c with -O2
	# costs more (~3 s) than the search, so those build with -O0.
	local opt=-O2
	[ "$want" = 1 ] && opt=-O0
	spin "$@" -a "$model" >/dev/null && gcc $opt -DSAFETY -DCOLLAPSE -o pan pan.c 2>/dev/null || {
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
check pcache.pml "protocol verifies" 0
for bug in BUG_APPLY_LATE BUG_NO_REPROTECT BUG_PIN_UNLOCKED BUG_NO_DRAIN BUG_NO_LAUNDER; do
	check pcache.pml "catches $bug" 1 -D$bug
done
check pcache.pml "direct I/O protocol verifies" 0 -DDIRECT
for bug in BUG_NO_WB_BEFORE_READ BUG_DW_NO_UNMAP BUG_DW_DROP_PINNED BUG_BREAK_NO_WB; do
	check pcache.pml "direct I/O: catches $bug" 1 -DDIRECT -D$bug
done
check pcache.pml "flush racing a direct read verifies" 0 -DFLUSHRACE
for bug in BUG_NO_WB_WAIT BUG_HINT_IF_NEW; do
	check pcache.pml "flush racing a direct read: catches $bug" 1 -DFLUSHRACE -D$bug
done
check pins.pml "pins vs break: terminates" 0
for bug in BUG_PIN_HOLD BUG_DWZ_KEEP_PIN; do
	check pins.pml "pins vs break: catches $bug" 1 -D$bug
done
# issue 12: one granule of two pages of two halves (tests/model/granule.pml)
check granule.pml "granule: harvest vs unmap verifies" 0 -DHARVEST
check granule.pml "granule: harvest vs unmap: catches BUG_UNMAP_APPLY_LATE" 1 -DHARVEST -DBUG_UNMAP_APPLY_LATE
check granule.pml "granule: harvest vs unmap: blk read alone catches BUG_UNMAP_APPLY_LATE" 1 \
	-DHARVEST -DREADER_ONLY -DBUG_UNMAP_APPLY_LATE
check granule.pml "granule: harvest vs unmap: writable bit read under the slot lock verifies" 0 \
	-DHARVEST -DFIX1_LOCKED_READ -DBUG_UNMAP_APPLY_LATE -DNSTORES=1
check granule.pml "granule: harvest vs a direct write's unmap verifies" 0 -DHARVEST -DUNMAPPER_DW
check granule.pml "granule: harvest vs a direct write's unmap: catches BUG_UNMAP_APPLY_LATE" 1 \
	-DHARVEST -DUNMAPPER_DW -DBUG_UNMAP_APPLY_LATE
check granule.pml "granule: DMA vs partial direct write verifies" 0 -DPARTIAL -DUNMAP_FAIL
for bug in BUG_DW_FALLBACK BUG_DW_REREAD BUG_DW_DROP_PARTIAL BUG_DW_UNMAP_FAIL; do
	check granule.pml "granule: DMA vs partial direct write: catches $bug" 1 -DPARTIAL -DUNMAP_FAIL -D$bug
done
check granule.pml "granule: two FLUSHes and a write error verify" 0 -DFLUSH2
for bug in BUG_FLUSH_CURSOR_ONLY BUG_FLUSH_OWN_ONLY; do
	check granule.pml "granule: two FLUSHes and a write error: catches $bug" 1 -DFLUSH2 -D$bug
done
check granule.pml "granule: two FLUSHes, a blk read and a write error verify" 0 -DFLUSH2 -DWITH_READER
check granule.pml "granule: two FLUSHes, a blk read and a write error: catches BUG_READ_OWN_ONLY" 1 \
	-DFLUSH2 -DWITH_READER -DBUG_READ_OWN_ONLY
exit $fail
