/* The one place devices are created and put on the buses (kvmtool keeps this in one place
 * too). Transport (PCI) and device models live in their own files. */
#include "vmm/machine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/blk.h"
#include "devices/blk_log.h"
#include "devices/debug_exit.h"
#include "devices/irq.h"
#include "devices/pci.h"
#include "devices/pmem.h"
#include "devices/serial.h"
#include "devices/sysctl.h"
#include "devices/virtio_pci.h"
#include "mm/pcache.h"
#include "vmm/pmem_window.h"

static void on_serial_output(void *ctx, size_t bytes)
{
	vm_note_output(ctx, bytes);
}

static void on_debug_exit(void *ctx, uint32_t value)
{
	vm_request_stop(ctx, value > 255 ? 255 : (int)value, "guest wrote %u to the debug-exit port",
			value);
}

/* [blk]: the backing file window, the virtio-blk model, its virtio-pci transport.
 *
 * When the disk's file is the [pmem] window's file (same device and inode, as the page cache
 * compares them), the disk goes through the page cache (blk_pcache.c): the guest's two views
 * of the file, DAX loads/stores and disk requests, then stay coherent. Any other file keeps the
 * plain file backend. Either way, when a window exists the disk's queues also accept buffers
 * inside it (device DMA into DAX memory), pinned for the request's duration. */
static int blk_setup(struct vm *vm, char *err, size_t errlen)
{
	const struct blk_config *c = &vm->cfg->blk; /* path already resolved by config.c */
	struct blk_backend *be;
	bool shared = vm->pmem && pcache_same_file(vm->pmem->pc, c->path);
	if (shared && c->write_log[0]) {
		snprintf(err, errlen, "blk write_log '%s': the disk is the [pmem] file, and stores "
			 "through the pmem window are not logged yet: the log would miss them",
			 c->write_log);
		return -1;
	}
	if (shared) {
		if (!c->readonly && pcache_is_readonly(vm->pmem->pc)) {
			snprintf(err, errlen, "blk path '%s': it is the [pmem] file, opened read-only "
				 "([pmem] readonly = on): set [blk] readonly = on too", c->path);
			return -1;
		}
		struct blk_pcache_opts o = { .pc = vm->pmem->pc, .offset = c->offset,
					     .size = c->size, .readonly = c->readonly };
		if (blk_pcache_open(&o, &be, err, errlen))
			return -1;
	} else {
		struct blk_file_opts o = { .path = c->path, .offset = c->offset, .size = c->size,
					   .readonly = c->readonly, .direct = c->direct };
		if (blk_file_open(&o, &be, err, errlen))
			return -1;
	}
	/* [blk] write_log: the disk as it is now (the VM has not run) goes to PATH.base, then
	 * every change is logged (devices/blk_log.h). */
	if (c->write_log[0] && blk_log_attach(c->path, c->offset, c->write_log, &be, err, errlen))
		return -1;
	vm->blk = calloc(1, sizeof(*vm->blk));
	vm->blk_pci = calloc(1, sizeof(*vm->blk_pci));
	if (!vm->blk || !vm->blk_pci) {
		be->ops->destroy(be);
		snprintf(err, errlen, "blk: out of memory");
		return -1;
	}
	if (blk_init(vm->blk, be, err, errlen)) {
		be->ops->destroy(be);
		free(vm->blk);
		vm->blk = NULL;
		return -1;
	}
	vm->blk->backend_name = shared ? "pcache" : "file";
	_Static_assert(CONFIG_MAX_BLK_WORKERS == BLK_WORKERS_MAX, "[blk] workers bound");
	vm->blk->flush_ignore = c->flush_ignore;
	if (c->flush_ignore && !c->readonly)
		fprintf(stderr, "cvmm: [blk] flush = ignore: FLUSH is acknowledged without syncing: "
			"the disk is NOT crash-safe (for throwaway guests)\n");
	if (c->workers)
		vm->blk->workers = c->workers;
	struct virtq_dma dma = { .mem = &vm->mem };
	if (vm->pmem) {
		void *ctx;
		if (blk_dma_window_create(vm->pmem->pc, vm->pmem->base, &vm->mem, &ctx, &dma, err,
					  errlen))
			return -1;
		blk_set_dma(vm->blk, &blk_dma_window_ops, ctx);
	}
	return virtio_pci_init(vm->blk_pci, vm->pci, &dma, &blk_virtio_ops, vm->blk,
			       "virtio-blk", &vm->blk->rl, err, errlen);
}

static int pmem_flush_window(void *ctx)
{
	return pmem_window_flush(ctx);
}

/* [pmem]: the window itself was made by vm_create (vmm/pmem_window.h); this is the virtio
 * device that tells the guest where it is and takes its FLUSH requests. */
static int pmem_setup(struct vm *vm, char *err, size_t errlen)
{
	vm->pmem_dev = calloc(1, sizeof(*vm->pmem_dev));
	vm->pmem_pci = calloc(1, sizeof(*vm->pmem_pci));
	if (!vm->pmem_dev || !vm->pmem_pci) {
		snprintf(err, errlen, "pmem: out of memory");
		return -1;
	}
	pmem_dev_init(vm->pmem_dev, vm->pmem->base, vm->pmem->size, pmem_flush_window, vm->pmem);
	struct virtq_dma dma = { .mem = &vm->mem }; /* RAM only: pmem's FLUSH has no data */
	return virtio_pci_init(vm->pmem_pci, vm->pci, &dma, &pmem_virtio_ops, vm->pmem_dev,
			       "virtio-pmem", &vm->pmem_dev->rl, err, errlen);
}

/* COM1's interrupt line: ISA IRQ 4 (IOAPIC pin 4 and PIC pin 4, devices/irq.h). */
static void on_serial_irq(void *ctx, bool level)
{
	struct vm *vm = ctx;
	irq_line(vm->vm_fd, IRQ_COM1, level);
}

static void on_sysctl(void *ctx, enum sysctl_event ev)
{
	vm_request_stop(ctx, 0, "%s; cvmm does not reboot, the VM ends", sysctl_event_name(ev));
}

/* The guest-physical layout of PCI (vmm/vm.h: where QEMU q35 has ECAM). */
static const struct pci_layout pci_layout = {
	.ecam = GPA_ECAM, .mmio = GPA_PCI_MMIO, .mmio_end = GPA_PCI_MMIO_END,
};

int devices_setup(struct vm *vm, char *err, size_t errlen)
{
	vm->serial = calloc(1, sizeof(*vm->serial));
	struct debug_exit *dx = calloc(1, sizeof(*dx));
	if (!vm->serial || !dx) {
		free(dx);
		snprintf(err, errlen, "devices: out of memory");
		return -1;
	}
	vm->debug_exit = dx;
	if (serial_init(vm->serial, vm->cfg->serial, err, errlen))
		return -1;
	vm->serial->on_output = on_serial_output;
	vm->serial->ctx = vm;
	vm->serial->set_irq = on_serial_irq;
	vm->serial->irq_ctx = vm;
	vm->sysctl = calloc(1, sizeof(*vm->sysctl));
	if (!vm->sysctl) {
		snprintf(err, errlen, "devices: out of memory");
		return -1;
	}
	vm->sysctl->on_event = on_sysctl;
	vm->sysctl->ctx = vm;
	if (sysctl_register(vm->sysctl, &vm->pio)) {
		snprintf(err, errlen, "device registration: port range conflict (0x64, 0x600)");
		return -1;
	}
	dx->on_exit = on_debug_exit;
	dx->ctx = vm;
	if (serial_register(vm->serial, &vm->pio) || debug_exit_register(dx, &vm->pio)) {
		snprintf(err, errlen, "device registration: port range conflict");
		return -1;
	}

	/* PCI is always there (a guest probing it finds at least the host bridge); devices on
	 * it take slots 1, 2, ... in the order created here. */
	vm->pci = calloc(1, sizeof(*vm->pci));
	if (!vm->pci) {
		snprintf(err, errlen, "devices: out of memory");
		return -1;
	}
	if (pci_host_init(vm->pci, &vm->pio, &vm->mmio, vm->vm_fd, &pci_layout, err, errlen))
		return -1;

	if (vm->cfg->blk.present && blk_setup(vm, err, errlen))
		return -1;
	if (vm->pmem && pmem_setup(vm, err, errlen))
		return -1;
	return 0;
}

void devices_destroy(struct vm *vm)
{
	free(vm->sysctl);
	vm->sysctl = NULL;
	if (vm->blk_pci) {
		virtio_pci_destroy(vm->blk_pci); /* joins the I/O thread first */
		free(vm->blk_pci);
		vm->blk_pci = NULL;
	}
	if (vm->pmem_pci) {
		virtio_pci_destroy(vm->pmem_pci);
		free(vm->pmem_pci);
		vm->pmem_pci = NULL;
	}
	if (vm->pmem_dev) {
		pmem_dev_destroy(vm->pmem_dev);
		free(vm->pmem_dev);
		vm->pmem_dev = NULL;
	}
	if (vm->blk) {
		blk_destroy(vm->blk);
		free(vm->blk);
		vm->blk = NULL;
	}
	if (vm->pci) {
		pci_host_destroy(vm->pci);
		free(vm->pci);
		vm->pci = NULL;
	}
}

