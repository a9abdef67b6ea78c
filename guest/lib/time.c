#include "lib/time.h"

#include "lib/cmdline.h"
#include "lib/string.h"
#include "lib/sys.h"

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define CPUID1_ECX_HYPERVISOR (1u << 31)

static uint64_t khz = 2000000;
static const char *source = "guess";

/* struct pvclock_vcpu_time_info */
struct pvclock {
	uint32_t version, pad0;
	uint64_t tsc_timestamp, system_time;
	uint32_t mul;
	int8_t shift;
	uint8_t flags, pad[2];
};

static struct pvclock pvclock __attribute__((aligned(64)));

/* Ask KVM once for its TSC-to-ns scale: ns = ((ticks << shift) * mul) >> 32. */
static uint64_t kvmclock_khz(uint32_t base)
{
	struct cpuid_regs r = cpuid(base, 0);
	uint64_t k = 0;
	uint32_t mul = 0;
	int8_t shift = 0;

	if (memcmp(&r.ebx, "KVMKVMKVM\0\0\0", 12) != 0 || r.eax < base + 1)
		return 0;
	if (!(cpuid(base + 1, 0).eax & KVM_FEATURE_CLOCKSOURCE2))
		return 0;
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)&pvclock | 1);
	for (int i = 0; i < 1000000 && !mul; i++) {
		uint32_t v = __atomic_load_n(&pvclock.version, __ATOMIC_ACQUIRE);

		if (!(v & 1)) {
			mul = pvclock.mul;
			shift = pvclock.shift;
			if (__atomic_load_n(&pvclock.version, __ATOMIC_ACQUIRE) != v)
				mul = 0;
		}
		cpu_relax();
	}
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0); /* stop KVM from updating it */
	if (!mul)
		return 0;
	k = (1000000ull << 32) / mul;
	return shift >= 0 ? k >> shift : k << -shift;
}

void time_init(void)
{
	struct cpuid_regs r;
	uint32_t max;

	if ((khz = arg_u64("tsc_khz", 0))) {
		source = "cmdline";
		return;
	}
	if (cpuid(1, 0).ecx & CPUID1_ECX_HYPERVISOR) {
		r = cpuid(0x40000000, 0);
		if (r.eax >= 0x40000010 && (khz = cpuid(0x40000010, 0).eax)) {
			source = "cpuid-0x40000010";
			return;
		}
		if ((khz = kvmclock_khz(0x40000000))) {
			source = "kvmclock";
			return;
		}
	}
	max = cpuid(0, 0).eax;
	if (max >= 0x15) {
		r = cpuid(0x15, 0);
		if (r.eax && r.ebx && r.ecx) {
			khz = (uint64_t)r.ecx * r.ebx / r.eax / 1000;
			source = "cpuid-0x15";
			return;
		}
	}
	if (max >= 0x16 && (khz = (uint64_t)(cpuid(0x16, 0).eax & 0xffff) * 1000)) {
		source = "cpuid-0x16";
		return;
	}
	khz = 2000000;
	source = "guess";
}

uint64_t tsc_khz(void)
{
	return khz;
}

const char *tsc_source(void)
{
	return source;
}

/* Split so that the products stay in 64 bits for any realistic span. */
uint64_t ns_to_tsc(uint64_t ns)
{
	return ns / 1000000 * khz + ns % 1000000 * khz / 1000000;
}

uint64_t tsc_to_ns(uint64_t ticks)
{
	return ticks / khz * 1000000 + ticks % khz * 1000000 / khz;
}
