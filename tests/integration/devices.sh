# Several devices (issue 15 item 1): the guest's `multi` scenario with two disks and two pmem
# windows, under cvmm (named [blk "a"] [blk "b"] [pmem "x"] [pmem "y"] sections) and under
# QEMU (two virtio-blk-pci, two virtio-pmem-pci; KVM or else TCG, so it runs on any machine
# with qemu-system-x86_64). After each run every backing file must hold what the guest says it
# wrote there. Sourced by tests/run-all.sh after lib.sh and boot.sh (ok/notok/skip, $CVMM,
# $GUEST, $T).
#
#   devices_tests        cvmm: distinct files; y onto x's file (multi.same=1); and disk b on
#                        x's file too (multi.blk_on_pmem=1:0); --stats-json's "devices";
#                        blk_dev=1 / pmem_dev=1 (dev_arg_tests)
#   qemu_devices_tests   QEMU: distinct files; one file for both windows and disk b; two
#                        windows on one file WITHOUT multi.same=1 must fail (the check can
#                        fail); blk_dev=1 / pmem_dev=1

# multi_files NAME OUTPUT DEV=FILE...: for each DEV (blk0, pmem1, ...), every line
#     # multi: DEV seed=S pages=LIST
# of the guest's output names pages of FILE that must hold the pattern with seed S, and there
# is at least one such line.
multi_files() {
	local name=$1 out=$2 spec dev file s pages n r why=""
	shift 2
	for spec in "$@"; do
		dev=${spec%%=*}
		file=${spec#*=}
		n=0
		while read -r s pages; do
			[ -n "$s" ] || continue
			n=$((n + 1))
			r=$(python3 guest/tools/check-pattern.py "$file" --pages "$pages" --seed "$s" 2>&1) ||
				why="$why
$dev ($file, seed $s): $r"
		done <<EOF
$(printf '%s\n' "$out" | sed -n "s/^# multi: $dev seed=\(0x[0-9a-f]*\) pages=\([0-9,]*\).*/\1 \2/p")
EOF
		[ "$n" -gt 0 ] || why="$why
$dev: the guest printed no '# multi: $dev seed=... pages=...' line"
	done
	if [ -z "$why" ]; then
		ok "$name"
	else
		notok "$name" "${why#?}"
	fi
}

# multi_passed OUTPUT: the guest's closing line says every check passed.
multi_passed() {
	printf '%s\n' "$1" | grep -Eq '^[1-9][0-9]* passed, 0 failed'
}

# zero FILE: FILE reads as zeros throughout (nothing was written to it).
zero() {
	cmp -s -n "$(stat -c %s "$1")" "$1" /dev/zero
}

# dev_arg_tests WHO A B X Y -- RUNNER...: the pmem and blk scenarios with pmem_dev=1 and
# blk_dev=1 (RUNNER CMDLINE runs the guest with disks A, B and windows X, Y, all fresh) use the
# second window / disk and leave the first one's file untouched.
dev_arg_tests() {
	local who=$1 a=$2 b=$3 x=$4 y=$5 out rc
	shift 6
	out=$("$@" "scenario=pmem pmem_dev=1" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && multi_passed "$out" && zero "$x"; then
		ok "$who: pmem_dev=1: the pmem scenario uses the second window, not the first"
	else
		notok "$who: pmem_dev=1: the pmem scenario uses the second window (exit $rc; first file \
$(zero "$x" && echo untouched || echo WRITTEN))" "$out"
	fi
	check_pattern "$who: pmem_dev=1: the second window's file holds the pattern" "$y" "$out"
	out=$("$@" "scenario=blk blk_dev=1" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && multi_passed "$out" && zero "$a" && ! zero "$b"; then
		ok "$who: blk_dev=1: the blk scenario uses the second disk, not the first"
	else
		notok "$who: blk_dev=1: the blk scenario uses the second disk (exit $rc; first disk \
$(zero "$a" && echo untouched || echo WRITTEN), second $(zero "$b" && echo untouched || echo written))" "$out"
	fi
}

# dev_conf CONF X_FILE Y_FILE B_FILE: two disks a, b and two 64 MiB windows x, y.
dev_conf() {
	printf '[vm]\nkernel = %s\ntimeout = 60\nstats_json = %s\n' "$PWD/$GUEST" "${1%.conf}.json" > "$1"
	printf '[blk "a"]\npath = %s\n[blk "b"]\npath = %s\n' "$T/dev-a.img" "$4" >> "$1"
	printf '[pmem "x"]\npath = %s\nsize = 64M\n[pmem "y"]\npath = %s\nsize = 64M\n' "$2" "$3" >> "$1"
}

devices_tests() {
	if ! have_kvm; then
		skip "devices: two disks and two pmem windows under cvmm (multi)" \
			"no usable /dev/kvm on this machine: the VM tests did NOT run"
		return
	fi
	local out rc c what args x y b
	for c in distinct same blk_on_pmem; do
		rm -f "$T"/dev-*.img "$T/dev-$c.json"
		truncate -s 16M "$T/dev-a.img" "$T/dev-b.img"
		truncate -s 64M "$T/dev-x.img" "$T/dev-y.img"
		x=$T/dev-x.img y=$T/dev-y.img b=$T/dev-b.img
		case $c in
		distinct) what="four files"; args="" ;;
		same) what="windows x and y on one file"; y=$x; args="multi.same=1" ;;
		blk_on_pmem) what="x, y and disk b on one file"; y=$x; b=$x
			args="multi.same=1 multi.blk_on_pmem=1:0" ;;
		esac
		dev_conf "$T/dev-$c.conf" "$x" "$y" "$b"
		out=$(timeout 90 "$CVMM" run --config "$T/dev-$c.conf" --cmdline "scenario=multi $args" 2>&1); rc=$?
		if [ "$rc" -eq 0 ] && multi_passed "$out"; then
			ok "devices: multi, $what: each device its own data, shared files coherent"
		else
			notok "devices: multi, $what (exit $rc)" "$out"
		fi
		multi_files "devices: multi, $what: each backing file holds what the guest wrote and flushed" \
			"$out" "blk0=$T/dev-a.img" "blk1=$b" "pmem0=$x" "pmem1=$y"
		if python3 - "$T/dev-$c.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["devices"]
want = [("a", "blk"), ("b", "blk"), ("x", "pmem"), ("y", "pmem")]
sys.exit(0 if [(k, d[k]["kind"]) for k in d] == want and
         all(isinstance(d[k]["stats"], dict) for k in d) else 1)
PY
		then
			ok "devices: --stats-json has \"devices\" a, b (blk), x, y (pmem) in config order ($what)"
		else
			notok "devices: --stats-json \"devices\" ($what)" "$(cat "$T/dev-$c.json" 2>&1)"
		fi
	done
	rm -f "$T"/dev-*.img
	truncate -s 16M "$T/dev-a.img" "$T/dev-b.img"
	truncate -s 64M "$T/dev-x.img" "$T/dev-y.img"
	dev_conf "$T/dev-args.conf" "$T/dev-x.img" "$T/dev-y.img" "$T/dev-b.img"
	dev_arg_tests "devices" "$T/dev-a.img" "$T/dev-b.img" "$T/dev-x.img" "$T/dev-y.img" -- \
		dev_cvmm "$T/dev-args.conf"
}

# dev_cvmm CONF CMDLINE
dev_cvmm() {
	timeout 90 "$CVMM" run --config "$1" --cmdline "$2"
}

# qemu_dev CMDLINE: the guest under QEMU with disks $QD/a.img $QD/b.img, windows x.img y.img.
qemu_dev() {
	BLK="$QD/a.img $QD/b.img" PMEM="$QD/x.img $QD/y.img" timeout 120 guest/run-qemu.sh "$1"
}

qemu_devices_tests() {
	if ! command -v qemu-system-x86_64 >/dev/null; then
		skip "qemu: multi with two disks and two pmem windows" "qemu-system-x86_64 not installed"
		return
	fi
	local out rc d=$T/qdev
	rm -rf "$d"
	mkdir -p "$d"
	truncate -s 16M "$d/a.img" "$d/b.img"
	truncate -s 8M "$d/x.img" "$d/y.img"
	# run-qemu.sh: -accel kvm -accel tcg (TCG here without /dev/kvm: ~1 s per run)
	out=$(BLK="$d/a.img $d/b.img" PMEM="$d/x.img $d/y.img" timeout 120 guest/run-qemu.sh \
		"scenario=multi" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && multi_passed "$out"; then
		ok "qemu: multi, two virtio-blk-pci and two virtio-pmem-pci on four files"
	else
		notok "qemu: multi, four files (exit $rc)" "$out"
	fi
	multi_files "qemu: multi, four files: each holds what the guest wrote and flushed" "$out" \
		"blk0=$d/a.img" "blk1=$d/b.img" "pmem0=$d/x.img" "pmem1=$d/y.img"

	rm -f "$d"/*.img
	truncate -s 16M "$d/a.img"
	truncate -s 8M "$d/x.img"
	out=$(BLK="$d/a.img $d/x.img" PMEM="$d/x.img $d/x.img" timeout 120 guest/run-qemu.sh \
		"scenario=multi multi.same=1 multi.blk_on_pmem=1:0" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && multi_passed "$out"; then
		ok "qemu: multi, both windows and disk 1 on one file: coherent"
	else
		notok "qemu: multi, both windows and disk 1 on one file (exit $rc)" "$out"
	fi
	multi_files "qemu: multi, one shared file holds what each view wrote" "$out" \
		"blk0=$d/a.img" "blk1=$d/x.img" "pmem0=$d/x.img" "pmem1=$d/x.img"

	# the same two windows on one file, but the guest told they are two files: cross-talk
	rm -f "$d"/*.img
	truncate -s 16M "$d/a.img" "$d/b.img"
	truncate -s 8M "$d/x.img"
	out=$(BLK="$d/a.img $d/b.img" PMEM="$d/x.img $d/x.img" timeout 120 guest/run-qemu.sh \
		"scenario=multi" 2>&1); rc=$?
	if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -q "holds pmem1's pattern"; then
		ok "qemu: multi fails, naming the cross-talk, when two windows share a file unannounced"
	else
		notok "qemu: multi must fail on two windows sharing a file (exit $rc, wanted 1)" "$out"
	fi

	rm -f "$d"/*.img
	truncate -s 16M "$d/a.img" "$d/b.img"
	truncate -s 8M "$d/x.img" "$d/y.img"
	QD=$d dev_arg_tests "qemu" "$d/a.img" "$d/b.img" "$d/x.img" "$d/y.img" -- qemu_dev
}
