#ifndef CVMM_MACHINE_H
#define CVMM_MACHINE_H

#include <stddef.h>

#include "vmm/vm.h"

/* Create every device the config asks for and register it on vm->pio / vm->mmio.
 * Called once by vm_create() after RAM exists and before vCPUs run. */
int devices_setup(struct vm *vm, char *err, size_t errlen);
/* Stop device threads and free what devices_setup created (vCPUs already stopped; guest RAM
 * still mapped). Safe on a partly set-up VM. */
void devices_destroy(struct vm *vm);

#endif
