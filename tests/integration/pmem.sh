# virtio-pmem + the page cache behind it: what the guest stores and FLUSHes is in the backing
# file byte for byte; populate marks nothing dirty; mkwrite ENOSPC becomes a machine check and
# loses nothing flushed before. Sourced by tests/run-all.sh (needs lib.sh and boot.sh).

# The guest prints the pattern's page set; check those pages of FILE byte for byte.
check_pattern() {
	local name=$1 file=$2 out=$3 pages
	pages=$(printf '%s\n' "$out" | sed -n 's/^# pmem: pattern pages=\([0-9,]*\).*/\1/p' | tail -1)
	if [ -z "$pages" ]; then
		notok "$name (the guest printed no page list)" "$out"
		return
	fi
	local res
	if res=$(python3 guest/tools/check-pattern.py "$file" --pages "$pages" 2>&1); then
		ok "$name"
	else
		notok "$name" "$res"
	fi
}

pmem_tests() {
	if ! have_kvm; then
		skip "pmem: every scenario" "no usable /dev/kvm on this machine: the VM tests did NOT run"
		return
	fi
	local g out rc
	for g in 4K 64K 2M; do
		rm -f "$T/pmem-$g.img"
		truncate -s 64M "$T/pmem-$g.img"
		printf '[vm]\nkernel = %s\ntimeout = 60\n[pmem]\npath = %s\nsize = 64M\ngranule = %s\n' \
			"$PWD/$GUEST" "$T/pmem-$g.img" "$g" > "$T/pmem-$g.conf"
		out=$(timeout 90 "$CVMM" run --config "$T/pmem-$g.conf" --cmdline "scenario=pmem" 2>&1); rc=$?
		if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -Eq '^[1-9][0-9]* passed, 0 failed'; then
			ok "pmem: stores/loads across granule boundaries, FLUSH (granule $g)"
		else
			notok "pmem: stores/loads across granule boundaries, FLUSH (granule $g) (exit $rc)" "$out"
		fi
		check_pattern "pmem: backing file holds the flushed pattern byte for byte (granule $g)" \
			"$T/pmem-$g.img" "$out"
	done

	rm -f "$T/pop.img" "$T/pop.json"
	truncate -s 64M "$T/pop.img"
	printf '[vm]\nkernel = %s\ntimeout = 60\nstats_json = %s\n[pmem]\npath = %s\nsize = 64M\npopulate = on\n' \
		"$PWD/$GUEST" "$T/pop.json" "$T/pop.img" > "$T/pop.conf"
	out=$(timeout 90 "$CVMM" run --config "$T/pop.conf" --cmdline "scenario=pmem-populate" 2>&1); rc=$?
	# Two FLUSHes: one right after populate, one after stores to 3 pages. 3 pages written in all
	# (and no store faulted: populate made every granule writable) means the first wrote 0.
	if [ "$rc" -eq 0 ] && python3 - "$T/pop.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["pmem"]["cache"]
ok = c["flushes"] == 2 and c["pages_written"] == 3 and c["faults"]["store_absent"] == 0 \
     and c["faults"]["store_readonly"] == 0
sys.exit(0 if ok else 1)
PY
	then
		ok "pmem: populate then FLUSH writes 0 pages; 3 stored pages write exactly 3"
	else
		notok "pmem: populate then FLUSH writes 0 pages; 3 stored pages write exactly 3 (exit $rc)" \
			"$out
$(cat "$T/pop.json" 2>&1)"
	fi

	# ENOSPC: the backing file on a 1 MiB tmpfs (256 pages) behind a 64 MiB window.
	if [ "$(id -u)" != 0 ]; then
		skip "pmem: mkwrite ENOSPC gives a machine check" "needs root to mount a size-limited tmpfs"
		return
	fi
	mkdir -p "$T/small"
	if ! mount -t tmpfs -o size=1M cvmm-enospc "$T/small" 2>/dev/null; then
		skip "pmem: mkwrite ENOSPC gives a machine check" "mount -t tmpfs failed here"
		return
	fi
	truncate -s 64M "$T/small/pmem.img"
	printf '[vm]\nkernel = %s\ntimeout = 60\n[pmem]\npath = %s\nsize = 64M\ngranule = 4K\n' \
		"$PWD/$GUEST" "$T/small/pmem.img" > "$T/enospc.conf"
	out=$(timeout 90 "$CVMM" run --config "$T/enospc.conf" --cmdline "scenario=pmem-enospc safe_pages=128" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -Eq '^[1-9][0-9]* passed, 0 failed'; then
		ok "pmem: mkwrite ENOSPC refuses the store with a machine check at its address"
	else
		notok "pmem: mkwrite ENOSPC refuses the store with a machine check at its address (exit $rc)" "$out"
	fi
	local p
	p=$(printf '%s\n' "$out" | sed -n 's/^# pmem-enospc: machine check at page \([0-9]*\).*/\1/p' | tail -1)
	if [ -n "$p" ] && [ "$p" -ge 128 ] && res=$(python3 guest/tools/check-pattern.py "$T/small/pmem.img" --range "0-$p" 2>&1); then
		ok "pmem: every page flushed before ENOSPC is intact in the file ($p pages)"
	else
		notok "pmem: every page flushed before ENOSPC is intact in the file" "page '$p': ${res:-}"
	fi
	umount "$T/small"
}
