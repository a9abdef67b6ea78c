/* VM configuration: one struct filled from a config file and then from command-line flags.
 *
 * File format: `key = value` lines under `[vm]`, `[pmem]` and `[blk]` section headers;
 * `#` or `;` start a comment; blank lines ignored; surrounding whitespace trimmed.
 * Several devices: `[blk "NAME"]` / `[pmem "NAME"]` (NAME: 1..31 of A-Z a-z 0-9 _ -); a plain
 * `[blk]` is the device named "blk", `[pmem]` the one named "pmem". A section header naming a
 * device already seen continues it. Names are unique across both kinds (the control socket
 * and the stats address devices by name). Order is the order of first appearance: the blk
 * devices take PCI slots 1, 2, ... in that order, then the pmem devices, so a guest finds
 * them in the same order in every run.
 * Flags override the file: both go through config_set(), so a key means the same thing in
 * both places. Every error names the file:line (or flag) and the key or path at fault. */
#ifndef CVMM_CONFIG_H
#define CVMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_PATH_MAX 4096
#define CONFIG_CMDLINE_MAX 2048
#define CONFIG_MAX_CPUS 64
#define CONFIG_MAX_BLK_WORKERS 64 /* = BLK_WORKERS_MAX */
#define CONFIG_MAX_BLK 8          /* [blk] devices */
#define CONFIG_MAX_PMEM 4         /* [pmem] windows (each has its memslots and guest space) */
#define CONFIG_NAME_MAX 32
#define CONFIG_MAX_FAULTS 16      /* `fault = RULE` lines per device (devices/fault.h) */
#define CONFIG_FAULT_MAX 256      /* bytes of one rule's text */

/* `fault = RULE` lines of a device section, kept as text: parsed (and refused with the
 * file:line) by config_validate's caller through devices/fault.h, added at device setup. */
struct fault_lines {
	unsigned n;
	char text[CONFIG_MAX_FAULTS][CONFIG_FAULT_MAX];
	char where[CONFIG_MAX_FAULTS][64]; /* "file:line" of each, for messages */
};

struct pmem_config {
	char name[CONFIG_NAME_MAX]; /* "pmem" for a plain [pmem] */
	char path[CONFIG_PATH_MAX];
	uint64_t size;         /* bytes; 0 = size of the file */
	uint64_t granule;      /* bytes; 0 = choose automatically */
	bool populate;
	bool readonly;
	bool flush_ignore;     /* flush = ignore: FLUSH is acknowledged after writeback, without
				* fdatasync (throwaway CI guests; not crash-safe) */
	char write_log[CONFIG_PATH_MAX]; /* the FILE's log (devices/pmem_log.h): every change of
					  * the file through any view, "" = none; base at PATH.base */
	struct fault_lines faults;
};

struct blk_config {
	char name[CONFIG_NAME_MAX]; /* "blk" for a plain [blk] */
	char path[CONFIG_PATH_MAX];
	uint64_t offset;       /* byte offset of the disk inside the file */
	uint64_t size;         /* 0 = rest of the file */
	bool readonly;
	bool direct;           /* O_DIRECT (default on) */
	unsigned workers;      /* requests run at once; 0 = the device's default (16) */
	char write_log[CONFIG_PATH_MAX]; /* dm-log-writes log of the disk, "" = none
					  * (devices/blk_log.h); base image at PATH.base */
	bool flush_ignore;     /* flush = ignore: FLUSH completes at once, nothing synced */
	struct fault_lines faults;
};

#define CONFIG_SERIAL_LIMIT_DEFAULT (64ULL << 20)

struct vm_config {
	/* [vm] */
	char kernel[CONFIG_PATH_MAX];
	char initrd[CONFIG_PATH_MAX]; /* "" = none; Linux kernels only */
	char cmdline[CONFIG_CMDLINE_MAX];
	uint64_t mem_size;     /* bytes, default 256 MiB */
	int cpus;              /* default 1 */
	char serial[CONFIG_PATH_MAX]; /* "stdio" (default) or a file path */
	uint64_t serial_limit; /* bytes of guest console output kept (default 64 MiB); 0 = all */
	char cpuid_mask[256];  /* comma-separated feature names to hide, e.g. "cx16,xsave" */
	char stats_json[CONFIG_PATH_MAX]; /* "" = none */
	char control[CONFIG_PATH_MAX];    /* control socket path, "" = none */
	unsigned timeout_s;    /* 0 = none: kill the guest after this many seconds */
	bool seccomp;          /* the seccomp filter while the VM runs (vmm/seccomp.h); default on */
	char power_cut[160];   /* vmm/power_cut.h trigger: after-flushes:N, after:T, at-mark:NAME */
	char power_cut_state[64]; /* last-flush (default) or sample:SEED */
	struct pmem_config pmem[CONFIG_MAX_PMEM];
	unsigned npmem;
	struct blk_config blk[CONFIG_MAX_BLK];
	unsigned nblk;
	/* directory the config file was in: relative paths in the file resolve against it */
	char base_dir[CONFIG_PATH_MAX];
};

/* The value of hex digit ch (0-9, a-f, A-F), or -1. Also used by the control socket. */
int config_hex_digit(char ch);

/* Defaults: mem 256M, cpus 1, serial stdio, serial_limit 64M, seccomp on, blk.direct on. */
void config_defaults(struct vm_config *c);

/* Set one key in a section ("vm", "pmem", "blk": the plain [pmem] / [blk] device).
 * `where` names the origin for messages ("default.conf:12" or "--mem"). Returns 0, or -1
 * with a one-line message in err. */
int config_set(struct vm_config *c, const char *section, const char *key, const char *value,
	       const char *where, char *err, size_t errlen);
/* The same for a named device: section "pmem" or "blk", name as in [blk "NAME"]. */
int config_set_dev(struct vm_config *c, const char *section, const char *name, const char *key,
		   const char *value, const char *where, char *err, size_t errlen);

/* Parse a whole file. Returns 0 or -1 with err set (names file:line and the key). */
int config_parse_file(struct vm_config *c, const char *path, char *err, size_t errlen);
/* Same, from a string (unit tests, fuzzing); `name` is used in messages. */
int config_parse_string(struct vm_config *c, const char *text, const char *name, char *err,
			size_t errlen);

/* Final checks after file + flags: kernel given and readable, sizes sane (mem >= 16 MiB,
 * multiple of 4 KiB, cpus 1..CONFIG_MAX_CPUS), pmem size multiple of 2 MiB, granule a power of
 * two in 4 KiB..2 MiB, files exist. Returns 0 or -1 with err naming the key/path. */
int config_validate(const struct vm_config *c, char *err, size_t errlen);

/* "256M", "1G", "4k", "2MiB", "4096" -> bytes. Returns 0, or -1 on junk, overflow, or empty. */
int config_parse_size(const char *s, uint64_t *out);
/* "on/off/yes/no/true/false/1/0" -> bool. Returns 0 or -1. */
int config_parse_bool(const char *s, bool *out);

#endif
