# Integration checks for the walking skeleton: boot the bundled guest under cvmm and check the
# guest's own verdict, and the user-facing errors. Sourced by tests/run-all.sh (needs lib.sh).
CVMM=${CVMM:-build/cvmm}
GUEST=${GUEST:-build/guest.elf}
T=${TMPDIR:-/tmp}/cvmm-test.$$
mkdir -p "$T"

# run_guest NAME EXPECT_STATUS EXPECT_REGEX -- cvmm args...
run_guest() {
	local name=$1 want=$2 re=$3; shift 4
	local out rc
	out=$(timeout 60 "$CVMM" run --timeout 30 "$@" 2>&1); rc=$?
	if [ "$rc" -eq "$want" ] && printf '%s\n' "$out" | grep -Eq -- "$re"; then
		ok "$name"
	else
		notok "$name (exit $rc, wanted $want and /$re/)" "$out"
	fi
}

# expect_error NAME REGEX -- cvmm args...: nonzero exit, exactly one stderr line matching REGEX.
expect_error() {
	local name=$1 re=$2; shift 3
	local err rc
	err=$(timeout 20 "$CVMM" "$@" 2>&1 >/dev/null); rc=$?
	local lines; lines=$(printf '%s\n' "$err" | grep -c .)
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$lines" -eq 1 ] && printf '%s\n' "$err" | grep -Eq -- "$re"; then
		ok "$name"
	else
		notok "$name (exit $rc, $lines stderr lines, wanted one matching /$re/)" "$err"
	fi
}

boot_tests() {
	# CLI basics, no KVM needed.
	if "$CVMM" --help | grep -q -- '--kernel FILE' && "$CVMM" --version | grep -q '^cvmm '; then
		ok "cli: --help and --version"
	else
		notok "cli: --help and --version"
	fi
	expect_error "cli: unknown command" "unknown command 'frobnicate'" -- frobnicate
	expect_error "cli: missing kernel file names the path" "$T/nope.elf" -- run --kernel "$T/nope.elf"
	printf '[vm]\nkernel = %s\nfrobs = 3\n' "$PWD/$GUEST" > "$T/bad.conf"
	expect_error "config: unknown key names key and line" "bad.conf:3.*frobs" -- run --config "$T/bad.conf"
	expect_error "cli: bad --mem size" "mem" -- run --kernel "$GUEST" --mem 12Q

	if ! have_kvm; then
		skip "boot: every guest scenario" "no usable /dev/kvm on this machine: the VM tests did NOT run"
		skip "loader: truncated and non-ELF kernels" "no usable /dev/kvm: cvmm opens it before it loads the kernel (tests/unit/test_elf.c checks the loader itself)"
		return
	fi
	# The loader's errors through cvmm (it opens /dev/kvm before it reads the kernel).
	head -c 3000 "$GUEST" > "$T/trunc.elf"
	expect_error "loader: truncated ELF" "trunc.elf" -- run --kernel "$T/trunc.elf"
	printf 'not an elf at all, just text\n' > "$T/text.elf"
	expect_error "loader: non-ELF file" "text.elf" -- run --kernel "$T/text.elf"
	run_guest "boot: hello exits 0 with the guest's passing verdict" 0 \
		'^[1-9][0-9]* passed, 0 failed' -- --kernel "$GUEST" --cmdline "scenario=hello"
	run_guest "boot: smp on 2 vCPUs" 0 '^[1-9][0-9]* passed, 0 failed' -- \
		--kernel "$GUEST" --cmdline "scenario=smp" --cpus 2
	run_guest "boot: smp on 1 vCPU fails (the check can fail)" 1 ' failed' -- \
		--kernel "$GUEST" --cmdline "scenario=smp" --cpus 1
	run_guest "boot: unknown scenario ends with status 2" 2 "unknown scenario" -- \
		--kernel "$GUEST" --cmdline "scenario=no-such-thing"
	run_guest "boot: default.conf (make run) passes" 0 '^[1-9][0-9]* passed, 0 failed' -- \
		--config configs/default.conf
	# issue 12 finding 6: a console reader that goes away (| head) must not kill cvmm before
	# its exit-time writeback: it goes on and ends with the guest's status, not 141 (SIGPIPE).
	"$CVMM" run --kernel "$GUEST" --cmdline "scenario=hello" --timeout 30 2>"$T/pipe.err" | head -c 1 >/dev/null
	rc=${PIPESTATUS[0]}
	if [ "$rc" = 0 ] && grep -q 'status 0' "$T/pipe.err"; then ok "boot: cvmm | head: no SIGPIPE death, clean exit"
	else notok "boot: cvmm | head: no SIGPIPE death, clean exit" "exit $rc; $(cat "$T/pipe.err")"; fi
	run_guest "boot: serial to a file" 0 'status 0' -- --kernel "$GUEST" \
		--cmdline "scenario=hello" --serial "$T/serial.log"
	if grep -q 'passed, 0 failed' "$T/serial.log" 2>/dev/null; then ok "boot: serial file holds the guest output"
	else notok "boot: serial file holds the guest output" "$(cat "$T/serial.log" 2>&1)"; fi
	run_guest "boot: exit summary and stats json" 0 'first output [0-9.]+ s, exits: .*io [0-9]+' -- \
		--kernel "$GUEST" --cmdline "scenario=hello" --stats-json "$T/stats.json"
	if python3 -c "import json,sys; d=json.load(open('$T/stats.json')); sys.exit(0 if d['status']==0 and d['exits']['io']>0 else 1)"; then
		ok "boot: stats json is valid and counts exits"
	else
		notok "boot: stats json is valid and counts exits" "$(cat "$T/stats.json" 2>&1)"
	fi
	run_guest "boot: timeout stops a guest with 124" 124 'timeout' -- --kernel "$GUEST" \
		--cmdline "scenario=hang" --timeout 1
	run_guest "boot: ring-3 fault is reported by the guest trap handler" 2 'vector|#UD|exception' -- \
		--kernel "$GUEST" --cmdline "scenario=fault"
}

# virtio-blk: the guest's driver against our device, and the hostile-input scenario.
blk_tests() {
	if ! have_kvm; then
		skip "blk: every scenario" "no usable /dev/kvm on this machine: the VM tests did NOT run"
		return
	fi
	truncate -s 16M "$T/disk.img"
	printf '[vm]\nkernel = %s\ntimeout = 30\n[blk]\npath = %s\n' "$PWD/$GUEST" "$T/disk.img" > "$T/blk.conf"
	run_guest "blk: every request type, data checked" 0 '^[1-9][0-9]* passed, 0 failed' -- \
		--config "$T/blk.conf" --cmdline "scenario=blk subblock=1"
	run_guest "blk: without EVENT_IDX and INDIRECT, queue of 8" 0 '^[1-9][0-9]* passed, 0 failed' -- \
		--config "$T/blk.conf" --cmdline "scenario=blk event_idx=0 indirect=0 qsize=8"
	run_guest "blk: hostile requests and rings are answered, VM goes on" 0 '^[1-9][0-9]* passed, 0 failed' -- \
		--config "$T/blk.conf" --cmdline "scenario=blk-bad strict=1"
	# 16 requests in flight, completed out of order by the workers: none lost, none twice
	# (the guest fails on a used element for a head not in flight, and on a stall)
	run_guest "blk: QD16 random writes on the workers, every completion exactly once" 0 \
		'^[1-9][0-9]* passed, 0 failed' -- --config "$T/blk.conf" \
		--cmdline "scenario=bench-blk mode=randwrite qd=16 n=3000"
	printf '[vm]\nkernel = %s\ntimeout = 30\n[blk]\npath = %s\nworkers = 1\n' "$PWD/$GUEST" "$T/disk.img" > "$T/blk1.conf"
	run_guest "blk: workers = 1 (one request at a time on the I/O thread)" 0 '^[1-9][0-9]* passed, 0 failed' -- \
		--config "$T/blk1.conf" --cmdline "scenario=blk subblock=1"
	printf '[vm]\nkernel = %s\n[blk]\npath = %s\nworkers = 65\n' "$PWD/$GUEST" "$T/disk.img" > "$T/blk65.conf"
	expect_error "blk: workers above 64 is refused with the bound" "blk workers: 65 is more than 64" -- \
		run --config "$T/blk65.conf"
	printf '[vm]\nkernel = %s\ntimeout = 30\n[blk]\npath = %s\nreadonly = on\n' "$PWD/$GUEST" "$T/disk.img" > "$T/blkro.conf"
	run_guest "blk: read-only disk refuses writes with IOERR" 0 '^[1-9][0-9]* passed, 0 failed' -- \
		--config "$T/blkro.conf" --cmdline "scenario=blk ro=1"
	printf '[vm]\nkernel = %s\n[blk]\npath = %s\n' "$PWD/$GUEST" "$T/no-such-disk.img" > "$T/blkmissing.conf"
	expect_error "blk: missing image names the path" "no-such-disk.img" -- run --config "$T/blkmissing.conf"
}

qemu_tests() {
	local q; q=$(command -v qemu-system-x86_64) || { skip "qemu: hello under QEMU microvm" "qemu-system-x86_64 not installed"; return; }
	if ! have_kvm; then skip "qemu: hello under QEMU microvm" "no usable /dev/kvm"; return; fi
	local out rc
	out=$(timeout 60 "$q" -M microvm -accel kvm -m 256M -nographic -no-reboot -nodefaults \
		-serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$GUEST" -append "scenario=hello" 2>&1); rc=$?
	# isa-debug-exit: QEMU exits with (status << 1) | 1, so 1 is the guest's pass.
	if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -Eq '^[1-9][0-9]* passed, 0 failed'; then
		ok "qemu: hello under QEMU microvm (same guest.elf)"
	else
		notok "qemu: hello under QEMU microvm (exit $rc, wanted 1)" "$out"
	fi
	# The guest's blk driver against QEMU's virtio-blk-pci: a second device implementation, which
	# is what makes our own device tests mean something. q35 takes ~4 s (SeaBIOS is emulated).
	truncate -s 16M "$T/qdisk.img"
	out=$(BLK="$T/qdisk.img" timeout 120 guest/run-qemu.sh "scenario=blk" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -Eq '^[1-9][0-9]* passed, 0 failed'; then
		ok "qemu: blk under QEMU q35 virtio-blk-pci (same guest.elf)"
	else
		notok "qemu: blk under QEMU q35 virtio-blk-pci (exit $rc)" "$out"
	fi
	rm -f "$T/qpmem.img"
	truncate -s 64M "$T/qpmem.img"
	out=$(PMEM="$T/qpmem.img" timeout 120 guest/run-qemu.sh "scenario=pmem" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -Eq '^[1-9][0-9]* passed, 0 failed'; then
		ok "qemu: pmem under QEMU q35 virtio-pmem-pci (same guest.elf)"
	else
		notok "qemu: pmem under QEMU q35 virtio-pmem-pci (exit $rc)" "$out"
	fi
	if declare -f check_pattern >/dev/null; then
		check_pattern "qemu: QEMU's backing file holds the same pattern" "$T/qpmem.img" "$out"
	fi
}
