/* multi: several virtio-blk disks and virtio-pmem windows at once (issue 15 item 1).
 *
 *   scenario=multi [multi.nblk=2] [multi.npmem=2] [multi.same=1] [multi.blk_on_pmem=D:W]
 *                  [seed=N] [timeout_ms=2000]
 *
 * Opens every virtio-blk and virtio-pmem device the guest found (drivers/virtio_devs.h: blkI,
 * pmemJ in PCI order, i.e. config order under cvmm) and checks, in order:
 *
 *  1. The counts are exactly multi.nblk and multi.npmem (default 2 and 2), and no two windows
 *     overlap in guest-physical space.
 *  2. Disks: every disk gets its own pattern (seed + 1 + I) over the same three 16 KiB regions
 *     (disk bytes 0, 1 MiB and the last 16 KiB, 4 KiB aligned); only after all are written is
 *     each read back: each must hold its own pattern. A disk holding another's pattern is named
 *     (cross-talk: two devices on one file, or requests routed to the wrong device). FLUSH each.
 *  3. Windows, multi.same=0 (default: every window its own file): every window gets its own
 *     pattern (seed + 0x11 + J) over the same pages (32, 33, 600, size/2 + 16), then each is
 *     checked for its own, then FLUSHed (ret 0).
 *     multi.same=1 (pmem0 and pmem1 are windows onto ONE file): pmem0 stores its pattern over
 *     pages 32 and 600, and loads through pmem1 at the same offsets must see it; a FLUSH
 *     through pmem1 then returns 0; pmem1 stores its pattern over pages 33 and size/2 + 16, and
 *     loads through pmem0 see that; a FLUSH through pmem0 returns 0. Windows 2, 3 (if any)
 *     are handled as with same=0.
 *  4. multi.blk_on_pmem=D:W (disk blkD is the file of window pmemW, from file offset 0): blkD
 *     writes a pattern (seed + 0x21) over disk bytes [1.5 MiB, +16 KiB) and loads through pmemW
 *     (and through its partner window if same=1 pairs it) see it; pmemW stores a pattern
 *     (seed + 0x22) over window bytes [1.75 MiB, +16 KiB) and a blkD read sees it; FLUSH
 *     through pmemW returns 0.
 *
 * Regions are disjoint (disk 0-16K, 1M-1M+16K, last 16K; windows pages 32, 33, 600, mid+16;
 * step 4 at 1.5M and 1.75M), so all of it can share one file. What the host must find in each
 * backing file is printed, one line per (device, seed):
 *     # multi: blk0 seed=0x... pages=0,1,2,3,256,...        (4 KiB page numbers, file = disk)
 *     # multi: pmem1 seed=0x... pages=33,1040               (file offset = window offset)
 * i.e. those pages of that device's file hold the lib/pattern.h pattern with that seed
 * (guest/tools/check-pattern.py FILE --pages LIST --seed S; blkD's file starts at offset 0). */
#include "drivers/virtio_blk.h"
#include "drivers/virtio_devs.h"
#include "drivers/virtio_pmem.h"
#include "lib/pattern.h"
#include "lib/rt.h"
#include "scenarios/scenario.h"

#define PAGE ((uint64_t)4096)
#define REG (16u << 10) /* bytes per region */
#define NREG 3
#define NWP 4
#define BW_OFF ((uint64_t)0x180000) /* step 4: blk writes, window reads */
#define WB_OFF ((uint64_t)0x1c0000) /* step 4: window stores, blk reads */

static struct vblk disks[VDEV_MAX_BLK];
static struct vpmem wins[VDEV_MAX_PMEM];
static bool disk_ok[VDEV_MAX_BLK], win_ok[VDEV_MAX_PMEM];
static unsigned nb, np;
static uint64_t seed;
static uint8_t *wbuf, *rbuf;

static uint64_t seed_blk(unsigned i) { return seed + 1 + i; }
static uint64_t seed_win(unsigned j) { return seed + 0x11 + j; }

/* "# multi: NAME seed=S pages=..." for byte ranges [off[k], off[k] + len) */
static void print_pages(const char *name, uint64_t s, const uint64_t *off, unsigned n,
			uint64_t len)
{
	char line[256];
	int l = snprintf(line, sizeof(line), "multi: %s seed=0x%lx pages=", name, s);

	for (unsigned k = 0; k < n; k++)
		for (uint64_t pg = off[k] / PAGE; pg < (off[k] + len) / PAGE && l < (int)sizeof(line); pg++)
			l += snprintf(line + l, sizeof(line) - l, "%s%lu", l && line[l - 1] == '=' ? "" : ",", pg);
	t_diag("%s", line);
}

/* The disk regions of disk i (byte offsets), deduplicated for small disks. */
static unsigned disk_regions(unsigned i, uint64_t *off)
{
	uint64_t bytes = disks[i].capacity * SECTOR, last = (bytes - REG) & ~(PAGE - 1);
	const uint64_t cand[NREG] = { 0, 1ull << 20, last };
	unsigned n = 0;

	if (bytes < REG)
		return 0;
	for (unsigned k = 0; k < NREG; k++) {
		bool dup = cand[k] + REG > bytes;

		for (unsigned m = 0; m < n; m++)
			dup |= cand[k] < off[m] + REG && off[m] < cand[k] + REG;
		if (!dup)
			off[n++] = cand[k];
	}
	return n;
}

/* Window pages as byte offsets, those inside window j. */
static unsigned win_pages(unsigned j, uint64_t *off)
{
	uint64_t pages = wins[j].size / PAGE;
	const uint64_t cand[NWP] = { 32, 33, 600, pages / 2 + 16 };
	unsigned n = 0;

	for (unsigned k = 0; k < NWP; k++)
		if (cand[k] < pages)
			off[n++] = cand[k] * PAGE;
	return n;
}

/* Which seed, among those given, does the buffer hold at offset off? -1 if none. */
static int which_seed(const void *buf, uint64_t off, uint64_t len, const uint64_t *seeds,
		      unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		if (pattern_check(buf, off, len, seeds[k]) == len)
			return k;
	return -1;
}

static bool flush_win(unsigned j, const char *name)
{
	uint32_t ret = VPMEM_RET_NONE;
	int r = vpmem_flush(&wins[j], &ret);

	return t_check(r == VQ_DONE && ret == 0, name, "pmem%u: %s, ret 0x%x", j, vq_result_str(r),
		       ret);
}

static bool open_all(void)
{
	uint64_t want_b = arg_u64("multi.nblk", 2), want_p = arg_u64("multi.npmem", 2);
	unsigned bad = 0;
	char why[160] = "";

	vdev_scan();
	nb = vdev_count(VIRTIO_ID_BLOCK);
	np = vdev_count(VIRTIO_ID_PMEM);
	t_check(nb == want_b && np == want_p, "the guest found multi.nblk disks and multi.npmem windows",
		"found %u virtio-blk (want %lu) and %u virtio-pmem (want %lu)", nb, want_b, np, want_p);
	if (nb > VDEV_MAX_BLK)
		nb = VDEV_MAX_BLK;
	if (np > VDEV_MAX_PMEM)
		np = VDEV_MAX_PMEM;
	for (unsigned i = 0; i < nb; i++)
		if (!(disk_ok[i] = vblk_open(&disks[i], i) == 0) && !bad++)
			snprintf(why, sizeof(why), "blk%u does not initialise (see above)", i);
	for (unsigned j = 0; j < np; j++)
		if (!(win_ok[j] = vpmem_open(&wins[j], j) == 0) && !bad++)
			snprintf(why, sizeof(why), "pmem%u does not initialise (see above)", j);
	t_check(!bad, "every device initialises (windows mapped)", "%u failed; first: %s", bad, why);
	bad = 0;
	for (unsigned j = 0; j < np; j++)
		for (unsigned k = j + 1; k < np; k++)
			if (win_ok[j] && win_ok[k] && wins[j].start < wins[k].start + wins[k].size &&
			    wins[k].start < wins[j].start + wins[j].size && !bad++)
				snprintf(why, sizeof(why), "pmem%u [0x%lx, +0x%lx) and pmem%u [0x%lx, +0x%lx)",
					 j, wins[j].start, wins[j].size, k, wins[k].start, wins[k].size);
	if (np > 1)
		t_check(!bad, "the windows do not overlap in guest-physical space", "%s", why);
	return nb + np > 0;
}

/* ---- 2. disks ----------------------------------------------------------------------------- */

static void check_disks(void)
{
	uint64_t off[NREG], seeds[VDEV_MAX_BLK];
	char name[96];

	for (unsigned i = 0; i < nb; i++)
		seeds[i] = seed_blk(i);
	for (unsigned i = 0; i < nb; i++) {
		unsigned n = disk_regions(i, off), bad = 0;
		int s = 0;

		if (!disk_ok[i])
			continue;
		for (unsigned k = 0; k < n && !bad; k++) {
			pattern_fill(wbuf, off[k], REG, seeds[i]);
			if ((s = vblk_rw(&disks[i], true, off[k] / SECTOR, wbuf, REG)) != VIRTIO_BLK_S_OK)
				bad++;
		}
		snprintf(name, sizeof(name), "blk%u: its own pattern written at the same %u regions", i, n);
		t_check(n && !bad, name, "OUT: %s (%u regions)", vblk_status_str(s), n);
	}
	/* read back only after every disk was written: a shared backing shows the last writer */
	for (unsigned i = 0; i < nb; i++) {
		unsigned n = disk_regions(i, off);
		int s = 0, other = -1;
		size_t at = REG;
		uint64_t where = 0;
		bool good = true;

		if (!disk_ok[i])
			continue;
		for (unsigned k = 0; k < n && good; k++) {
			memset(rbuf, 0xa5, REG);
			s = vblk_rw(&disks[i], false, off[k] / SECTOR, rbuf, REG);
			at = s == VIRTIO_BLK_S_OK ? pattern_check(rbuf, off[k], REG, seeds[i]) : 0;
			if (s != VIRTIO_BLK_S_OK || at != REG) {
				good = false;
				where = off[k];
				if (s == VIRTIO_BLK_S_OK)
					other = which_seed(rbuf, off[k], REG, seeds, nb);
			}
		}
		snprintf(name, sizeof(name), "blk%u reads back its own pattern (no cross-talk)", i);
		if (other >= 0)
			t_check(false, name, "disk byte 0x%lx holds blk%d's pattern", where, other);
		else
			t_check(good, name, "disk byte 0x%lx: %s, first bad byte %lu", where,
				vblk_status_str(s), (uint64_t)at);
		if (vblk_has(&disks[i], VIRTIO_BLK_F_FLUSH)) {
			s = vblk_simple(&disks[i], VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
			snprintf(name, sizeof(name), "blk%u: FLUSH", i);
			t_check(s == VIRTIO_BLK_S_OK, name, "%s", vblk_status_str(s));
		}
		snprintf(name, sizeof(name), "blk%u", i);
		if (good)
			print_pages(name, seeds[i], off, n, REG);
	}
}

/* ---- 3. windows --------------------------------------------------------------------------- */

static void store(unsigned j, uint64_t off, uint64_t len, uint64_t s)
{
	pattern_fill((void *)(wins[j].base + off), off, len, s);
}

/* Check [off, off + len) through window j holds seed s; on failure say whose pattern it is. */
static bool load_check(unsigned j, uint64_t off, uint64_t len, uint64_t s, char *why, size_t wl)
{
	const void *p = (const void *)(wins[j].base + off);
	size_t at = pattern_check(p, off, len, s);
	uint64_t seeds[VDEV_MAX_PMEM];
	int other;

	if (at == len)
		return true;
	for (unsigned k = 0; k < np; k++)
		seeds[k] = seed_win(k);
	other = which_seed(p, off, len, seeds, np);
	if (other >= 0)
		snprintf(why, wl, "pmem%u offset 0x%lx holds pmem%d's pattern", j, off, other);
	else
		snprintf(why, wl, "pmem%u offset 0x%lx: byte %lu is 0x%x", j, off + at, (uint64_t)at,
			 ((const volatile uint8_t *)p)[at]);
	return false;
}

static void check_windows_own(unsigned from)
{
	uint64_t off[NWP];
	char name[96], why[120];

	for (unsigned j = from; j < np; j++) {
		unsigned n = win_pages(j, off);

		if (win_ok[j])
			for (unsigned k = 0; k < n; k++)
				store(j, off[k], PAGE, seed_win(j));
	}
	for (unsigned j = from; j < np; j++) {
		unsigned n = win_pages(j, off);
		bool good = true;

		if (!win_ok[j])
			continue;
		for (unsigned k = 0; k < n && good; k++)
			good = load_check(j, off[k], PAGE, seed_win(j), why, sizeof(why));
		snprintf(name, sizeof(name), "pmem%u holds its own pattern (no cross-talk)", j);
		t_check(good, name, "%s", why);
		snprintf(name, sizeof(name), "pmem%u: FLUSH returns 0", j);
		if (flush_win(j, name) && good) {
			snprintf(name, sizeof(name), "pmem%u", j);
			print_pages(name, seed_win(j), off, n, PAGE);
		}
	}
}

/* Windows 0 and 1 onto one file. */
static void check_windows_same(void)
{
	uint64_t off[NWP], a[2], b[2];
	unsigned n;
	bool good = true;
	char why[120] = "";

	if (!t_check(np >= 2 && win_ok[0] && win_ok[1], "multi.same=1: pmem0 and pmem1 are there",
		     "%u windows", np))
		return;
	n = win_pages(0, off);
	if (!t_check(n == NWP && wins[0].size == wins[1].size, "multi.same=1: windows of one size",
		     "pmem0 0x%lx bytes, pmem1 0x%lx", wins[0].size, wins[1].size))
		return;
	a[0] = off[0], a[1] = off[2];
	b[0] = off[1], b[1] = off[3];
	for (unsigned k = 0; k < 2; k++)
		store(0, a[k], PAGE, seed_win(0));
	for (unsigned k = 0; k < 2 && good; k++)
		good = load_check(1, a[k], PAGE, seed_win(0), why, sizeof(why));
	t_check(good, "a store through pmem0 is seen by a load through pmem1 (same offset)", "%s", why);
	flush_win(1, "FLUSH through pmem1 after stores through pmem0 returns 0");
	for (unsigned k = 0; k < 2; k++)
		store(1, b[k], PAGE, seed_win(1));
	good = true;
	for (unsigned k = 0; k < 2 && good; k++)
		good = load_check(0, b[k], PAGE, seed_win(1), why, sizeof(why));
	t_check(good, "a store through pmem1 is seen by a load through pmem0 (same offset)", "%s", why);
	good = true;
	for (unsigned k = 0; k < 2 && good; k++)
		good = load_check(0, a[k], PAGE, seed_win(0), why, sizeof(why));
	t_check(good, "pmem0's own stores are still there", "%s", why);
	flush_win(0, "FLUSH through pmem0 after stores through pmem1 returns 0");
	print_pages("pmem0", seed_win(0), a, 2, PAGE);
	print_pages("pmem1", seed_win(1), b, 2, PAGE);
}

/* ---- 4. a disk on a window's file -------------------------------------------------------- */

static void check_blk_on_pmem(const char *spec, bool same)
{
	unsigned d = 0, w = 0, *v = &d;
	const char *s = spec;
	uint64_t sx = seed + 0x21, sy = seed + 0x22, o;
	char name[120], why[120] = "";
	bool good, parsed = *s >= '0' && *s <= '9';
	int st;

	for (; *s && parsed; s++) {
		if (*s == ':' && v == &d)
			v = &w;
		else if (*s >= '0' && *s <= '9')
			*v = *v * 10 + (*s - '0');
		else
			parsed = false;
	}
	if (!t_check(parsed && v == &w && d < nb && w < np && disk_ok[d] && win_ok[w],
		     "multi.blk_on_pmem=D:W names a disk and a window that are there",
		     "'%s' (%u disks, %u windows)", spec, nb, np))
		return;
	if (!t_check(disks[d].capacity * SECTOR >= WB_OFF + REG && wins[w].size >= WB_OFF + REG,
		     "disk and window hold 2 MiB", "disk 0x%lx bytes, window 0x%lx",
		     disks[d].capacity * SECTOR, wins[w].size))
		return;
	pattern_fill(wbuf, BW_OFF, REG, sx);
	st = vblk_rw(&disks[d], true, BW_OFF / SECTOR, wbuf, REG);
	good = st == VIRTIO_BLK_S_OK;
	if (!good)
		snprintf(why, sizeof(why), "blk%u OUT: %s", d, vblk_status_str(st));
	else if ((o = pattern_check((const void *)(wins[w].base + BW_OFF), BW_OFF, REG, sx)) != REG)
		snprintf(why, sizeof(why), "pmem%u offset 0x%lx: byte 0x%x", w, BW_OFF + o,
			 wins[w].base[BW_OFF + o]), good = false;
	snprintf(name, sizeof(name), "data blk%u writes is seen by loads through pmem%u (same file)", d, w);
	t_check(good, name, "%s", why);
	if (same && w < 2) {
		unsigned w2 = 1 - w;

		o = pattern_check((const void *)(wins[w2].base + BW_OFF), BW_OFF, REG, sx);
		snprintf(name, sizeof(name), "... and through pmem%u (the same file again)", w2);
		t_check(o == REG, name, "pmem%u offset 0x%lx: byte 0x%x", w2, BW_OFF + o,
			o < REG ? wins[w2].base[BW_OFF + o] : 0);
	}
	store(w, WB_OFF, REG, sy);
	memset(rbuf, 0xa5, REG);
	st = vblk_rw(&disks[d], false, WB_OFF / SECTOR, rbuf, REG);
	o = st == VIRTIO_BLK_S_OK ? pattern_check(rbuf, WB_OFF, REG, sy) : 0;
	snprintf(name, sizeof(name), "stores through pmem%u are seen by a read of blk%u (same file)", w, d);
	t_check(st == VIRTIO_BLK_S_OK && o == REG, name, "IN: %s, first bad byte %lu",
		vblk_status_str(st), o);
	snprintf(name, sizeof(name), "FLUSH through pmem%u after the disk's write returns 0", w);
	flush_win(w, name);
	snprintf(name, sizeof(name), "blk%u", d);
	print_pages(name, sx, (uint64_t[]){ BW_OFF }, 1, REG);
	snprintf(name, sizeof(name), "pmem%u", w);
	print_pages(name, sy, (uint64_t[]){ WB_OFF }, 1, REG);
}

static void multi(void)
{
	bool same = arg_u64("multi.same", 0);
	const char *bop = arg_str("multi.blk_on_pmem", 0);

	seed = arg_u64("seed", mix64(rdtsc()) & 0xffffffffull);
	t_diag("multi: seed=0x%lx same=%u blk_on_pmem=%s", seed, same, bop ? bop : "-");
	wbuf = mem_alloc(REG, PAGE);
	rbuf = mem_alloc(REG, PAGE);
	if (!t_check(wbuf && rbuf, "buffers", "out of memory") || !open_all())
		return;
	check_disks();
	if (same) {
		check_windows_same();
		check_windows_own(2);
	} else {
		check_windows_own(0);
	}
	if (bop)
		check_blk_on_pmem(bop, same);
}

const struct scenario scenario_multi = { .name = "multi", .run = multi };
