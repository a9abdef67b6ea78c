#!/bin/bash
# `make test-linux`: boot the Debian cloud kernel (scripts/mklinux.sh) under cvmm with
# configs/linux.conf and check, from the kernel's own console lines, that it took what cvmm
# gave it: the e820 map, the command line, the ACPI tables (RSDP/XSDT/FADT/MADT/MCFG/DSDT),
# the MADT's CPUs and IOAPIC. Then say how far the boot got (last kernel line, seconds), and if
# the guest's /init ran, count its own ok/not ok lines too. Ends with "N passed, N failed".
# Env: CVMM (build/cvmm), LINUX_CONF (configs/linux.conf), LINUX_TIMEOUT (seconds, 240: every
#      check below is decided by ~110 s here, and make test-linux stays under 5 minutes),
#      LINUX_KERNEL (override the conf's kernel, e.g. build/linux/vmlinuz for the bzImage).
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh
CVMM=${CVMM:-build/cvmm}
CONF=${LINUX_CONF:-configs/linux.conf}
TMO=${LINUX_TIMEOUT:-240}
LOG=${LINUX_LOG:-build/linux/console.log}

if ! have_kvm; then
	skip "linux: boot the Debian kernel" "no usable /dev/kvm on this machine: the Linux boot did NOT run"
	summary; exit $?
fi
if [ ! -s build/linux/vmlinux ] || [ ! -s build/linux/initramfs.cpio ] || [ ! -s build/linux/shared.img ]; then
	scripts/mklinux.sh build || { notok "linux: scripts/mklinux.sh built the image"; summary; exit 1; }
fi

conf() { sed -n "s/^$1 *= *//p" "$CONF" | head -1 | sed 's/ *#.*//; s/^"\(.*\)"$/\1/'; }
CMDLINE=$(conf cmdline)
MEM=$(conf mem)
CPUS=$(conf cpus)
extra=()
[ -n "${LINUX_KERNEL:-}" ] && extra=(--kernel "$LINUX_KERNEL")

echo "# booting ${LINUX_KERNEL:-$(conf kernel) (from $CONF)}, up to $TMO s"
start=$(date +%s)
timeout $((TMO + 30)) "$CVMM" run --config "$CONF" --timeout "$TMO" "${extra[@]}" > "$LOG" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
echo "# cvmm exited $rc after $secs s; console in $LOG"

has() { grep -qE -- "$1" "$LOG"; }
check() { if has "$2"; then ok "linux: $1"; else notok "linux: $1 (no line matching /$2/)" "$(tail -5 "$LOG")"; fi; }

# The e820 map cvmm builds for this much RAM (vmm/linux.c linux_e820).
bytes=$(python3 -c "import sys; s=sys.argv[1].upper(); m={'K':1<<10,'M':1<<20,'G':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))" "$MEM")
low=$(( bytes < 0xB0000000 ? bytes : 0xB0000000 ))
e820() { printf 'BIOS-e820: \\[mem 0x%016x-0x%016x\\] %s' "$1" "$(( $2 - 1 ))" "$3"; }
check "e820: low RAM"            "$(e820 0 0xa0000 usable)"
check "e820: ACPI area reserved" "$(e820 0xe0000 0x100000 reserved)"
check "e820: RAM from 1 MiB"     "$(e820 0x100000 $low usable)"
check "e820: ECAM reserved"      "$(e820 0xb0000000 0xc0000000 reserved)"
if [ "$bytes" -gt $((0xB0000000)) ]; then
	check "e820: high RAM" "$(e820 0x100000000 $(( 0x100000000 + bytes - 0xB0000000 )) usable)"
fi
n=$(grep -c 'BIOS-e820:' "$LOG")
want=$(( bytes > 0xB0000000 ? 5 : 4 ))
[ "$n" -eq "$want" ] && ok "linux: e820 has exactly our $want entries" || notok "linux: e820 has exactly our $want entries (saw $n)"

cl=$(sed -n 's/^\[ *[0-9.]*\] Command line: //p' "$LOG" | head -1 | tr -d '\r')
if [ "${cl#"$CMDLINE"}" != "$cl" ]; then ok "linux: Command line is ours"; else notok "linux: Command line is ours" "kernel: '$cl'
ours:   '$CMDLINE'"; fi
if [ -n "$(conf cpuid_mask)" ]; then
	check "cpuid_mask reached the kernel as clearcpuid=" 'Clearing CPUID bits: cx16 xsave'
fi
check "ACPI: RSDP at 0xE0000"   'ACPI: RSDP 0x00000000000E0000 000024 \(v02 CVMM'
check "ACPI: XSDT"              'ACPI: XSDT 0x[0-9A-F]+ [0-9A-F]+ \(v01 CVMM +CVMMXSDT'
check "ACPI: FADT"              'ACPI: FACP 0x[0-9A-F]+ 000114 \(v06 CVMM'
check "ACPI: DSDT"              'ACPI: DSDT 0x[0-9A-F]+ [0-9A-F]+ \(v02 CVMM'
check "ACPI: MADT"              'ACPI: APIC 0x[0-9A-F]+ [0-9A-F]+ \(v04 CVMM'
check "ACPI: MCFG"              'ACPI: MCFG 0x[0-9A-F]+ 00003C \(v01 CVMM'
check "ACPI: hardware-reduced, MADT for SMP" 'ACPI: Using ACPI \(MADT\) for SMP configuration'
check "MADT: $CPUS CPUs"        "smpboot: Allowing $CPUS CPUs"
check "MADT: the IOAPIC, GSI 0-23" 'IOAPIC\[0\]: apic_id 0, version [0-9]+, address 0xfec00000, GSI 0-23'
check "MADT: IRQ 0 -> GSI 2"    'INT_SRC_OVR \(bus 0 bus_irq 0 global_irq 2'
check "MCFG: ECAM used"         'PCI: MMCONFIG for domain 0000 \[bus 00-ff\] at \[mem 0xb0000000-0xbfffffff\]'

# How far did it get?
last=$(grep -E '^\[ *[0-9]+\.[0-9]+\]' "$LOG" | tail -1 | tr -d '\r')
ktime=$(printf '%s\n' "$last" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
echo "# last kernel line: $last"
echo "# kernel time ${ktime:-?} s, wall time $secs s; cvmm: $(grep '^cvmm: ' "$LOG" | head -1)"
if has '^cvmm-init: userspace reached'; then
	ok "linux: /init ran ($(grep '^cvmm-init: userspace' "$LOG" | head -1))"
	p=$(grep -c '^ok [0-9]' "$LOG"); f=$(grep -c '^not ok [0-9]' "$LOG")
	grep -E '^(not )?ok [0-9]' "$LOG" | sed 's/^/#   guest: /'
	[ "$f" -eq 0 ] && [ "$p" -gt 0 ] && ok "linux: the guest's $p checks passed (pmem DAX + blk)" ||
		notok "linux: the guest's checks ($p passed, $f failed)"
else
	echo "# /init was not reached (on hosts that emulate guest ring 0 the kernel is slow: README)"
fi
summary
