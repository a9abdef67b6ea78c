# Issue 14, hardening: files cvmm creates (0600, no symlink followed where a new file is
# expected), the serial log's byte budget, control clients that read slowly or not at all, and
# the seccomp filter. Sourced by tests/run-all.sh (needs lib.sh and boot.sh: T, CVMM, GUEST,
# expect_error).
#   bash -c '. tests/lib.sh; . tests/integration/boot.sh; . tests/integration/hardening.sh;
#            hardening_files; summary'     runs one group

# mode_of FILE: the permission bits in octal (e.g. 600).
mode_of() { stat -c %a "$1" 2>/dev/null; }

# Files cvmm creates: serial log, stats JSON, pmem image. Created 0600 whatever the umask; a
# symbolic link where cvmm would create a file is refused with one line and not followed.
hardening_files() {
	local d="$T/files" out rc
	rm -rf "$d"; mkdir -p "$d"
	printf 'precious\n' > "$d/target"
	# The stats JSON is created before KVM is opened: this one needs no /dev/kvm.
	ln -s "$d/target" "$d/stats-link"
	expect_error "files: stats JSON that is a symlink is refused" "stats-link.*symbolic link" -- \
		run --kernel "$GUEST" --cmdline scenario=hello --stats-json "$d/stats-link"
	if ! have_kvm; then
		skip "files: serial log and pmem image: symlinks refused, created 0600" \
			"no usable /dev/kvm on this machine: did NOT run (tests/unit/test_file.c covers them)"
		return
	fi
	ln -s "$d/target" "$d/serial-link"
	expect_error "files: serial log that is a symlink is refused" "serial-link.*symbolic link" -- \
		run --kernel "$GUEST" --cmdline scenario=hello --serial "$d/serial-link"
	if [ "$(cat "$d/target")" = precious ]; then ok "files: the symlinks' target is untouched"
	else notok "files: the symlinks' target is untouched" "$(head -c 300 "$d/target")"; fi
	ln -s "$d/no-such-image" "$d/pmem-link"
	printf '[vm]\nkernel = %s\ntimeout = 30\n[pmem]\npath = %s\nsize = 2M\n' \
		"$PWD/$GUEST" "$d/pmem-link" > "$d/pmem-link.conf"
	expect_error "files: pmem image that is a dangling symlink is refused" \
		"pmem-link.*symbolic link" -- run --config "$d/pmem-link.conf" --cmdline scenario=hello
	if [ ! -e "$d/no-such-image" ]; then ok "files: no image created through the dangling symlink"
	else notok "files: no image created through the dangling symlink"; fi

	printf '[vm]\nkernel = %s\ntimeout = 30\nserial = %s\nstats_json = %s\n[pmem]\npath = %s\nsize = 2M\n' \
		"$PWD/$GUEST" "$d/serial.log" "$d/stats.json" "$d/pmem.img" > "$d/new.conf"
	out=$( (umask 0; timeout 60 "$CVMM" run --config "$d/new.conf" --cmdline scenario=hello) 2>&1); rc=$?
	local modes
	modes="serial $(mode_of "$d/serial.log"), stats $(mode_of "$d/stats.json"), pmem $(mode_of "$d/pmem.img")"
	if [ "$rc" -eq 0 ] && [ "$modes" = "serial 600, stats 600, pmem 600" ]; then
		ok "files: serial log, stats JSON and pmem image created 0600 under umask 0"
	else
		notok "files: serial log, stats JSON and pmem image created 0600 under umask 0 (exit $rc; $modes)" "$out"
	fi
}

# The console's byte budget: a guest's output stops at serial_limit, one line says so.
hardening_serial_limit() {
	local d="$T/slimit" out rc
	rm -rf "$d"; mkdir -p "$d"
	if "$CVMM" --help | grep -q -- '--serial-limit SIZE'; then ok "serial_limit: in --help"
	else notok "serial_limit: in --help"; fi
	expect_error "serial_limit: a bad size names the flag" "serial-limit.*serial_limit" -- \
		run --kernel "$GUEST" --serial-limit lots
	if ! have_kvm; then
		skip "serial_limit: a guest's output is cut" "no usable /dev/kvm on this machine: did NOT run (tests/unit/test_serial.c covers it)"
		return
	fi
	out=$(timeout 60 "$CVMM" run --kernel "$GUEST" --cmdline scenario=hello --timeout 30 \
		--serial "$d/serial.log" --serial-limit 100 --stats-json "$d/stats.json" 2>&1); rc=$?
	local size cuts
	size=$(grep -v 'cvmm: serial output cut' "$d/serial.log" | wc -c)
	cuts=$(grep -c 'cvmm: serial output cut' "$d/serial.log")
	if [ "$rc" -eq 0 ] && [ "$size" -le 101 ] && [ "$cuts" -eq 1 ] && \
	   printf '%s\n' "$out" | grep -q 'serial output cut' && \
	   python3 -c "import json,sys; sys.exit(0 if json.load(open('$d/stats.json'))['serial_dropped'] > 0 else 1)"; then
		ok "serial_limit: 100 bytes of output, one cut line, summary and stats say so"
	else
		notok "serial_limit: 100 bytes of output, one cut line, summary and stats say so (exit $rc, $size bytes, $cuts cut lines)" \
			"$out
$(head -c 2000 "$d/serial.log")"
	fi
}

# The seccomp filter: on by default (so every other integration test runs with it), off with
# --no-seccomp. That a disallowed call stops the process is tests/unit/test_seccomp.c.
hardening_seccomp() {
	if "$CVMM" --help | grep -q -- '--no-seccomp'; then ok "seccomp: --no-seccomp in --help"
	else notok "seccomp: --no-seccomp in --help"; fi
	printf '[vm]\nseccomp = maybe\n' > "$T/seccomp-bad.conf"
	expect_error "seccomp: a bad [vm] seccomp value names the key" "seccomp-bad.conf:2.*seccomp" -- \
		run --kernel "$GUEST" --config "$T/seccomp-bad.conf"
	if ! have_kvm; then
		skip "seccomp: guests run under the filter" "no usable /dev/kvm on this machine: did NOT run"
		return
	fi
	run_guest "seccomp: hello and smp run under the filter (default)" 0 \
		'^[1-9][0-9]* passed, 0 failed' -- --kernel "$GUEST" --cmdline "scenario=smp" --cpus 2
	run_guest "seccomp: --no-seccomp runs too" 0 '^[1-9][0-9]* passed, 0 failed' -- \
		--kernel "$GUEST" --cmdline "scenario=hello" --no-seccomp
}

hardening_tests() {
	hardening_files
	hardening_serial_limit
	hardening_seccomp
}
