/* faults: every fault-injection effect seen from the guest (issue 15 item 4).
 *
 *   scenario=faults [faults.blk=LIST] [faults.pmem0=LIST] ... [faults.pmem3=LIST]
 *                   [faults.live=1] [faults.delay_ms=300] [faults.live_timeout_ms=10000]
 *                   [blk_dev=N] [seed=N] [timeout_ms=2000]
 *
 * The host configures fault rules (devices/fault.h, README "Fault injection"); the arguments
 * tell the guest which of the rules below are there. Every case runs whether or not its rule
 * is configured: a case named in the list expects the fault, a case not named expects every
 * request to succeed with the right data (faults.blk=none, faults.pmem0=none: no rule at all,
 * which is also how the scenario runs under QEMU). A device without an argument is not used.
 *
 * faults.blk=LIST (the disk blk_dev=N, default 0; LIST = `all`, `none` or a comma list of
 * these case names; the rules are on byte offsets of the disk, each case's own MiB, so one run
 * has all of them at once):
 *   ioerr   op=write range=1M+64K effect=ioerr
 *           writes just before and just after the range succeed; a write inside it and one
 *           straddling its start complete IOERR (1) and change nothing, not even the straddling
 *           write's sectors outside the range (read back: what was there before)
 *   unsupp  op=read range=2M+4K when=once effect=unsupp
 *           reads just before and after the range succeed (and so do not use up the `once`);
 *           the first read of the range completes UNSUPP (2) with no data moved (the buffer keeps
 *           its preset bytes); the second read of it is OK with the data
 *   torn    op=write range=3M+64K effect=torn:2
 *           a 16 KiB write completes IOERR and exactly its first 2 sectors (1024 bytes) reached
 *           the disk, the rest holds what was there before; a 512-byte write (1 sector <= 2)
 *           completes IOERR with all of it written (the lost-completion case)
 *   delay   op=read range=4M+4K effect=delay:300ms   (D = faults.delay_ms)
 *           a read just after the range takes less than D/2; two reads that touch the range
 *           each take at least 0.9 * D by the guest's TSC clock, and return OK with the data
 *           (times are enforced only when the TSC rate is known, not lib/time.c's guess: under
 *           cvmm it comes from kvmclock; tsc_khz=N or faults.timing=1 forces the checks)
 *   flush   op=flush when=nth:2 effect=ioerr
 *           three times a 4 KiB write (at 5M+64K, +4K, +8K: a FLUSH with something to flush)
 *           and a FLUSH (the scenario's only FLUSHes): OK, IOERR, OK; the writes read back
 *
 * faults.pmemJ=LIST (window J, in the guest's pmem order): `none`, or the effects of that
 * window's `when=once` FLUSH rules in their config order (= the order they fire in, one per
 * FLUSH), at most 4 of:
 *   ioerr   op=flush when=once effect=ioerr           FLUSH answers EIO (ret 1)
 *   enospc  op=flush when=once effect=enospc          FLUSH answers EIO (ret 1): the writeback
 *                                                     found the file full
 *   delay   op=flush when=once effect=delay:300ms     FLUSH answers 0 after >= 0.9 * D
 * Round k (k = 0 .. max(3, n + 1) - 1) stores a page (window page 16 + k) and FLUSHes: the
 * k-th entry's answer, then 0 once the list is used up. The pages stored before a failed FLUSH
 * stay dirty, so the FLUSH that succeeds writes them: all of them must be in the file.
 *
 * faults.live=1: the rules change at run time, through a harness that watches the console
 * and answers with cvmmctl (tests/integration/faults.sh). The guest prints
 *     # faults: ask N fault-add DEV RULE
 *     # faults: ask N fault-remove DEV RULE|all
 * (N = 1, 2, ...; DEV = blk0, pmem1, ... the guest's names; RULE canonical, as fault-list
 * shows it: the harness looks its id up) and polls the device, a request every 20 ms for up to
 * faults.live_timeout_ms, until it behaves as the change says:
 *   L1 (ioerr in the list) remove the ioerr rule: a write inside its range, retried, turns OK
 *   L2 add op=write range=5M+4K effect=ioerr: a write there (repeating the data already there)
 *      turns IOERR, another write there fails and leaves the old data; remove it: OK again
 *   L3 (torn in the list) remove every rule (`all`): the torn write, retried, turns OK and the
 *      whole write is there; a read of the delay range is fast (if delay is in the list)
 *   P  on the first window tested: add op=flush effect=ioerr: store + FLUSH turns EIO; remove
 *      it: FLUSH turns 0, and the page reached the file
 * Every IOERR seen while polling is a fault the device injected and is counted.
 *
 * What the host checks afterwards, from lines in the output:
 *     # faults: blk0 data seed=0x... bytes=OFF+LEN   (in order: the file, fresh zeros at the
 *     # faults: pmem1 data seed=0x... bytes=OFF+LEN   start, with these lib/pattern.h extents
 *                                                      applied in order, is the whole file)
 *     # faults: blk0 injected=N                       (faults the guest saw: the device's
 *                                                      stats must say faults_injected N)
 * guest/tools/check-faults.py does both. A failed write appears in no data line, a torn one
 * with its first K sectors only, so "the file is exactly the model" is the proof that nothing
 * injected leaked into it. The model assumes the disk and windows start as zeros (fresh files):
 * the scenario itself reads each region before it writes where it needs the old contents. */
#include "drivers/virtio_blk.h"
#include "drivers/virtio_devs.h"
#include "drivers/virtio_pmem.h"
#include "lib/pattern.h"
#include "lib/rt.h"
#include "scenarios/scenario.h"

#define K ((uint64_t)1024)
#define M ((uint64_t)1024 * 1024)
#define PAGE ((uint64_t)4096)
#define BUF (128 * K)
#define CHUNK (16 * K)  /* requests at most this long */
#define PMEM_EIO 1      /* VIRTIO_PMEM_RESP_TYPE_EIO */
#define PRESET 0xa5     /* read buffers start as this: a failed read moves no data */
#define MAXSEQ 4
#define FLUSH_OFF (5 * M + 64 * K) /* the flush case's writes */

enum { C_IOERR, C_UNSUPP, C_TORN, C_DELAY, C_FLUSH, NCASE };
static const char *const case_name[NCASE] = { "ioerr", "unsupp", "torn", "delay", "flush" };
enum { P_IOERR, P_ENOSPC, P_DELAY, NPEFF };
static const char *const peff_name[NPEFF] = { "ioerr", "enospc", "delay" };

static struct vblk disk;
static char dname[16];
static unsigned want;            /* 1 << C_* expected on the disk */
static unsigned blk_fired;       /* faults the guest saw on the disk */
static uint8_t *wbuf, *rbuf, *ebuf;
static uint64_t ebase;           /* disk offset of ebuf[0]: the expected contents of a region */
static uint64_t seed, delay_ms, live_ms;
static bool timing;              /* the TSC rate is known: the delay checks are enforced */
static unsigned asks;
static char why[200];

static bool fault(unsigned c) { return want & (1u << c); }
static uint64_t S(unsigned n) { return seed + 0x100 + n; }

/* ---- small tools ------------------------------------------------------------------------ */

static uint64_t ms_since(uint64_t t0)
{
	return tsc_to_ns(rdtsc() - t0) / 1000000;
}

/* A delayed request took at least 0.9 x the delay; an undelayed one less than half of it.
 * Enforced only with a known TSC rate (lib/time.c: not the 2 GHz guess). */
static bool slow(uint64_t ms) { return !timing || ms * 10 >= delay_ms * 9; }
static bool fast(uint64_t ms) { return !timing || ms * 2 < delay_ms; }

/* Index of the first byte where a and b differ, or len. */
static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
	size_t i = 0;

	while (i < len && a[i] == b[i])
		i++;
	return i;
}

static void sleep_ms(uint64_t ms)
{
	uint64_t dl = deadline_after_ns(ms * 1000000);

	while (!deadline_passed(dl))
		cpu_relax();
}

/* What the host's file must hold: this extent of device `dev` holds pattern s. */
static void landed(const char *dev, uint64_t off, uint64_t len, uint64_t s)
{
	t_diag("faults: %s data seed=0x%lx bytes=%lu+%lu", dev, s, off, len);
}

/* Parse a comma list of names into a sequence of indexes (or a bitmask); -1 on an unknown
 * word (named in why), else the number of entries. "none" is the empty list. */
static int parse_list(const char *s, const char *const *names, unsigned n, unsigned *seq,
		      unsigned max)
{
	unsigned cnt = 0;

	if (!strcmp(s, "none"))
		return 0;
	while (*s) {
		const char *e = s;
		unsigned i;

		while (*e && *e != ',')
			e++;
		for (i = 0; i < n; i++)
			if (strlen(names[i]) == (size_t)(e - s) && !strncmp(names[i], s, e - s))
				break;
		if (i == n || cnt == max) {
			snprintf(why, sizeof(why), "'%.*s' %s", (int)(e - s), s,
				 i == n ? "is not one of the names" : "is one too many");
			return -1;
		}
		seq[cnt++] = i;
		s = *e ? e + 1 : e;
	}
	return cnt;
}

/* ---- the disk --------------------------------------------------------------------------- */

static int wr(uint64_t off, uint32_t len, uint64_t s)
{
	pattern_fill(wbuf, off, len, s);
	return vblk_rw(&disk, true, off / SECTOR, wbuf, len);
}

/* One read into rbuf (preset first). */
static int rd(uint64_t off, uint32_t len)
{
	memset(rbuf, PRESET, len);
	return vblk_rw(&disk, false, off / SECTOR, rbuf, len);
}

/* The expected contents of [off, off + len): read them now (outside every read rule's range). */
static bool snapshot(uint64_t off, uint64_t len)
{
	ebase = off;
	for (uint64_t o = 0; o < len; o += CHUNK) {
		uint32_t n = len - o < CHUNK ? len - o : CHUNK;
		int st = rd(off + o, n);

		if (st != VIRTIO_BLK_S_OK) {
			snprintf(why, sizeof(why), "reading [0x%lx, +%u) first: %s", off + o, n,
				 vblk_status_str(st));
			return false;
		}
		memcpy(ebuf + o, rbuf, n);
	}
	return true;
}

/* A write the guest expects on the disk: into the expected contents and the file's model. */
static void expect_data(uint64_t off, uint64_t len, uint64_t s)
{
	pattern_fill(ebuf + (off - ebase), off, len, s);
	landed(dname, off, len, s);
}

/* Does [off, off + len) read back as expected? (in CHUNK requests) */
static bool readback(uint64_t off, uint64_t len)
{
	for (uint64_t o = 0; o < len; o += CHUNK) {
		uint32_t n = len - o < CHUNK ? len - o : CHUNK;
		const uint8_t *e = ebuf + (off + o - ebase);
		int st = rd(off + o, n);
		size_t at;

		if (st != VIRTIO_BLK_S_OK) {
			snprintf(why, sizeof(why), "read [0x%lx, +%u): %s", off + o, n, vblk_status_str(st));
			return false;
		}
		if ((at = first_diff(rbuf, e, n)) != n) {
			snprintf(why, sizeof(why), "disk byte 0x%lx is 0x%02x, expected 0x%02x", off + o + at,
				 rbuf[at], e[at]);
			return false;
		}
	}
	return true;
}

/* A request's status against the case's expectation; an expected fault is counted. */
static bool status_is(int st, int expect, const char *what)
{
	if (st == expect) {
		if (expect != VIRTIO_BLK_S_OK)
			blk_fired++;
		return true;
	}
	snprintf(why, sizeof(why), "%s: %s, expected %s", what, vblk_status_str(st),
		 vblk_status_str(expect));
	return false;
}

static void ioerr_case(void)
{
	bool f = fault(C_IOERR), good;
	int want_st = f ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	const uint64_t lo = M - 8 * K, hi = M + 72 * K;
	char name[160];

	if (!t_check(snapshot(lo, hi - lo), "ioerr: the region around [1M, 1M+64K) reads", "%s", why))
		return;
	good = status_is(wr(M - 8 * K, 8 * K, S(1)), VIRTIO_BLK_S_OK, "write [1M-8K, 1M)");
	if (good)
		expect_data(M - 8 * K, 8 * K, S(1));
	good = good && status_is(wr(M + 64 * K, 8 * K, S(2)), VIRTIO_BLK_S_OK, "write [1M+64K, +8K)");
	if (good)
		expect_data(M + 64 * K, 8 * K, S(2));
	t_check(good, "ioerr: writes just before and just after the range succeed", "%s", why);
	snprintf(name, sizeof(name), "ioerr: a write inside the range completes %s",
		 vblk_status_str(want_st));
	if (t_check(status_is(wr(M + 16 * K, 16 * K, S(3)), want_st, "write [1M+16K, +16K)"), name,
		    "%s", why) && !f)
		expect_data(M + 16 * K, 16 * K, S(3));
	snprintf(name, sizeof(name), "ioerr: a write straddling the range's start completes %s",
		 vblk_status_str(want_st));
	if (t_check(status_is(wr(M - 8 * K, 16 * K, S(4)), want_st, "write [1M-8K, 1M+8K)"), name,
		    "%s", why) && !f)
		expect_data(M - 8 * K, 16 * K, S(4));
	t_check(readback(lo, hi - lo),
		f ? "ioerr: the failed writes changed nothing, in the range or out of it"
		  : "ioerr: every write is there (no rule)",
		"%s", why);
}

static void unsupp_case(void)
{
	bool f = fault(C_UNSUPP);
	int want_st = f ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_OK, st;
	const uint64_t lo = 2 * M - 4 * K;
	char name[160];
	size_t at;

	ebase = lo;
	if (!t_check(status_is(wr(lo, 12 * K, S(5)), VIRTIO_BLK_S_OK, "write [2M-4K, 2M+8K)"),
		     "unsupp: a write over the read rule's range succeeds", "%s", why))
		return;
	expect_data(lo, 12 * K, S(5));
	t_check(readback(lo, 4 * K) && readback(2 * M + 4 * K, 4 * K),
		"unsupp: reads just before and just after the range are OK with the data", "%s", why);
	st = rd(2 * M, 4 * K);
	snprintf(name, sizeof(name), "unsupp: the first read of the range completes %s%s",
		 vblk_status_str(want_st), f ? " and moves no data" : " with the data");
	if (status_is(st, want_st, "read [2M, +4K)")) {
		if (f)
			for (at = 0; at < 4 * K && rbuf[at] == PRESET; at++)
				;
		else
			at = first_diff(rbuf, ebuf + 4 * K, 4 * K);
		if (f && at < 4 * K)
			snprintf(why, sizeof(why), "buffer byte %lu is 0x%02x, not the preset 0x%02x",
				 (uint64_t)at, rbuf[at], PRESET);
		else if (!f && at < 4 * K)
			snprintf(why, sizeof(why), "disk byte 0x%lx is 0x%02x, expected 0x%02x",
				 2 * M + at, rbuf[at], ebuf[4 * K + at]);
		t_check(at == 4 * K, name, "%s", why);
	} else {
		t_check(false, name, "%s", why);
	}
	t_check(readback(2 * M, 4 * K), f ? "unsupp: the second read of the range is OK (when=once)"
					  : "unsupp: a second read of the range is OK",
		"%s", why);
	t_check(readback(lo, 12 * K), "unsupp: a read straddling the range is OK with the data", "%s",
		why);
}

static void torn_case(void)
{
	bool f = fault(C_TORN);
	int want_st = f ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	const uint64_t lo = 3 * M;
	char name[160];

	if (!t_check(snapshot(lo, 64 * K), "torn: the range [3M, 3M+64K) reads", "%s", why))
		return;
	snprintf(name, sizeof(name), "torn: a 16 KiB write completes %s", vblk_status_str(want_st));
	if (t_check(status_is(wr(lo, 16 * K, S(6)), want_st, "write [3M, +16K)"), name, "%s", why))
		expect_data(lo, f ? 2 * SECTOR : 16 * K, S(6));
	t_check(readback(lo, 16 * K),
		f ? "torn: exactly its first 2 sectors (1024 bytes) reached the disk, the rest is as "
		    "it was"
		  : "torn: all of the write is there (no rule)",
		"%s", why);
	snprintf(name, sizeof(name), "torn: a 512-byte write (fewer sectors than K) completes %s",
		 vblk_status_str(want_st));
	if (t_check(status_is(wr(lo + 32 * K, SECTOR, S(7)), want_st, "write [3M+32K, +512)"), name,
		    "%s", why))
		expect_data(lo + 32 * K, SECTOR, S(7));
	t_check(readback(lo + 16 * K, 48 * K),
		f ? "torn: ... and all of it reached the disk, nothing else changed"
		  : "torn: the 512-byte write is there",
		"%s", why);
}

/* A read of [off, +len) timed; returns ms, status in *st. */
static uint64_t timed_read(uint64_t off, uint32_t len, int *st)
{
	uint64_t t0 = rdtsc();

	*st = rd(off, len);
	return ms_since(t0);
}

static void delay_case(void)
{
	bool f = fault(C_DELAY);
	const uint64_t lo = 4 * M;
	uint64_t ms, ms2;
	char name[160];
	int st;
	size_t at;

	ebase = lo;
	if (!t_check(status_is(wr(lo, 8 * K, S(8)), VIRTIO_BLK_S_OK, "write [4M, +8K)"),
		     "delay: a write over the read rule's range succeeds", "%s", why))
		return;
	expect_data(lo, 8 * K, S(8));
	ms = timed_read(lo + 4 * K, 4 * K, &st);
	at = first_diff(rbuf, ebuf + 4 * K, 4 * K);
	snprintf(name, sizeof(name), "delay: a read just after the range is OK with the data%s",
		 f ? " and not delayed" : "");
	t_check(st == VIRTIO_BLK_S_OK && at == 4 * K && (!f || fast(ms)), name,
		"%s, first bad byte %lu, %lu ms (the delay is %lu ms)", vblk_status_str(st),
		(uint64_t)at, ms, delay_ms);
	for (unsigned k = 0; k < 2; k++) {
		uint32_t len = k ? 8 * K : 4 * K;

		ms2 = timed_read(lo, len, &st);
		at = first_diff(rbuf, ebuf, len);
		snprintf(name, sizeof(name), "delay: %s read of the range is OK with the data%s",
			 k ? "an 8 KiB" : "a 4 KiB", f ? " after >= 0.9 x the delay" : "");
		if (t_check(st == VIRTIO_BLK_S_OK && at == len && (!f || slow(ms2)),
			    name, "%s, first bad byte %lu, %lu ms (the delay is %lu ms)",
			    vblk_status_str(st), (uint64_t)at, ms2, delay_ms) && f)
			blk_fired++;
		t_diag("faults: delay: read of [4M, +%u) took %lu ms (outside: %lu ms)", len, ms2, ms);
	}
}

static void flush_case(void)
{
	bool f = fault(C_FLUSH);
	char name[160];

	if (!vblk_has(&disk, VIRTIO_BLK_F_FLUSH)) {
		t_check(!f, "flush: the disk offers FLUSH (VIRTIO_BLK_F_FLUSH)",
			"faults.blk names flush but the device has no FLUSH");
		return;
	}
	ebase = FLUSH_OFF;
	for (unsigned k = 1; k <= 3; k++) {
		int w = f && k == 2 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		uint64_t o = FLUSH_OFF + (k - 1) * 4 * K;

		snprintf(name, sizeof(name), "flush: a write, then FLUSH %u completes %s%s", k,
			 vblk_status_str(w), f && k == 2 ? " (when=nth:2)" : "");
		if (!status_is(wr(o, 4 * K, S(0x20 + k)), VIRTIO_BLK_S_OK, "write before the FLUSH")) {
			t_check(false, name, "%s", why);
			continue;
		}
		expect_data(o, 4 * K, S(0x20 + k));
		t_check(status_is(vblk_simple(&disk, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), w, "FLUSH"),
			name, "%s", why);
	}
	t_check(readback(FLUSH_OFF, 12 * K), "flush: the writes before each FLUSH read back", "%s",
		why);
}

/* ---- pmem ------------------------------------------------------------------------------- */

struct win {
	struct vpmem p;
	unsigned idx;
	char name[16];
	unsigned seq[MAXSEQ], n;
	unsigned fired;
	bool ok;
};

static struct win wins[VDEV_MAX_PMEM];
static unsigned nwins;

static uint64_t SP(const struct win *w, unsigned k) { return seed + 0x200 + 0x10 * w->idx + k; }

static void store_page(struct win *w, uint64_t page, uint64_t s)
{
	pattern_fill((void *)(w->p.base + page * PAGE), page * PAGE, PAGE, s);
	landed(w->name, page * PAGE, PAGE, s);
}

/* FLUSH, timed: VQ result, *ret, *ms. */
static int pflush(struct win *w, uint32_t *ret, uint64_t *ms)
{
	uint64_t t0 = rdtsc();
	int r = vpmem_flush(&w->p, ret);

	*ms = ms_since(t0);
	return r;
}

static void pmem_rounds(struct win *w)
{
	unsigned rounds = w->n + 1 > 3 ? w->n + 1 : 3;
	char name[160];
	uint64_t ms;
	uint32_t ret;
	bool good = true;

	for (unsigned k = 0; k < rounds; k++) {
		int e = k < w->n ? (int)w->seq[k] : -1, r;
		bool eio = e == P_IOERR || e == P_ENOSPC, ok;

		store_page(w, 16 + k, SP(w, k));
		r = pflush(w, &ret, &ms);
		ok = r == VQ_DONE && ret == (eio ? PMEM_EIO : 0);
		if (e == P_DELAY)
			ok = ok && slow(ms);
		if (ok && e >= 0)
			w->fired++;
		snprintf(name, sizeof(name), "%s: store, FLUSH %u answers %s%s%s", w->name, k + 1,
			 eio ? "EIO (ret 1)" : "0", e >= 0 ? " (rule effect=" : "",
			 e < 0 ? "" : e == P_DELAY ? "delay: after >= 0.9 x the delay)"
						   : e == P_IOERR ? "ioerr)" : "enospc)");
		t_check(ok, name, "%s, ret 0x%x, %lu ms (the delay is %lu ms)", vq_result_str(r), ret,
			ms, delay_ms);
	}
	for (unsigned k = 0; k < rounds && good; k++) {
		size_t at = pattern_check((const void *)(w->p.base + (16 + k) * PAGE), (16 + k) * PAGE,
					  PAGE, SP(w, k));

		if (at != PAGE)
			snprintf(why, sizeof(why), "window page %u byte %lu", 16 + k, (uint64_t)at), good = false;
	}
	snprintf(name, sizeof(name), "%s: the stores are all there (the file is checked by the host)",
		 w->name);
	t_check(good, name, "%s", why);
}

/* ---- the run-time part: rule changes through the harness --------------------------------- */

static void ask(const char *cmd, const char *dev, const char *arg)
{
	console_flush();
	printf("# faults: ask %u %s %s %s\n", ++asks, cmd, dev, arg);
	console_flush();
}

/* Write [off, +len) with pattern s every 20 ms until the status is `until` (or the time is up);
 * each IOERR on the way is a fault the device injected. Returns the last status. */
static int poll_write(uint64_t off, uint32_t len, uint64_t s, int until, unsigned *tries)
{
	uint64_t dl = deadline_after_ns(live_ms * 1000000);
	int st;

	for (*tries = 1;; ++*tries) {
		st = wr(off, len, s);
		if (st == VIRTIO_BLK_S_IOERR)
			blk_fired++;
		if (st == until || (st != VIRTIO_BLK_S_OK && st != VIRTIO_BLK_S_IOERR) ||
		    deadline_passed(dl))
			return st;
		sleep_ms(20);
	}
}

static void live_blk(void)
{
	unsigned tries;
	char name[160];
	int st;

	if (fault(C_IOERR)) {
		ask("fault-remove", dname, "op=write range=1M+64K effect=ioerr");
		st = poll_write(M + 32 * K, 4 * K, S(0x11), VIRTIO_BLK_S_OK, &tries);
		ebase = M + 32 * K;
		if (st == VIRTIO_BLK_S_OK)
			expect_data(M + 32 * K, 4 * K, S(0x11));
		t_diag("faults: L1: %u writes until OK", tries);
		t_check(st == VIRTIO_BLK_S_OK && readback(M + 32 * K, 4 * K),
			"live L1: once the ioerr rule is removed, a write in its range succeeds and "
			"reads back",
			"%s", st == VIRTIO_BLK_S_OK ? why : vblk_status_str(st));
	}
	/* L2: a rule added at run time */
	ebase = 5 * M;
	st = wr(5 * M, 4 * K, S(0x12));
	if (!t_check(st == VIRTIO_BLK_S_OK, "live L2: a write at 5M succeeds before the rule",
		     "%s", vblk_status_str(st)))
		return;
	expect_data(5 * M, 4 * K, S(0x12));
	ask("fault-add", dname, "op=write range=5M+4K effect=ioerr");
	st = poll_write(5 * M, 4 * K, S(0x12), VIRTIO_BLK_S_IOERR, &tries);
	t_diag("faults: L2: %u writes until IOERR", tries);
	if (!t_check(st == VIRTIO_BLK_S_IOERR,
		     "live L2: once the rule is added, a write in its range completes IOERR",
		     "%s after %u writes in %lu ms", vblk_status_str(st), tries, live_ms))
		return;
	t_check(status_is(wr(5 * M, 4 * K, S(0x13)), VIRTIO_BLK_S_IOERR, "write [5M, +4K)") &&
			readback(5 * M, 4 * K),
		"live L2: another write there completes IOERR and leaves the old data", "%s", why);
	ask("fault-remove", dname, "op=write range=5M+4K effect=ioerr");
	st = poll_write(5 * M, 4 * K, S(0x13), VIRTIO_BLK_S_OK, &tries);
	t_diag("faults: L2: %u writes until OK", tries);
	if (st == VIRTIO_BLK_S_OK)
		expect_data(5 * M, 4 * K, S(0x13));
	t_check(st == VIRTIO_BLK_S_OK && readback(5 * M, 4 * K),
		"live L2: once it is removed, the write succeeds and reads back", "%s",
		st == VIRTIO_BLK_S_OK ? why : vblk_status_str(st));
	/* L3: every rule removed */
	if (!fault(C_TORN))
		return;
	ask("fault-remove", dname, "all");
	st = poll_write(3 * M, 16 * K, S(0x14), VIRTIO_BLK_S_OK, &tries);
	t_diag("faults: L3: %u writes until OK", tries);
	ebase = 3 * M;
	if (st == VIRTIO_BLK_S_OK)
		expect_data(3 * M, 16 * K, S(0x14));
	snprintf(name, sizeof(name), "live L3: with every rule removed, the torn range takes a whole "
				     "write");
	t_check(st == VIRTIO_BLK_S_OK && readback(3 * M, 16 * K), name, "%s",
		st == VIRTIO_BLK_S_OK ? why : vblk_status_str(st));
	if (fault(C_DELAY)) {
		uint64_t ms = timed_read(4 * M, 4 * K, &st);

		t_check(st == VIRTIO_BLK_S_OK && fast(ms),
			"live L3: ... and a read of the delay range is no longer delayed",
			"%s, %lu ms (the delay was %lu ms)", vblk_status_str(st), ms, delay_ms);
	}
}

/* FLUSH every 20 ms until it answers `until` (0 or EIO); EIOs on the way are counted. */
static bool poll_flush(struct win *w, uint32_t until, unsigned *tries)
{
	uint64_t dl = deadline_after_ns(live_ms * 1000000), ms;
	uint32_t ret;

	for (*tries = 1;; ++*tries) {
		int r = pflush(w, &ret, &ms);

		if (r == VQ_DONE && ret == PMEM_EIO)
			w->fired++;
		if (r != VQ_DONE || (ret != 0 && ret != PMEM_EIO))
			return false;
		if (ret == until)
			return true;
		if (deadline_passed(dl))
			return false;
		sleep_ms(20);
	}
}

static void live_pmem(struct win *w)
{
	unsigned tries;
	bool ok;

	store_page(w, 40, SP(w, 8));
	ask("fault-add", w->name, "op=flush effect=ioerr");
	ok = poll_flush(w, PMEM_EIO, &tries);
	t_diag("faults: P: %u FLUSHes until EIO", tries);
	if (!t_check(ok, "live P: once op=flush effect=ioerr is added, FLUSH answers EIO",
		     "%s: no EIO after %u FLUSHes", w->name, tries))
		return;
	store_page(w, 41, SP(w, 9));
	ask("fault-remove", w->name, "op=flush effect=ioerr");
	ok = poll_flush(w, 0, &tries);
	t_diag("faults: P: %u FLUSHes until 0", tries);
	t_check(ok, "live P: once it is removed, FLUSH answers 0 (the pages reach the file)",
		"%s: no success after %u FLUSHes", w->name, tries);
}

/* ---- the scenario ----------------------------------------------------------------------- */

static bool open_disk(const char *list)
{
	unsigned seq[NCASE];
	int n = parse_list(list, case_name, NCASE, seq, NCASE);
	int d = vdev_blk_arg();

	if (!strcmp(list, "all"))
		n = NCASE;
	if (!t_check(n >= 0, "faults.blk names known cases (ioerr,unsupp,torn,delay,flush | all | none)",
		     "faults.blk=%s: %s", list, why))
		return false;
	want = 0;
	for (int i = 0; i < n; i++)
		want |= 1u << (strcmp(list, "all") ? seq[i] : (unsigned)i);
	snprintf(dname, sizeof(dname), "blk%d", d);
	if (!t_check(vblk_open(&disk, d) == 0, "the disk is there and initialises", "blk%d", d))
		return false;
	if (!t_check(disk.capacity * SECTOR >= 6 * M, "the disk holds 6 MiB",
		     "%s: %lu sectors", dname, disk.capacity))
		return false;
	for (unsigned c = 0; c < NCASE; c++)
		t_diag("faults: %s %s: %s", dname, case_name[c], fault(c) ? "rule expected" : "no rule");
	return true;
}

static void open_windows(void)
{
	char key[32];

	nwins = 0;
	for (unsigned j = 0; j < VDEV_MAX_PMEM; j++) {
		const char *l;
		struct win *w = &wins[nwins];
		int n;

		snprintf(key, sizeof(key), "faults.pmem%u", j);
		if (!(l = arg_str(key, 0)))
			continue;
		memset(w, 0, sizeof(*w));
		w->idx = j;
		snprintf(w->name, sizeof(w->name), "pmem%u", j);
		n = parse_list(l, peff_name, NPEFF, w->seq, MAXSEQ);
		if (!t_check(n >= 0, "faults.pmemJ names known effects (ioerr,enospc,delay | none)",
			     "%s=%s: %s", key, l, why))
			continue;
		w->n = n;
		if (!t_check(vpmem_open(&w->p, j) == 0 && w->p.size >= 64 * PAGE,
			     "the window is there, initialises and holds 64 pages", "pmem%u", j))
			continue;
		w->ok = true;
		nwins++;
	}
}

static void faults(void)
{
	const char *bl = arg_str("faults.blk", 0);
	bool live = arg_u64("faults.live", 0), have_disk = false;

	seed = arg_u64("seed", mix64(rdtsc()) & 0xffffffffull);
	delay_ms = arg_u64("faults.delay_ms", 300);
	live_ms = arg_u64("faults.live_timeout_ms", 10000);
	timing = strcmp(tsc_source(), "guess") || arg_u64("faults.timing", 0);
	t_diag("faults: seed=0x%lx delay_ms=%lu live=%u", seed, delay_ms, live);
	if (!timing)
		t_diag("faults: the TSC rate is a guess: request times are printed, the delay checks "
		       "NOT enforced (tsc_khz=N or faults.timing=1 enforces them)");
	wbuf = mem_alloc(BUF, PAGE);
	rbuf = mem_alloc(BUF, PAGE);
	ebuf = mem_alloc(BUF, PAGE);
	if (!t_check(wbuf && rbuf && ebuf, "buffers", "out of memory"))
		return;
	if (bl && (have_disk = open_disk(bl))) {
		ioerr_case();
		unsupp_case();
		torn_case();
		delay_case();
		flush_case();
	}
	open_windows();
	if (!t_check(bl || nwins, "something to test: faults.blk= or faults.pmemJ=",
		     "no device argument given"))
		return;
	for (unsigned i = 0; i < nwins; i++)
		pmem_rounds(&wins[i]);
	if (live) {
		if (have_disk)
			live_blk();
		if (nwins)
			live_pmem(&wins[0]);
	} else {
		t_diag("faults: the live part (rules added and removed at run time) did not run: "
		       "faults.live=1 with a harness (tests/integration/faults.sh)");
	}
	if (have_disk)
		t_diag("faults: %s injected=%u", dname, blk_fired);
	for (unsigned i = 0; i < nwins; i++)
		t_diag("faults: %s injected=%u", wins[i].name, wins[i].fired);
}

const struct scenario scenario_faults = { .name = "faults", .run = faults };
