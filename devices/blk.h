/* virtio-blk device model (virtio 1.2, 5.2), transport-independent (see devices/virtio.h).
 *
 * Requests are parsed from the chain's two byte streams (2.7.4: the device makes no
 * assumption about how the driver cut them into descriptors): the device-readable stream is
 * a 16-byte header then (OUT) data or (DISCARD, WRITE_ZEROES) 16-byte segments; the
 * device-writable stream is (IN) data or (GET_ID) the id, then one status byte, the stream's
 * last byte. Everything the guest wrote is checked before any I/O; a request that fails a
 * check completes with VIRTIO_BLK_S_IOERR (or UNSUPP where 5.2.6.2 says so) and one
 * rate-limited log line, and the queue goes on.
 *
 * Execution goes through struct blk_backend: reads and writes over iovecs at a byte offset
 * of the disk, flush, discard and write-zeroes. blk_file.c implements it on a file or block
 * device window (O_DIRECT by default); blk_pcache.c implements it on the host page cache
 * (mm/) when the disk is the very file behind the virtio-pmem window, so the two views stay
 * coherent (DESIGN.md "direct read", "direct write", "break layouts + punch").
 *
 * Buffers in the pmem window (device DMA into DAX memory): the queue's translation hook
 * (virtq_set_translate) lets the walker accept them, pointing into the page cache's memory.
 * Such memory may be touched only under a pin (mm/pcache.h pcache_pin_ranges): blk_handle
 * pins every window segment of a request, all or nothing, BEFORE anything else (header
 * included) and before the backend takes any page lock (pins before locks, seed 003), and
 * unpins after the status byte is written, marking the pages the device wrote DIRTY (KVM does
 * not log VMM stores). DISCARD / WRITE_ZEROES copy their segments out and drop every pin
 * before breaking layouts: a break waits for the range's pins to drain, so holding one of
 * our own there would never end. A request whose window pin fails completes with IOERR.
 *
 * blk_size is 4096: the guest's logical block size becomes 4 KiB (Linux uses blk_size as
 * its logical block size), so a guest never issues sub-4K I/O, which (a) is what an O_DIRECT
 * backing file on a 4K-sector host disk accepts without read-modify-write, and (b) matches
 * the 4 KiB pages of the host page cache (mm/), where a sub-page direct write means an RMW
 * under a page lock. The protocol unit stays 512 bytes (5.2.4: blk_size "does not affect the
 * units used in the protocol"), so a driver that ignores blk_size still works: the backend
 * bounces unaligned requests. The capacity is a whole number of 4 KiB blocks.
 *
 * Fault injection (devices/fault.h, issue 15): `faults` holds the device's rules, consulted
 * for every READ, WRITE, FLUSH, DISCARD and WRITE_ZEROES after the request passed its checks
 * and before the backend sees it (a request the guest got wrong fails as it would anyway;
 * zero-length reads and writes never reach the rules). Rule ranges are byte offsets of the
 * disk (sector * 512); a DISCARD / WRITE_ZEROES matches when one of its segments overlaps.
 *   ioerr   status IOERR, the backend is not called: the disk is unchanged
 *   unsupp  status UNSUPP, likewise
 *   delay   the worker sleeps, then the request runs normally (only this request waits:
 *           the others run on the other workers)
 *   torn:K  a write: its first K sectors go through the backend, then status IOERR (K at
 *           least the write's sectors: all of it is written, and still IOERR, as when a
 *           disk loses the completion); nothing is written past them
 * Injected faults are counted in the stats (faults_injected; each rule's matched and fired)
 * and logged (rate-limited) as they fire; they count as ioerr / unsupp too. */
#ifndef CVMM_BLK_H
#define CVMM_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

#include "devices/fault.h"
#include "devices/virtio.h"
#include "devices/virtqueue.h"

/* Feature bits (5.2.3) */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_GEOMETRY     4
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_TOPOLOGY     10
#define VIRTIO_BLK_F_CONFIG_WCE   11
#define VIRTIO_BLK_F_MQ           12
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status (5.2.6) */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_SECURE_ERASE 14
#define VIRTIO_BLK_S_OK           0
#define VIRTIO_BLK_S_IOERR        1
#define VIRTIO_BLK_S_UNSUPP       2
#define VIRTIO_BLK_WZ_UNMAP       1  /* flags.unmap of a discard/write-zeroes segment */
#define VIRTIO_BLK_ID_BYTES       20

#define BLK_SECTOR        512u
#define BLK_BLOCK_SIZE    4096u
#define BLK_QUEUE_SIZE    256
#define BLK_SEG_MAX       (BLK_QUEUE_SIZE - 2)  /* data descriptors besides header and status */
#define BLK_SIZE_MAX      (1u << 20)            /* per-segment bytes we advertise */
#define BLK_MAX_DWZ_SECTORS (256u << 11)        /* 256 MiB per discard/write-zeroes segment */
#define BLK_MAX_DWZ_SEG   32

struct virtio_blk_config {
	uint64_t capacity;             /* 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	struct {
		uint16_t cylinders;
		uint8_t heads;
		uint8_t sectors;
	} geometry;
	uint32_t blk_size;
	struct {
		uint8_t physical_block_exp;
		uint8_t alignment_offset;
		uint16_t min_io_size;
		uint32_t opt_io_size;
	} topology;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
	uint32_t max_secure_erase_sectors;
	uint32_t max_secure_erase_seg;
	uint32_t secure_erase_sector_alignment;
} __attribute__((packed));

struct virtio_blk_outhdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct virtio_blk_dwz_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* ---- the backend: where request execution goes ---------------------------------------- */

struct blk_backend;

struct blk_backend_ops {
	/* Transfer exactly the iovecs' bytes (len in total) at byte offset off of the disk.
	 * gpa[i] is the guest-physical address of iov[i] (NULL for host-internal buffers).
	 * off and len are multiples of 512 and inside the disk. Return 0 or -errno. */
	int (*read)(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		    unsigned n, uint64_t off, uint64_t len);
	int (*write)(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		     unsigned n, uint64_t off, uint64_t len);
	/* Every write that completed before this call is durable when it returns 0. */
	int (*flush)(struct blk_backend *be);
	/* May deallocate; contents afterwards are unspecified. */
	int (*discard)(struct blk_backend *be, uint64_t off, uint64_t len);
	/* Reads of the range return zeroes afterwards; unmap allows deallocation. */
	int (*write_zeroes)(struct blk_backend *be, uint64_t off, uint64_t len, bool unmap);
	void (*destroy)(struct blk_backend *be);
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	uint64_t size;       /* bytes; a multiple of BLK_BLOCK_SIZE */
	bool readonly;
	uint64_t serial;     /* for the GET_ID string (the backing file's inode) */
};

struct blk_file_opts {
	const char *path;
	uint64_t offset;     /* window start in the file: a multiple of 4096 */
	uint64_t size;       /* 0 = to the end of the file */
	bool readonly;
	bool direct;         /* O_DIRECT */
	uint32_t align;      /* tests: force this O_DIRECT alignment (0 = ask the kernel) */
};

/* Open a file or block device window as a backend. Errors name the path and what to do. */
int blk_file_open(const struct blk_file_opts *o, struct blk_backend **out, char *err,
		  size_t errlen);

/* The page-cache backend (blk_pcache.c): the disk is [offset, offset + size) of the file the
 * page cache `pc` holds (the virtio-pmem window's file). Disk byte d is file byte offset + d
 * (offset: a multiple of 4096; the guest is told it, e.g. blk_off= on its command line, to
 * find the window's data on the disk). size 0 = to the end of the file. IN = direct read
 * (writeback first), OUT = direct write (invalidate around it), FLUSH = pcache_flush with the
 * disk's own errseq cursor, DISCARD / WRITE_ZEROES = break layouts + punch / zero. Takes a
 * reference on pc. */
struct pcache;
struct blk_pcache_opts {
	struct pcache *pc;
	uint64_t offset;
	uint64_t size;
	bool readonly;
};
int blk_pcache_open(const struct blk_pcache_opts *o, struct blk_backend **out, char *err,
		    size_t errlen);

/* ---- DMA into the pmem window ------------------------------------------------------------- */

/* How blk_handle makes translated segments (vq_req.ntranslated) safe to touch. */
struct blk_dma_ops {
	/* Pin every one of the n segments that lies in the window (the first nout are read by
	 * the device, the others written: fault them in with write intent), all or nothing.
	 * Segments elsewhere are ignored. May wait (a break in progress). 0 or -errno. */
	int (*pin)(void *ctx, const struct iovec *iov, const uint64_t *gpa, unsigned n,
		   unsigned nout);
	/* Drop those pins; wrote: the device wrote the writable ones (they become DIRTY). */
	void (*unpin)(void *ctx, const struct iovec *iov, const uint64_t *gpa, unsigned n,
		      unsigned nout, bool wrote);
	void (*destroy)(void *ctx);
};

/* The window glue (blk_pcache.c): translate hook + pins on `pc`, for the window at
 * guest-physical [gpa_base, gpa_base + pcache_size(pc)). *dma_out is RAM (`ram`) plus the
 * window's translation: give it to the device's transport so the device's queues accept
 * window buffers (and only that device's). Install the pins with blk_set_dma. */
int blk_dma_window_create(struct pcache *pc, uint64_t gpa_base, const struct guest_mem *ram,
			  void **ctx_out, struct virtq_dma *dma_out, char *err, size_t errlen);
/* The same for several windows (a VM with several [pmem] devices): a request may point into
 * any of them. Windows onto one file share its cache; its ranges are pinned in one call. */
#define BLK_DMA_WINDOWS_MAX 8
struct blk_dma_window {
	struct pcache *pc;
	uint64_t gpa_base;
};
int blk_dma_windows_create(const struct blk_dma_window *win, unsigned n,
			   const struct guest_mem *ram, void **ctx_out, struct virtq_dma *dma_out,
			   char *err, size_t errlen);
extern const struct blk_dma_ops blk_dma_window_ops;

/* ---- the device ------------------------------------------------------------------------ */

struct blk_stats {
	uint64_t requests, read_bytes, write_bytes, flushes, discards, write_zeroes, get_id;
	uint64_t ioerr, unsupp, dropped; /* dropped: no status byte to write */
	uint64_t dma_requests;  /* requests with buffers in the pmem window (pinned) */
	uint64_t dma_pin_errors;
	uint64_t flushes_ignored; /* FLUSHes acknowledged without syncing (flush_ignore) */
};

struct blk_dev {
	struct blk_backend *be;
	struct ratelimit rl;
	uint64_t capacity;       /* sectors */
	uint64_t offered;        /* device feature bits */
	uint64_t features;       /* negotiated (offered until the driver says otherwise) */
	struct virtio_blk_config cfg;
	char id[VIRTIO_BLK_ID_BYTES];
	struct blk_stats st;     /* updated atomically */
	const struct blk_dma_ops *dma; /* NULL: no window (translated segments cannot occur) */
	void *dma_ctx;                 /* owned: dma->destroy at blk_destroy */
	const char *backend_name;      /* "file" or "pcache" (stats) */
	/* Requests run at once (devices/vq_exec.h); BLK_WORKERS_DEFAULT unless set before the
	 * transport is created ([blk] workers). 1 = one at a time on the queue's I/O thread. */
	unsigned workers;
	/* [blk] flush = ignore: FLUSH completes OK at once, nothing is synced (throwaway CI
	 * guests; the disk is not crash-safe, the stats and a start-up line say so). */
	bool flush_ignore;
	/* Injected faults (fault_add_text(&b->faults, ...)); thread-safe, any time. */
	struct fault_set faults;
};

#define BLK_WORKERS_DEFAULT 16
#define BLK_WORKERS_MAX     64

/* Takes ownership of be. */
int blk_init(struct blk_dev *b, struct blk_backend *be, char *err, size_t errlen);
void blk_destroy(struct blk_dev *b);
/* Take window DMA glue (ownership of ctx passes to b). */
void blk_set_dma(struct blk_dev *b, const struct blk_dma_ops *ops, void *ctx);
/* {"backend": "pcache", "requests": N, ...} (no newline). */
void blk_stats_json(struct blk_dev *b, FILE *f);

/* Parse and execute one request (the virtio_dev_ops handler). Returns the used length. */
uint32_t blk_handle(void *dev, unsigned q, struct vq_req *req);

extern const struct virtio_dev_ops blk_virtio_ops;

#endif
