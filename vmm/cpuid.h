/* CPUID policy: start from KVM_GET_SUPPORTED_CPUID, hide what the config masks, and give each
 * vCPU its topology (APIC ID, logical CPU count). Pure functions over a kvm_cpuid2 so they can
 * be unit tested without /dev/kvm. */
#ifndef CVMM_CPUID_H
#define CVMM_CPUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/kvm_compat.h"

/* Features that can be hidden by name in `cpuid_mask` (comma separated). */
struct cpuid_feature {
	const char *name;
	uint32_t leaf, subleaf;
	int reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	int bit;
};
extern const struct cpuid_feature cpuid_features[];
extern const size_t cpuid_nr_features;

/* Preset for hosts like the project's (HOST.md): what a Linux guest must not use when its
 * ring-0 code is emulated by KVM, whose emulator lacks these instructions (cmpxchg16b, xsave
 * family, AVX, popcnt, movbe, rdrand/rdseed, rd/wr{fs,gs}base, rdpid, rd/wrpkru, invpcid,
 * stac/clac, AES-NI, pclmulqdq, crc32, clwb), and the fast-string flags (erms, fsrm) so that
 * pages are cleared and copied 8 bytes per emulated step, not 1. On these hosts KVM_SET_CPUID2 does not reach
 * CPUID leaf 1 ECX, so for a Linux kernel cvmm also passes the list as clearcpuid= (vmm/linux.c).
 * Usable as `cpuid_mask = pvm-host`. */
#define CPUID_PRESET_PVM_HOST "cx16,xsave,osxsave,avx,avx2,avx512f,popcnt,movbe,rdrand,rdseed," \
	"fsgsbase,rdpid,pku,invpcid,smap,aes,pclmulqdq,sse4_2,clwb,erms,fsrm"

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf);
/* Walk a mask list (comma separated; the preset pvm-host expanded), calling fn with each
 * feature; an unknown name fails with err naming it and listing the known ones; fn returning
 * nonzero stops the walk with -1. */
int cpuid_mask_foreach(const char *mask, int (*fn)(const struct cpuid_feature *f, void *ctx),
		       void *ctx, char *err, size_t errlen);
/* Apply a mask list; unknown names fail with err naming the name and listing known ones. */
int cpuid_apply_mask(struct kvm_cpuid2 *c, const char *mask, char *err, size_t errlen);
/* Advertise what the guest's CPU vendor needs to recover from an uncorrected machine check in
 * user mode (the SRAR cvmm injects for a store it cannot back, vmm/mce.c): on AMD (and Hygon)
 * CPUID 0x80000007 EBX bit 1, SUCCOR, without which Linux treats every uncorrected error as
 * fatal ("Uncorrected error without MCA Recovery", measured on these hosts); Intel's MCG_SER_P
 * is in the MCG_CAP KVM already reports. Returns true if the bit was set. */
bool cpuid_advertise_mce_recovery(struct kvm_cpuid2 *c);
/* Set APIC ID and logical CPU count for one vCPU (leaf 1 EBX, HTT, leaf 0xB x2APIC IDs). */
void cpuid_set_topology(struct kvm_cpuid2 *c, unsigned apic_id, unsigned ncpus);
/* Copy of a kvm_cpuid2 (malloc'd). */
struct kvm_cpuid2 *cpuid_dup(const struct kvm_cpuid2 *c);

#endif
