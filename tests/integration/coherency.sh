# The pmem window and the blk disk on ONE backing file, kept coherent by the page cache
# (DESIGN.md "The protocol, operation by operation"): the guest's `coherency` scenario with
# the host's half of e1 driven through the control socket, `fsx` / `fsx-smp`, and the control
# socket answering bad input while a guest runs. Sourced by tests/run-all.sh after lib.sh and
# boot.sh (ok/notok/skip, run_guest/expect_error, $CVMM, $GUEST, $T).
#
#   coherency_tests   the coherency scenario (granule 4K and 2M, 2 vCPUs, blk_off 0; 64K with
#                     the disk at file offset 1 MiB; the race-delay knob; populate for c1),
#                     the control socket under fire, the control socket's user errors
#   fsx_tests         fsx over FSX_SEEDS (default "1 2 3 4 5") x FSX_OPS (default 20000) ops,
#                     and fsx-smp; slow here (~1-2 min per seed), so separate
#
# The e1 protocol (guest/scenarios/coherency.c): the guest prints
#     # e1: host-write offset=N length=L data=HEX
# the harness (coh_run) runs cvmm with --serial FILE and --control SOCK in the background,
# polls FILE for that line and sends `cvmmctl host-write N HEX`; the guest polls its mapping
# until it sees the bytes (10 s).

CTL=${CTL:-build/cvmmctl}

# coh_conf FILE GRANULE BLK_OFFSET [extra [pmem] lines]: a config with [pmem] and [blk] on
# one fresh 64 MiB image, 2 vCPUs.
coh_conf() {
	local conf=$1 gran=$2 boff=$3 extra=${4:-}
	local img="${conf%.conf}.img"
	rm -f "$img"
	truncate -s 64M "$img"
	printf '[vm]\nkernel = %s\ntimeout = 600\ncpus = 2\n[pmem]\npath = %s\nsize = 64M\ngranule = %s\n%s[blk]\npath = %s\noffset = %s\n' \
		"$PWD/$GUEST" "$img" "$gran" "$extra" "$img" "$boff" > "$conf"
}

# Bad input through the control socket of a running VM: each must be answered with
# {"ok":false,"error":...}, and the socket must go on answering.
coh_hammer() {
	local sock=$1 r rc bad=0 why=""
	local j
	for j in '{' '{"cmd":}' '[1]' '{"cmd":"stats"} trailing' '{"cmd":"stats","cmd":"x"}' \
		'{"cmd":{"nested":1}}' '{"cmd":1.5}' '{"cmd":"\ud800"}'; do
		r=$("$CTL" --socket "$sock" raw "$j" 2>&1); rc=$?
		if [ "$rc" -ne 1 ] || [[ "$r" != '{"ok":false,"error":"bad JSON'* && "$r" != '{"ok":false,"error":"\"cmd\"'* ]]; then
			bad=1; why="$why
$j -> (exit $rc) $r"
		fi
	done
	[ "$bad" = 0 ] && ok "control: malformed JSON is answered with an error while a guest runs" ||
		notok "control: malformed JSON is answered with an error while a guest runs" "$why"
	bad=0; why=""
	for j in '{"cmd":"frobnicate"}' '{"cmd":"stats","extra":1}' '{}'; do
		r=$("$CTL" --socket "$sock" raw "$j" 2>&1); rc=$?
		if [ "$rc" -ne 1 ] || [[ "$r" != '{"ok":false,"error":'* ]]; then bad=1; why="$why
$j -> (exit $rc) $r"; fi
	done
	[ "$bad" = 0 ] && ok "control: unknown commands and keys are answered with an error" ||
		notok "control: unknown commands and keys are answered with an error" "$why"
	bad=0; why=""
	for j in '{"cmd":"host-read","offset":-1,"length":8}' \
		'{"cmd":"host-read","offset":0,"length":999999999}' \
		'{"cmd":"host-read","offset":9223372036854775807,"length":8}' \
		'{"cmd":"invalidate","offset":67108864,"length":4096}' \
		'{"cmd":"host-write","offset":0,"data":"xyz"}' \
		'{"cmd":"truncate","size":12345}' '{"cmd":"truncate","size":999999999999}'; do
		r=$("$CTL" --socket "$sock" raw "$j" 2>&1); rc=$?
		if [ "$rc" -ne 1 ] || [[ "$r" != '{"ok":false,"error":'* ]]; then bad=1; why="$why
$j -> (exit $rc) $r"; fi
	done
	[ "$bad" = 0 ] && ok "control: out-of-range arguments are answered with an error" ||
		notok "control: out-of-range arguments are answered with an error" "$why"
	# a line over the limit, a client gone mid-line, several clients in a row
	if r=$(python3 - "$sock" <<'PY' 2>&1
import socket, sys
p = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(p); return s
s = conn(); f = s.makefile("rb")
s.sendall(b"x" * (2 << 20) + b"\n")
r = f.readline()
assert r.startswith(b'{"ok":false,"error":"line longer than'), r
s.sendall(b'{"cmd":"stats"}\n')
r = f.readline()
assert r.startswith(b'{"ok":true'), r
s.close()
for i in range(10):
    s = conn(); s.sendall(b'{"cmd":"host-wr'); s.close()       # gone mid-line
for i in range(10):
    s = conn(); f = s.makefile("rb"); s.sendall(b'{"cmd":"stats"}\n')
    assert f.readline().startswith(b'{"ok":true'); s.close()
print("ok")
PY
	); then
		ok "control: a 2 MiB line, clients vanishing mid-line and 10 clients in a row are handled"
	else
		notok "control: a 2 MiB line, clients vanishing mid-line and 10 clients in a row are handled" "$r"
	fi
	r=$("$CTL" --socket "$sock" stats 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && printf '%s' "$r" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["ok"] and "io" in d["exits"] and d["pcache"]["direct_reads"] >= 0
assert d["blk"]["backend"] == "pcache" and d["control"]["errors"] >= 18' 2>/dev/null; then
		ok "control: stats answers with exits, page-cache and blk counters (valid JSON)"
	else
		notok "control: stats answers with exits, page-cache and blk counters (valid JSON)" "(exit $rc) $r"
	fi
}

# coh_run NAME CONF CMDLINE [hammer]: run the guest in the background with --serial and
# --control; answer its e1 line with cvmmctl host-write; with hammer=1 also throw bad input at
# the control socket meanwhile. Then the guest's verdict must be a pass, e1 included.
coh_run() {
	local name=$1 conf=$2 cmdline=$3 hammer=${4:-0}
	local ser="$T/coh.serial" sock="$T/coh.sock" err="$T/coh.err"
	rm -f "$ser" "$sock" "$err"
	timeout 900 "$CVMM" run --config "$conf" --cmdline "$cmdline" --serial "$ser" \
		--control "$sock" 2>"$err" &
	local pid=$! sent=0 line off len hex ctl="" rc
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$sent" = 0 ] && line=$(tr -d '\r' < "$ser" 2>/dev/null |
			grep -a -m1 -E '^# e1: host-write offset=[0-9]+ length=[0-9]+ data=[0-9a-f]+$'); then
			off=$(printf '%s' "$line" | sed 's/.*offset=\([0-9]*\).*/\1/')
			len=$(printf '%s' "$line" | sed 's/.*length=\([0-9]*\).*/\1/')
			hex=$(printf '%s' "$line" | sed 's/.*data=\([0-9a-f]*\)$/\1/')
			if [ "${#hex}" -eq $((2 * len)) ]; then # else: the line is still being written
				ctl=$("$CTL" --socket "$sock" host-write "$off" "$hex" 2>&1)
				sent=1
			fi
		fi
		if [ "$hammer" = 1 ] && [ -S "$sock" ]; then
			coh_hammer "$sock"
			hammer=2
		fi
		sleep 0.05
	done
	wait "$pid"; rc=$?
	local out; out="$(cat "$ser" 2>/dev/null)
$(cat "$err" 2>/dev/null)
# harness: host-write sent=$sent: $ctl"
	if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -Eq '^[1-9][0-9]* passed, 0 failed' &&
		printf '%s\n' "$out" | grep -Eq '^ok [0-9]+ - e1 ' &&
		! printf '%s\n' "$out" | grep -Eq '^ok [0-9]+ - e1 .*# SKIP'; then
		ok "$name"
	else
		notok "$name (exit $rc)" "$out"
	fi
	if [ "$hammer" = 2 ]; then
		# the VM was not disturbed by the bad input: it passed (above) and the socket is gone
		if [ ! -e "$sock" ]; then ok "control: the socket is removed when the VM ends"
		else notok "control: the socket is removed when the VM ends"; fi
	fi
}

coherency_tests() {
	# cvmmctl's own errors (no VM needed)
	local r rc
	r=$("$CTL" --socket "$T/no-such.sock" stats 2>&1); rc=$?
	if [ "$rc" -eq 2 ] && printf '%s' "$r" | grep -q 'no-such.sock'; then
		ok "cvmmctl: a missing socket is exit 2 with a message naming it"
	else
		notok "cvmmctl: a missing socket is exit 2 with a message naming it" "(exit $rc) $r"
	fi
	r=$("$CTL" --socket "$T/x.sock" host-read 12 2>&1); rc=$?
	if [ "$rc" -eq 2 ] && printf '%s' "$r" | grep -q 'OFFSET LENGTH'; then
		ok "cvmmctl: bad usage is exit 2 with a hint"
	else
		notok "cvmmctl: bad usage is exit 2 with a hint" "(exit $rc) $r"
	fi
	# the requests cvmmctl builds for the device, fault, mark and power-cut commands, as a
	# fake server receives them (strings JSON-escaped, --device on every command)
	r=$(python3 - "$CTL" "$T/fake.sock" <<'PY' 2>&1
import os, socket, subprocess, sys, threading
ctl, path = sys.argv[1], sys.argv[2]
calls = [(['--device', 'a', 'fault-add', 'op=write "x" effect=ioerr'],
          '{"cmd":"fault-add","device":"a","rule":"op=write \\"x\\" effect=ioerr"}'),
         (['fault-remove', 'all'], '{"cmd":"fault-remove","id":"all"}'),
         (['--device', 'b', 'fault-remove', '3'], '{"cmd":"fault-remove","device":"b","id":3}'),
         (['--device', 'b', 'mark', 't\\e'], '{"cmd":"mark","device":"b","text":"t\\\\e"}'),
         (['power-cut', 'sample:3'], '{"cmd":"power-cut","state":"sample:3"}'),
         (['--device', 'x', 'fault-list'], '{"cmd":"fault-list","device":"x"}')]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(8)
got = []
def serve():
    for _ in calls:
        c, _ = srv.accept()
        d = b''
        while not d.endswith(b'\n'):
            d += c.recv(4096)
        got.append(d.decode().rstrip('\n'))
        c.sendall(b'{"ok":true}\n')
        c.close()
t = threading.Thread(target=serve)
t.start()
for args, _ in calls:
    subprocess.run([ctl, '--socket', path] + args, capture_output=True, timeout=10)
t.join(10)
bad = [(w, g) for (_, w), g in zip(calls, got) if w != g]
print('ok' if len(got) == len(calls) and not bad else 'mismatch: %r' % (bad or got))
PY
)
	if [ "$r" = ok ]; then
		ok "cvmmctl: --device, fault-*, mark and power-cut requests are the protocol's JSON"
	else
		notok "cvmmctl: --device, fault-*, mark and power-cut requests are the protocol's JSON" "$r"
	fi
	rm -f "$T/fake.sock"
	if ! have_kvm; then
		skip "coherency: every scenario" "no usable /dev/kvm on this machine: the VM tests did NOT run"
		return
	fi
	if "$CVMM" run --kernel "$GUEST" --cmdline "scenario=coherency e1=0" --timeout 5 2>&1 |
		grep -q 'unknown scenario'; then
		skip "coherency: the scenario" "the guest has no coherency scenario"
		return
	fi
	# a --control path that is not a socket: one clear error
	: > "$T/not-a-socket"
	expect_error "control: a --control path that is a regular file is refused, naming it" \
		"not-a-socket.*not a socket" -- run --kernel "$GUEST" --control "$T/not-a-socket"

	local g
	for g in 4K 2M; do
		coh_conf "$T/coh-$g.conf" "$g" 0
		coh_run "coherency: a1-e1 with pmem and blk on one file (granule $g, 2 vCPUs, e1 via the control socket)" \
			"$T/coh-$g.conf" "scenario=coherency subblock=1 blk_off=0" $([ "$g" = 2M ] && echo 1)
	done
	coh_conf "$T/coh-off.conf" 64K 1M
	coh_run "coherency: the disk at file offset 1 MiB ([blk] offset, blk_off=), granule 64K" \
		"$T/coh-off.conf" "scenario=coherency subblock=1 blk_off=1048576"
	coh_conf "$T/coh-race.conf" 4K 0
	CVMM_RACE_DELAY_US=300 coh_run "coherency: with CVMM_RACE_DELAY_US=300 widening every race window" \
		"$T/coh-race.conf" "scenario=coherency subblock=1 blk_off=0"
	# c1 needs populate = on
	coh_conf "$T/coh-pop.conf" 2M 0 'populate = on
'
	run_guest "coherency: c1 populate then FLUSH writes nothing (populate = on)" 0 \
		'^[1-9][0-9]* passed, 0 failed' -- --config "$T/coh-pop.conf" \
		--cmdline "scenario=coherency-populate blk_off=0"
}

# fsx_host_race NAME SCENARIO SEED: fsx (or fsx-smp) at a 2 MiB granule, 2 vCPUs, its region
# [0, 3 MiB) sharing granule 1 with [3 MiB, 4 MiB), while this shell, as a host tool on the
# control socket, invalidates random ranges over all of [0, 4 MiB) (write back + drop: the
# guest must lose nothing) and host-writes random bytes into [3 MiB, 4 MiB) (the same 2 MiB
# granule as the guest's pages, outside its model). Multi-page-granule races of issue 12 in
# integration: an unmap for the host's page while the guest stores to its neighbours and
# FLUSHes. Passes only if the guest's own checks (every op against its shadow) pass.
fsx_host_race() {
	local name=$1 scen=$2 seed=$3 ops=${FSX_OPS:-20000}
	local sock="$T/race.sock" err="$T/race.err" ser="$T/race.serial" n_inv=0 n_hw=0 bad=""
	coh_conf "$T/race.conf" 2M 0
	rm -f "$sock" "$ser" "$err"
	timeout 1800 "$CVMM" run --config "$T/race.conf" --serial "$ser" --control "$sock" \
		--cmdline "scenario=$scen seed=$seed ops=$ops size=3M" 2>"$err" &
	local pid=$! rc r off len hex
	RANDOM=$seed
	while kill -0 "$pid" 2>/dev/null; do
		if [ -S "$sock" ]; then
			off=$(( (RANDOM % 1024) * 4096 )); len=$(( (1 + RANDOM % 64) * 4096 ))
			r=$("$CTL" --socket "$sock" invalidate "$off" "$len" 2>&1) && n_inv=$((n_inv + 1)) ||
				{ kill -0 "$pid" 2>/dev/null && bad="$bad
invalidate $off $len: $r"; }
			off=$(( 3 * 1048576 + (RANDOM % 1000) * 1000 )); hex=$(printf '%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
			r=$("$CTL" --socket "$sock" host-write "$off" "$hex" 2>&1) && n_hw=$((n_hw + 1)) ||
				{ kill -0 "$pid" 2>/dev/null && bad="$bad
host-write $off: $r"; }
		fi
		sleep 0.0$((RANDOM % 5))
	done
	wait "$pid"; rc=$?
	local out; out="$(cat "$ser" 2>/dev/null)
$(cat "$err" 2>/dev/null)
# harness: $n_inv invalidates, $n_hw host-writes$bad"
	if [ "$rc" -eq 0 ] && [ -z "$bad" ] && [ "$n_inv" -gt 0 ] &&
		printf '%s\n' "$out" | grep -Eq '^[1-9][0-9]* passed, 0 failed'; then
		ok "$name ($n_inv invalidates, $n_hw host-writes beside it)"
	else
		notok "$name (exit $rc)" "$out"
	fi
}

fsx_tests() {
	if ! have_kvm; then
		skip "fsx: every seed" "no usable /dev/kvm on this machine: the VM tests did NOT run"
		return
	fi
	local s ops=${FSX_OPS:-20000}
	coh_conf "$T/fsx.conf" 4K 0
	for s in ${FSX_SEEDS:-1 2 3 4 5}; do
		coh_conf "$T/fsx.conf" "$([ $((s % 2)) = 0 ] && echo 2M || echo 4K)" 0
		local out rc
		out=$(timeout 1800 "$CVMM" run --config "$T/fsx.conf" \
			--cmdline "scenario=fsx seed=$s ops=$ops" 2>&1); rc=$?
		if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -Eq '^[1-9][0-9]* passed, 0 failed'; then
			ok "fsx: seed $s, $ops ops through both views"
		else
			notok "fsx: seed $s, $ops ops through both views (exit $rc)" "$out"
		fi
	done
	coh_conf "$T/fsx.conf" 64K 0
	out=$(timeout 1800 "$CVMM" run --config "$T/fsx.conf" \
		--cmdline "scenario=fsx-smp seed=7 ops=$ops" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -Eq '^[1-9][0-9]* passed, 0 failed'; then
		ok "fsx-smp: 2 vCPUs, $ops ops each"
	else
		notok "fsx-smp: 2 vCPUs, $ops ops each (exit $rc)" "$out"
	fi
	fsx_host_race "fsx: 2 MiB granule, host invalidates and host-writes the same granules" fsx 21
	fsx_host_race "fsx-smp: 2 vCPUs, 2 MiB granule, host invalidates and host-writes beside them" fsx-smp 22
}
