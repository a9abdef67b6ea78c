/* The I/O layer shared by the `coherency` and `fsx` scenarios: one backing file seen both as the
 * virtio-pmem window and as the virtio-blk disk.
 *
 *   window offset o == file offset o;  disk byte d == file byte d + blk_off  (cmdline blk_off=,
 *   default 0, a multiple of 512; the host's [blk] offset), so window offset o <-> disk byte
 *   o - blk_off, sector (o - blk_off) / 512.
 *
 * Every call names a range by its WINDOW offset; the blk helpers translate. Requests may come
 * from several vCPUs at once: the blk queue and the pmem queue each have a spinlock held only
 * while adding a chain and kicking, or while draining the used ring (vq_try_collect), never
 * while waiting, so two vCPUs' requests can be in the device together. Each vCPU passes its own
 * struct cio_ctx (request header, status, pmem request words live there).
 *
 * Window accesses go through the volatile loops below, never memcpy/memset (rep movs/stos): a
 * store into an absent granule is an MMIO exit that the VMM completes, and one such exit per
 * 8-byte store is what cvmm's fault path is built for. */
#ifndef GUEST_SCENARIOS_FSX_IO_H
#define GUEST_SCENARIOS_FSX_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/virtio_blk.h"
#include "drivers/virtio_pmem.h"
#include "lib/rt.h"

#define PAGE ((uint64_t)4096)

struct cio {
	struct vblk b;
	struct vpmem p;
	volatile uint8_t *win;   /* window base (identity mapped: also its guest-physical address) */
	uint64_t wsize;          /* window bytes */
	uint64_t blk_off;        /* file offset of disk byte 0 */
	uint64_t disk_bytes;     /* capacity * 512 */
	uint32_t unit;           /* blk_size in bytes (>= 512) */
	uint64_t timeout_ns;     /* per request */
	spinlock_t qlock, plock; /* blk queue, pmem queue */
	bool broken;             /* a request never came back: the queue is unusable */
};

extern struct cio cio;

/* Per-vCPU request memory. */
struct cio_ctx {
	struct vblk_req *r;
	struct vblk_dwz *seg;
	uint32_t *preq, *presp;
	uint64_t nblk, npflush; /* requests issued */
};

/* Results besides the status byte and VBLK_R_*: */
#define CIO_R_LATE 0x1fe     /* completed, but only after the per-request timeout (timeout_ms) */
#define CIO_R_NOT_SENT 0x1ff /* not submitted: an earlier request never completed */
const char *cio_status_str(int s);

/* Open virtio-blk (dev=N) and virtio-pmem (pmem_dev=N), read blk_off=; reports with t_check.
 * false if something needed is missing. */
bool cio_open(void);
void cio_ctx_init(struct cio_ctx *c);

/* Is window range [o, o + len) also on the disk? */
static inline bool cio_on_disk(uint64_t o, uint64_t len)
{
	return o >= cio.blk_off && o - cio.blk_off <= cio.disk_bytes &&
	       len <= cio.disk_bytes - (o - cio.blk_off);
}

static inline uint64_t cio_sector(uint64_t o)
{
	return (o - cio.blk_off) / SECTOR;
}

/* blk IN (write=false) or OUT of window range [o, o + len) (o - blk_off and len multiples of
 * 512) from/into buf (guest RAM, or a pointer into the window itself). Returns the status byte
 * or VBLK_R_*. */
int cio_rw(struct cio_ctx *c, bool write, uint64_t o, void *buf, uint32_t len);
/* DISCARD or WRITE_ZEROES of window range [o, o + len). */
int cio_dwz(struct cio_ctx *c, uint32_t type, uint64_t o, uint64_t len, uint32_t flags);
int cio_bflush(struct cio_ctx *c);
/* virtio-pmem FLUSH: returns true if the request completed with ret 0; *why gets a reason. */
bool cio_pflush(struct cio_ctx *c, char *why, size_t whylen);
/* Two requests in flight together from one vCPU (the second ctx's memory for the second):
 * submitted in the order given, one kick, both waited for. Statuses in *s1, *s2. */
void cio_pair(struct cio_ctx *c1, uint32_t t1, uint64_t sec1, const struct vq_buf *d1, unsigned n1,
	      struct cio_ctx *c2, uint32_t t2, uint64_t sec2, const struct vq_buf *d2, unsigned n2,
	      int *s1, int *s2);
/* Low level: submit one request (no wait) / wait for it. */
int cio_submit(struct cio_ctx *c, uint32_t type, uint64_t sector, const struct vq_buf *d,
	       unsigned n, bool kick);
int cio_wait(struct cio_ctx *c);

/* ---- data --------------------------------------------------------------------------- */

/* Bytes [off, off + len) of the lib/pattern.h pattern with seed s, into RAM. Any alignment. */
void gen_bytes(uint8_t *dst, uint64_t off, uint64_t len, uint64_t s);

/* Window stores/loads with a chosen access style: WIN_WORDS aligned 8-byte accesses (bytes at
 * the ends), WIN_UNALIGNED 8-byte accesses at whatever alignment the range starts (they
 * straddle pages and granules), WIN_BYTES byte by byte. */
enum { WIN_WORDS, WIN_UNALIGNED, WIN_BYTES };
void win_write(uint64_t o, const uint8_t *src, uint64_t len, int style);
void win_read(uint8_t *dst, uint64_t o, uint64_t len, int style);
/* The pattern (seed s) straight into the window. */
void win_fill(uint64_t o, uint64_t len, uint64_t s);
/* Index of the first byte of the window range that differs from exp, or len. */
uint64_t win_cmp(uint64_t o, const uint8_t *exp, uint64_t len);
/* Index of the first differing byte of two RAM buffers, or len. */
uint64_t mem_diff(const uint8_t *a, const uint8_t *b, uint64_t len);

static inline uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

#endif
