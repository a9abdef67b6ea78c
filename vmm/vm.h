/* One virtual machine: its KVM handles, guest RAM, buses, vCPUs and run state.
 * All state lives here and is passed explicitly, so tests can build several VMs in one process. */
#ifndef CVMM_VM_H
#define CVMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "devices/bus.h"
#include "vmm/config.h"
#include "lib/guest_mem.h"
#include "vmm/linux.h"
#include "vmm/loader.h"
#include "vmm/power_cut.h"
#include "devices/log_cut.h"

/* Guest-physical layout (see also vmm/boot.c). RAM starts at 0; up to LOW_RAM_MAX of it sits
 * below the PCI hole and the rest at 4 GiB. */
#define GPA_BOOT_GDT        0x0500ULL
#define GPA_BOOT_PML4       0x1000ULL
#define GPA_BOOT_PDPT       0x2000ULL
#define GPA_BOOT_PD         0x3000ULL /* 4 pages: 0..4 GiB in 2 MiB pages */
#define GPA_START_INFO      0x7000ULL
#define GPA_MEMMAP          0x7100ULL
#define GPA_CMDLINE         0x8000ULL
#define GPA_RESERVED_END    0x100000ULL /* kernels load at or above 1 MiB */
/* The PCI hole starts with the ECAM window at the address QEMU q35 uses, so the bundled guest
 * finds PCI configuration space at the same place under both. */
#define GPA_PCI_HOLE        0xB0000000ULL
#define GPA_ECAM            0xB0000000ULL /* 256 MiB: buses 0..255 */
#define GPA_PCI_MMIO        0xC0000000ULL /* BARs from here up to GPA_PCI_MMIO_END */
#define GPA_PCI_MMIO_END    0xFEC00000ULL /* IOAPIC, LAPIC and the TSS page above */
#define GPA_HIGH_RAM        0x100000000ULL
#define LOW_RAM_MAX         GPA_PCI_HOLE

struct pci_host;
struct blk_dev;
struct blk_backend;
struct virtio_pci;
struct pmem_dev;

struct pmem_window;
struct pmem_log;
struct mark_port;
struct control;

enum vm_exit_kind {
	VMEXIT_IO, VMEXIT_MMIO, VMEXIT_HLT, VMEXIT_SHUTDOWN, VMEXIT_INTERNAL, VMEXIT_INTR,
	VMEXIT_OTHER, VMEXIT_NR
};

struct vcpu {
	struct vm *vm;
	int index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	uint64_t exits[VMEXIT_NR];
};

struct vm_stats {
	struct timespec t_start, t_first_output, t_end;
	bool have_first_output;
	uint64_t serial_bytes;
};

/* A logged device's files for the power-cut rewind (devices/log_cut.h), opened at setup:
 * once the VM runs the seccomp filter refuses open. */
struct vm_cut_file {
	bool open;
	const char *kind, *name;
	uint64_t offset;               /* the disk's offset in its file; 0 for a pmem file */
	char base[CONFIG_PATH_MAX + 8];
	struct blk_log_cut_files f;
};

/* One [blk] device: config, model, transport. */
struct vm_blk {
	const struct blk_config *cfg;
	struct blk_dev *dev;           /* devices/blk.h */
	struct virtio_pci *pci;        /* devices/virtio_pci.h: its transport */
	struct pmem_window *shared;    /* the window whose file it is (through its cache), or NULL */
	char who[CONFIG_NAME_MAX + 16]; /* "virtio-blk NAME": messages (fault log lines) */
	struct blk_backend *log_be;    /* devices/blk_log.h: its write log (marks), or NULL */
};

/* One [pmem] device: the window (vmm/pmem_window.h, made by vm_create) and the virtio-pmem
 * device that reports it (made by devices_setup). */
struct vm_pmem {
	const struct pmem_config *cfg;
	struct pmem_window *win;
	struct pmem_dev *dev;          /* devices/pmem.h */
	struct virtio_pci *pci;
	struct pmem_log *log;          /* devices/pmem_log.h: the file's write log, or NULL */
	struct vm *vm;
	char who[CONFIG_NAME_MAX + 16];
};

struct vm {
	struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;
	int nr_memslots;
	void *ram;             /* one host mapping for all of RAM */
	uint64_t ram_size;
	struct guest_mem mem;
	struct vm_pmem pmem[CONFIG_MAX_PMEM]; /* the [pmem] devices, in config order */
	unsigned npmem;
	struct bus pio;
	struct bus mmio;
	struct load_info kernel;
	struct linux_boot lboot;   /* vmm/linux.h: kind of kernel (KERNEL_CVMM_ELF: the guest) */
	uint64_t rsdp;             /* vmm/acpi.h: guest-physical RSDP */
	int ncpus;
	struct vcpu *vcpus;
	struct kvm_cpuid2 *cpuid;  /* policy shared by all vCPUs (APIC ID patched per vCPU) */

	/* run state */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	int exit_status;       /* what cvmm exits with */
	char stop_reason[256];

	/* devices */
	struct serial *serial;
	struct debug_exit *debug_exit;
	struct sysctl *sysctl;         /* devices/sysctl.h: reset and power-off ports */
	struct mark_port *mark_port;   /* devices/mark_port.h: the guest's write-log marks */
	struct pci_host *pci;          /* devices/pci.h: host bridge, config space, MSI routes */
	struct vm_blk blk[CONFIG_MAX_BLK]; /* the [blk] devices, in config order */
	unsigned nblk;
	bool slot_zap_quirk_off;
	struct vm_stats stats;
	struct control *control;       /* vmm/control.h: the --control socket, if any */

	/* vmm/power_cut.h */
	struct power_cut_plan cut_plan; /* from [vm] power_cut / power_cut_state */
	uint64_t flushes;              /* atomic: guest FLUSHes completed, every device */
	int cut;                       /* atomic: a power cut happened */
	struct vm_cut_file cut_files[CONFIG_MAX_BLK + CONFIG_MAX_PMEM];
	int stats_fd;                  /* cfg->stats_json, created at start (lib/file.h), or -1 */
};

/* Build a VM from a validated config: KVM VM, RAM, devices, kernel, vCPUs (not yet running).
 * Returns 0, or -1 with a one-line message in err. */
int vm_create(struct vm *vm, struct vm_config *cfg, char *err, size_t errlen);
/* Run every vCPU until the guest ends the VM (debug-exit, shutdown, fatal exit, timeout).
 * Returns the exit status cvmm should exit with. */
int vm_run(struct vm *vm);
/* Ask every vCPU to stop with this status (first caller wins). Thread-safe. */
void vm_request_stop(struct vm *vm, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void vm_destroy(struct vm *vm);
/* Power cut now (vmm/power_cut.h): nothing reaches the files from here on, the VM stops with
 * CVMM_EXIT_POWER_CUT, vm_destroy leaves the files as the plan's state says. Thread-safe;
 * the first call wins. sample/seed: the state (from the plan or the control request). */
void vm_power_cut(struct vm *vm, bool sample, uint64_t seed, const char *why);
/* A guest FLUSH completed (any device): the after-flushes:N trigger. */
void vm_note_flush(struct vm *vm);
/* A MARK entry with text in the write log of `device` (NULL: every log), then the at-mark
 * trigger: the number of logs that took it, or -1 with err set (control socket, guest port). */
int vm_mark(struct vm *vm, const char *device, const char *text, char *err, size_t errlen);
/* A mark was added: the at-mark:NAME trigger. */
void vm_note_mark(struct vm *vm, const char *text);
/* One-line summary on stderr (and JSON to cfg->stats_json if set). */
void vm_print_summary(struct vm *vm);
/* The guest produced its first output now (serial): time to first output. */
void vm_note_output(struct vm *vm, size_t bytes);

double ts_diff(const struct timespec *a, const struct timespec *b);

#endif
