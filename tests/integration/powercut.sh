#!/bin/bash
# The worked crash test (issue 16 item 4): power cuts and every crash state of the write log.
#
# crash.sh kills cvmm with SIGKILL and checks the one file each kill leaves. This test asks
# more of a run: cvmm records every write of the disk in a write log ([blk] write_log, the
# dm-log-writes format: devices/blk_log.h), is power-cut right after a FLUSH chosen at random
# ([vm] power_cut = after-flushes:N, vmm/power_cut.h), and then every crash state the log
# allows at the last FLUSHes -- the writes before the FLUSH all there, any subset of the
# sectors written after it -- is built by build/cvmm-replay (--crash-states: all of them when
# an epoch has few, else a seeded sample) and checked by guest/tools/check-crash.py: every byte
# the guest's FLUSH acknowledged is present, and nothing is there that the rules do not allow.
#
# Sourced by tests/run-all.sh after lib.sh and boot.sh (ok/notok/skip, $CVMM, $GUEST, $T);
# or run alone: tests/integration/powercut.sh (builds nothing: `make` first).
#
# THE RULES checked in each state (guest/scenarios/crash.c; a run from generation 1, pmem on
# one file and the disk on another, as [blk] write_log requires):
#   * blk epoch e (the disk's e-th FLUSH and what was logged after it, before the next): the
#     guest's e-th blk FLUSH opens generation e, so B_1..B_(e-1) are durable and nothing later
#     than B_e has been written: `check-crash.py --only blk --acked e --max-gen e` on the
#     replayed state (the disk alone: the rest of it must be zero).
#   * the last epoch, with the pmem file as the cut left it: the full check against the serial
#     log (`crash: acked G`: P_1..P_G and B_1..B_(G-1) there, nothing beyond G + 1).
#   * a pmem write log (CVMM_PMEM_WB entries, flag 1 << 8, one per page written back; a FLUSH
#     entry per virtio-pmem FLUSH): pmem epoch j holds P_1..P_j and maybe pages of P_(j+1):
#     `--only pmem --acked j --max-gen j + 1` (page-granular states).
#
# powercut_pipeline_tests (runs anywhere, ~20 s): the same pipeline on logs made without a VM
#   by tests/tools/gen-crash-log.py, which performs the crash scenario's seeded writes and
#   FLUSHes under a simulated after-flushes:N cut and writes a dm-log-writes log of them from
#   the format description (not with cvmm's writer), with the base, the disk and pmem files,
#   a pmem log (CVMM_PMEM_WB pages) and the serial log, for PC_HOST_CUTS (3) cut points N
#   drawn from PC_SEED (default 16, printed). Then the same writes and FLUSHes go through
#   cvmm's own writer (build/blk-log-drive: devices/blk_log.c over blk_file.c, the writes of
#   a generation on threads of their own; SKIP if it is not built) and its log is checked
#   the same way. Then two negative controls: a state with an acknowledged write dropped (its
#   sectors put back as they were before it, from cvmm-replay --end-at-entry) must FAIL, and
#   a log whose writer logs a write after the FLUSH that covers it (gen-crash-log.py --bug
#   late-write) must give failing states. Region 2 MiB, 48 + 48 pool pages (the guest's
#   region= pmem_pages= blk_pages=), to keep it fast; at most PC_HOST_MAX (32) states per
#   epoch, else a sample of PC_HOST_SAMPLE (16). This proves the pipeline (and cvmm's writer
#   under the crash workload); the cvmm run below proves cvmm. In the run that added it (2
#   shared CPUs, no /dev/kvm): 329 crash states checked in 19 s. A failure keeps the log,
#   base, pmem file and serial log as evidence; its states come back from them with the
#   cvmm-replay line printed for their epoch (the seed is in it).
#
# powercut_tests (cvmm, needs /dev/kvm; SKIPs loudly without): PC_RUNS (6) runs of the
#   `crash` scenario (8 MiB pmem file + 8 MiB disk with write_log), each cut after N FLUSHes,
#   N random in 2..PC_MAX_FLUSHES (40) (bash $RANDOM seeded with PC_SEED, printed). Each
#   run: cvmm exits 123; the log holds ceil(N / 2) FLUSH entries (the guest alternates blk and
#   pmem FLUSHes, and after-flushes counts both: the cut came right after the right one); the
#   disk file is exactly the last FLUSH (vm_destroy rewinds a logged file at a power cut;
#   PC_EXPECT_REWIND=0 also accepts every logged write); the
#   pipeline over the last PC_EPOCHS (3) epochs, at most PC_MAX (64) states each, else a
#   sample of PC_SAMPLE (32) with a seed derived from PC_SEED (printed). The pmem file has a
#   write log too (`[pmem] write_log`; PC_PMEM_LOG=0 leaves it out): its epochs are checked
#   the same way (pc_check_pmem_log). This proves cvmm.
# Failures keep their evidence under PC_EVIDENCE (build/powercut-evidence/).

PC_REPLAY=${PC_REPLAY:-build/cvmm-replay}
PC_CHECK=guest/tools/check-crash.py

# pc_flush_count LOG: the number of FLUSH entries (= epochs - 1)
pc_flush_count() {
	"$PC_REPLAY" "$1" --list | sed -n 's/^\([0-9]*\) FLUSH points.*/\1/p'
}

# pc_states LOG EPOCH DIR MAX SAMPLE SEED: the crash states of one epoch into DIR (fresh);
# prints cvmm-replay's summary line ("epoch E: ..., N states, producing ...").
pc_states() {
	local log=$1 e=$2 dir=$3
	rm -rf "$dir"
	# (not piped into head: cvmm-replay prints a line per state as it writes it)
	"$PC_REPLAY" "$log" --crash-states --epoch "$e" --base "$log.base" --out-dir "$dir" \
		--max-states "$4" --sample "$5" --seed "$6" > "$dir.out"
	head -n 1 "$dir.out"
	rm -f "$dir.out"
}

# pc_check_epochs NAME DIR LOG SERIAL PMEM NEPOCHS MAX SAMPLE SEED [PMEMLOG]: the pipeline.
# For each of the last NEPOCHS epochs (from 1) of LOG: its crash states, each checked
# --only blk against that epoch's rules, the last epoch's also against the serial log with
# the pmem file PMEM. With PMEMLOG: the last NEPOCHS epochs of that pmem log too. Sets
# PC_NSTATES (crash states checked), PC_NFAIL (checks that failed), PC_OUT (the checker's
# output and the epoch lines). The checks run in batches of about PC_BATCH (96) states (one
# checker process each: its start costs ~0.4 s here), whose images are deleted after.
pc_check_epochs() {
	local name=$1 dir=$2 log=$3 serial=$4 pmem=$5 k=$6 max=$7 sample=$8 seed=$9 plog=${10:-}
	local E e first line res sd
	PC_NSTATES=0 PC_NFAIL=0 PC_OUT="" PC_LIST="$dir/check.list" PC_PENDING=""
	: > "$PC_LIST"
	E=$(pc_flush_count "$log")
	if [ -z "$E" ]; then
		PC_NFAIL=1 PC_OUT="$("$PC_REPLAY" "$log" --list 2>&1 | tail -n 5)"
		return
	fi
	first=$((E - k + 1)); [ "$first" -lt 1 ] && first=1
	for ((e = first; e <= E; e++)); do
		sd="$dir/states-$e"
		line=$(pc_states "$log" "$e" "$sd" "$max" "$sample" "$((seed + e))" 2>&1)
		PC_OUT="$PC_OUT
$name blk $line"
		while read -r img _; do
			echo "$sd/$img only=blk acked=$e maxgen=$e $serial" >> "$PC_LIST"
			[ "$e" = "$E" ] && echo "$pmem blk=$sd/$img $serial" >> "$PC_LIST"
			PC_NSTATES=$((PC_NSTATES + 1))
		done < "$sd/states.txt"
		PC_PENDING="$PC_PENDING $sd"
		[ "$(wc -l < "$PC_LIST")" -ge "${PC_BATCH:-96}" ] && pc_batch
	done
	[ -n "$plog" ] && pc_check_pmem_log "$name" "$dir" "$plog" "$serial" "$k" "$max" "$sample" "$seed"
	pc_batch
}

# pc_check_pmem_log NAME DIR PMEMLOG SERIAL NEPOCHS MAX SAMPLE SEED: the pmem log's last
# epochs (states page-granular), each --only pmem --acked j --max-gen j+1. Adds to PC_*.
pc_check_pmem_log() {
	local name=$1 dir=$2 plog=$3 serial=$4 k=$5 max=$6 sample=$7 seed=$8 E e first line sd
	E=$(pc_flush_count "$plog")
	if [ -z "$E" ]; then
		PC_NFAIL=$((PC_NFAIL + 1))
		PC_OUT="$PC_OUT
$("$PC_REPLAY" "$plog" --list 2>&1 | tail -n 5)"
		return
	fi
	first=$((E - k + 1)); [ "$first" -lt 1 ] && first=1
	for ((e = first; e <= E; e++)); do
		sd="$dir/pstates-$e"
		line=$(pc_states "$plog" "$e" "$sd" "$max" "$sample" "$((seed + 1000 + e))" 2>&1)
		PC_OUT="$PC_OUT
$name pmem $line"
		while read -r img _; do
			echo "$sd/$img only=pmem acked=$e maxgen=$((e + 1)) $serial" >> "$PC_LIST"
			PC_NSTATES=$((PC_NSTATES + 1))
		done < "$sd/states.txt"
		PC_PENDING="$PC_PENDING $sd"
		[ "$(wc -l < "$PC_LIST")" -ge "${PC_BATCH:-96}" ] && pc_batch
	done
}

# pc_batch: check-crash.py --batch on PC_LIST (then emptied, and the state directories in
# PC_PENDING deleted); FAILs counted into PC_NFAIL, output kept in PC_OUT.
pc_batch() {
	local res nl
	nl=$(wc -l < "$PC_LIST")
	[ "$nl" -eq 0 ] && return
	res=$(python3 "$PC_CHECK" --quiet --batch "$PC_LIST" 2>&1)
	# shellcheck disable=SC2086 # a list of our own directory names
	rm -rf $PC_PENDING
	PC_PENDING=""
	: > "$PC_LIST"
	[ "$(printf '%s\n' "$res" | grep -c ': ok$')" -ne "$nl" ] &&
		[ "$(printf '%s\n' "$res" | grep -c ': FAIL$')" -eq 0 ] &&
		PC_NFAIL=$((PC_NFAIL + 1)) # the checker broke down (bad input)
	PC_NFAIL=$((PC_NFAIL + $(printf '%s\n' "$res" | grep -c ': FAIL$')))
	PC_OUT="$PC_OUT
$res"
}

# pc_evidence NAME DIR TEXT: keep a failure's files
pc_evidence() {
	local ev
	ev="${PC_EVIDENCE:-$PWD/build/powercut-evidence}/$(date +%Y%m%d-%H%M%S)-$1"
	mkdir -p "$ev"
	cp -a "$2"/. "$ev"/ 2>/dev/null
	printf '%s\n' "$3" > "$ev/checker.txt"
	echo "$ev"
}

# pc_drive DIR WHAT MAX SAMPLE SEED: the same writes and FLUSHes (DIR/ops.txt, ops.bin) through
# cvmm's own write log (build/blk-log-drive: devices/blk_log.c over blk_file.c, threads for
# the writes in flight together), into DIR/cvmm/: its log, checked by the same pipeline.
pc_drive() {
	local dir=$1 what=$2 d=$1/cvmm out
	if [ ! -x "${PC_DRIVE:-build/blk-log-drive}" ]; then
		skip "$what: cvmm's own write log" "${PC_DRIVE:-build/blk-log-drive} is not built (make build/blk-log-drive)"
		return
	fi
	rm -rf "$d"; mkdir -p "$d"
	truncate -s "$(stat -c %s "$dir/disk.img")" "$d/disk.img"
	if ! out=$("${PC_DRIVE:-build/blk-log-drive}" "$d/disk.img" "$d/disk.log" "$dir/ops.txt" \
		"$dir/ops.bin" 2>&1) || ! cmp -s "$d/disk.img" "$dir/disk.img"; then
		notok "$what: cvmm's write log: the script runs through it and leaves the generator's disk" "$out"
		return
	fi
	pc_check_epochs cvmm "$d" "$d/disk.log" "$dir/serial.log" "$dir/pmem.img" 3 "$3" "$4" "$5"
	PC_TOTAL=$((PC_TOTAL + PC_NSTATES))
	printf '%s\n' "$PC_OUT" | grep -E '^cvmm blk epoch' | sed 's/^/#   /'
	if [ "$PC_NFAIL" -ne 0 ] || [ "$PC_NSTATES" -eq 0 ]; then
		notok "$what: cvmm's write log ($out): $PC_NFAIL of $PC_NSTATES crash states fail the check (evidence: $(pc_evidence cvmm-log "$dir" "$PC_OUT"))" \
			"$(printf '%s\n' "$PC_OUT" | grep -v ': ok$' | grep -v 'check-crash: ok:')"
	else
		ok "$what: cvmm's write log, same writes ($out): all $PC_NSTATES crash states of its last 3 epochs hold every acknowledged byte"
	fi
	rm -rf "$d"
}

# pc_drop_write LOG EPOCH STATE OUT: OUT = STATE with the last write logged before the
# EPOCH-th FLUSH undone (its sectors as they were before it: cvmm-replay --end-at-entry).
# Prints "entry I sectors S+N".
pc_drop_write() {
	local log=$1 e=$2 state=$3 out=$4 i sec nr
	read -r i sec nr < <("$PC_REPLAY" "$log" --list | awk -v e="$e" '
		/^[0-9]+ sector [0-9]+ count [0-9]+ flags / {
			if ($7 == "FLUSH" && ++f == e) { print wi, ws, wn; exit }
			if ($7 == "WRITE") { wi = $1; ws = $3; wn = $5 }
		}')
	[ -n "${i:-}" ] || return 1
	"$PC_REPLAY" "$log" --base "$log.base" --out "$out.before" --end-at-entry $((i - 1)) || return 1
	cp "$state" "$out"
	dd if="$out.before" of="$out" bs=512 skip="$sec" seek="$sec" count="$nr" conv=notrunc \
		status=none || return 1
	rm -f "$out.before"
	echo "entry $i sectors $sec+$nr"
}

powercut_pipeline_tests() {
	local t0=$SECONDS seed=${PC_SEED:-16} cuts=${PC_HOST_CUTS:-3} i n gen dir bad=0
	local max=${PC_HOST_MAX:-32} sample=${PC_HOST_SAMPLE:-16} out="" what
	local lay=(--region 0x200000 --pmem-pages 48 --blk-pages 48)
	RANDOM=$seed
	PC_TOTAL=0
	echo "# powercut pipeline (no VM): PC_SEED=$seed, cut points: $cuts"
	dir="$T/pc-host"
	for ((i = 0; i < cuts; i++)); do
		n=$((6 + RANDOM % 25))
		rm -rf "$dir"; mkdir -p "$dir"
		gen=$(python3 tests/tools/gen-crash-log.py --out-dir "$dir" --cut-after-flushes "$n" \
			--seed $((seed * 7919 + i)) --order-seed $((seed + i)) --pmem-log --ops "${lay[@]}" 2>&1)
		what="powercut pipeline: cut after $n FLUSHes (gen seed $((seed * 7919 + i)))"
		if ! "$PC_REPLAY" "$dir/disk.log" --base "$dir/disk.log.base" --out "$dir/all.img" ||
			! cmp -s "$dir/all.img" "$dir/disk.img"; then
			notok "$what: cvmm-replay of the whole log is the disk the generator wrote" "$gen"
			continue
		fi
		pc_check_epochs host "$dir" "$dir/disk.log" "$dir/serial.log" "$dir/pmem.img" 3 \
			"$max" "$sample" $((seed * 100 + i)) "$dir/pmem.log"
		PC_TOTAL=$((PC_TOTAL + PC_NSTATES))
		echo "# $gen"
		printf '%s\n' "$PC_OUT" | grep -E '^host (blk|pmem) epoch' | sed 's/^/#   /'
		if [ "$PC_NFAIL" -ne 0 ] || [ "$PC_NSTATES" -eq 0 ]; then
			bad=$((bad + 1))
			notok "$what: $PC_NFAIL of $PC_NSTATES crash states fail the check (evidence: $(pc_evidence host "$dir" "$PC_OUT"))" \
				"$(printf '%s\n' "$PC_OUT" | grep -v ': ok$' | grep -v 'check-crash: ok:')"
		else
			ok "$what: all $PC_NSTATES crash states (blk and pmem logs, last 3 epochs each) hold every acknowledged byte"
		fi
		pc_drive "$dir" "$what" "$max" "$sample" $((seed * 100 + 50 + i))
	done

	# Negative control 1: drop an acknowledged write from a passing state.
	local E st res
	E=$(pc_flush_count "$dir/disk.log")
	if [ "${E:-0}" -lt 2 ]; then
		notok "powercut pipeline: a dropped acknowledged write is caught" "the last log has only ${E:-0} FLUSHes"
	else
		pc_states "$dir/disk.log" "$E" "$dir/neg" 2 2 0 > /dev/null
		st="$dir/neg/state-$E-0.img"
		if ! res=$(python3 "$PC_CHECK" "$st" --only blk --acked "$E" --max-gen "$E" \
			--serial "$dir/serial.log" 2>&1); then
			notok "powercut pipeline: a dropped acknowledged write is caught (the undamaged state fails)" "$res"
		elif ! what=$(pc_drop_write "$dir/disk.log" "$E" "$st" "$dir/neg/dropped.img"); then
			notok "powercut pipeline: a dropped acknowledged write is caught (could not make the damaged state)"
		else
			res=$(python3 "$PC_CHECK" "$dir/neg/dropped.img" --only blk --acked "$E" --max-gen "$E" \
				--serial "$dir/serial.log" 2>&1)
			if [ $? -eq 1 ] && printf '%s\n' "$res" | grep -q 'FAIL'; then
				ok "powercut pipeline: a state with an acknowledged write dropped ($what, before FLUSH $E) is caught"
				printf '%s\n' "$res" | head -n 2 | sed 's/^/#   /'
			else
				notok "powercut pipeline: a state with an acknowledged write dropped ($what) is caught" "$res"
			fi
		fi
	fi

	# Negative control 2: a writer that logs a completed write after the FLUSH that covers it.
	rm -rf "$dir"; mkdir -p "$dir"
	gen=$(python3 tests/tools/gen-crash-log.py --out-dir "$dir" --cut-after-flushes 13 \
		--seed "$seed" --bug late-write "${lay[@]}" 2>&1)
	pc_check_epochs bug "$dir" "$dir/disk.log" "$dir/serial.log" "$dir/pmem.img" 2 \
		"$max" "$sample" "$seed"
	PC_TOTAL=$((PC_TOTAL + PC_NSTATES))
	if [ "$PC_NFAIL" -gt 0 ] && [ "$PC_NFAIL" -lt "$PC_NSTATES" ]; then
		ok "powercut pipeline: a log with writes logged after their FLUSH (--bug late-write) gives $PC_NFAIL failing crash states of $PC_NSTATES"
	else
		notok "powercut pipeline: a log with writes logged after their FLUSH (--bug late-write) gives failing crash states ($PC_NFAIL of $PC_NSTATES fail)" \
			"$gen
$(printf '%s\n' "$PC_OUT" | tail -n 20)"
	fi
	rm -rf "$dir"
	echo "# powercut pipeline: $PC_TOTAL crash states checked in $((SECONDS - t0)) s"
}

# pc_conf CONF DIR N: cvmm's config: pmem on DIR/pmem.img, the disk DIR/disk.img with its
# write log DIR/disk.log, power cut after N FLUSHes.
pc_conf() {
	{
		printf '[vm]\nkernel = %s\ntimeout = 60\ncpus = 1\npower_cut = after-flushes:%s\n' \
			"$PWD/$GUEST" "$3"
		printf '[pmem]\npath = %s\nsize = 8M\ngranule = 2M\n' "$2/pmem.img"
		[ "${PC_PMEM_LOG:-1}" = 1 ] && printf 'write_log = %s\n' "$2/pmem.log"
		printf '[blk]\npath = %s\noffset = 0\nwrite_log = %s\n' "$2/disk.img" "$2/disk.log"
	} > "$1"
}

powercut_tests() {
	if ! have_kvm; then
		skip "powercut: cvmm power-cut after N FLUSHes, every crash state of the write log checked" \
			"no usable /dev/kvm on this machine: the cvmm power-cut test did NOT run (powercut pipeline above ran on generated logs)"
		return
	fi
	local t0=$SECONDS seed=${PC_SEED:-16} runs=${PC_RUNS:-6} i n rc dir conf want E
	local gseed what plog ev disk_ok
	RANDOM=$seed
	PC_TOTAL=0
	gseed=$((seed * 1000003 + 11))
	echo "# powercut: PC_SEED=$seed (guest seed=$gseed), $runs runs"
	for ((i = 0; i < runs; i++)); do
		n=$((2 + RANDOM % (${PC_MAX_FLUSHES:-40} - 1)))
		dir="$T/pc-run$i"
		rm -rf "$dir"; mkdir -p "$dir"
		truncate -s 8M "$dir/pmem.img" "$dir/disk.img"
		conf="$dir/pc.conf"
		pc_conf "$conf" "$dir" "$n"
		what="powercut: run $i, cut after $n FLUSHes"
		timeout 120 "$CVMM" run --config "$conf" --serial "$dir/serial.log" \
			--cmdline "scenario=crash seed=$gseed" > "$dir/cvmm.out" 2>&1
		rc=$?
		if [ "$rc" -ne 123 ]; then
			notok "$what: cvmm exits 123 (CVMM_EXIT_POWER_CUT), not $rc (evidence: $(pc_evidence "run$i" "$dir" ""))" \
				"$(tail -n 20 "$dir/cvmm.out" "$dir/serial.log" 2>/dev/null)"
			continue
		fi
		E=$(pc_flush_count "$dir/disk.log")
		want=$(((n + 1) / 2))
		if [ "$E" != "$want" ]; then
			notok "$what: the log holds $want FLUSH entries (blk FLUSH k is the guest's FLUSH 2k - 1), not ${E:-none}" \
				"$("$PC_REPLAY" "$dir/disk.log" --list 2>&1 | tail -n 12)"
			continue
		fi
		# What the cut left in the disk file: a state of the last epoch; with the rewind, the
		# last FLUSH exactly.
		"$PC_REPLAY" "$dir/disk.log" --base "$dir/disk.log.base" --out "$dir/last-flush.img" \
			--end-at-flush last
		"$PC_REPLAY" "$dir/disk.log" --base "$dir/disk.log.base" --out "$dir/all.img"
		disk_ok=""
		if cmp -s "$dir/disk.img" "$dir/last-flush.img" && cmp -s "$dir/disk.img" "$dir/all.img"; then
			disk_ok="the last FLUSH (nothing logged after it)"
		elif cmp -s "$dir/disk.img" "$dir/last-flush.img"; then
			disk_ok="rewound to the last FLUSH"
		elif [ "${PC_EXPECT_REWIND:-1}" != 1 ] && cmp -s "$dir/disk.img" "$dir/all.img"; then
			disk_ok="every logged write (not rewound)"
		fi
		rm -f "$dir/last-flush.img" "$dir/all.img"
		plog=""
		[ -f "$dir/pmem.log" ] && plog="$dir/pmem.log"
		pc_check_epochs "run$i" "$dir" "$dir/disk.log" "$dir/serial.log" "$dir/pmem.img" \
			"${PC_EPOCHS:-3}" "${PC_MAX:-64}" "${PC_SAMPLE:-32}" $((seed * 100 + i)) "$plog"
		echo "# run $i: N=$n, $(grep -c '^crash: acked' "$dir/serial.log") generations acked, $E FLUSH entries, disk file: ${disk_ok:-WRONG}"
		printf '%s\n' "$PC_OUT" | grep -E "^run$i (blk|pmem) epoch" | sed 's/^/#   /'
		PC_TOTAL=$((PC_TOTAL + PC_NSTATES))
		if [ -z "$disk_ok" ]; then
			notok "$what: the disk file is what the log says (the last FLUSH$([ "${PC_EXPECT_REWIND:-1}" != 1 ] && echo ', or every logged write')) (evidence: $(pc_evidence "run$i" "$dir" ""))"
		elif [ "$PC_NFAIL" -ne 0 ] || [ "$PC_NSTATES" -eq 0 ]; then
			ev=$(pc_evidence "run$i" "$dir" "$PC_OUT")
			notok "$what: $PC_NFAIL of $PC_NSTATES crash states lose acknowledged bytes (evidence: $ev)" \
				"$(printf '%s\n' "$PC_OUT" | grep -v ': ok$' | grep -v 'check-crash: ok:')"
		else
			ok "$what: all $PC_NSTATES crash states of the last ${PC_EPOCHS:-3} epochs hold every acknowledged byte; disk file: $disk_ok"
		fi
		rm -rf "$dir"
	done
	echo "# powercut: $runs runs, $PC_TOTAL crash states checked in $((SECONDS - t0)) s"
}

# Run alone: tests/integration/powercut.sh
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	cd "$(dirname "$0")/../.." || exit 2
	. tests/lib.sh
	. tests/integration/boot.sh
	powercut_pipeline_tests
	powercut_tests
	summary
fi
