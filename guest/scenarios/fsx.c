/* fsx, fsx-smp: a random mix of pmem loads/stores/FLUSH and virtio-blk reads/writes/FLUSH/
 * DISCARD/WRITE_ZEROES over one region of the backing file seen through both views, checked
 * against a shadow model after every operation (the file-system exerciser idea, applied to the
 * coherency protocol of /work/shared/DESIGN.md).
 *
 *   scenario=fsx [seed=N] [ops=20000] [size=4M] [base=OFF] [blk_off=BYTES] [align=512]
 *                [win_pct=40] [verify_every=50] [discard=1] [mix=OP,OP...] [log=0]
 *                [timeout_ms=2000] [late_ms=20000]
 *   scenario=fsx-smp [same] [shared=512K] [sync_every=500] [sh_ops=16]
 *
 * THE REGION: window offsets [base, base + size) (base defaults to blk_off rounded up to 2 MiB;
 * window offset o = file offset o = disk byte o - blk_off: scenarios/fsx_io.h). At the start
 * the region is read through blk into the shadow and the pmem view must agree with it.
 *
 * THE OPERATIONS (xorshift64 seeded by seed=; same seed, same sequence):
 *   pstore   1..16K bytes at any offset (a quarter of them placed across a 4K / 64K / 2M
 *            boundary), as aligned words, unaligned 8-byte stores, or bytes; fresh data
 *   pload    the same shapes, compared with the shadow
 *   pflush   virtio-pmem FLUSH (ret 0)
 *   bwrite   1..128 sectors at a 512-aligned offset (align=), from a RAM buffer with fresh
 *            data, or (win_pct=% of the time) from a buffer INSIDE the pmem window: a disjoint
 *            range of the region at any byte alignment (the shadow copies it), or the pmem
 *            mapping of the very range being written (no change)
 *   bread    the same shapes; into RAM (compared), into a disjoint window range (the shadow
 *            copies the source there: the device reads the file as it was when the request
 *            started), or into the very range it reads (no change)
 *   bflush   virtio-blk FLUSH
 *   discard  DISCARD of a 4 KiB-aligned range (discard_align, at least 8 sectors) up to 256K:
 *            zeros (cvmm and QEMU with discard=unmap punch holes; discard=0 leaves it out)
 *   wzeroes, wzeroes-unmap   WRITE_ZEROES without / with VIRTIO_BLK_WZ_FLAG_UNMAP: zeros
 * Partial overlaps of a window buffer with the I/O range are NOT generated: a device may copy
 * in any order, so the result would not be deterministic.
 *
 * CHECKS: after every operation the touched range through both views (pmem loads compared
 * with the shadow; a blk read of the covering sectors); every verify_every operations a random
 * range; at the end the whole region, a FLUSH, and the whole region again. The first mismatch
 * stops the run: it prints the view, offset, expected and seen bytes, what the seen bytes look
 * like (zeros, or the data of one of the last 32 operations), and the log of those operations.
 *
 * fsx-smp (2 vCPUs; with one vCPU, e.g. under QEMU, it SKIPs): the region is cut into
 * [0, h) for vCPU 0, [h, 2h) for vCPU 1 and a shared tail [2h, size) of shared= bytes (h is
 * 4 KiB aligned but not 2 MiB aligned, so the halves share a granule whatever its size). Both
 * run fsx on their own part concurrently (window buffers inside their own part); every
 * sync_every operations they meet at a barrier, one of them (alternating) does sh_ops
 * operations on the shared tail while the other waits, they meet again, BOTH verify the whole
 * shared tail through both views, and meet a third time. So the shadow model stays
 * deterministic while requests from two vCPUs are in the device together.
 *
 * Per-operation counts and the rate are printed at the end (ops/s counts the periodic verify
 * operations too; every operation includes its own verification, about 1.5 blk requests).
 *
 * RESULTS AND TIMINGS (2026-11-23, 64 MiB file, the 2-core project machine, noisy: the load
 * average from other work was 2..6 during these runs, and the rates follow it):
 *   QEMU 7.2 q35: BLK=F PMEM=F guest/run-qemu.sh "scenario=fsx seed=N": seeds 1-5 pass,
 *     540..1700 ops/s (12..38 s per 20000 ops); fsx-smp SKIPs (only the BSP runs).
 *   cvmm, [pmem] granule=4K, --cpus 2, seeds 1-5 x 20000 ops: pass, 670..970 ops/s at load 2
 *     (21..31 s per seed, 2.1 min for the five), 250..380 ops/s at load 6 (54..84 s);
 *     granule=2M: 590..1450 ops/s (14..35 s). Most of the time goes to blk requests (~30000
 *     per run) and to re-faulting pages that every blk write unmaps.
 *   fsx-smp on cvmm: the build of 18:08 failed every seed within 100..3200 operations per vCPU:
 *     a pstore followed by a blk read of its sectors returned the file's old bytes, always with
 *     a pmem FLUSH running on the other vCPU (mix= without pflush passed 20000 ops per vCPU);
 *     coherency's f2 is that shape, directed. The build of 18:33 passes seeds 1-3 (and 7) with
 *     20000 ops per vCPU in 90..175 s (120..230 ops/s per vCPU).
 */
#include "lib/pattern.h"
#include "scenarios/fsx_io.h"
#include "scenarios/scenario.h"

#define K ((uint64_t)1024)
#define MB ((uint64_t)1024 * 1024)
#define MAXIO (64 * K)   /* bread / bwrite / wzeroes / verify chunk */
#define MAXDISC (256 * K)
#define MAXSTORE (16 * K)
#define LOGN 32

enum { OP_PSTORE, OP_PLOAD, OP_PFLUSH, OP_BREAD, OP_BWRITE, OP_BFLUSH, OP_DISCARD, OP_WZ, OP_WZU,
       OP_VERIFY, NOPS };
static const char *const opname[NOPS] = { "pstore",  "pload",   "pflush",  "bread",
					  "bwrite",  "bflush",  "discard", "wzeroes",
					  "wzeroes-unmap", "verify" };
static const unsigned weight[NOPS - 1] = { 24, 10, 3, 22, 24, 2, 5, 5, 5 };

enum { BUF_RAM, BUF_WIN, BUF_SAME };
static const char *const bufname[] = { "ram", "win", "same" };
static const char *const stylename[] = { "words", "unaligned", "bytes" };

struct logent {
	uint32_t n;
	uint8_t op, buf, style, cpu;
	uint64_t off, len, boff, ds;
	uint64_t t0, t1; /* TSC at the start and end of the operation */
};

struct fsx {
	unsigned cpu;
	struct cio_ctx c;
	uint64_t rng;
	uint64_t lo, hi; /* the part of the region this vCPU may touch now (region offsets) */
	uint64_t own_lo, own_hi;
	uint8_t *ram, *ram2;
	struct logent log[LOGN];
	uint64_t opno;
	uint64_t count[NOPS], nwin, nsame;
	bool failed;
};

static struct {
	uint64_t seed, base, size, align, dbytes, win_pct, verify_every;
	bool discard, log;
	uint32_t mix; /* bit per operation allowed (mix=) */
	uint8_t *shadow; /* region offset -> byte */
	volatile uint32_t stop;
	uint64_t tsc0; /* TSC at the start: log times are relative to it */
} g;

static uint64_t rnd(struct fsx *f, uint64_t n)
{
	return n ? xorshift64(&f->rng) % n : 0;
}

/* smallest x >= off with disk byte (base + x - blk_off) a multiple of a */
static uint64_t align_up(uint64_t off, uint64_t a)
{
	uint64_t rel = g.base - cio.blk_off + off;

	return off + (a - rel % a) % a;
}

static uint64_t align_down(uint64_t off, uint64_t a)
{
	return off - (g.base - cio.blk_off + off) % a;
}

/* ---- reporting ----------------------------------------------------------------------- */

static void print_log(struct fsx *f)
{
	uint64_t n = f->opno < LOGN ? f->opno : LOGN;

	printf("# fsx[%u]: the last %lu operations, oldest first:\n", f->cpu, n);
	for (uint64_t i = f->opno - n; i < f->opno; i++) {
		struct logent *e = &f->log[i % LOGN];

		printf("#   %u cpu%u t=%lu..%ld us %-13s off=0x%lx len=%lu", e->n, e->cpu,
		       tsc_to_ns(e->t0 - g.tsc0) / 1000,
		       e->t1 ? (int64_t)(tsc_to_ns(e->t1 - g.tsc0) / 1000) : -1l, opname[e->op],
		       g.base + e->off, e->len);
		if (e->op == OP_BREAD || e->op == OP_BWRITE)
			printf(" buf=%s", bufname[e->buf]);
		if (e->buf == BUF_WIN)
			printf("@0x%lx", g.base + e->boff);
		if (e->op == OP_PSTORE || e->op == OP_PLOAD)
			printf(" %s", stylename[e->style]);
		if (e->ds)
			printf(" data=0x%lx", e->ds);
		printf("\n");
	}
}

/* What do the seen bytes at region offset o look like? */
static void describe(struct fsx *f, uint64_t o, const uint8_t *seen, uint64_t n, char *out,
		     size_t size)
{
	uint8_t b[8];
	uint64_t cnt = f->opno < LOGN ? f->opno : LOGN;

	if (n > 8)
		n = 8;
	memset(b, 0, n);
	if (!memcmp(b, seen, n)) {
		snprintf(out, size, "zeros");
		return;
	}
	for (uint64_t i = f->opno; i-- > f->opno - cnt;) {
		struct logent *e = &f->log[i % LOGN];

		if (!e->ds)
			continue;
		gen_bytes(b, g.base + o, n, e->ds);
		if (!memcmp(b, seen, n)) {
			snprintf(out, size, "the data of op %u (%s)", e->n, opname[e->op]);
			return;
		}
	}
	snprintf(out, size, "not zeros, not the data of the last %lu ops", cnt);
}

static bool mismatch(struct fsx *f, const char *view, uint64_t o, const uint8_t *seen,
		     uint64_t len)
{
	const uint8_t *want = g.shadow + o;
	uint64_t i = mem_diff(seen, want, len), nbad = 0, last = i;
	char what[96];

	if (i == len)
		return false;
	for (uint64_t k = i; k < len; k++)
		if (seen[k] != want[k]) {
			nbad++;
			last = k;
		}
	describe(f, o + i, seen + i, len - i, what, sizeof(what));
	printf("# fsx[%u]: MISMATCH after op %ld (%s): %s at window offset 0x%lx: got 0x%02x, "
	       "expected 0x%02x; %lu bytes differ in [0x%lx, 0x%lx]; the bytes seen look like %s\n",
	       f->cpu, (int64_t)f->opno - 1,
	       f->opno ? opname[f->log[(f->opno - 1) % LOGN].op] : "the start", view, g.base + o + i,
	       seen[i], want[i], nbad, g.base + o + i, g.base + o + last, what);
	print_log(f);
	f->failed = true;
	g.stop = 1;
	return true;
}

static bool fail(struct fsx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(struct fsx *f, const char *fmt, ...)
{
	va_list ap;

	printf("# fsx[%u]: FAILED at op %lu: ", f->cpu, f->opno - 1);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	print_log(f);
	f->failed = true;
	g.stop = 1;
	return false;
}

static bool st_ok(struct fsx *f, int s, const char *what, uint64_t o, uint64_t len)
{
	if (s == VIRTIO_BLK_S_OK)
		return true;
	return fail(f, "%s of %lu bytes at window offset 0x%lx: %s", what, len, g.base + o,
		    cio_status_str(s));
}

/* ---- verification -------------------------------------------------------------------- */

static bool verify_pmem(struct fsx *f, uint64_t o, uint64_t len)
{
	uint64_t i = win_cmp(g.base + o, g.shadow + o, len);

	uint64_t at, n;

	if (i == len)
		return true;
	/* copy up to MAXIO bytes from the mismatch on and report from the copy */
	at = len <= MAXIO ? 0 : i & ~7ull;
	n = len - at < MAXIO ? len - at : MAXIO;
	win_read(f->ram2, g.base + o + at, n, WIN_WORDS);
	if (mismatch(f, "pmem view", o + at, f->ram2, n))
		return false;
	return fail(f, "pmem view at window offset 0x%lx differed from the shadow, then read back "
		       "equal: the view changed by itself", g.base + o + i);
}

static bool verify_blk(struct fsx *f, uint64_t o, uint64_t len)
{
	uint64_t lo = align_down(o, SECTOR), hi = align_up(o + len, SECTOR);

	for (uint64_t p = lo; p < hi; p += MAXIO) {
		uint64_t n = hi - p < MAXIO ? hi - p : MAXIO;
		int s;

		memset(f->ram2, 0xa5, n);
		s = cio_rw(&f->c, false, g.base + p, f->ram2, n);
		if (!st_ok(f, s, "verifying blk read", p, n) || mismatch(f, "blk view", p, f->ram2, n))
			return false;
	}
	return true;
}

static bool verify(struct fsx *f, uint64_t o, uint64_t len)
{
	return verify_pmem(f, o, len) && verify_blk(f, o, len);
}

/* ---- the operations ------------------------------------------------------------------ */

/* A byte range in [f->lo, f->hi): 1..max bytes, a quarter of them across a boundary. */
static void pick_bytes(struct fsx *f, uint64_t max, uint64_t *o, uint64_t *len)
{
	uint64_t span = f->hi - f->lo, l = 1 + rnd(f, 1ull << rnd(f, 15));

	if (l > max)
		l = max;
	if (l > span)
		l = span;
	*len = l;
	if (rnd(f, 4) == 0) {
		static const uint64_t gran[] = { 4 * K, 64 * K, 2 * MB };
		uint64_t gsz = gran[rnd(f, 3)];
		uint64_t b = (g.base + f->lo + rnd(f, span) + gsz - 1) / gsz * gsz - g.base;
		uint64_t x = b - rnd(f, l + 1);

		if (b <= f->hi && x >= f->lo && x + l <= f->hi) {
			*o = x;
			return;
		}
	}
	*o = f->lo + rnd(f, span - l + 1);
}

/* A range of whole units `a` (disk-aligned) in [f->lo, f->hi), 1..max bytes. */
static bool pick_units(struct fsx *f, uint64_t a, uint64_t max, uint64_t *o, uint64_t *len)
{
	uint64_t lo = align_up(f->lo, a), hi = align_down(f->hi, a), n;

	if (hi <= lo)
		return false;
	n = 1 + rnd(f, 1ull << rnd(f, 8));
	if (n * a > max)
		n = max / a;
	if (n * a > hi - lo)
		n = (hi - lo) / a;
	*len = n * a;
	*o = lo + rnd(f, (hi - lo - *len) / a + 1) * a;
	return true;
}

/* A window range of len bytes in [f->lo, f->hi) disjoint from [o, o + len); false if none. */
static bool pick_disjoint(struct fsx *f, uint64_t o, uint64_t len, uint64_t *w)
{
	for (int t = 0; t < 8; t++) {
		uint64_t x;

		if (f->hi - f->lo < len)
			return false;
		x = f->lo + rnd(f, f->hi - f->lo - len + 1);
		if (rnd(f, 2))
			x &= ~(SECTOR - 1ull);
		if (x < f->lo)
			continue;
		if (x + len <= o || x >= o + len) {
			*w = x;
			return true;
		}
	}
	return false;
}

static uint64_t data_seed(struct fsx *f)
{
	return mix64(g.seed * 0x9E3779B97F4A7C15ull ^ (f->opno << 8) ^ f->cpu) | 1;
}

static bool do_op1(struct fsx *f, int op, struct logent *e);

static bool do_op(struct fsx *f, int op)
{
	struct logent *e = &f->log[f->opno % LOGN];
	uint64_t t0 = rdtsc();
	bool ok;

	memset(e, 0, sizeof(*e));
	e->t0 = t0;
	ok = do_op1(f, op, e);
	e->t1 = rdtsc();
	return ok;
}

/* The operation and its check (e: its log entry, already cleared). */
static bool do_op1(struct fsx *f, int op, struct logent *e)
{
	uint64_t o = 0, len = 0, w = 0;
	char why[96];
	int s;

	e->n = f->opno;
	e->cpu = f->cpu;
	e->op = op;
	f->opno++;
	f->count[op]++;
	switch (op) {
	case OP_PSTORE:
	case OP_PLOAD:
		pick_bytes(f, MAXSTORE, &o, &len);
		e->off = o;
		e->len = len;
		e->style = rnd(f, 3);
		if (op == OP_PLOAD) {
			win_read(f->ram2, g.base + o, len, e->style);
			return !mismatch(f, "pmem view (the pload)", o, f->ram2, len) &&
			       verify_blk(f, o, len);
		}
		e->ds = data_seed(f);
		gen_bytes(f->ram, g.base + o, len, e->ds);
		win_write(g.base + o, f->ram, len, e->style);
		memcpy(g.shadow + o, f->ram, len);
		return verify(f, o, len);
	case OP_PFLUSH:
		return cio_pflush(&f->c, why, sizeof(why)) || fail(f, "%s", why);
	case OP_BFLUSH:
		return st_ok(f, cio_bflush(&f->c), "blk FLUSH", 0, 0);
	case OP_BREAD:
	case OP_BWRITE: {
		bool write = op == OP_BWRITE;
		void *buf = f->ram;

		if (!pick_units(f, g.align, MAXIO, &o, &len))
			return true;
		e->off = o;
		e->len = len;
		e->buf = BUF_RAM;
		if (rnd(f, 100) < g.win_pct) {
			if (rnd(f, 3) == 0) {
				e->buf = BUF_SAME;
				buf = (void *)(cio.win + g.base + o);
				f->nsame++;
			} else if (pick_disjoint(f, o, len, &w)) {
				e->buf = BUF_WIN;
				e->boff = w;
				buf = (void *)(cio.win + g.base + w);
				f->nwin++;
			}
		}
		if (write) {
			if (e->buf == BUF_RAM) {
				e->ds = data_seed(f);
				gen_bytes(f->ram, g.base + o, len, e->ds);
			}
			s = cio_rw(&f->c, true, g.base + o, buf, len);
			if (!st_ok(f, s, "bwrite", o, len))
				return false;
			if (e->buf == BUF_RAM)
				memcpy(g.shadow + o, f->ram, len);
			else if (e->buf == BUF_WIN)
				memcpy(g.shadow + o, g.shadow + w, len);
			return verify(f, o, len);
		}
		if (e->buf == BUF_RAM)
			memset(f->ram, 0xa5, len);
		s = cio_rw(&f->c, false, g.base + o, buf, len);
		if (!st_ok(f, s, "bread", o, len))
			return false;
		if (e->buf == BUF_RAM)
			return !mismatch(f, "blk view (the bread)", o, f->ram, len);
		if (e->buf == BUF_WIN) {
			memcpy(g.shadow + w, g.shadow + o, len);
			return verify(f, w, len);
		}
		return verify(f, o, len);
	}
	case OP_DISCARD:
	case OP_WZ:
	case OP_WZU: {
		uint64_t a = op == OP_DISCARD ? g.dbytes : SECTOR;
		uint64_t max = op == OP_DISCARD ? MAXDISC : MAXIO;
		uint32_t type = op == OP_DISCARD ? VIRTIO_BLK_T_DISCARD : VIRTIO_BLK_T_WRITE_ZEROES;
		uint64_t cap = (op == OP_DISCARD ? cio.b.max_discard_sectors : cio.b.max_wz_sectors) *
			       SECTOR;

		if (cap && max > cap)
			max = cap / a * a;
		if (!max || !pick_units(f, a, max, &o, &len))
			return true;
		e->off = o;
		e->len = len;
		s = cio_dwz(&f->c, type, g.base + o, len, op == OP_WZU ? VIRTIO_BLK_WZ_FLAG_UNMAP : 0);
		if (!st_ok(f, s, opname[op], o, len))
			return false;
		memset(g.shadow + o, 0, len);
		return verify(f, o, len);
	}
	case OP_VERIFY:
		if (!pick_units(f, SECTOR, MAXIO, &o, &len))
			return true;
		e->off = o;
		e->len = len;
		return verify(f, o, len);
	}
	return true;
}

static int pick_op(struct fsx *f)
{
	unsigned total = 0, r;
	int op;

	for (op = 0; op < NOPS - 1; op++)
		total += weight[op];
	for (int tries = 0;; tries++) {
		if (tries == 1000) /* nothing in mix= is possible on this device */
			return OP_VERIFY;
		r = rnd(f, total);
		for (op = 0; op < NOPS - 1 && r >= weight[op]; op++)
			r -= weight[op];
		if ((op == OP_DISCARD && !g.discard) || !(g.mix & 1u << op))
			continue;
		if ((op == OP_DISCARD && !vblk_has(&cio.b, VIRTIO_BLK_F_DISCARD)) ||
		    ((op == OP_WZ || op == OP_WZU) && !vblk_has(&cio.b, VIRTIO_BLK_F_WRITE_ZEROES)))
			continue;
		return op;
	}
}

/* n random operations in [lo, hi), with the periodic verification. */
static bool run_ops(struct fsx *f, uint64_t lo, uint64_t hi, uint64_t n)
{
	f->lo = lo;
	f->hi = hi;
	for (uint64_t i = 0; i < n && !g.stop; i++) {
		int op = pick_op(f);

		if (g.log)
			printf("# fsx[%u] %lu %s\n", f->cpu, f->opno, opname[op]);
		if (!do_op(f, op))
			return false;
		if (g.verify_every && f->opno % g.verify_every == 0 && !do_op(f, OP_VERIFY))
			return false;
	}
	return !f->failed;
}

/* ---- setup and the two scenarios ------------------------------------------------------ */

/* mix=pstore,bread,...: only those operations (default: all). */
static bool parse_mix(const char *l)
{
	g.mix = 0;
	if (!*l) {
		g.mix = ~0u;
		return true;
	}
	while (*l) {
		const char *e = l;
		int op;

		while (*e && *e != ',')
			e++;
		for (op = 0; op < OP_VERIFY; op++)
			if (strlen(opname[op]) == (size_t)(e - l) && !strncmp(opname[op], l, e - l))
				break;
		if (op == OP_VERIFY)
			return false;
		g.mix |= 1u << op;
		l = *e ? e + 1 : e;
	}
	return true;
}

static bool fsx_setup(void)
{
	uint64_t def;

	if (!cio_open())
		return false;
	g.seed = arg_u64("seed", 1);
	g.size = arg_u64("size", 4 * MB);
	g.align = arg_u64("align", SECTOR);
	g.win_pct = arg_u64("win_pct", 40);
	g.verify_every = arg_u64("verify_every", 50);
	g.discard = arg_u64("discard", 1);
	g.log = arg_u64("log", 0);
	if (!t_check(parse_mix(arg_str("mix", "")), "fsx: mix= names operations",
		     "mix=%s: known are pstore pload pflush bread bwrite bflush discard wzeroes "
		     "wzeroes-unmap", arg_str("mix", "")))
		return false;
	g.dbytes = (cio.b.discard_align > 8 ? cio.b.discard_align : 8) * SECTOR;
	def = (cio.blk_off + 2 * MB - 1) & ~(2 * MB - 1);
	g.base = arg_u64("base", def);
	if (!t_check(g.align >= SECTOR && g.align % SECTOR == 0 && (g.base - cio.blk_off) % SECTOR == 0 &&
			     g.size >= 1 * MB && g.size % (64 * K) == 0 && g.base + g.size <= cio.wsize &&
			     cio_on_disk(g.base, g.size),
		     "fsx region in the window and on the disk",
		     "base 0x%lx size 0x%lx align %lu; window 0x%lx, blk_off 0x%lx, disk 0x%lx", g.base,
		     g.size, g.align, cio.wsize, cio.blk_off, cio.disk_bytes))
		return false;
	g.shadow = mem_alloc(g.size, 4096);
	g.tsc0 = rdtsc();
	return t_check(g.shadow != 0, "shadow model memory", "no %lu MiB of RAM", g.size >> 20);
}

static void fsx_init(struct fsx *f, unsigned cpu)
{
	memset(f, 0, sizeof(*f));
	f->cpu = cpu;
	f->rng = mix64(g.seed ^ (0x5bd1e995ull * (cpu + 1))) | 1;
	cio_ctx_init(&f->c);
	f->ram = mem_alloc(MAXIO, 4096);
	f->ram2 = mem_alloc(MAXIO, 4096);
}

/* Read the region through blk into the shadow; the pmem view must agree. */
static bool load_shadow(struct fsx *f)
{
	for (uint64_t o = 0; o < g.size; o += MAXIO) {
		int s = cio_rw(&f->c, false, g.base + o, g.shadow + o, MAXIO);

		if (s != VIRTIO_BLK_S_OK) {
			t_check(false, "fsx: initial blk read of the region", "at 0x%lx: %s", g.base + o,
				cio_status_str(s));
			return false;
		}
	}
	return t_check(verify_pmem(f, 0, g.size), "fsx: the pmem view of the region equals its blk view "
						 "at the start", "see above");
}

static void print_counts(struct fsx *f, uint64_t ns)
{
	char line[240];
	int n = 0;
	uint64_t total = 0;

	for (int op = 0; op < NOPS; op++) {
		total += f->count[op];
		n += snprintf(line + n, sizeof(line) - n, "%s%s %lu", op ? ", " : "", opname[op],
			      f->count[op]);
	}
	t_diag("fsx[%u]: %s", f->cpu, line);
	t_diag("fsx[%u]: %lu ops (%lu of them periodic verify) in %lu ms = %lu ops/s; blk buffers in "
	       "the window %lu (+%lu the very range); %lu blk requests, %lu pmem FLUSHes",
	       f->cpu, total, f->count[OP_VERIFY], ns / 1000000,
	       ns ? total * (uint64_t)1000000000 / ns : 0, f->nwin,
	       f->nsame, f->c.nblk, f->c.npflush);
}

/* Final: the whole of [lo, hi) both ways, FLUSH, again. */
static bool final_check(struct fsx *f, uint64_t lo, uint64_t hi)
{
	char why[96];

	if (!verify(f, lo, hi - lo))
		return false;
	if (!cio_pflush(&f->c, why, sizeof(why)))
		return fail(f, "final %s", why);
	return verify(f, lo, hi - lo);
}

static struct fsx f0, f1;

static void fsx(void)
{
	uint64_t ops = arg_u64("ops", 20000), t;

	if (!fsx_setup())
		return;
	fsx_init(&f0, 0);
	t_diag("fsx: seed %lu, %lu ops over window [0x%lx, 0x%lx), blk align %lu, discard unit %lu",
	       g.seed, ops, g.base, g.base + g.size, g.align, g.dbytes);
	if (!load_shadow(&f0))
		return;
	t = rdtsc();
	run_ops(&f0, 0, g.size, ops);
	t = tsc_to_ns(rdtsc() - t);
	print_counts(&f0, t);
	t_check(!f0.failed, "fsx: every operation checked against the shadow model through both views",
		"mismatch or error above");
	if (!f0.failed)
		t_check(final_check(&f0, 0, g.size), "fsx: whole region, FLUSH, whole region",
			"see above");
}

/* ---- fsx-smp -------------------------------------------------------------------------- */

static struct {
	volatile uint32_t alive, go, done;
	struct barrier bar;
	uint64_t ops, sync_every, sh_ops, h, timeout_ns;
	uint64_t ns[2];
	volatile uint32_t bar_broken;
} m;

static bool meet(struct fsx *f, uint32_t *sense)
{
	if (barrier_wait(&m.bar, sense, m.timeout_ns) == 0)
		return true;
	printf("# fsx[%u]: barrier timed out at op %lu\n", f->cpu, f->opno);
	m.bar_broken = 1;
	g.stop = 1;
	return false;
}

static void smp_body(struct fsx *f)
{
	uint64_t own_lo = f->cpu ? m.h : 0, own_hi = f->cpu ? 2 * m.h : m.h, done = 0, t = rdtsc();
	uint32_t sense = 0;

	for (uint64_t round = 0;; round++) {
		uint64_t n = m.ops - done < m.sync_every ? m.ops - done : m.sync_every;

		run_ops(f, own_lo, own_hi, n);
		done += n;
		if (!meet(f, &sense) || g.stop || done >= m.ops)
			break;
		if (round % 2 == f->cpu)
			run_ops(f, 2 * m.h, g.size, m.sh_ops);
		if (!meet(f, &sense))
			break;
		if (!g.stop)
			verify(f, 2 * m.h, g.size - 2 * m.h);
		if (!meet(f, &sense))
			break;
	}
	if (!g.stop && !m.bar_broken)
		final_check(f, own_lo, own_hi);
	m.ns[f->cpu] = tsc_to_ns(rdtsc() - t);
}

static void fsx_smp_ap(unsigned cpu)
{
	if (cpu != 1)
		return;
	__atomic_store_n(&m.alive, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&m.go, __ATOMIC_ACQUIRE))
		cpu_relax();
	smp_body(&f1);
	__atomic_store_n(&m.done, 1, __ATOMIC_RELEASE);
}

static void fsx_smp(void)
{
	uint64_t shared = arg_u64("shared", 512 * K), dl;

	if (!fsx_setup())
		return;
	dl = deadline_after_ns(arg_u64("ap_wait_ms", 200) * 1000000ull);
	while (!__atomic_load_n(&m.alive, __ATOMIC_ACQUIRE) && !deadline_passed(dl))
		cpu_relax();
	if (!m.alive) {
		t_diag("fsx-smp: only one vCPU runs (no AP checked in within ap_wait_ms; QEMU starts no "
		       "APs for this guest): needs cvmm --cpus 2");
		t_check(true, "fsx-smp # SKIP one vCPU", "-");
		return;
	}
	m.ops = arg_u64("ops", 20000);
	m.sync_every = arg_u64("sync_every", 500);
	m.sh_ops = arg_u64("sh_ops", 16);
	m.timeout_ns = arg_u64("barrier_ms", 120000) * 1000000ull;
	m.h = (g.size - shared) / 2 / g.dbytes * g.dbytes;
	if (!t_check(shared < g.size && shared >= 64 * K && m.h >= 64 * K && m.sync_every,
		     "fsx-smp: parts", "size %lu shared %lu", g.size, shared))
		return;
	barrier_init(&m.bar, 2);
	fsx_init(&f0, 0);
	fsx_init(&f1, 1);
	t_diag("fsx-smp: seed %lu, %lu ops per vCPU; vCPU 0 [0x%lx, 0x%lx), vCPU 1 [0x%lx, 0x%lx), "
	       "shared [0x%lx, 0x%lx) every %lu ops (%lu ops by one vCPU, then both verify)",
	       g.seed, m.ops, g.base, g.base + m.h, g.base + m.h, g.base + 2 * m.h, g.base + 2 * m.h,
	       g.base + g.size, m.sync_every, m.sh_ops);
	if (!load_shadow(&f0))
		return;
	__atomic_store_n(&m.go, 1, __ATOMIC_RELEASE);
	smp_body(&f0);
	dl = deadline_after_ns(m.timeout_ns);
	while (!__atomic_load_n(&m.done, __ATOMIC_ACQUIRE) && !deadline_passed(dl))
		cpu_relax();
	if (!t_check(m.done, "fsx-smp: vCPU 1 finished", "it did not come back within barrier_ms"))
		return;
	print_counts(&f0, m.ns[0]);
	print_counts(&f1, m.ns[1]);
	if (f0.failed != f1.failed) { /* what the other vCPU did meanwhile (t= relates the two) */
		t_diag("fsx-smp: the other vCPU's log:");
		print_log(f0.failed ? &f1 : &f0);
	}
	t_check(!m.bar_broken, "fsx-smp: both vCPUs met at every sync point", "a barrier timed out");
	t_check(!f0.failed, "fsx-smp: vCPU 0's operations all checked against the shadow model",
		"see its report above");
	t_check(!f1.failed, "fsx-smp: vCPU 1's operations all checked against the shadow model",
		"see its report above");
	if (!f0.failed && !f1.failed && !m.bar_broken)
		t_check(final_check(&f0, 0, g.size), "fsx-smp: whole region, FLUSH, whole region",
			"see above");
}

const struct scenario scenario_fsx = { .name = "fsx", .run = fsx };
const struct scenario scenario_fsx_smp = { .name = "fsx-smp", .run = fsx_smp, .ap = fsx_smp_ap };
