# Crash test (issue 12): the guest's `crash` scenario writes generation after generation of
# pmem stores and blk writes into one file, FLUSHes them and prints `crash: acked G` (what that
# promises exactly: guest/scenarios/crash.c); cvmm is
# killed with SIGKILL at random moments, and after each kill guest/tools/check-crash.py checks
# that every byte acknowledged before the kill is in the file (a byte last written at an
# acknowledged generation k holds k's value or a later generation's, never older, never
# anything else; the rest of the file stays zero). cvmm's exit-time writeback does not run on
# SIGKILL: only what the FLUSHes made durable survives, which is exactly the promise.
#
# tests/integration/powercut.sh is the power-cut variant (issue 16): cvmm logs the disk's writes
# ([blk] write_log), is cut right after a random FLUSH ([vm] power_cut = after-flushes:N), and
# every crash state of the log's last epochs (cvmm-replay --crash-states) is checked with the
# same checker (--only blk); its pipeline also runs without a VM, on generated logs.
#
# Sourced by tests/run-all.sh after lib.sh and boot.sh (ok/notok/skip, $CVMM, $GUEST, $T);
# or run alone: tests/integration/crash.sh (builds nothing: `make` first).
#
#   crash_tests   for each granule in CRASH_GRANULES ("4K 2M"): CRASH_KILLS (30) runs, in
#                 chains of CRASH_CHAIN (5): the first run of a chain starts on a fresh
#                 zero-filled 8 MiB file, the others continue it (resume=1: the guest restarts
#                 at the generation the file's header holds). Each run is killed with SIGKILL
#                 after a random delay (bash $RANDOM seeded with CRASH_SEED, default 12, printed):
#                 a third of them early (0..150 ms: during boot and the first generations), the
#                 rest up to CRASH_MAX_MS (1200). After each kill a sparse copy of the file is
#                 kept; one checker process then checks every copy against the serial logs of
#                 its chain (--batch). Also: the scenario run to its end (gens=) and checked (the
#                 normal exit path), and the checker's --selftest (it catches a lost write, a
#                 zeroed word, a flipped byte, a misplaced word, a too-new generation, a stray
#                 byte, a zeroed page). A failing copy, its logs, the seed and the checker's
#                 output are kept under CRASH_EVIDENCE (build/crash-evidence/).
#                 CRASH_RACE_DELAY_US=N runs cvmm with CVMM_RACE_DELAY_US=N (README).
#
# Layout (guest/scenarios/crash.c): [pmem] and [blk] on the same 8 MiB file ([blk] offset 0),
# two disjoint random pools of 96 pages each, pmem-only and blk-only, spread over all four
# 2 MiB granules: the two views never write the same byte but share granules, so a blk write's
# invalidation of a granule races with the pmem FLUSH of that granule's dirty pages (issue 12,
# finding 1).
#
# CRASH_VMM=qemu runs the same loop under QEMU (q35, virtio-pmem-pci + virtio-blk-pci
# cache=none on the file, KVM or else TCG): a check of the harness and the checker, not of
# cvmm; QEMU's pmem is a shared file mapping, so it keeps even unflushed stores. Its default
# is two files ([blk] on a separate disk file, CRASH_FILES=2): with both views on one file the
# host kernel's direct writes collide with the mapping's large folios ("Page cache invalidation
# failure on direct I/O" in dmesg) and its next fsync, so QEMU's pmem FLUSH, fails with EIO.
# CRASH_VMM=qemu CRASH_QEMU_SHARE=off (a private mapping: FLUSH saves nothing) must FAIL: the
# whole pipeline's negative control.

CRASH_SIZE=8M

# crash_files: 1 (pmem and blk on one file) or 2 (the disk a separate file of the same size).
crash_files() {
	echo "${CRASH_FILES:-$([ "${CRASH_VMM:-cvmm}" = qemu ] && echo 2 || echo 1)}"
}

# crash_disk IMG: the disk's file
crash_disk() {
	if [ "$(crash_files)" = 2 ]; then echo "${1%.img}-disk.img"; else echo "$1"; fi
}

# crash_fresh IMG: zero-filled file(s)
crash_fresh() {
	rm -f "$1" "$(crash_disk "$1")"
	truncate -s "$CRASH_SIZE" "$1" "$(crash_disk "$1")"
}

# crash_conf CONF IMG GRANULE: cvmm's config for the crash runs.
crash_conf() {
	printf '[vm]\nkernel = %s\ntimeout = 60\ncpus = 1\n[pmem]\npath = %s\nsize = %s\ngranule = %s\n[blk]\npath = %s\noffset = 0\n' \
		"$PWD/$GUEST" "$2" "$CRASH_SIZE" "$3" "$(crash_disk "$2")" > "$1"
}

# crash_start CONF IMG LOG CMDLINE: start the VM in the background, serial to LOG (stderr to
# LOG.err); the VM's own pid (not a wrapper's) in CRASH_PID.
crash_start() {
	local conf=$1 img=$2 log=$3 cmdline=$4
	if [ "${CRASH_VMM:-cvmm}" = qemu ]; then
		qemu-system-x86_64 -M q35 -accel kvm -accel tcg -m 256M,slots=2,maxmem=2G \
			-display none -no-reboot -nodefaults -serial "file:$log" \
			-device isa-debug-exit,iobase=0xf4,iosize=4 -kernel "$GUEST" -append "$cmdline" \
			-drive "file=$(crash_disk "$img"),if=none,id=d0,format=raw,cache=none" \
			-device virtio-blk-pci,drive=d0 \
			-object "memory-backend-file,id=m1,share=${CRASH_QEMU_SHARE:-on},mem-path=$img,size=$CRASH_SIZE" \
			-device virtio-pmem-pci,memdev=m1 2>"$log.err" &
	else
		# (env execs cvmm: $! is cvmm's pid)
		env ${CRASH_RACE_DELAY_US:+CVMM_RACE_DELAY_US=$CRASH_RACE_DELAY_US} \
			"$CVMM" run --config "$conf" --serial "$log" --cmdline "$cmdline" 2>"$log.err" &
	fi
	CRASH_PID=$!
}

# crash_sleep_ms N
crash_sleep_ms() {
	sleep "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"
}

# crash_granule GRANULE KILLS: the kill loop for one granule; appends to $T/crash-G.list
# (one line per kill: the file's copy and its chain's serial logs) and sets CRASH_RUNS,
# CRASH_ACKED_RUNS, CRASH_GENS (generations acknowledged in all runs), CRASH_EARLY_EXIT.
crash_granule() {
	local g=$1 kills=$2 chain=${CRASH_CHAIN:-5} max_ms=${CRASH_MAX_MS:-1200}
	local dir="$T/crash-$g" i=0 logs="" img conf log d acked
	rm -rf "$dir"
	mkdir -p "$dir"
	img="$dir/shared.img"
	conf="$dir/crash.conf"
	crash_conf "$conf" "$img" "$g"
	: > "$dir/list"
	CRASH_RUNS=0 CRASH_ACKED_RUNS=0 CRASH_GENS=0 CRASH_EARLY_EXIT=""
	while [ "$i" -lt "$kills" ]; do
		local resume=1
		if [ $((i % chain)) = 0 ]; then
			crash_fresh "$img"
			logs=""
			resume=0
		fi
		log="$dir/run$i.log"
		rm -f "$log" "$log.err"
		if [ $((RANDOM % 3)) = 0 ]; then
			d=$((RANDOM % 150))
		else
			d=$((150 + (RANDOM * 32768 + RANDOM) % (max_ms - 150)))
		fi
		crash_start "$conf" "$img" "$log" "scenario=crash seed=$CRASH_GSEED resume=$resume"
		crash_sleep_ms "$d"
		if ! kill -KILL "$CRASH_PID" 2>/dev/null; then
			[ -z "$CRASH_EARLY_EXIT" ] && CRASH_EARLY_LOG=$log
			CRASH_EARLY_EXIT="$CRASH_EARLY_EXIT run $i"
		fi
		wait "$CRASH_PID" 2>/dev/null
		acked=$(grep -c '^crash: acked' "$log" 2>/dev/null)
		acked=${acked:-0} # no log: killed before the VM opened it
		echo "# kill $i after $d ms: $acked generations acknowledged$(
			sed -n 's/^# crash: layout.* start=\([0-9]*\)$/ from \1/p' "$log" 2>/dev/null)"
		logs="$logs $log"
		cp --sparse=always "$img" "$dir/after$i.img"
		if [ "$(crash_files)" = 2 ]; then
			cp --sparse=always "$(crash_disk "$img")" "$dir/after$i-disk.img"
			echo "$dir/after$i.img blk=$dir/after$i-disk.img$logs" >> "$dir/list"
		else
			echo "$dir/after$i.img$logs" >> "$dir/list"
		fi
		CRASH_RUNS=$((CRASH_RUNS + 1))
		CRASH_GENS=$((CRASH_GENS + acked))
		[ "$acked" -gt 0 ] && CRASH_ACKED_RUNS=$((CRASH_ACKED_RUNS + 1))
		i=$((i + 1))
	done
}

# crash_evidence NAME DIR CHECKER_OUTPUT: keep what a failure needs to be understood.
crash_evidence() {
	local name=$1 dir=$2 res=$3 ev
	ev="${CRASH_EVIDENCE:-$PWD/build/crash-evidence}/$(date +%Y%m%d-%H%M%S)-$name"
	mkdir -p "$ev"
	cp -a "$dir"/. "$ev"/
	printf '%s\n' "$res" > "$ev/checker.txt"
	printf 'CRASH_SEED=%s guest seed=%s CRASH_VMM=%s cvmm %s\n' "$CRASH_SEED_USED" \
		"$CRASH_GSEED" "${CRASH_VMM:-cvmm}" "$(git rev-parse --short HEAD 2>/dev/null)" > "$ev/seed.txt"
	echo "$ev"
}

crash_tests() {
	if [ "${CRASH_VMM:-cvmm}" != qemu ] && ! have_kvm; then
		skip "crash: SIGKILL at random moments, every acknowledged byte in the file" \
			"no usable /dev/kvm on this machine: the crash test did NOT run"
		return
	fi
	local t0=$SECONDS seed=${CRASH_SEED:-12} g res rc total=0 bad ev
	CRASH_SEED_USED=$seed
	RANDOM=$seed
	CRASH_GSEED=$((seed * 1000003 + 7))
	echo "# crash: CRASH_SEED=$seed (guest seed=$CRASH_GSEED), ${CRASH_VMM:-cvmm}"

	# The scenario to its end: the normal exit path, and a file for the checker's selftest.
	local dir="$T/crash-end" out
	rm -rf "$dir"; mkdir -p "$dir"
	crash_fresh "$dir/shared.img"
	local blkopt=()
	[ "$(crash_files)" = 2 ] && blkopt=(--blk-file "$(crash_disk "$dir/shared.img")")
	crash_conf "$dir/crash.conf" "$dir/shared.img" 2M
	crash_start "$dir/crash.conf" "$dir/shared.img" "$dir/end.log" "scenario=crash seed=$CRASH_GSEED gens=40"
	wait "$CRASH_PID"; rc=$?
	# QEMU's isa-debug-exit status is (value << 1) | 1
	[ "${CRASH_VMM:-cvmm}" = qemu ] && [ $((rc % 2)) = 1 ] && rc=$(((rc - 1) / 2))
	out="$(cat "$dir/end.log" "$dir/end.log.err" 2>/dev/null)"
	if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -q '^crash: done 40$' &&
		res=$(python3 guest/tools/check-crash.py "$dir/shared.img" --serial "$dir/end.log" \
			"${blkopt[@]}" 2>&1); then
		ok "crash: 40 generations run to the end (granule 2M) and the file checks"
	else
		notok "crash: 40 generations run to the end (granule 2M) and the file checks (exit $rc)" \
			"$out
${res:-}"
	fi
	if res=$(python3 guest/tools/check-crash.py "$dir/shared.img" --serial "$dir/end.log" --selftest \
		"${blkopt[@]}" 2>&1); then
		ok "crash: the checker catches each kind of damage ($(printf '%s\n' "$res" | grep -c ': caught$') kinds) and passes what a crash may leave"
	else
		notok "crash: the checker catches each kind of damage and passes what a crash may leave" "$res"
	fi

	for g in ${CRASH_GRANULES:-4K 2M}; do
		local gt0=$SECONDS
		crash_granule "$g" "${CRASH_KILLS:-30}"
		res=$(python3 guest/tools/check-crash.py --quiet --batch "$T/crash-$g/list" 2>&1); rc=$?
		bad=$(printf '%s\n' "$res" | grep -c ': FAIL$')
		total=$((total + CRASH_RUNS))
		local what="granule $g: $CRASH_RUNS SIGKILLs at random moments, seed $seed"
		if [ -n "$CRASH_EARLY_EXIT" ]; then
			ev=$(crash_evidence "early-exit-$g" "$T/crash-$g" "$res")
			notok "crash: $what: the VM ended before its kill in$CRASH_EARLY_EXIT (evidence: $ev)" \
				"$(grep -v '^crash: acked' "$CRASH_EARLY_LOG" 2>/dev/null | tail -n 20; cat "$CRASH_EARLY_LOG.err" 2>/dev/null)"
		elif [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ]; then
			ev=$(crash_evidence "$g" "$T/crash-$g" "$res")
			notok "crash: $what: $bad of $CRASH_RUNS files lost acknowledged bytes (evidence: $ev)" \
				"$(printf '%s\n' "$res" | grep -v ': ok$' | grep -v 'check-crash: ok:')"
		elif [ "$CRASH_ACKED_RUNS" -lt $((CRASH_RUNS / 3)) ]; then
			notok "crash: $what: only $CRASH_ACKED_RUNS runs acknowledged anything: the test did not exercise the FLUSHes" \
				"$(cat "$T/crash-$g/run$((CRASH_RUNS - 1)).log.err" 2>/dev/null)"
		else
			ok "crash: $what: every acknowledged byte in the file after each ($CRASH_ACKED_RUNS runs acked, $CRASH_GENS generations in all, $((SECONDS - gt0)) s)"
		fi
	done
	echo "# crash: $total kills in $((SECONDS - t0)) s"
}

# Run alone: tests/integration/crash.sh
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	cd "$(dirname "$0")/../.." || exit 2
	. tests/lib.sh
	. tests/integration/boot.sh
	crash_tests
	summary
fi
