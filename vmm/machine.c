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
#include "devices/fault.h"
#include "devices/irq.h"
#include "devices/mark_port.h"
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

/* devices/mark_port.h: a mark from the guest goes to every write log (and the at-mark
 * trigger); a VM without logs takes it for the trigger alone. */
static void on_guest_mark(void *ctx, const char *text)
{
	char err[256];
	if (vm_mark(ctx, NULL, text, err, sizeof(err)) < 0)
		fprintf(stderr, "cvmm: guest mark '%s': %s\n", text, err);
}

static void on_debug_exit(void *ctx, uint32_t value)
{
	vm_request_stop(ctx, value > 255 ? 255 : (int)value, "guest wrote %u to the debug-exit port",
			value);
}

/* A [blk] device: the backing file window, the virtio-blk model, its virtio-pci transport.
 *
 * When the disk's file is a [pmem] window's file (same device and inode, as the page cache
 * compares them), the disk goes through that file's page cache (blk_pcache.c): the guest's
 * views of the file, DAX loads/stores and disk requests, then stay coherent. Any other file
 * keeps the plain file backend. Either way the disk's queues also accept buffers inside every
 * window (device DMA into DAX memory), pinned for the request's duration: a guest may point a
 * request of any disk at any window. */
/* "virtio-blk" for the plain [blk] (messages as before several devices), else
 * "virtio-blk NAME". */
static void device_label(char *buf, size_t len, const char *kind, const char *name)
{
	if (!strcmp(kind, name))
		snprintf(buf, len, "virtio-%s", kind);
	else
		snprintf(buf, len, "virtio-%s %s", kind, name);
}

/* The device's `fault = RULE` lines (config.h), each refused with its file:line. */
static int add_faults(struct fault_set *fs, const struct fault_lines *fl, const char *who,
		      char *err, size_t errlen)
{
	for (unsigned i = 0; i < fl->n; i++) {
		char why[256];
		if (fault_add_text(fs, fl->text[i], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: fault rule for %s: %s", fl->where[i], who, why);
			return -1;
		}
	}
	return 0;
}

static struct pmem_window *window_of_file(struct vm *vm, const char *path)
{
	for (unsigned i = 0; i < vm->npmem; i++)
		if (pcache_same_file(vm->pmem[i].win->pc, path))
			return vm->pmem[i].win;
	return NULL;
}

static int blk_setup(struct vm *vm, struct vm_blk *d, char *err, size_t errlen)
{
	const struct blk_config *c = d->cfg; /* path already resolved by config.c */
	struct blk_backend *be;
	struct pmem_window *shared = window_of_file(vm, c->path);
	d->shared = shared;
	if (shared && c->write_log[0]) {
		snprintf(err, errlen, "blk %s write_log '%s': the disk is the file of pmem %s: set "
			 "write_log in that [pmem] section instead, its log covers both views",
			 c->name, c->write_log, shared->name);
		return -1;
	}
	if (shared) {
		if (!c->readonly && pcache_is_readonly(shared->pc)) {
			snprintf(err, errlen, "blk %s path '%s': it is the file of pmem %s, opened "
				 "read-only (readonly = on there): set readonly = on for the disk too",
				 c->name, c->path, shared->name);
			return -1;
		}
		struct blk_pcache_opts o = { .pc = shared->pc, .offset = c->offset,
					     .size = c->size, .readonly = c->readonly };
		if (blk_pcache_open(&o, &be, err, errlen))
			return -1;
	} else {
		struct blk_file_opts o = { .path = c->path, .offset = c->offset, .size = c->size,
					   .readonly = c->readonly, .direct = c->direct };
		if (blk_file_open(&o, &be, err, errlen))
			return -1;
	}
	/* write_log: the disk as it is now (the VM has not run) goes to PATH.base, then every
	 * change is logged (devices/blk_log.h). */
	if (c->write_log[0]) {
		if (blk_log_attach(c->path, c->offset, c->write_log, &be, err, errlen))
			return -1;
		d->log_be = be;
	}
	if (power_cut_wrap_blk(vm, &be, err, errlen))
		return -1;
	d->dev = calloc(1, sizeof(*d->dev));
	d->pci = calloc(1, sizeof(*d->pci));
	if (!d->dev || !d->pci) {
		be->ops->destroy(be);
		snprintf(err, errlen, "blk %s: out of memory", c->name);
		return -1;
	}
	if (blk_init(d->dev, be, err, errlen)) {
		be->ops->destroy(be);
		free(d->dev);
		d->dev = NULL;
		return -1;
	}
	d->dev->backend_name = shared ? "pcache" : "file";
	device_label(d->who, sizeof(d->who), "blk", c->name);
	d->dev->faults.who = d->who;
	if (add_faults(&d->dev->faults, &c->faults, d->who, err, errlen))
		return -1;
	_Static_assert(CONFIG_MAX_BLK_WORKERS == BLK_WORKERS_MAX, "[blk] workers bound");
	d->dev->flush_ignore = c->flush_ignore;
	if (c->flush_ignore && !c->readonly)
		fprintf(stderr, "cvmm: blk %s: flush = ignore: FLUSH is acknowledged without syncing: "
			"the disk is NOT crash-safe (for throwaway guests)\n", c->name);
	if (c->workers)
		d->dev->workers = c->workers;
	struct virtq_dma dma = { .mem = &vm->mem };
	if (vm->npmem) {
		void *ctx;
		struct blk_dma_window win[CONFIG_MAX_PMEM];
		for (unsigned i = 0; i < vm->npmem; i++)
			win[i] = (struct blk_dma_window){ .pc = vm->pmem[i].win->pc,
							  .gpa_base = vm->pmem[i].win->base };
		_Static_assert(CONFIG_MAX_PMEM <= BLK_DMA_WINDOWS_MAX, "[pmem] count bound");
		if (blk_dma_windows_create(win, vm->npmem, &vm->mem, &ctx, &dma, err, errlen))
			return -1;
		blk_set_dma(d->dev, &blk_dma_window_ops, ctx);
	}
	return virtio_pci_init(d->pci, vm->pci, &dma, &blk_virtio_ops, d->dev, d->who, &d->dev->rl,
			       err, errlen);
}

static int pmem_flush_window(void *ctx)
{
	struct vm_pmem *p = ctx;
	if (__atomic_load_n(&p->vm->cut, __ATOMIC_ACQUIRE))
		return -EIO;
	int r = pmem_window_flush(p->win);
	if (r == 0)
		vm_note_flush(p->vm);
	return r;
}

/* A [pmem] device: the window itself was made by vm_create (vmm/pmem_window.h); this is the
 * virtio device that tells the guest where it is and takes its FLUSH requests. */
static int pmem_setup(struct vm *vm, struct vm_pmem *p, char *err, size_t errlen)
{
	p->dev = calloc(1, sizeof(*p->dev));
	p->pci = calloc(1, sizeof(*p->pci));
	if (!p->dev || !p->pci) {
		snprintf(err, errlen, "pmem %s: out of memory", p->cfg->name);
		return -1;
	}
	p->vm = vm;
	pmem_dev_init(p->dev, p->win->base, p->win->size, pmem_flush_window, p);
	device_label(p->who, sizeof(p->who), "pmem", p->cfg->name);
	p->dev->faults.who = p->who;
	pmem_dev_set_pcache(p->dev, p->win->pc); /* effect=enospc: the writeback's file */
	if (add_faults(&p->dev->faults, &p->cfg->faults, p->who, err, errlen))
		return -1;
	struct virtq_dma dma = { .mem = &vm->mem }; /* RAM only: pmem's FLUSH has no data */
	return virtio_pci_init(p->pci, vm->pci, &dma, &pmem_virtio_ops, p->dev, p->who,
			       &p->dev->rl, err, errlen);
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
	vm->mark_port = calloc(1, sizeof(*vm->mark_port));
	if (!vm->mark_port) {
		snprintf(err, errlen, "devices: out of memory");
		return -1;
	}
	mark_port_init(vm->mark_port, on_guest_mark, vm);
	if (mark_port_register(vm->mark_port, &vm->pio)) {
		snprintf(err, errlen, "device registration: port range conflict (0x%x)", MARK_PORT);
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

	/* Slots: every blk device in config order, then every pmem device (config.h). */
	for (unsigned i = 0; i < vm->cfg->nblk; i++) {
		vm->blk[i].cfg = &vm->cfg->blk[i];
		vm->nblk = i + 1;
		if (blk_setup(vm, &vm->blk[i], err, errlen))
			return -1;
	}
	for (unsigned i = 0; i < vm->npmem; i++)
		if (pmem_setup(vm, &vm->pmem[i], err, errlen))
			return -1;
	return 0;
}

void devices_destroy(struct vm *vm)
{
	free(vm->sysctl);
	vm->sysctl = NULL;
	if (vm->mark_port) {
		mark_port_destroy(vm->mark_port);
		free(vm->mark_port);
		vm->mark_port = NULL;
	}
	for (unsigned i = 0; i < vm->nblk; i++) {
		struct vm_blk *d = &vm->blk[i];
		if (d->pci) {
			virtio_pci_destroy(d->pci); /* joins the I/O thread first */
			free(d->pci);
			d->pci = NULL;
		}
	}
	for (unsigned i = 0; i < vm->npmem; i++) {
		struct vm_pmem *p = &vm->pmem[i];
		if (p->pci) {
			virtio_pci_destroy(p->pci);
			free(p->pci);
			p->pci = NULL;
		}
		if (p->dev) {
			pmem_dev_destroy(p->dev);
			free(p->dev);
			p->dev = NULL;
		}
	}
	for (unsigned i = 0; i < vm->nblk; i++) {
		struct vm_blk *d = &vm->blk[i];
		if (d->dev) {
			blk_destroy(d->dev);
			free(d->dev);
			d->dev = NULL;
		}
	}
	vm->nblk = 0;
	if (vm->pci) {
		pci_host_destroy(vm->pci);
		free(vm->pci);
		vm->pci = NULL;
	}
}
