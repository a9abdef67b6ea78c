/* Write-log marks from the guest (cvmm's mark port, devices/mark_port.h): guest_mark("x")
 * adds a MARK entry "x" to every write log of the VM (and is cvmm's power_cut = at-mark:x
 * trigger). Under a VMM without the port (QEMU) the OUTs are ignored. */
#ifndef GUEST_MARK_H
#define GUEST_MARK_H

#define GUEST_MARK_PORT 0x5cc
#define GUEST_MARK_MAX  479

/* Texts longer than GUEST_MARK_MAX are dropped by cvmm (whole); '\n' ends a mark early. */
void guest_mark(const char *text);

#endif
