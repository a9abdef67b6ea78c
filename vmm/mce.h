/* Machine checks: the guest-side form of SIGBUS for the pmem window (DESIGN.md: a store that
 * cannot get backing blocks on ENOSPC/EDQUOT is refused and the guest told at once, never lost
 * silently at writeback; seed 002). */
#ifndef CVMM_MM_MCE_H
#define CVMM_MM_MCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MCE_BANKS 10     /* as QEMU; the error is reported in bank MCE_BANK */
#define MCE_BANK  9

#define MSR_IA32_MCG_STATUS 0x17a
#define MSR_IA32_MCG_CTL    0x17b
#define MSR_IA32_MC0_CTL    0x400

#define MCG_STATUS_RIPV (1ULL << 0)
#define MCG_STATUS_EIPV (1ULL << 1)
#define MCG_STATUS_MCIP (1ULL << 2)

#define MCI_STATUS_VAL   (1ULL << 63)
#define MCI_STATUS_OVER  (1ULL << 62)
#define MCI_STATUS_UC    (1ULL << 61)
#define MCI_STATUS_EN    (1ULL << 60)
#define MCI_STATUS_MISCV (1ULL << 59)
#define MCI_STATUS_ADDRV (1ULL << 58)
#define MCI_STATUS_PCC   (1ULL << 57)
#define MCI_STATUS_S     (1ULL << 56)
#define MCI_STATUS_AR    (1ULL << 55)
#define MCACOD_DATA      0x134   /* SRAR data load error (Intel SDM 15.9.3) */
#define MCACOD_FETCH     0x150   /* SRAR instruction fetch error */

/* KVM_X86_SETUP_MCE with the supported capabilities (KVM_X86_GET_MCE_CAP_SUPPORTED, 0x1000100
 * here: MCG_CTL_P | MCG_SER_P) and MCE_BANKS banks, then MCG_CTL and every MCi_CTL set to all
 * ones (KVM drops an injected error whose bank is not enabled). Once per vCPU, at creation.
 * Returns 0 or -1 with err set. */
int mce_setup_vcpu(int kvm_fd, int vcpu_fd, char *err, size_t errlen);

enum mce_inject_result { MCE_INJECTED, MCE_NO_CR4_MCE, MCE_NESTED, MCE_FAILED };
/* Raise an action-required machine check for guest-physical `gpa` on this vCPU (delivered
 * before the next instruction). fetch: instruction fetch code, else data. Refuses (rather than
 * let KVM triple-fault the guest) when the guest has CR4.MCE clear or is still handling a
 * machine check (MCG_STATUS.MCIP set). */
enum mce_inject_result mce_inject(int vcpu_fd, uint64_t gpa, bool fetch);

#endif
