/* blk: every virtio-blk request type, with data checks (virtio 1.2, 5.2).
 *
 *   scenario=blk [ro=1] [blk_dev=N] [discard_zeroes=0] [subblock=1] [seed=N]
 *                [event_idx=0] [indirect=0] [qsize=N] [timeout_ms=2000]
 *
 * Writable disk (default): OUT then IN of a pattern at the first, a middle and the last
 * blocks; data split over several descriptors of odd sizes; a header split in two and the
 * status sharing a descriptor with the data (2.6.4: the device must not assume a framing);
 * 512-byte I/O inside a larger blk_size block; indirect tables; a batch of requests in flight at once and more requests than the ring has
 * slots (index wrap-around); FLUSH; GET_ID (printed); DISCARD then IN reads zeros (unless
 * discard_zeroes=0: the spec lets a device return anything after a discard, 5.2.6.1; cvmm
 * punches holes, QEMU does with discard=unmap); DISCARD with the unmap flag -> UNSUPP and
 * WRITE_ZEROES with an unknown flag -> UNSUPP (5.2.6.2 MUSTs); WRITE_ZEROES with and without
 * unmap then IN reads zeros (5.2.6.2: MUST read zeros); reads past capacity -> IOERR; the used
 * length of every request equals the bytes the device wrote (2.7.8: data + status byte).
 *
 * ro=1 (the host attached the disk read-only): the device must offer VIRTIO_BLK_F_RO, reads
 * work, OUT -> IOERR and the data stays (5.2.6.2: "MUST set the status byte to IOERR for a
 * write request if VIRTIO_BLK_F_RO is offered, and MUST NOT write any data"), WRITE_ZEROES and
 * DISCARD (writes too) -> IOERR or UNSUPP, FLUSH and GET_ID work.
 *
 * Data written is the lib/pattern.h pattern with a per-run seed over the disk byte offset
 * (printed), so stale data from an earlier run cannot pass for fresh. */
#include "drivers/virtio_blk.h"
#include "drivers/virtio_devs.h"
#include "lib/pattern.h"
#include "lib/rt.h"
#include "scenarios/scenario.h"

#define BUF_BYTES (256u << 10)
#define BATCH 32

static struct vblk b;
static uint8_t *wbuf, *rbuf;
static uint64_t seed;
static unsigned unit; /* sectors per logical block: requests are aligned to it */
static unsigned used_len_bad;
static char used_len_why[160];

static void note_used_len(const char *what, uint32_t got, uint32_t want)
{
	if (got != want && !used_len_bad++)
		snprintf(used_len_why, sizeof(used_len_why), "%s: used len %u, expected %u", what, got,
			 want);
}

/* A request that did not complete leaves the queue unusable: reset and set it up again. */
static void recover(int r)
{
	if (r == VQ_DONE || r == VQ_FULL)
		return;
	t_diag("blk: %s; resetting the device", vq_result_str(r));
	if (vblk_reinit(&b) < 0)
		t_diag("blk: re-initialisation failed");
}

/* Run one request; returns the status byte or a VBLK_R_* code. */
static int req(uint32_t type, uint64_t sector, const struct vq_buf *d, unsigned n, bool indirect,
	       const char *what)
{
	uint8_t status;
	uint32_t used, want = 1;
	int r = vblk_do(&b, type, sector, d, n, indirect, &status, &used);

	if (r == VQ_FULL)
		return VBLK_R_QUEUE_FULL;
	if (r != VQ_DONE) {
		recover(r);
		return r == VQ_NEEDS_RESET ? VBLK_R_NEEDS_RESET : VBLK_R_TIMEOUT;
	}
	for (unsigned i = 0; i < n; i++)
		if (d[i].write)
			want += d[i].len;
	if (status == VIRTIO_BLK_S_OK)
		note_used_len(what, used, want);
	return status;
}

static int rw1(bool write, uint64_t sector, void *buf, uint32_t len, const char *what)
{
	struct vq_buf d = { (uint64_t)buf, len, !write };

	return req(write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector, &d, 1, false, what);
}

static void poison(void *p, size_t len)
{
	memset(p, 0xa5, len);
}

/* Write a pattern at sector, read it back into a poisoned buffer, compare. */
static void write_read(const char *name, uint64_t sector, uint32_t len)
{
	size_t bad;
	int s;

	pattern_fill(wbuf, sector * SECTOR, len, seed);
	s = rw1(true, sector, wbuf, len, name);
	if (s != VIRTIO_BLK_S_OK) {
		t_check(false, name, "OUT sector %lu, %u bytes: %s", sector, len, vblk_status_str(s));
		return;
	}
	poison(rbuf, len);
	s = rw1(false, sector, rbuf, len, name);
	bad = s == VIRTIO_BLK_S_OK ? pattern_check(rbuf, sector * SECTOR, len, seed) : 0;
	if (s != VIRTIO_BLK_S_OK)
		t_check(false, name, "IN sector %lu: %s", sector, vblk_status_str(s));
	else
		t_check(bad == len, name, "IN sector %lu: byte %lu of %u differs (0x%x)", sector,
			(uint64_t)bad, len, bad < len ? rbuf[bad] : 0);
}

/* Data split over descriptors of the given sizes (sum = a multiple of the block size). */
static void split_rw(const char *name, uint64_t sector, const uint32_t *sizes, unsigned n,
		     bool indirect)
{
	struct vq_buf d[16];
	uint32_t len = 0, off = 0;
	size_t bad;
	int s;

	if (n + 2 > b.q.size && !b.q.indirect) {
		char skip[96];

		snprintf(skip, sizeof(skip), "%s # SKIP %u descriptors > queue size %u", name, n + 2,
			 b.q.size);
		t_check(true, skip, "-");
		return;
	}
	for (unsigned i = 0; i < n; i++)
		len += sizes[i];
	pattern_fill(wbuf, sector * SECTOR, len, seed);
	for (unsigned i = 0; i < n; off += sizes[i], i++)
		d[i] = (struct vq_buf){ (uint64_t)wbuf + off, sizes[i], false };
	s = req(VIRTIO_BLK_T_OUT, sector, d, n, indirect, name);
	if (s != VIRTIO_BLK_S_OK) {
		t_check(false, name, "OUT in %u pieces: %s", n, vblk_status_str(s));
		return;
	}
	/* read back with the pieces in reverse order of size, into a poisoned buffer */
	poison(rbuf, len);
	off = 0;
	for (unsigned i = 0; i < n; off += sizes[n - 1 - i], i++)
		d[i] = (struct vq_buf){ (uint64_t)rbuf + off, sizes[n - 1 - i], true };
	s = req(VIRTIO_BLK_T_IN, sector, d, n, indirect, name);
	bad = s == VIRTIO_BLK_S_OK ? pattern_check(rbuf, sector * SECTOR, len, seed) : 0;
	t_check(s == VIRTIO_BLK_S_OK && bad == len, name, "IN in %u pieces: %s, first bad byte %lu",
		n, vblk_status_str(s), (uint64_t)bad);
}

/* Header in two descriptors (8 + 8 bytes); IN data and status in one descriptor. */
static void any_layout(uint64_t sector)
{
	const char *name = "any layout: split header, data+status in one descriptor (2.6.4)";
	struct vblk_hdr *h = mem_zalloc(sizeof(*h), 64);
	uint32_t len = unit * SECTOR, used = 0;
	struct vq_buf d[3];
	size_t bad;
	uint16_t head;
	int r, s;

	pattern_fill(wbuf, sector * SECTOR, len, seed);
	s = rw1(true, sector, wbuf, len, name);
	if (s != VIRTIO_BLK_S_OK) {
		t_check(false, name, "setup OUT: %s", vblk_status_str(s));
		return;
	}
	h->type = VIRTIO_BLK_T_IN;
	h->sector = sector;
	poison(rbuf, len + 1);
	d[0] = (struct vq_buf){ (uint64_t)h, 8, false };
	d[1] = (struct vq_buf){ (uint64_t)h + 8, 8, false };
	d[2] = (struct vq_buf){ (uint64_t)rbuf, len + 1, true };
	if (vq_add_chain(&b.q, d, 3, false, &head) < 0)
		return;
	vq_kick(&b.q);
	r = vq_wait(&b.q, head, &used);
	recover(r);
	bad = pattern_check(rbuf, sector * SECTOR, len, seed);
	t_check(r == VQ_DONE && rbuf[len] == VIRTIO_BLK_S_OK && bad == len, name,
		"%s, status byte 0x%x, first bad data byte %lu", vq_result_str(r), rbuf[len],
		(uint64_t)bad);
	if (r == VQ_DONE)
		note_used_len("any-layout IN", used, len + 1);
}

/* 512 bytes inside a larger logical block. The protocol's unit is always 512 bytes (5.2.5:
 * blk_size "does not affect the units used in the protocol"), but a device whose logical block
 * is larger may refuse (QEMU with logical_block_size=4096 answers IOERR, like a 4Kn disk).
 * Either way the rest of the block must be intact. subblock=1 requires the request to work
 * (cvmm read-modify-writes sub-block writes: DESIGN.md). */
static void sub_block(uint64_t sector)
{
	const char *name = "512-byte OUT/IN inside a larger block: OK with the data, or IOERR";
	bool must = arg_u64("subblock", 0);
	size_t bad;
	int s, s2 = -1;

	if (unit == 1) {
		t_check(true, "sub-block I/O # SKIP blk_size is 512", "-");
		return;
	}
	pattern_fill(wbuf, sector * SECTOR, unit * SECTOR, seed);
	if (rw1(true, sector, wbuf, unit * SECTOR, name) != VIRTIO_BLK_S_OK) {
		t_check(false, name, "setup OUT of a whole block failed");
		return;
	}
	pattern_fill(wbuf, (sector + 1) * SECTOR, SECTOR, seed ^ 1); /* other data for sector + 1 */
	s = rw1(true, sector + 1, wbuf, SECTOR, name);
	poison(rbuf, SECTOR);
	if (s == VIRTIO_BLK_S_OK)
		s2 = rw1(false, sector + 1, rbuf, SECTOR, name);
	t_check(s == VIRTIO_BLK_S_OK ? s2 == VIRTIO_BLK_S_OK &&
						 pattern_check(rbuf, (sector + 1) * SECTOR, SECTOR,
							       seed ^ 1) == SECTOR
				     : s == VIRTIO_BLK_S_IOERR && !must,
		must ? "512-byte OUT/IN inside a larger block works (subblock=1)" : name,
		"OUT %s, IN %s", vblk_status_str(s), s2 < 0 ? "-" : vblk_status_str(s2));
	/* the other sectors of the block keep their data; sector + 1 has the new data if OK */
	if (s == VIRTIO_BLK_S_OK)
		pattern_fill(wbuf + SECTOR, (sector + 1) * SECTOR, SECTOR, seed ^ 1);
	else
		pattern_fill(wbuf + SECTOR, (sector + 1) * SECTOR, SECTOR, seed);
	pattern_fill(wbuf, sector * SECTOR, SECTOR, seed);
	pattern_fill(wbuf + 2 * SECTOR, (sector + 2) * SECTOR, (unit - 2) * SECTOR, seed);
	poison(rbuf, unit * SECTOR);
	s = rw1(false, sector, rbuf, unit * SECTOR, name);
	for (bad = 0; bad < unit * SECTOR && rbuf[bad] == wbuf[bad]; bad++)
		;
	t_check(s == VIRTIO_BLK_S_OK && bad == unit * SECTOR, "  ... and the rest of the block is intact",
		"IN %s, block differs at byte %lu", vblk_status_str(s), (uint64_t)bad);
}

/* BATCH requests in flight at once (one kick), then as many reads back. */
static void batch(uint64_t sector)
{
	struct vblk_req *rq = mem_zalloc(sizeof(*rq) * BATCH, 64);
	unsigned n = b.q.indirect ? b.q.size : b.q.size / 3, bad = 0, per = unit * SECTOR;
	int r = VQ_DONE;

	if (n > BATCH)
		n = BATCH;
	if (!n) {
		t_check(true, "batch # SKIP queue too small", "-");
		return;
	}
	pattern_fill(wbuf, sector * SECTOR, n * per, seed);
	for (int pass = 0; pass < 2 && r == VQ_DONE; pass++) {
		bool write = pass == 0;

		if (!write)
			poison(rbuf, n * per);
		for (unsigned i = 0; i < n; i++) {
			struct vq_buf d = { (uint64_t)(write ? wbuf : rbuf) + i * per, per, !write };

			if (vblk_submit(&b, &rq[i], write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
					sector + i * unit, &d, 1, b.q.indirect) < 0) {
				t_check(false, "batch: requests in flight together",
					"queue full after %u requests", i);
				return;
			}
		}
		vq_kick(&b.q);
		/* wait in reverse order: completions may come in any order */
		for (unsigned i = n; i-- > 0 && r == VQ_DONE;) {
			r = vblk_wait(&b, &rq[i]);
			if (r == VQ_DONE && rq[i].status != VIRTIO_BLK_S_OK)
				bad++;
			if (r == VQ_DONE)
				note_used_len("batch", rq[i].used_len, rq[i].in_bytes);
		}
	}
	recover(r);
	t_check(r == VQ_DONE && !bad && pattern_check(rbuf, sector * SECTOR, n * per, seed) == n * per,
		"batch: requests in flight together complete with the right data",
		"%u requests: %s, %u bad statuses, data %s", n, vq_result_str(r), bad,
		pattern_check(rbuf, sector * SECTOR, n * per, seed) == n * per ? "ok" : "wrong");
}

/* More requests than ring slots: avail/used indices wrap around the ring. */
static void wrap(uint64_t sector)
{
	unsigned n = 2 * b.q.size + 3, bad = 0, i;
	int s = VIRTIO_BLK_S_OK;

	pattern_fill(wbuf, sector * SECTOR, unit * SECTOR, seed);
	s = rw1(true, sector, wbuf, unit * SECTOR, "wrap");
	if (s != VIRTIO_BLK_S_OK) {
		t_check(false, "ring wrap: 2 x queue size + 3 requests in a row", "setup OUT: %s",
			vblk_status_str(s));
		return;
	}
	for (i = 0; i < n && !bad; i++) {
		s = rw1(false, sector, rbuf, unit * SECTOR, "wrap");
		if (s != VIRTIO_BLK_S_OK || pattern_check(rbuf, sector * SECTOR, unit * SECTOR, seed) !=
						    unit * SECTOR)
			bad++;
	}
	t_check(!bad, "ring wrap: 2 x queue size + 3 requests in a row",
		"request %u of %u: %s", i, n, vblk_status_str(s));
}

static void flush_and_id(void)
{
	char *id = mem_zalloc(VIRTIO_BLK_ID_BYTES + 1, 64), shown[VIRTIO_BLK_ID_BYTES + 1];
	struct vq_buf d = { (uint64_t)id, VIRTIO_BLK_ID_BYTES, true };
	int s;

	s = req(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, "FLUSH");
	if (vblk_has(&b, VIRTIO_BLK_F_FLUSH))
		t_check(s == VIRTIO_BLK_S_OK, "FLUSH", "status %s", vblk_status_str(s));
	else
		t_check(s == VIRTIO_BLK_S_UNSUPP || s == VIRTIO_BLK_S_OK,
			"FLUSH without VIRTIO_BLK_F_FLUSH: OK or UNSUPP", "status %s", vblk_status_str(s));
	s = req(VIRTIO_BLK_T_GET_ID, 0, &d, 1, false, "GET_ID");
	for (int i = 0; i < VIRTIO_BLK_ID_BYTES; i++)
		shown[i] = id[i] >= 0x20 && id[i] < 0x7f ? id[i] : id[i] ? '?' : '\0';
	shown[VIRTIO_BLK_ID_BYTES] = '\0';
	if (t_check(s == VIRTIO_BLK_S_OK, "GET_ID", "status %s", vblk_status_str(s)))
		t_diag("blk: device ID '%s'", shown);
}

static bool all_zero(const uint8_t *p, size_t len, size_t *first)
{
	for (size_t i = 0; i < len; i++)
		if (p[i]) {
			*first = i;
			return false;
		}
	return true;
}

/* One DISCARD / WRITE_ZEROES segment over [sector, sector + n). */
static int dwz(uint32_t type, uint64_t sector, uint32_t n, uint32_t flags)
{
	struct vblk_dwz *seg = mem_zalloc(sizeof(*seg), 64);
	struct vq_buf d = { (uint64_t)seg, sizeof(*seg), false };

	seg->sector = sector;
	seg->num_sectors = n;
	seg->flags = flags;
	return req(type, 0, &d, 1, false, type == VIRTIO_BLK_T_DISCARD ? "DISCARD" : "WRITE_ZEROES");
}

/* Pattern, then `type` over the range, then check it reads zeros (if check_zero). */
static void zero_range(const char *name, uint32_t type, uint64_t sector, uint32_t n, uint32_t flags,
		       bool check_zero)
{
	size_t first = 0;
	int s;

	pattern_fill(wbuf, sector * SECTOR, n * SECTOR, seed);
	s = rw1(true, sector, wbuf, n * SECTOR, name);
	if (s != VIRTIO_BLK_S_OK) {
		t_check(false, name, "setup OUT: %s", vblk_status_str(s));
		return;
	}
	s = dwz(type, sector, n, flags);
	if (!t_check(s == VIRTIO_BLK_S_OK, name, "status %s", vblk_status_str(s)) || !check_zero)
		return;
	poison(rbuf, n * SECTOR);
	s = rw1(false, sector, rbuf, n * SECTOR, name);
	t_check(s == VIRTIO_BLK_S_OK && all_zero(rbuf, n * SECTOR, &first),
		"  ... then IN reads zeros", "IN %s, byte %lu of %u is 0x%x", vblk_status_str(s),
		(uint64_t)first, n * SECTOR, rbuf[first]);
}

static void discard_wz(uint64_t sector)
{
	uint32_t n = 128; /* 64 KiB, 4 KiB aligned: whole host blocks get punched */

	if (vblk_has(&b, VIRTIO_BLK_F_DISCARD)) {
		uint32_t align = b.discard_align > 8 ? b.discard_align : 8;

		if (b.max_discard_sectors && n > b.max_discard_sectors)
			n = b.max_discard_sectors;
		sector = (sector + align - 1) / align * align;
		zero_range("DISCARD", VIRTIO_BLK_T_DISCARD, sector, n, 0, arg_u64("discard_zeroes", 1));
		t_check(dwz(VIRTIO_BLK_T_DISCARD, sector, n, VIRTIO_BLK_WZ_FLAG_UNMAP) ==
				VIRTIO_BLK_S_UNSUPP,
			"DISCARD with the unmap flag -> UNSUPP (5.2.6.2)", "got another status");
	} else {
		t_check(true, "DISCARD # SKIP VIRTIO_BLK_F_DISCARD not offered", "-");
	}
	n = 128;
	if (vblk_has(&b, VIRTIO_BLK_F_WRITE_ZEROES)) {
		if (b.max_wz_sectors && n > b.max_wz_sectors)
			n = b.max_wz_sectors;
		zero_range("WRITE_ZEROES", VIRTIO_BLK_T_WRITE_ZEROES, sector, n, 0, true);
		zero_range("WRITE_ZEROES with unmap", VIRTIO_BLK_T_WRITE_ZEROES, sector + n, n,
			   VIRTIO_BLK_WZ_FLAG_UNMAP, true);
		t_check(dwz(VIRTIO_BLK_T_WRITE_ZEROES, sector, n, 2) == VIRTIO_BLK_S_UNSUPP,
			"WRITE_ZEROES with an unknown flag -> UNSUPP (5.2.6.2)", "got another status");
	} else {
		t_check(true, "WRITE_ZEROES # SKIP VIRTIO_BLK_F_WRITE_ZEROES not offered", "-");
	}
}

static void past_capacity(void)
{
	int s1 = rw1(false, b.capacity, rbuf, unit * SECTOR, "past capacity");
	int s2 = rw1(false, b.capacity - unit, rbuf, 2 * unit * SECTOR, "across capacity");

	t_check(s1 == VIRTIO_BLK_S_IOERR, "IN at sector = capacity -> IOERR", "got %s",
		vblk_status_str(s1));
	t_check(s2 == VIRTIO_BLK_S_IOERR, "IN across the end of the disk -> IOERR", "got %s",
		vblk_status_str(s2));
}

static void read_only(void)
{
	size_t bad;
	int s;

	poison(wbuf, unit * SECTOR);
	s = rw1(false, 0, wbuf, unit * SECTOR, "RO read");
	t_check(s == VIRTIO_BLK_S_OK, "IN on a read-only disk", "status %s", vblk_status_str(s));
	s = rw1(false, b.capacity - unit, rbuf, unit * SECTOR, "RO read last");
	t_check(s == VIRTIO_BLK_S_OK, "IN of the last block on a read-only disk", "status %s",
		vblk_status_str(s));
	pattern_fill(rbuf, 0, unit * SECTOR, seed);
	s = rw1(true, 0, rbuf, unit * SECTOR, "RO write");
	t_check(s == VIRTIO_BLK_S_IOERR, "OUT on a read-only disk -> IOERR (5.2.6.2)", "status %s",
		vblk_status_str(s));
	poison(rbuf, unit * SECTOR);
	s = rw1(false, 0, rbuf, unit * SECTOR, "RO reread");
	bad = memcmp(rbuf, wbuf, unit * SECTOR);
	t_check(s == VIRTIO_BLK_S_OK && !bad, "  ... and the data did not change",
		"reread %s, data %s", vblk_status_str(s), bad ? "changed" : "same");
	if (vblk_has(&b, VIRTIO_BLK_F_WRITE_ZEROES)) {
		s = dwz(VIRTIO_BLK_T_WRITE_ZEROES, 0, unit, 0);
		t_check(s == VIRTIO_BLK_S_IOERR || s == VIRTIO_BLK_S_UNSUPP,
			"WRITE_ZEROES on a read-only disk -> IOERR or UNSUPP", "status %s",
			vblk_status_str(s));
	}
	if (vblk_has(&b, VIRTIO_BLK_F_DISCARD)) {
		s = dwz(VIRTIO_BLK_T_DISCARD, 0, unit, 0);
		t_check(s == VIRTIO_BLK_S_IOERR || s == VIRTIO_BLK_S_UNSUPP,
			"DISCARD on a read-only disk -> IOERR or UNSUPP", "status %s", vblk_status_str(s));
	}
	s = rw1(false, 0, rbuf, unit * SECTOR, "RO reread 2");
	t_check(s == VIRTIO_BLK_S_OK && !memcmp(rbuf, wbuf, unit * SECTOR),
		"  ... and the data still did not change", "status %s", vblk_status_str(s));
}

static void blk(void)
{
	bool ro = arg_u64("ro", 0);
	uint64_t mid;

	if (!t_check(vblk_open(&b, vdev_blk_arg()) == 0, "virtio-blk found and initialised",
		     "see above"))
		return;
	vblk_describe(&b);
	wbuf = mem_alloc(BUF_BYTES, 4096);
	rbuf = mem_alloc(BUF_BYTES, 4096);
	if (!t_check(wbuf && rbuf, "buffers", "out of memory"))
		return;
	seed = arg_u64("seed", rdtsc() | 1);
	t_diag("blk: pattern seed 0x%lx", seed);
	unit = b.blk_size >= SECTOR && !(b.blk_size & (b.blk_size - 1)) ? b.blk_size / SECTOR : 1;
	t_check(b.blk_size >= SECTOR && !(b.blk_size & (b.blk_size - 1)) && b.blk_size <= 65536,
		"config: blk_size is a power of two >= 512", "blk_size %u", b.blk_size);
	if (!t_check(b.capacity >= 2048 && b.capacity % unit == 0,
		     "config: capacity >= 1 MiB, whole blocks", "capacity %lu sectors", b.capacity))
		return;
	t_check(!b.seg_max || b.seg_max >= 1, "config: seg_max", "seg_max %u", b.seg_max);
	t_check(vblk_has(&b, VIRTIO_BLK_F_RO) == ro,
		ro ? "read-only disk offers VIRTIO_BLK_F_RO" : "writable disk does not offer VIRTIO_BLK_F_RO",
		"RO feature %s, ro=%d on the command line", vblk_has(&b, VIRTIO_BLK_F_RO) ? "offered" : "absent",
		ro);
	if (ro) {
		read_only();
		flush_and_id();
		past_capacity();
	} else {
		uint32_t s3[] = { 100, 1948, 2048 }, s4[] = { 1024, 512, 1536, 1024 }, s1[] = { 4096 };
		unsigned nseg = b.seg_max && b.seg_max < 4 ? b.seg_max : 4;

		mid = (b.capacity / 2) / unit * unit;
		write_read("OUT/IN first block", 0, unit * SECTOR);
		write_read("OUT/IN 64 KiB at sector 8", 8 * unit, 64 << 10);
		write_read("OUT/IN middle", mid, 8 * unit * SECTOR);
		write_read("OUT/IN last block", b.capacity - unit, unit * SECTOR);
		write_read("OUT/IN last 8 blocks", b.capacity - 8 * unit, 8 * unit * SECTOR);
		if (nseg >= 3)
			split_rw("data over 3 descriptors (100+1948+2048)", mid + 64, s3, 3, false);
		if (nseg >= 4)
			split_rw("data over 4 descriptors", mid + 128, s4, 4, false);
		any_layout(mid + 192);
		sub_block(mid + 224);
		if (b.q.indirect) {
			split_rw("indirect table, 4 data descriptors", mid + 256, s4, 4, true);
			split_rw("indirect table, 1 data descriptor", mid + 320, s1, 1, true);
		} else {
			t_check(true, "indirect # SKIP VIRTIO_F_INDIRECT_DESC not negotiated", "-");
		}
		batch(mid + 512);
		wrap(mid + 1024);
		flush_and_id();
		discard_wz(mid + 2048);
		past_capacity();
	}
	t_check(!used_len_bad, "used ring len = bytes written (data + status) on every OK request",
		"%u mismatches; first %s", used_len_bad, used_len_why);
	t_diag("blk: %lu notifications, %lu suppressed, %lu completions", b.q.kicks,
	       b.q.kicks_suppressed, b.q.completions);
}

const struct scenario scenario_blk = { .name = "blk", .run = blk };
