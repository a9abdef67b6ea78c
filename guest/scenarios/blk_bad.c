/* blk-bad: malformed virtio-blk requests and rings. Each case reports what the device did and
 * passes only if that is an accepted answer; after each case a normal OUT + IN must work (the
 * device is not wedged), after a reset and re-initialisation if the device asked for one.
 *
 *   scenario=blk-bad [strict=1] [peer=qemu] [blk_dev=N] [timeout_ms=2000] [event_idx=0]
 *                    [indirect=0] [qsize=N]
 *
 * Outcomes: OK / IOERR / UNSUPP (the status byte the device wrote, at the place the request's
 * framing puts it: the last byte of the device-writable part, 2.6.4 and 5.2.6), CONSUMED (the
 * head came back in the used ring, no status written, used len 0: the device refused a chain
 * that has no usable status byte and went on), RESET (the device set DEVICE_NEEDS_RESET, 2.1.2
 * "SHOULD set DEVICE_NEEDS_RESET when it enters an error state that a reset is needed"),
 * TIMEOUT (nothing within timeout_ms: always a failure).
 *
 * The spec mostly says what a *driver* MUST NOT do and leaves the device's answer open, so each
 * case has two sets. `strict=1` accepts only cvmm's policy (DESIGN.md: "the request fails with
 * the virtio error status, the VM goes on"): a status where the chain has a usable status byte,
 * CONSUMED where it has none, RESET only where the *ring* itself is broken (then no chain can
 * be trusted). By default RESET is also accepted wherever the chain is malformed, because the
 * spec allows a device to treat that as an error state; QEMU does so for most of them
 * (virtio_error()). Whatever is accepted, some rules are hard in both modes: a device-readable
 * buffer is never written (2.7.5.1 "A device MUST NOT write to a device-readable buffer"), the
 * request is answered (no TIMEOUT), and in strict mode no data reaches the disk from a request
 * that failed.
 *
 *  case                   request                                     strict        default adds
 *  desc-loop              IN: hdr -> data -> status -> hdr ...       CONSUMED      RESET
 *  self-loop              hdr.next = hdr                              CONSUMED      RESET
 *  chain-too-long         indirect table of max queue size + 1        IOERR|CONSUMED RESET
 *  next-out-of-range      hdr.next = queue size + 5                   CONSUMED      RESET
 *  buf-beyond-ram         IN data at the first GiB above RAM          IOERR         RESET
 *  buf-far                IN data at 2^46                             IOERR         RESET
 *  addr-overflow          IN data at 2^64 - 4 KiB, len > 4 KiB        IOERR         RESET
 *  data-in-readable       IN whose data buffer is device-readable     IOERR         RESET
 *  status-readable        IN: hdr(R) data(W) status(R)                CONSUMED      RESET
 *  no-status              OUT: hdr(R) data(R), nothing writable       CONSUMED      RESET
 *  in-no-status           IN: hdr(R) data(W), no status descriptor    IOERR*        RESET
 *  zero-len-status        IN: hdr(R) data(W) status(W, len 0)         IOERR*|CONSUMED RESET
 *  hdr-short              8-byte header                               IOERR         RESET
 *  sector-past-capacity   IN at sector = capacity                     IOERR         -
 *  out-across-capacity    OUT of 2 blocks at capacity - 1 block       IOERR         -
 *  sector-overflow        IN at sector 2^55 (x 512 wraps to 0)        IOERR         -
 *  in-len-not-512         IN of 500 bytes                             IOERR         -
 *  out-len-not-512        OUT of 700 bytes                            IOERR         -
 *  unknown-type           type 0x7f                                   UNSUPP        -
 *  legacy-scsi-type       type 2 (VIRTIO_BLK_T_SCSI_CMD, legacy only) UNSUPP        -
 *  get-lifetime           type 10 without VIRTIO_BLK_F_LIFETIME       UNSUPP        -
 *  discard-past-capacity  DISCARD segment at capacity                 IOERR         -
 *  wz-past-capacity       WRITE_ZEROES segment at capacity            IOERR         -
 *  indirect-bad-len       indirect table length 17                    CONSUMED      RESET
 *  indirect-zero-len      indirect table length 0                     CONSUMED      RESET
 *  indirect-nested        INDIRECT inside an indirect table           IOERR|CONSUMED RESET
 *  indirect-and-next      INDIRECT together with NEXT                 IOERR|CONSUMED RESET
 *  indirect-not-negotiated  INDIRECT without the feature (indirect=0) IOERR|CONSUMED RESET
 *  head-out-of-range      avail ring entry = queue size + 3           RESET         -
 *  avail-idx-jump         avail idx moved by queue size + 1           RESET         -
 *  (* the status lands in the last byte of the data buffer: that is where the framing puts it)
 *
 * QEMU 7.2 (q35, virtio-blk-pci, raw file) answers differently where it does not validate:
 * chain-too-long, buf-beyond-ram, buf-far, addr-overflow (DMA outside RAM goes to "unassigned"
 * memory and succeeds), data-in-readable (reads 0 bytes), indirect-nested and
 * indirect-and-next (flags ignored) and indirect-not-negotiated all complete with OK, and
 * legacy-scsi-type gets IOERR.
 * `peer=qemu` accepts exactly those answers too, so the scenario can check this driver against
 * QEMU; every other malformed chain QEMU answers with DEVICE_NEEDS_RESET (virtio_error()).
 *
 * Spec grounds (virtio 1.2): loops and over-long chains 2.7.5.2 ("Drivers MUST NOT add a
 * descriptor chain longer than 2^32 bytes in total; this implies that loops in the descriptor
 * chain are forbidden"), 2.7.5.3.1 ("MUST NOT create a descriptor chain longer than the Queue
 * Size", "MUST NOT set the VIRTQ_DESC_F_INDIRECT flag within an indirect descriptor", "MUST NOT
 * set both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT", "MUST NOT set the VIRTQ_DESC_F_INDIRECT
 * flag unless the VIRTIO_F_INDIRECT_DESC feature was negotiated"), 2.6.4.1 (the device "MAY
 * have a reasonable limit of descriptors it will allow in a chain"), 2.6.4.2 (device-writable
 * after device-readable), 2.7.8 (used len: bytes written), 5.2.6 (the request layout; "IOERR
 * for device or driver error", "UNSUPP for a request unsupported by device"), 5.2.6.1 ("MUST NOT
 * submit a request which would cause a read or write beyond capacity", "length of data MUST be
 * a multiple of 512 bytes"). */
#include "drivers/virtio_blk.h"
#include "drivers/virtio_devs.h"
#include "lib/pattern.h"
#include "lib/rt.h"
#include "scenarios/scenario.h"

enum { O_OK, O_IOERR, O_UNSUPP, O_CONSUMED, O_RESET, O_TIMEOUT, O_OTHER, O_NR };
#define M(o) (1u << (o))

static const char *const onames[O_NR] = { "OK", "IOERR", "UNSUPP", "CONSUMED", "RESET", "TIMEOUT",
					  "other" };

struct bctx {
	bool no_head;        /* a ring case: no head to wait for, only DEVICE_NEEDS_RESET */
	uint16_t head;
	uint8_t *status;     /* where the status byte is expected (preset VBLK_STATUS_NONE) */
	uint8_t *ro, ro_val; /* a device-readable byte that must not change */
	uint32_t ro_len;
	uint64_t victim;     /* first sector of a block that must keep its data, or ~0 */
	bool skip;
	char skip_why[64];
};

struct bad_case {
	const char *name;
	void (*build)(struct bctx *c);
	unsigned strict, lenient; /* accepted outcomes; lenient is added unless strict=1 */
	unsigned qemu;            /* what QEMU 7.2 does, accepted with peer=qemu (see above) */
};

static struct vblk b;
static uint8_t *buf, *rbuf, *ro_buf;
static struct vblk_hdr *hdr;
static uint8_t *status_byte;
static struct vblk_dwz *seg;
static unsigned unit, blk_bytes;
static uint64_t seed, victim_sector, good_sector;

/* ---- building blocks ------------------------------------------------------------------- */

static uint16_t take(void)
{
	int d = vq_take(&b.q);

	return d < 0 ? 0 : (uint16_t)d; /* the queue is fresh for every case: cannot run out */
}

static void set_hdr(uint32_t type, uint64_t sector)
{
	hdr->type = type;
	hdr->reserved = 0;
	hdr->sector = sector;
	*status_byte = VBLK_STATUS_NONE;
}

/* Submit a direct chain of n descriptors (already filled) headed by ds[0]. */
static void submit(struct bctx *c, const uint16_t *ds, unsigned n)
{
	c->head = ds[0];
	vq_submit_raw(&b.q, ds[0], ds, n);
}

/* hdr(R) -> data(len, W?) -> status(W): the ordinary IN/OUT shape, with a caller-chosen data
 * descriptor (address, length, flags) to break. */
static void three(struct bctx *c, uint32_t type, uint64_t sector, uint64_t daddr, uint32_t dlen,
		  uint16_t dflags)
{
	uint16_t d[3] = { take(), take(), take() };

	set_hdr(type, sector);
	vq_set(&b.q, d[0], (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, d[1]);
	vq_set(&b.q, d[1], daddr, dlen, dflags | VIRTQ_DESC_F_NEXT, d[2]);
	vq_set(&b.q, d[2], (uint64_t)status_byte, 1, VIRTQ_DESC_F_WRITE, 0);
	c->status = status_byte;
	submit(c, d, 3);
}

static struct vq_desc *itable(unsigned n)
{
	struct vq_desc *t = mem_zalloc(16ull * n, 16);

	return t;
}

static void need_indirect(struct bctx *c)
{
	if (!b.q.indirect) {
		c->skip = true;
		snprintf(c->skip_why, sizeof(c->skip_why), "VIRTIO_F_INDIRECT_DESC not negotiated");
	}
}

/* ---- the cases ------------------------------------------------------------------------ */

static void c_desc_loop(struct bctx *c)
{
	uint16_t d[3] = { take(), take(), take() };

	set_hdr(VIRTIO_BLK_T_IN, good_sector);
	vq_set(&b.q, d[0], (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, d[1]);
	vq_set(&b.q, d[1], (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, d[2]);
	vq_set(&b.q, d[2], (uint64_t)status_byte, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, d[0]);
	c->status = status_byte;
	submit(c, d, 3);
}

static void c_self_loop(struct bctx *c)
{
	uint16_t d = take();

	set_hdr(VIRTIO_BLK_T_FLUSH, 0);
	vq_set(&b.q, d, (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, d);
	c->status = status_byte;
	submit(c, &d, 1);
}

/* Longer than the device's maximum queue size, so longer than any Queue Size (2.7.5.3.1); a
 * table only longer than a queue size the driver chose smaller is accepted by some devices. */
static void c_chain_too_long(struct bctx *c)
{
	unsigned n = (b.q.dev_max > b.q.size ? b.q.dev_max : b.q.size) + 1;
	struct vq_desc *t;
	uint16_t d;

	need_indirect(c);
	if (c->skip || !(t = itable(n)))
		return;
	set_hdr(VIRTIO_BLK_T_IN, good_sector);
	t[0] = (struct vq_desc){ (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, 1 };
	for (unsigned i = 1; i < n - 1; i++) /* every data entry is the same 512 bytes */
		t[i] = (struct vq_desc){ (uint64_t)rbuf, SECTOR, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
					 (uint16_t)(i + 1) };
	t[n - 1] = (struct vq_desc){ (uint64_t)status_byte, 1, VIRTQ_DESC_F_WRITE, 0 };
	d = take();
	vq_set(&b.q, d, (uint64_t)t, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
	c->status = status_byte;
	submit(c, &d, 1);
}

static void c_next_out_of_range(struct bctx *c)
{
	uint16_t d = take();

	set_hdr(VIRTIO_BLK_T_FLUSH, 0);
	vq_set(&b.q, d, (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, b.q.size + 5);
	c->status = status_byte;
	submit(c, &d, 1);
}

static uint64_t top_of_ram(void)
{
	const struct mem_range *r;
	int n = mem_ranges(&r);
	uint64_t top = 0;

	for (int i = 0; i < n; i++)
		if (r[i].base + r[i].size > top)
			top = r[i].base + r[i].size;
	return (top + (1ull << 30) - 1) & ~((1ull << 30) - 1); /* next GiB boundary */
}

static void c_buf_beyond_ram(struct bctx *c)
{
	uint64_t a = top_of_ram();

	if (a >= 0xB0000000ull) { /* would reach the PCI hole (ECAM, BARs): not "no memory" */
		c->skip = true;
		snprintf(c->skip_why, sizeof(c->skip_why), "RAM reaches the PCI hole");
		return;
	}
	three(c, VIRTIO_BLK_T_IN, good_sector, a, blk_bytes, VIRTQ_DESC_F_WRITE);
}

static void c_buf_far(struct bctx *c)
{
	three(c, VIRTIO_BLK_T_IN, good_sector, 1ull << 46, blk_bytes, VIRTQ_DESC_F_WRITE);
}

static void c_addr_overflow(struct bctx *c)
{
	three(c, VIRTIO_BLK_T_IN, good_sector, 0xfffffffffffff000ull,
	      blk_bytes > 8192 ? blk_bytes : 8192, VIRTQ_DESC_F_WRITE);
}

static void c_data_in_readable(struct bctx *c)
{
	memset(ro_buf, 0x5c, blk_bytes);
	c->ro = ro_buf;
	c->ro_val = 0x5c;
	c->ro_len = blk_bytes;
	three(c, VIRTIO_BLK_T_IN, good_sector, (uint64_t)ro_buf, blk_bytes, 0);
}

static void c_status_readable(struct bctx *c)
{
	uint16_t d[3] = { take(), take(), take() };

	set_hdr(VIRTIO_BLK_T_IN, good_sector);
	vq_set(&b.q, d[0], (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, d[1]);
	vq_set(&b.q, d[1], (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, d[2]);
	vq_set(&b.q, d[2], (uint64_t)status_byte, 1, 0, 0); /* device-readable */
	c->status = status_byte;
	c->ro = status_byte;
	c->ro_val = VBLK_STATUS_NONE;
	c->ro_len = 1;
	submit(c, d, 3);
}

static void c_no_status(struct bctx *c)
{
	uint16_t d[2] = { take(), take() };

	pattern_fill(ro_buf, victim_sector * SECTOR, blk_bytes, seed ^ 0xbad);
	set_hdr(VIRTIO_BLK_T_OUT, victim_sector);
	vq_set(&b.q, d[0], (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, d[1]);
	vq_set(&b.q, d[1], (uint64_t)ro_buf, blk_bytes, 0, 0);
	c->status = status_byte; /* not part of the chain: stays VBLK_STATUS_NONE */
	c->victim = victim_sector;
	submit(c, d, 2);
}

static void c_in_no_status(struct bctx *c)
{
	uint16_t d[2] = { take(), take() };

	set_hdr(VIRTIO_BLK_T_IN, good_sector);
	memset(rbuf, 0xa5, blk_bytes);
	rbuf[blk_bytes - 1] = VBLK_STATUS_NONE;
	vq_set(&b.q, d[0], (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, d[1]);
	vq_set(&b.q, d[1], (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE, 0);
	c->status = &rbuf[blk_bytes - 1]; /* the framing's status byte: the last writable byte */
	submit(c, d, 2);
}

static void c_zero_len_status(struct bctx *c)
{
	uint16_t d[3] = { take(), take(), take() };

	set_hdr(VIRTIO_BLK_T_IN, good_sector);
	memset(rbuf, 0xa5, blk_bytes);
	rbuf[blk_bytes - 1] = VBLK_STATUS_NONE;
	vq_set(&b.q, d[0], (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, d[1]);
	vq_set(&b.q, d[1], (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, d[2]);
	vq_set(&b.q, d[2], (uint64_t)status_byte, 0, VIRTQ_DESC_F_WRITE, 0);
	c->status = &rbuf[blk_bytes - 1];
	c->ro = status_byte; /* zero bytes offered there: nothing may be written */
	c->ro_val = VBLK_STATUS_NONE;
	c->ro_len = 1;
	submit(c, d, 3);
}

static void c_hdr_short(struct bctx *c)
{
	uint16_t d[3] = { take(), take(), take() };

	set_hdr(VIRTIO_BLK_T_IN, 0);
	vq_set(&b.q, d[0], (uint64_t)hdr, 8, VIRTQ_DESC_F_NEXT, d[1]);
	vq_set(&b.q, d[1], (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, d[2]);
	vq_set(&b.q, d[2], (uint64_t)status_byte, 1, VIRTQ_DESC_F_WRITE, 0);
	c->status = status_byte;
	submit(c, d, 3);
}

static void c_sector_past_capacity(struct bctx *c)
{
	three(c, VIRTIO_BLK_T_IN, b.capacity, (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE);
}

static void c_out_across_capacity(struct bctx *c)
{
	pattern_fill(ro_buf, (b.capacity - unit) * SECTOR, 2 * blk_bytes, seed ^ 0xbad);
	c->victim = b.capacity - unit;
	three(c, VIRTIO_BLK_T_OUT, b.capacity - unit, (uint64_t)ro_buf, 2 * blk_bytes, 0);
}

static void c_sector_overflow(struct bctx *c)
{
	three(c, VIRTIO_BLK_T_IN, 1ull << 55, (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE);
}

static void c_in_len_not_512(struct bctx *c)
{
	three(c, VIRTIO_BLK_T_IN, good_sector, (uint64_t)rbuf, 500, VIRTQ_DESC_F_WRITE);
}

static void c_out_len_not_512(struct bctx *c)
{
	pattern_fill(ro_buf, victim_sector * SECTOR, blk_bytes, seed ^ 0xbad);
	c->victim = victim_sector;
	three(c, VIRTIO_BLK_T_OUT, victim_sector, (uint64_t)ro_buf, 700, 0);
}

static void type_only(struct bctx *c, uint32_t type)
{
	uint16_t d[2] = { take(), take() };

	set_hdr(type, 0);
	vq_set(&b.q, d[0], (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, d[1]);
	vq_set(&b.q, d[1], (uint64_t)status_byte, 1, VIRTQ_DESC_F_WRITE, 0);
	c->status = status_byte;
	submit(c, d, 2);
}

static void c_unknown_type(struct bctx *c) { type_only(c, 0x7f); }
static void c_legacy_scsi(struct bctx *c) { type_only(c, 2); }

static void c_get_lifetime(struct bctx *c)
{
	if (vblk_has(&b, 15)) { /* VIRTIO_BLK_F_LIFETIME: we never accept it, so never negotiated */
		c->skip = true;
		snprintf(c->skip_why, sizeof(c->skip_why), "LIFETIME negotiated");
		return;
	}
	three(c, 10, 0, (uint64_t)rbuf, 8, VIRTQ_DESC_F_WRITE);
}

static void dwz_past(struct bctx *c, unsigned feature, uint32_t type)
{
	if (!vblk_has(&b, feature)) {
		c->skip = true;
		snprintf(c->skip_why, sizeof(c->skip_why), "feature %u not offered", feature);
		return;
	}
	seg->sector = b.capacity;
	seg->num_sectors = unit;
	seg->flags = 0;
	three(c, type, 0, (uint64_t)seg, sizeof(*seg), 0);
}

static void c_discard_past(struct bctx *c) { dwz_past(c, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_T_DISCARD); }
static void c_wz_past(struct bctx *c) { dwz_past(c, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_T_WRITE_ZEROES); }

/* A normal IN in an indirect table, referred to by a top descriptor with `len` and `flags`. */
static void indirect_top(struct bctx *c, uint32_t len, uint16_t flags, bool check_feature)
{
	struct vq_desc *t = itable(4);
	uint16_t d = take();

	if (check_feature)
		need_indirect(c);
	if (c->skip)
		return;
	set_hdr(VIRTIO_BLK_T_IN, good_sector);
	t[0] = (struct vq_desc){ (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, 1 };
	t[1] = (struct vq_desc){ (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2 };
	t[2] = (struct vq_desc){ (uint64_t)status_byte, 1, VIRTQ_DESC_F_WRITE, 0 };
	vq_set(&b.q, d, (uint64_t)t, len, flags, 0);
	c->status = status_byte;
	submit(c, &d, 1);
}

static void c_indirect_bad_len(struct bctx *c) { indirect_top(c, 17, VIRTQ_DESC_F_INDIRECT, true); }
static void c_indirect_zero_len(struct bctx *c) { indirect_top(c, 0, VIRTQ_DESC_F_INDIRECT, true); }

static void c_indirect_nested(struct bctx *c)
{
	struct vq_desc *t = itable(4), *t2 = itable(2);
	uint16_t d = take();

	need_indirect(c);
	if (c->skip)
		return;
	set_hdr(VIRTIO_BLK_T_IN, good_sector);
	t2[0] = (struct vq_desc){ (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE, 0 };
	t[0] = (struct vq_desc){ (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, 1 };
	t[1] = (struct vq_desc){ (uint64_t)t2, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 2 };
	t[2] = (struct vq_desc){ (uint64_t)status_byte, 1, VIRTQ_DESC_F_WRITE, 0 };
	vq_set(&b.q, d, (uint64_t)t, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	c->status = status_byte;
	submit(c, &d, 1);
}

static void c_indirect_and_next(struct bctx *c)
{
	struct vq_desc *t = itable(4);
	uint16_t d[2] = { take(), take() };

	need_indirect(c);
	if (c->skip)
		return;
	set_hdr(VIRTIO_BLK_T_IN, good_sector);
	t[0] = (struct vq_desc){ (uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, 1 };
	t[1] = (struct vq_desc){ (uint64_t)rbuf, blk_bytes, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2 };
	t[2] = (struct vq_desc){ (uint64_t)status_byte, 1, VIRTQ_DESC_F_WRITE, 0 };
	vq_set(&b.q, d[0], (uint64_t)t, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, d[1]);
	vq_set(&b.q, d[1], (uint64_t)status_byte, 1, VIRTQ_DESC_F_WRITE, 0);
	c->status = status_byte;
	submit(c, d, 2);
}

static void c_indirect_not_negotiated(struct bctx *c)
{
	if (b.q.indirect) {
		c->skip = true;
		snprintf(c->skip_why, sizeof(c->skip_why), "INDIRECT_DESC negotiated (run with indirect=0)");
		return;
	}
	indirect_top(c, 3 * 16, VIRTQ_DESC_F_INDIRECT, false);
}

static void c_head_out_of_range(struct bctx *c)
{
	c->no_head = true;
	vq_submit_raw(&b.q, b.q.size + 3, 0, 0);
}

static void c_avail_idx_jump(struct bctx *c)
{
	c->no_head = true;
	vq_bump_avail_raw(&b.q, b.q.size + 1);
}

#define C(n, f, s, l, ...) { n, f, s, l, 0 __VA_OPT__(| __VA_ARGS__) }
#define STRUCTURAL M(O_RESET)
static const struct bad_case cases[] = {
	C("desc-loop", c_desc_loop, M(O_CONSUMED), STRUCTURAL),
	C("self-loop", c_self_loop, M(O_CONSUMED), STRUCTURAL),
	C("chain-too-long", c_chain_too_long, M(O_IOERR) | M(O_CONSUMED), STRUCTURAL, M(O_OK)),
	C("next-out-of-range", c_next_out_of_range, M(O_CONSUMED), STRUCTURAL),
	C("buf-beyond-ram", c_buf_beyond_ram, M(O_IOERR), STRUCTURAL, M(O_OK)),
	C("buf-far", c_buf_far, M(O_IOERR), STRUCTURAL, M(O_OK)),
	C("addr-overflow", c_addr_overflow, M(O_IOERR), STRUCTURAL, M(O_OK)),
	C("data-in-readable", c_data_in_readable, M(O_IOERR), STRUCTURAL, M(O_OK)),
	C("status-readable", c_status_readable, M(O_CONSUMED), STRUCTURAL),
	C("no-status", c_no_status, M(O_CONSUMED), STRUCTURAL),
	C("in-no-status", c_in_no_status, M(O_IOERR), STRUCTURAL),
	C("zero-len-status", c_zero_len_status, M(O_IOERR) | M(O_CONSUMED), STRUCTURAL),
	C("hdr-short", c_hdr_short, M(O_IOERR), STRUCTURAL),
	C("sector-past-capacity", c_sector_past_capacity, M(O_IOERR), 0),
	C("out-across-capacity", c_out_across_capacity, M(O_IOERR), 0),
	C("sector-overflow", c_sector_overflow, M(O_IOERR), 0),
	C("in-len-not-512", c_in_len_not_512, M(O_IOERR), 0),
	C("out-len-not-512", c_out_len_not_512, M(O_IOERR), 0),
	C("unknown-type", c_unknown_type, M(O_UNSUPP), 0),
	C("legacy-scsi-type", c_legacy_scsi, M(O_UNSUPP), 0, M(O_IOERR)),
	C("get-lifetime", c_get_lifetime, M(O_UNSUPP), 0),
	C("discard-past-capacity", c_discard_past, M(O_IOERR), 0),
	C("wz-past-capacity", c_wz_past, M(O_IOERR), 0),
	C("indirect-bad-len", c_indirect_bad_len, M(O_CONSUMED), STRUCTURAL),
	C("indirect-zero-len", c_indirect_zero_len, M(O_CONSUMED), STRUCTURAL),
	C("indirect-nested", c_indirect_nested, M(O_IOERR) | M(O_CONSUMED), STRUCTURAL, M(O_OK)),
	C("indirect-and-next", c_indirect_and_next, M(O_IOERR) | M(O_CONSUMED), STRUCTURAL, M(O_OK)),
	C("indirect-not-negotiated", c_indirect_not_negotiated, M(O_IOERR) | M(O_CONSUMED), STRUCTURAL,
	  M(O_OK)),
	C("head-out-of-range", c_head_out_of_range, M(O_RESET), 0),
	C("avail-idx-jump", c_avail_idx_jump, M(O_RESET), 0),
};

/* ---- running a case -------------------------------------------------------------------- */

static void set_names(unsigned mask, char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (int o = 0; o < O_NR; o++)
		if (mask & M(o))
			len += snprintf(out + len, len < size ? size - len : 0, "%s%s", len ? "|" : "",
					onames[o]);
}

/* Wait for DEVICE_NEEDS_RESET only (ring cases). */
static int wait_reset(void)
{
	uint64_t deadline = deadline_after_ns(b.dev.timeout_ns);

	while (!deadline_passed(deadline)) {
		if (virtio_status(&b.dev) & VIRTIO_S_NEEDS_RESET)
			return O_RESET;
		for (uint64_t t = deadline_after_ns(200000); !deadline_passed(t);)
			cpu_relax();
	}
	return O_TIMEOUT;
}

/* Good OUT then IN of a fresh pattern at good_sector. */
static bool good_request(char *why, size_t size)
{
	static unsigned n;
	uint64_t s = seed + ++n;
	int st;

	pattern_fill(buf, good_sector * SECTOR, blk_bytes, s);
	st = vblk_rw(&b, true, good_sector, buf, blk_bytes);
	if (st != VIRTIO_BLK_S_OK) {
		snprintf(why, size, "good OUT: %s", vblk_status_str(st));
		return false;
	}
	memset(rbuf, 0xa5, blk_bytes);
	st = vblk_rw(&b, false, good_sector, rbuf, blk_bytes);
	if (st != VIRTIO_BLK_S_OK || pattern_check(rbuf, good_sector * SECTOR, blk_bytes, s) != blk_bytes) {
		snprintf(why, size, "good IN: %s, data %s", vblk_status_str(st),
			 st == VIRTIO_BLK_S_OK ? "wrong" : "-");
		return false;
	}
	return true;
}

/* Write the victim block(s) with the reference pattern; read back later to see they stayed. */
static bool victim_prepare(uint64_t sector, unsigned blocks)
{
	pattern_fill(buf, sector * SECTOR, blocks * blk_bytes, seed);
	return vblk_rw(&b, true, sector, buf, blocks * blk_bytes) == VIRTIO_BLK_S_OK;
}

static bool victim_intact(uint64_t sector, unsigned blocks)
{
	memset(rbuf, 0xa5, blocks * blk_bytes);
	return vblk_rw(&b, false, sector, rbuf, blocks * blk_bytes) == VIRTIO_BLK_S_OK &&
	       pattern_check(rbuf, sector * SECTOR, blocks * blk_bytes, seed) == blocks * blk_bytes;
}

static bool run_case(const struct bad_case *bc, bool strict, bool qemu)
{
	struct bctx c = { .victim = ~0ull };
	unsigned accept = bc->strict | (strict ? 0 : bc->lenient) | (qemu ? bc->qemu : 0);
	unsigned victim_blocks = 1;
	char name[96], want[64], why[160] = "", good_why[96];
	uint32_t used = 0;
	int o, r = VQ_DONE;
	bool ok, hard_ok = true, victim_ok = true, reset_seen;
	uint8_t st = VBLK_STATUS_NONE, dstatus;

	/* the victim block is written before the case, so the case itself must not be the first
	 * thing to touch it; out-across-capacity has its own two blocks at the end */
	if (!strcmp(bc->name, "out-across-capacity")) {
		victim_blocks = 1; /* only the last block exists; the second is past the end */
		victim_prepare(b.capacity - unit, 1);
	} else {
		victim_prepare(victim_sector, 1);
	}
	bc->build(&c);
	snprintf(name, sizeof(name), "%s", bc->name);
	if (c.skip) {
		snprintf(name, sizeof(name), "%s # SKIP %s", bc->name, c.skip_why);
		/* the descriptors a skipped case took (if any) are returned by a re-init below */
		vblk_reinit(&b);
		return t_check(true, name, "-");
	}
	if (c.no_head) {
		o = wait_reset();
	} else {
		r = vq_wait(&b.q, c.head, &used);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		st = c.status ? *c.status : VBLK_STATUS_NONE;
		if (r == VQ_NEEDS_RESET)
			o = O_RESET;
		else if (r == VQ_TIMEOUT)
			o = O_TIMEOUT;
		else if (st == VIRTIO_BLK_S_OK)
			o = O_OK;
		else if (st == VIRTIO_BLK_S_IOERR)
			o = O_IOERR;
		else if (st == VIRTIO_BLK_S_UNSUPP)
			o = O_UNSUPP;
		else if (st == VBLK_STATUS_NONE && (used == 0 || !strict))
			o = O_CONSUMED;
		else
			o = O_OTHER;
	}
	dstatus = virtio_status(&b.dev);
	reset_seen = dstatus & VIRTIO_S_NEEDS_RESET;
	if (reset_seen && o != O_TIMEOUT)
		o = O_RESET; /* answered, but the device also wants a reset: that is what counts */
	if (c.ro) {
		for (uint32_t i = 0; i < c.ro_len; i++)
			if (c.ro[i] != c.ro_val) {
				hard_ok = false;
				snprintf(why, sizeof(why), "device wrote byte %u of a device-readable buffer "
					 "(0x%x, was 0x%x); ", i, c.ro[i], c.ro_val);
				break;
			}
	}
	set_names(accept, want, sizeof(want));
	/* recover before checking the disk */
	if (o == O_RESET || o == O_TIMEOUT || vq_outstanding(&b.q)) {
		if (vblk_reinit(&b) < 0) {
			t_check(false, name, "re-initialisation after %s failed", onames[o]);
			return false;
		}
	}
	if (c.victim != ~0ull) {
		victim_ok = victim_intact(c.victim, victim_blocks);
		if (!victim_ok)
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
				 "data reached the disk at sector %lu; ", c.victim);
	}
	ok = (accept & M(o)) && hard_ok && (victim_ok || !strict);
	snprintf(name, sizeof(name), "%s: %s", bc->name, onames[o]);
	t_check(ok, name, "%sgot %s (status byte 0x%x, used len %u, device_status 0x%x), expected %s",
		why, onames[o], st, used, dstatus, want);
	if (ok && !(bc->strict & M(o)))
		t_diag("  %s: %s is accepted only %s", bc->name, onames[o],
		       (bc->lenient & M(o)) ? "outside strict mode" : "with peer=qemu");
	if (!victim_ok && !strict)
		t_diag("  %s: data reached the disk (a failure with strict=1)", bc->name);
	snprintf(name, sizeof(name), "  ... then a normal request works");
	return t_check(good_request(good_why, sizeof(good_why)), name, "%s", good_why) && ok;
}

static void blk_bad(void)
{
	bool strict = arg_u64("strict", 0), qemu = !strcmp(arg_str("peer", ""), "qemu");
	unsigned failed = 0;

	if (!t_check(vblk_open(&b, vdev_blk_arg()) == 0, "virtio-blk found and initialised",
		     "see above"))
		return;
	vblk_describe(&b);
	if (!t_check(!vblk_has(&b, VIRTIO_BLK_F_RO), "the disk is writable", "VIRTIO_BLK_F_RO offered"))
		return;
	unit = b.blk_size >= SECTOR && !(b.blk_size & (b.blk_size - 1)) ? b.blk_size / SECTOR : 1;
	blk_bytes = unit * SECTOR;
	buf = mem_alloc(4 * blk_bytes, 4096);
	rbuf = mem_alloc(4 * blk_bytes, 4096);
	ro_buf = mem_alloc(4 * blk_bytes, 4096);
	hdr = mem_zalloc(64, 64);
	status_byte = mem_zalloc(64, 64);
	seg = mem_zalloc(64, 64);
	if (!t_check(buf && rbuf && ro_buf && hdr && status_byte && seg && b.capacity >= 64 * unit,
		     "setup", "out of memory, or a disk under 64 blocks"))
		return;
	seed = rdtsc() | 1;
	good_sector = (b.capacity / 4) / unit * unit;
	victim_sector = good_sector + 8 * unit;
	t_diag("blk-bad: %s mode%s; queue %u, blocks of %u bytes; good requests at sector %lu",
	       strict ? "strict (cvmm policy)" : "default", qemu ? " + QEMU's answers (peer=qemu)" : "",
	       b.q.size, blk_bytes, good_sector);
	{
		char why[96];

		if (!t_check(good_request(why, sizeof(why)), "a normal request works first", "%s", why))
			return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		failed += !run_case(&cases[i], strict, qemu);
	t_diag("blk-bad: %u of %lu cases not answered as expected", failed,
	       sizeof(cases) / sizeof(cases[0]));
}

const struct scenario scenario_blk_bad = { .name = "blk-bad", .run = blk_bad };
