# Fault injection seen from the bundled guest (issue 15 item 4): the guest's `faults` scenario
# (guest/scenarios/faults.c) on a disk and two pmem windows whose config carries one rule per
# effect, the rules changed at run time over the control socket, and afterwards every backing
# file compared byte for byte with what the guest says reached it, and every device's
# faults_injected (--stats-json) with the faults the guest saw. Sourced by tests/run-all.sh
# after lib.sh and boot.sh (ok/notok/skip, have_kvm, $CVMM, $GUEST, $T).
#
#   faults_tests         cvmm (needs /dev/kvm; SKIPs loudly without it): every rule below at
#                        once plus the live part (faults.live=1); the same devices without
#                        rules (faults.*=none: every request OK, 0 injected)
#   qemu_faults_tests    QEMU (KVM, else TCG: runs anywhere qemu-system-x86_64 is): the
#                        scenario with no rules and faults.*=none passes and the files are
#                        exactly the model; QEMU's blkdebug doing the ioerr and flush rules
#                        (faults.blk=ioerr,flush) passes, the file byte-exact; told to expect
#                        faults that are not there, it fails
#
# The live protocol: the guest prints
#     # faults: ask N fault-add DEV RULE        # faults: ask N fault-remove DEV RULE|all
# (DEV the guest's name: blk0, pmem0, pmem1) and polls its device until the change shows;
# fault_run answers each N once, in order, with `cvmmctl --device NAME fault-add RULE` or
# `fault-remove ID|all` (the id looked up by rule text in fault-list).

FCTL=${CTL:-build/cvmmctl}

# The rules, as the guest expects them (faults.c's header; canonical text, one per case).
FAULT_BLK_RULES="op=write range=1M+64K effect=ioerr
op=read range=2M+4K when=once effect=unsupp
op=write range=3M+64K effect=torn:2
op=read range=4M+4K effect=delay:300ms
op=flush when=nth:2 effect=ioerr"
FAULT_X_RULES="op=flush when=once effect=ioerr
op=flush when=once effect=enospc"
FAULT_Y_RULES="op=flush when=once effect=delay:300ms
op=flush when=once effect=enospc"
FAULT_ARGS="faults.blk=all faults.pmem0=ioerr,enospc faults.pmem1=delay,enospc"
FAULT_NONE="faults.blk=none faults.pmem0=none faults.pmem1=none"

# fault_passed OUTPUT: the guest's closing line says every check passed
fault_passed() {
	printf '%s\n' "$1" | grep -Eq '^[1-9][0-9]* passed, 0 failed'
}

# fault_lines RULES: one `fault = RULE` line per rule
fault_lines() {
	printf '%s\n' "$1" | sed 's/^/fault = /'
}

# fault_conf CONF WITH_RULES(0/1): disk d (16 MiB) and windows x, y (8 MiB) on fresh files
# $T/flt-{d,x,y}.img; stats in CONF's .json.
fault_conf() {
	local conf=$1 rules=$2
	rm -f "$T"/flt-*.img "${conf%.conf}.json"
	truncate -s 16M "$T/flt-d.img"
	truncate -s 8M "$T/flt-x.img" "$T/flt-y.img"
	{
		printf '[vm]\nkernel = %s\ntimeout = 120\nstats_json = %s\n' "$PWD/$GUEST" "${conf%.conf}.json"
		printf '[blk "d"]\npath = %s\n' "$T/flt-d.img"
		[ "$rules" = 1 ] && fault_lines "$FAULT_BLK_RULES"
		printf '[pmem "x"]\npath = %s\nsize = 8M\n' "$T/flt-x.img"
		[ "$rules" = 1 ] && fault_lines "$FAULT_X_RULES"
		printf '[pmem "y"]\npath = %s\nsize = 8M\n' "$T/flt-y.img"
		[ "$rules" = 1 ] && fault_lines "$FAULT_Y_RULES"
	} > "$conf"
}

# fault_name DEV: the config name of the guest's device
fault_name() {
	case $1 in
	blk0) echo d ;;
	pmem0) echo x ;;
	pmem1) echo y ;;
	*) echo "?$1" ;;
	esac
}

# fault_answer SOCK CMD DEV ARG: perform one ask; prints what was done, nonzero on failure.
fault_answer() {
	local sock=$1 cmd=$2 name id list
	name=$(fault_name "$3")
	if [ "$cmd" = fault-add ]; then
		"$FCTL" --socket "$sock" --device "$name" fault-add "$4" </dev/null
		return
	fi
	if [ "$4" = all ]; then
		id=all
	else
		list=$("$FCTL" --socket "$sock" --device "$name" fault-list </dev/null) || { echo "$list"; return 1; }
		id=$(printf '%s' "$list" | python3 -c '
import json, sys
want = sys.argv[1]
ids = [r["id"] for r in json.load(sys.stdin)["faults"] if r["rule"] == want]
print(ids[0] if len(ids) == 1 else "")' "$4") || return 1
		[ -n "$id" ] || { echo "no rule '$4' on $name: $list"; return 1; }
	fi
	"$FCTL" --socket "$sock" --device "$name" fault-remove "$id" </dev/null
}

# fault_run CONF CMDLINE: cvmm in the background with --serial and --control, answering the
# guest's asks. Sets FOUT (serial, stderr, the harness's log), FRC (exit status), FASKS
# (asks answered) and FASK_BAD (asks that failed).
fault_run() {
	local conf=$1 cmdline=$2 ser="$T/flt.serial" sock="$T/flt.sock" err="$T/flt.err"
	local pid line n cmd dev arg r log=""
	rm -f "$ser" "$sock" "$err"
	FASKS=0 FASK_BAD=0
	timeout 300 "$CVMM" run --config "$conf" --cmdline "$cmdline" --serial "$ser" \
		--control "$sock" 2>"$err" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		# whole lines only (read skips a last line still being written)
		while IFS= read -r line; do
			case $line in "# faults: ask "*) ;; *) continue ;; esac
			read -r n cmd dev arg <<EOF
${line#\# faults: ask }
EOF
			[ "$n" -eq $((FASKS + 1)) ] || continue
			r=$(fault_answer "$sock" "$cmd" "$dev" "$arg" 2>&1) || FASK_BAD=$((FASK_BAD + 1))
			FASKS=$n
			log="$log
# harness: ask $n $cmd $dev '$arg' -> $r"
		done < <(tr -d '\r' 2>/dev/null < "$ser")
		sleep 0.05
	done
	wait "$pid"; FRC=$?
	FOUT="$(cat "$ser" 2>/dev/null)
$(cat "$err" 2>/dev/null)$log"
}

# fault_files NAME OUTPUT blk0=FILE...: each file is exactly what the guest says reached it
fault_files() {
	local name=$1 r
	printf '%s\n' "$2" > "$T/flt.out"
	shift 2
	if r=$(python3 guest/tools/check-faults.py files "$T/flt.out" "$@" 2>&1); then
		ok "$name"
	else
		notok "$name" "$r"
	fi
}

faults_tests() {
	if ! have_kvm; then
		skip "faults: every fault effect seen from the guest under cvmm, rules changed at run time" \
			"no usable /dev/kvm on this machine: the VM tests did NOT run"
		return
	fi
	local conf=$T/flt.conf r
	fault_conf "$conf" 1
	fault_run "$conf" "scenario=faults $FAULT_ARGS faults.live=1"
	# the delay checks are enforced only with a known TSC rate (kvmclock under cvmm)
	if [ "$FRC" -eq 0 ] && fault_passed "$FOUT" && [ "$FASK_BAD" -eq 0 ] &&
		! printf '%s\n' "$FOUT" | grep -q 'TSC rate is a guess' &&
		[ "$(printf '%s\n' "$FOUT" | grep -Ec '^ok [0-9]+ - live (L1|L2|L3|P):')" -eq 9 ]; then
		ok "faults: ioerr, unsupp, torn, delay, nth FLUSH ioerr on blk; FLUSH ioerr, enospc, delay on pmem: the exact status, then normal service ($FASKS rule changes at run time)"
	else
		notok "faults: every effect seen from the guest (exit $FRC, $FASKS asks, $FASK_BAD failed)" "$FOUT"
	fi
	fault_files "faults: the files hold exactly what the guest says reached them (failed writes: nothing; torn:2: 1024 bytes; pmem data behind failed FLUSHes: all)" \
		"$FOUT" "blk0=$T/flt-d.img" "pmem0=$T/flt-x.img" "pmem1=$T/flt-y.img"
	printf '%s\n' "$FOUT" > "$T/flt.out"
	if r=$(python3 guest/tools/check-faults.py counts "$T/flt.out" "$T/flt.json" blk0=d pmem0=x \
		pmem1=y 2>&1); then
		ok "faults: --stats-json faults_injected of d, x, y equals the faults the guest saw"
	else
		notok "faults: --stats-json faults_injected equals the faults the guest saw" "$r"
	fi
	# what is left of the rules: none on d (the guest had them all removed), each once rule
	# on x and y fired exactly once
	if r=$(python3 - "$T/flt.json" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["devices"]
assert d["d"]["stats"]["faults"] == [], d["d"]["stats"]["faults"]
for w in "xy":
    f = d[w]["stats"]["device"]["faults"]
    assert len(f) == 2 and all(r["fired"] == 1 for r in f), (w, f)
PY
	); then
		ok "faults: at the end d has no rule left and each pmem once-rule fired exactly once"
	else
		notok "faults: the rules left at the end (stats JSON)" "$r"
	fi

	fault_conf "$conf" 0
	fault_run "$conf" "scenario=faults $FAULT_NONE"
	if [ "$FRC" -eq 0 ] && fault_passed "$FOUT"; then
		ok "faults: the same devices without rules: every request OK"
	else
		notok "faults: the same devices without rules (exit $FRC)" "$FOUT"
	fi
	fault_files "faults: without rules the files hold every write" "$FOUT" \
		"blk0=$T/flt-d.img" "pmem0=$T/flt-x.img" "pmem1=$T/flt-y.img"
	printf '%s\n' "$FOUT" > "$T/flt.out"
	if r=$(python3 guest/tools/check-faults.py counts "$T/flt.out" "$T/flt.json" blk0=d pmem0=x \
		pmem1=y 2>&1) && printf '%s\n' "$FOUT" | grep -q '^# faults: blk0 injected=0'; then
		ok "faults: without rules nothing is injected (guest and stats agree: 0)"
	else
		notok "faults: without rules nothing is injected" "$r"
	fi
}

# qemu_blkdebug_rules: a blkdebug config doing what the scenario's ioerr and flush rules do
qemu_blkdebug_rules() {
	local s
	for s in $(seq 2048 2175); do
		printf '[inject-error]\nevent = "pwritev"\niotype = "write"\nerrno = "5"\nsector = "%d"\n\n' "$s"
	done
	printf '[set-state]\nevent = "flush_to_disk"\nstate = "1"\nnew_state = "2"\n\n'
	printf '[inject-error]\nevent = "flush_to_disk"\nstate = "2"\niotype = "flush"\nerrno = "5"\nonce = "on"\n'
}

qemu_faults_tests() {
	if ! command -v qemu-system-x86_64 >/dev/null; then
		skip "qemu: scenario faults without rules" "qemu-system-x86_64 not installed"
		return
	fi
	local out rc d=$T/qflt
	rm -rf "$d"
	mkdir -p "$d"
	truncate -s 16M "$d/d.img"
	truncate -s 8M "$d/x.img" "$d/y.img"
	out=$(BLK="$d/d.img" PMEM="$d/x.img $d/y.img" timeout 120 guest/run-qemu.sh \
		"scenario=faults $FAULT_NONE" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && fault_passed "$out" &&
		[ "$(printf '%s\n' "$out" | grep -Ec '^# faults: (blk0|pmem0|pmem1) injected=0')" -eq 3 ]; then
		ok "qemu: faults, no rules, faults.*=none: every request OK (a disk, two windows)"
	else
		notok "qemu: faults, no rules (exit $rc)" "$out"
	fi
	fault_files "qemu: faults, no rules: each file is exactly what the guest says it wrote" "$out" \
		"blk0=$d/d.img" "pmem0=$d/x.img" "pmem1=$d/y.img"

	# QEMU's blkdebug can do two of the rules: IOERR on writes touching [1M, 1M+64K) (one
	# inject-error per sector: blkdebug matches a request containing its one sector) and the
	# second FLUSH failing (a set-state on the first flush event arms a once rule)
	rm -f "$d"/*.img
	truncate -s 16M "$d/d.img"
	qemu_blkdebug_rules > "$d/rules.conf"
	out=$(BLK="blkdebug:$d/rules.conf:$d/d.img" timeout 120 guest/run-qemu.sh \
		"scenario=faults faults.blk=ioerr,flush" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && fault_passed "$out" &&
		printf '%s\n' "$out" | grep -q '^# faults: blk0 injected=3$'; then
		ok "qemu (blkdebug): faults.blk=ioerr,flush: the failed writes and the failed FLUSH seen as cvmm's rules give them"
	else
		notok "qemu (blkdebug): faults.blk=ioerr,flush (exit $rc)" "$out"
	fi
	fault_files "qemu (blkdebug): the failed writes left nothing in the file (byte-exact)" "$out" \
		"blk0=$d/d.img"

	# told to expect faults that QEMU does not inject: the checks must fail, naming the status
	rm -f "$d"/*.img
	truncate -s 16M "$d/d.img"
	truncate -s 8M "$d/x.img"
	out=$(BLK="$d/d.img" PMEM="$d/x.img" timeout 120 guest/run-qemu.sh \
		"scenario=faults faults.blk=ioerr,torn faults.pmem0=ioerr" 2>&1); rc=$?
	if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -q '^# write \[1M+16K, +16K): OK, expected IOERR' &&
		printf '%s\n' "$out" | grep -q '^not ok [0-9]* - pmem0: store, FLUSH 1 answers EIO'; then
		ok "qemu: faults fails, naming the status, when told to expect faults that are not there"
	else
		notok "qemu: faults must fail when expecting absent faults (exit $rc, wanted 1)" "$out"
	fi
}
