# Shared by the test scripts: TAP-ish reporting and the closing "N passed, N failed" line.
PASS=0
FAIL=0
SKIP=0
FAILED_NAMES=""

ok()   { PASS=$((PASS + 1)); echo "ok - $1"; }
notok() {
	FAIL=$((FAIL + 1)); FAILED_NAMES="$FAILED_NAMES
  $1"; echo "not ok - $1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/#   /' | tail -n 40
	return 0
}
# Loud on purpose: a skipped check is not a passed one.
skip() { SKIP=$((SKIP + 1)); echo "SKIP - $1 ($2)"; }

# have_kvm: /dev/kvm can be opened and answers KVM_GET_API_VERSION (not a CPUID flag check).
have_kvm() {
	[ -c /dev/kvm ] || return 1
	python3 - <<'PY' 2>/dev/null
import fcntl, os
fd = os.open("/dev/kvm", os.O_RDWR)
assert fcntl.ioctl(fd, 0xAE00) == 12
PY
}

summary() {
	echo
	[ "$FAIL" -gt 0 ] && printf 'failed:%s\n' "$FAILED_NAMES"
	if [ "$SKIP" -gt 0 ]; then
		echo "$PASS passed, $FAIL failed, $SKIP skipped"
	else
		echo "$PASS passed, $FAIL failed"
	fi
	[ "$FAIL" -eq 0 ]
}
