/* Machine-check setup and injection (see mce.h; HOST.md: injection works here after
 * KVM_X86_SETUP_MCE with MCG_CTL / MCi_CTL enabled, and the guest needs CR4.MCE).
 *
 * What is injected, and why: the status is the software-recoverable action-required form
 * (SRAR) that QEMU injects for a BUS_MCEERR_AR SIGBUS on guest memory:
 *   MCi_STATUS = VAL | UC | EN | MISCV | ADDRV | S | AR | MCACOD (0x134 data, 0x150 fetch)
 *   MCi_ADDR   = the guest-physical address of the access
 *   MCi_MISC   = address mode physical (2 << 6) | least significant valid bit 12 (one page)
 *   MCG_STATUS = MCIP | RIPV
 * No PCC: processor context is intact (Linux would panic on PCC); the guest handler runs,
 * reads the bank, and may resume at RIP (RIPV). No EIPV: KVM already retired the store that
 * exited (the MMIO exit completes the instruction), so RIP points after it, not at it. For a
 * Linux guest this is the same as a poisoned page under a user access: SIGBUS to the task,
 * which is the "guest-side form of SIGBUS" DESIGN.md asks for. */
#include "vmm/mce.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "lib/kvm_compat.h"

#define CR4_MCE (1ULL << 6)

static int set_msrs(int vcpu_fd, const uint32_t *idx, const uint64_t *val, int n)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[2 + MCE_BANKS];
	} m;
	memset(&m, 0, sizeof(m));
	for (int i = 0; i < n; i++) {
		m.e[i].index = idx[i];
		m.e[i].data = val[i];
	}
	m.hdr.nmsrs = (uint32_t)n;
	return ioctl(vcpu_fd, KVM_SET_MSRS, &m) == n ? 0 : -1;
}

int mce_setup_vcpu(int kvm_fd, int vcpu_fd, char *err, size_t errlen)
{
	uint64_t supported = 0;
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MCE) <= 0 ||
	    ioctl(kvm_fd, KVM_X86_GET_MCE_CAP_SUPPORTED, &supported) < 0) {
		snprintf(err, errlen, "KVM_X86_GET_MCE_CAP_SUPPORTED: %s",
			 errno ? strerror(errno) : "no KVM_CAP_MCE");
		return -1;
	}
	/* capability flags from KVM, bank count ours (the low byte) */
	uint64_t mcg_cap = (supported & ~0xffULL) | MCE_BANKS;
	if (ioctl(vcpu_fd, KVM_X86_SETUP_MCE, &mcg_cap) < 0) {
		snprintf(err, errlen, "KVM_X86_SETUP_MCE (mcg_cap 0x%llx): %s",
			 (unsigned long long)mcg_cap, strerror(errno));
		return -1;
	}
	uint32_t idx[1 + MCE_BANKS];
	uint64_t val[1 + MCE_BANKS];
	int n = 0;
	if (mcg_cap & (1ULL << 8)) { /* MCG_CTL_P */
		idx[n] = MSR_IA32_MCG_CTL;
		val[n++] = ~0ULL;
	}
	for (int b = 0; b < MCE_BANKS; b++) {
		idx[n] = MSR_IA32_MC0_CTL + 4u * (uint32_t)b;
		val[n++] = ~0ULL;
	}
	if (set_msrs(vcpu_fd, idx, val, n)) {
		snprintf(err, errlen, "KVM_SET_MSRS (MCG_CTL, MCi_CTL): %s", strerror(errno));
		return -1;
	}
	return 0;
}

enum mce_inject_result mce_inject(int vcpu_fd, uint64_t gpa, bool fetch)
{
	/* KVM turns an MCE into a triple fault if CR4.MCE is clear or MCIP is still set
	 * (kvm_vcpu_ioctl_x86_set_mce): refuse instead, so the VMM can say why. */
	struct kvm_sregs s;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return MCE_FAILED;
	if (!(s.cr4 & CR4_MCE))
		return MCE_NO_CR4_MCE;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} m;
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e[0].index = MSR_IA32_MCG_STATUS;
	if (ioctl(vcpu_fd, KVM_GET_MSRS, &m) == 1 && (m.e[0].data & MCG_STATUS_MCIP))
		return MCE_NESTED;

	struct kvm_x86_mce mce;
	memset(&mce, 0, sizeof(mce));
	mce.bank = MCE_BANK;
	mce.status = MCI_STATUS_VAL | MCI_STATUS_UC | MCI_STATUS_EN | MCI_STATUS_MISCV |
		     MCI_STATUS_ADDRV | MCI_STATUS_S | MCI_STATUS_AR |
		     (fetch ? MCACOD_FETCH : MCACOD_DATA);
	mce.addr = gpa;
	mce.misc = (2ULL << 6) | 12;
	/* EIPV with RIPV: the error belongs to the instruction at RIP (what QEMU's kvm_mce_inject
	 * sets for BUS_MCEERR_AR). Without EIPV, Linux's Intel severity table grades an SRAR as
	 * "Action required but unaffected thread is continuable" (KEEP): no memory_failure, no
	 * SIGBUS, the 0xff data kept. AMD's grading (SUCCOR, user mode) does not look at it. */
	mce.mcg_status = MCG_STATUS_MCIP | MCG_STATUS_RIPV | MCG_STATUS_EIPV;
	if (ioctl(vcpu_fd, KVM_X86_SET_MCE, &mce) < 0)
		return MCE_FAILED;
	return MCE_INJECTED;
}
