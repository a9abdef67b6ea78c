/* The ring-3 runtime, everything a scenario needs in one include. */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/cmdline.h"
#include "lib/console.h"
#include "lib/cpu.h"
#include "lib/fmt.h"
#include "lib/mem.h"
#include "lib/percpu.h"
#include "lib/report.h"
#include "lib/string.h"
#include "lib/sync.h"
#include "lib/sys.h"
#include "lib/time.h"

/* The PVH start info the VMM handed over (validated: magic checked before scenarios run). */
const struct hvm_start_info *boot_start_info(void);

/* End the VM with a status (0 pass, 1 fail, 2 crash or bad command line). */
__attribute__((noreturn)) void guest_exit(uint32_t status);

#endif
