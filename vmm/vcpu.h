#ifndef CVMM_VCPU_H
#define CVMM_VCPU_H

#include "vmm/vm.h"

/* Create vCPU `index`: KVM fd, kvm_run mapping, CPUID (with its APIC ID), registers at the
 * kernel's 64-bit entry. Returns 0 or -1 with err set. */
int vcpu_create(struct vm *vm, struct vcpu *v, int index, char *err, size_t errlen);
/* Thread body: KVM_RUN and exit dispatch until the VM stops. */
void *vcpu_thread(void *arg);
/* Kick a vCPU out of KVM_RUN (signal + immediate_exit). */
void vcpu_kick(struct vcpu *v);
void vcpu_destroy(struct vcpu *v);
/* Install the (no-op) kick signal handler once per process. */
void vcpu_signals_init(void);

#endif
