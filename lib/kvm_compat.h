/* KVM constants newer than Debian 12's linux/kvm.h (the 6.1 header). The running kernel
 * (6.18 here) has them; HOST.md lists the ones we rely on. Include this instead of
 * <linux/kvm.h> everywhere. */
#ifndef CVMM_KVM_COMPAT_H
#define CVMM_KVM_COMPAT_H

#include <linux/kvm.h>

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif
#ifndef KVM_CAP_DISABLE_QUIRKS2
#define KVM_CAP_DISABLE_QUIRKS2 213
#endif
#ifndef KVM_X86_QUIRK_SLOT_ZAP_ALL
#define KVM_X86_QUIRK_SLOT_ZAP_ALL (1 << 7)
#endif
#ifndef KVM_CAP_DIRTY_LOG_RING_ACQ_REL
#define KVM_CAP_DIRTY_LOG_RING_ACQ_REL 223
#endif
#ifndef KVM_CAP_X86_TRIPLE_FAULT_EVENT
#define KVM_CAP_X86_TRIPLE_FAULT_EVENT 218
#endif

#endif
