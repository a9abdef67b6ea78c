# Write logs from a running VM (issue 16): marks from the guest's mark port reach every log,
# and a power cut at a mark stops the VM with 123 and says what each logged file was set to.
# Needs /dev/kvm (SKIPs loudly without); the mechanisms are unit-tested (test_mark_port,
# test_pmem_log, test_blk_log, test_power_cut, test_control). Sourced by tests/run-all.sh after
# lib.sh and boot.sh (ok/notok/skip, $CVMM, $GUEST, $T).

REPLAY=${REPLAY:-build/cvmm-replay}

# log_conf DIR [EXTRA_VM_LINES]: a config with a logged disk and a logged window in DIR.
log_conf() {
	local d=$1
	mkdir -p "$d"
	truncate -s 8M "$d/disk.img"
	cat > "$d/vm.conf" <<CONF
[vm]
kernel = $PWD/$GUEST
timeout = 60
$2
[blk "data"]
path = $d/disk.img
write_log = $d/disk.log
[pmem "dax"]
path = $d/pmem.img
size = 4M
write_log = $d/pmem.log
CONF
}

log_tests() {
	if ! have_kvm; then
		skip "logs: guest marks in the blk and pmem write logs; power cut at a mark" \
			"no usable /dev/kvm on this machine: the VM tests did NOT run"
		return
	fi
	local d="$T/logs" out rc l
	log_conf "$d" ""
	out=$("$CVMM" run --config "$d/vm.conf" --cmdline "scenario=hello mark=from-guest mark_end=done" 2>&1)
	rc=$?
	for l in disk pmem; do
		if [ "$rc" -eq 0 ] && "$REPLAY" "$d/$l.log" --list 2>&1 | grep -q "mark 'from-guest'" &&
			"$REPLAY" "$d/$l.log" --list 2>&1 | grep -q "mark 'done'"; then
			ok "logs: the guest's marks (mark port) are in the $l log"
		else
			notok "logs: the guest's marks (mark port) are in the $l log" \
				"(exit $rc) $out $("$REPLAY" "$d/$l.log" --list 2>&1)"
		fi
	done
	rm -rf "$d"
	log_conf "$d" "power_cut = at-mark:done"
	out=$("$CVMM" run --config "$d/vm.conf" --cmdline "scenario=hello mark=from-guest mark_end=done" 2>&1)
	rc=$?
	if [ "$rc" -eq 123 ] && printf '%s' "$out" | grep -q "power cut: at mark 'done'" &&
		printf '%s' "$out" | grep -q "power cut: blk data: " &&
		printf '%s' "$out" | grep -q "power cut: pmem dax: " &&
		cmp -s "$d/disk.img" "$d/disk.log.base"; then
		ok "logs: power_cut = at-mark: exit 123, every logged file set to its last FLUSH"
	else
		notok "logs: power_cut = at-mark: exit 123, every logged file set to its last FLUSH" \
			"(exit $rc) $out"
	fi
	rm -rf "$d"
}
