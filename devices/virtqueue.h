/* Split virtqueue, device side (virtio 1.2 section 2.7), over struct guest_mem.
 *
 * Pure code: no KVM, no threads, no I/O; unit tests and fuzz targets drive it over malloc'd
 * "guest RAM". The guest is the adversary and writes the rings concurrently with us, so:
 *  - every ring area is checked to lie wholly in guest RAM when the queue is set up, and its
 *    host pointers are cached (guest RAM never moves while the VM exists);
 *  - every descriptor is copied out of guest memory once, then validated, then used (no
 *    double fetch: the guest may change it between two reads);
 *  - every buffer is translated with guest_mem_ptr (wholly inside one RAM region, overflow
 *    safe) before it becomes an iovec; a buffer outside RAM may instead be accepted by the
 *    translation hook of the queue's DMA space (struct virtq_dma: device DMA into the
 *    virtio-pmem window, whose memory is the page cache's), which must take it wholly inside
 *    its region too; a buffer straddling RAM and that region, or partly outside both, is
 *    refused;
 *  - work per request is bounded (chain length limit), so a looped chain cannot hang us.
 *
 * Two failure classes:
 *  - a bad *chain* (bad next index, loop, bad indirect table, buffer outside RAM, wrong
 *    direction order...) is one bad request: virtq_pop returns it with req->error set; the
 *    device completes it (with an error status if it can) and the queue goes on;
 *  - a bad *ring* (avail idx moved by more than the queue size, a head index out of range)
 *    means we cannot know which chains exist: the queue is broken; the transport sets
 *    DEVICE_NEEDS_RESET (2.1.1) and processes nothing more until the driver resets.
 *
 * Memory ordering (2.7.13, 2.7.7, 2.7.10): avail->idx is read with acquire before the ring
 * entries and descriptors it publishes; used entries are written before used->idx is
 * published with release; a full fence separates publishing used->idx from reading the
 * driver's suppression fields (used_event / flags), and writing avail_event from re-reading
 * avail->idx, so that neither side can miss the other's notification. */
#ifndef CVMM_VIRTQUEUE_H
#define CVMM_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/guest_mem.h"
#include "lib/iov.h"

#define VIRTQ_DESC_F_NEXT      1
#define VIRTQ_DESC_F_WRITE     2
#define VIRTQ_DESC_F_INDIRECT  4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1
#define VIRTQ_MAX_SIZE 32768   /* 2.7: the maximum Queue Size */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];       /* [size], then used_event */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* [size], then avail_event */
};

/* Why a chain was refused (req->error). */
enum vq_error {
	VQ_OK = 0,
	VQ_E_NEXT_RANGE,     /* next index >= queue size (or >= indirect table length) */
	VQ_E_CHAIN_LONG,     /* more descriptors than allowed: a loop, or simply too long */
	VQ_E_INDIRECT_FEAT,  /* INDIRECT used but VIRTIO_F_INDIRECT_DESC not negotiated */
	VQ_E_INDIRECT_NEXT,  /* INDIRECT together with NEXT */
	VQ_E_INDIRECT_LEN,   /* table length 0, not a multiple of 16, or above the limit */
	VQ_E_INDIRECT_NEST,  /* INDIRECT inside an indirect table */
	VQ_E_INDIRECT_ADDR,  /* table not wholly inside guest RAM */
	VQ_E_BUF_ADDR,       /* a buffer not wholly inside guest RAM (or overflowing) */
	VQ_E_ORDER,          /* a device-readable buffer after a device-writable one */
	VQ_E_TOO_BIG,        /* more than 4 GiB in one direction (2.7.5: chains < 2^32 bytes) */
	VQ_E_NR
};

const char *vq_error_str(int e);

/* One request: the chain's buffers as host iovecs, device-readable ones first. */
struct vq_req {
	uint16_t head;       /* chain head: what goes back in the used ring */
	unsigned nseg;       /* segments in iov[] / gpa[] (zero-length buffers are left out) */
	unsigned nout;       /* the first nout segments are device-readable, the rest writable */
	uint64_t out_len;    /* bytes in the readable segments */
	uint64_t in_len;     /* bytes in the writable segments */
	unsigned ndesc;      /* descriptors walked (indirect table entries included) */
	struct iovec *iov;   /* [cap] validated host pointers */
	uint64_t *gpa;       /* [cap] their guest-physical addresses (for mm/ DMA tracking) */
	struct iovec *view;  /* [cap] scratch for devices slicing the streams (see iov_slice) */
	uint64_t *view_gpa;  /* [cap] */
	unsigned cap;
	/* Set when the chain is bad (VQ_E_*). The chain is still consumed: push it back. */
	int error;
	/* On error: the last byte of the chain's final descriptor, if the chain could be walked
	 * to its end and that descriptor is device-writable, >= 1 byte and inside RAM: where a
	 * device may still put an error status. NULL otherwise. */
	uint8_t *err_status;
	char why[128];       /* on error: what exactly was wrong (for the log) */
	/* Segments the translation hook produced (not guest RAM): the device must make them
	 * safe before touching them (the pmem window: pin, see devices/blk.c). 0 = all RAM. */
	unsigned ntranslated;
};

/* A buffer the walker found outside guest RAM: return the host pointer for the whole of
 * [gpa, gpa+len) if it lies wholly inside the region the hook serves, else NULL. `writable`:
 * the device will write it. Called on the queue's I/O thread; must not touch the memory (the
 * device pins it before use) and must be overflow-safe (len >= 1). */
typedef void *(*virtq_translate_fn)(void *ctx, uint64_t gpa, uint64_t len, bool writable);

/* What a queue's buffers may address (cloud-hypervisor passes its queues an AccessPlatform the
 * same way): guest RAM, and optionally a region served by `translate` (NULL: RAM only). Given
 * explicitly to each queue at setup, so only a device that pins window pages before touching
 * them (virtio-blk, devices/blk.c) is ever handed a pointer into the page cache. */
struct virtq_dma {
	const struct guest_mem *mem;
	virtq_translate_fn translate;
	void *ctx;
};

struct virtq {
	uint16_t size;          /* power of two, 1..VIRTQ_MAX_SIZE */
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	const struct guest_mem *mem;
	unsigned max_chain;     /* descriptors allowed per chain, indirect entries included:
				 * min(device limit, queue size) */
	bool event_idx;         /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;          /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint16_t last_avail;    /* next avail ring slot to consume */
	uint16_t used_idx;      /* our copy of used->idx; never read back from guest memory */
	uint16_t signalled_used;
	bool signalled_valid;
	bool broken;
	char why[128];          /* when broken: why */
	uint64_t popped, bad_chains;
	virtq_translate_fn translate; /* from the queue's struct virtq_dma */
	void *translate_ctx;
};

/* Check and map a queue the driver enabled: size a power of two <= VIRTQ_MAX_SIZE, areas
 * aligned (desc 16, avail 2, used 4: table in 2.7) and wholly inside guest RAM (dma->mem)
 * with their event fields; buffers may be in dma->mem or, through dma->translate, its window.
 * Chains may have at most min(max_chain, size) descriptors, indirect entries included
 * (0 = size). Returns 0, or -1 with a reason. */
int virtq_setup(struct virtq *q, const struct virtq_dma *dma, uint16_t size, uint64_t desc_gpa,
		uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect,
		unsigned max_chain, char *err, size_t errlen);

/* Allocate a request able to hold `cap` segments. Returns 0 or -1. */
int vq_req_init(struct vq_req *r, unsigned cap);
void vq_req_free(struct vq_req *r);

enum { VQ_POP_BROKEN = -1, VQ_POP_EMPTY = 0, VQ_POP_OK = 1 };

/* Take the next available chain. VQ_POP_OK: *r describes it (check r->error); the caller must
 * virtq_push(r->head, ...) it. VQ_POP_EMPTY: nothing new. VQ_POP_BROKEN: the ring is broken
 * (q->broken, q->why); nothing more will be popped. */
int virtq_pop(struct virtq *q, struct vq_req *r);

/* Return a chain to the driver with `len` bytes written into it; publishes used->idx. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);

/* After pushes: does the driver want a used-buffer notification (2.7.7, 2.7.7.2)? */
bool virtq_should_notify(struct virtq *q);

/* Available-buffer notification suppression (2.7.10): off while the device is busy anyway;
 * enable returns true if more buffers arrived meanwhile (process them before sleeping). */
void virtq_disable_notify(struct virtq *q);
bool virtq_enable_notify(struct virtq *q);

/* The 2.7.7.2 test: would moving used idx from old to new_idx pass event_idx? */
static inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

#endif
