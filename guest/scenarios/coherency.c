/* coherency: one check per invariant of the protocol that keeps the virtio-pmem window and the
 * virtio-blk disk coherent when both are views of ONE backing file (/work/shared/DESIGN.md,
 * "The protocol, operation by operation"). Each case cites the seed thread it comes from
 * (/work/shared/seeds/) and says what a broken VMM would show.
 *
 *   scenario=coherency [blk_off=BYTES] [base=OFF] [seed=N] [subblock=1] [populate=1] [e1=0]
 *                      [enospc=1] [cases=a1,b1,...] [b1_iters=200] [b1_len=64K]
 *                      [b1_delay_us=N] [f1_iters=500] [f2_iters=500] [e1_timeout_ms=10000]
 *                      [e1_off=100] [e1_len=50] [timeout_ms=2000] [late_ms=20000]
 *                      [ap_wait_ms=200] [blk_dev=N] [pmem_dev=N]
 *   scenario=coherency-populate [blk_off=] [base=]      (c1 alone, for a host with populate=on)
 *
 * CONFIGURATION. One backing file F is both the pmem window (window offset o = file offset o)
 * and the blk disk starting at file offset blk_off: window offset o <-> disk byte o - blk_off
 * (scenarios/fsx_io.h). The cases use the 4 MiB of the window from `base` (default blk_off
 * rounded up to 2 MiB), each its own pages:
 *
 *   base + 64K-4K  a1 (2 pages across a 64 KiB boundary)   base + 1M      b1 source (64K)
 *   base + 128K    a2 (3 pages)                             base + 1M+256K d1 (16K)
 *   base + 256K    a4 (1 page)                              base + 1M+320K d2 (16K)
 *   base + 512K    b1 buffer (64K)                          base + 1M+512K e1 (1 page)
 *   base + 640K    b1' buffer (64K)                         base + 1M+768K f1 (16K)
 *   base + 768K    b2 (3 x 64K)                             base + 1M+784K f2 (16 pages)
 *   base + 2M-8K   a3 (4 pages across 2 MiB)                [base, base+4M) c1 loads
 *                                                           base + 4M ...  c2 (enospc=1)
 * cases=ID,ID runs only those (ids c1 a1 a2 a3 a4 b1 b1q b2 d1 d2 e1 f1 f2 c2; b1q is b1').
 * A request that misses timeout_ms is waited for late_ms more, so that the failure says
 * whether it completed late (slow host) or never (hang); after a "never" no more blk requests
 * are sent ("not sent" in later failures).
 * Data is the lib/pattern.h pattern with seeds derived from `seed=` (default: from the TSC,
 * printed), so stale data from an earlier run cannot pass for fresh. Before most cases the
 * range is first written through blk with "Z" data, so that "the file's old bytes" are known and
 * a VMM that reads them where it should not is named in the failure.
 *
 * cvmm:  [pmem] path=F size=64M granule=4K, [blk] path=F (offset=N with blk_off=N), --cpus 2,
 *        --control S; guest/tools/host-write.py --socket S -- build/cvmm run --config C
 *        --control S --cmdline "scenario=coherency subblock=1" (e1=0 without the harness).
 * QEMU:  BLK=F PMEM=F guest/run-qemu.sh "scenario=coherency e1=0" (q35; results below);
 *        with e1: guest/tools/host-write.py --file F -- guest/run-qemu.sh "scenario=coherency";
 *        BLK_OFF=N adds the raw driver's offset=N (then pass blk_off=N).
 *
 * THE e1 LINE PROTOCOL. After storing pattern A over page P the guest prints exactly one line
 *     # e1: host-write offset=N length=L data=HEX
 * N: window = file offset (decimal), inside page P; L: bytes (decimal); HEX: the L new bytes B,
 * lowercase hex, 2 digits per byte. Whoever runs the VM (the host test harness; for QEMU,
 * guest/tools/host-write.py) writes B at file offset N through the host interface (cvmm's
 * control socket `host-write`; under QEMU a pwrite to F). The guest polls the window with loads
 * for e1_timeout_ms (default 10000, TSC-timed) until [N, N+L) reads B, then checks the rest of P
 * still reads A, FLUSHes, and checks a blk read of P. No harness: `not ok` unless e1=0 (SKIP).
 *
 * THE CASES (one t_check each; "broken:" = what a VMM violating the invariant shows)
 *  a1 (seed 000, Arcangeli/Morton 2004: "we should msync all the mappings if you want to truly
 *     provide mmap coherency to O_DIRECT"): blk writes Z over 2 pages; pmem stores A over bytes
 *     [100, 6100) (across the page boundary) without FLUSH; a blk read of the 2 pages shows A
 *     there and Z around it, and so do pmem loads. Broken: the direct read does not write back
 *     dirty cache pages first and returns the file's Z where A was stored.
 *  a2 (seed 000, "previously it couldn't work ... since the dirty bit in the pte would be simply
 *     ignored by O_DIRECT"; seed 004's shootdown): blk writes Z over 3 pages; page 0 is mapped by
 *     a pmem load (clean), page 1 by a pmem store of A (dirty), page 2 not touched; blk writes B
 *     over all 3, then B2 over page 1 alone; pmem loads (and a blk read) show B, B2, B. Broken:
 *     no invalidation / no shootdown of the guest mapping: pmem loads still show Z or A.
 *  a3 (seed 000 + 004: "write-back ... clear uptodate" so a later writeback cannot clobber a
 *     direct write): blk Z over 4 pages; pmem stores A over all 4 (dirty); blk writes B over the
 *     middle 2 (across the 2 MiB boundary); pmem FLUSH; blk read and pmem loads show A B B A.
 *     Broken: FLUSH writes back the stale dirty A pages over the direct write (B pages read A),
 *     or the direct write's invalidation threw away dirty A in pages 0/3 (they read Z).
 *  a4 (seed 000, "not coherent at the block level ... 512byte block"): blk Z over a page; pmem
 *     stores A over the whole page (dirty); a 512-byte blk write of B at byte 1536 (inside
 *     cvmm's 4 KiB blk_size: its read-modify-write path); pmem loads and a blk read of the page
 *     show A with B at [1536, 2048). Broken: the RMW merges the 512 bytes into the file's stale
 *     block (the rest of the page reads Z through blk, and after invalidation through pmem too),
 *     or the dirty page is not invalidated (pmem still shows A at [1536, 2048)). A device may
 *     refuse sub-block I/O with IOERR (then the page must read all A) unless subblock=1.
 *  b1 (seed 001, Williams/Kara 2018, dax_flush_dma / break layouts vs DMA; 2 vCPUs): the buffer
 *     of a blk read (64 KiB of source data P) is a range X of the pmem window (poisoned with Q
 *     first), and the other vCPU DISCARDs X's own disk range at a random moment; repeated
 *     b1_iters times with random delays on both sides. The DMA writes P into X, the DISCARD
 *     zeroes X: the result must be all P (DISCARD first, then the DMA into fresh pages) or all
 *     zeros (the DMA, then the DISCARD that waited for the pins to drain), through pmem loads and
 *     a blk read alike; never a mix, never Q. Where the two requests did not overlap in time
 *     (TSC stamps on both vCPUs, 20 us margin) only one answer is right: zeros if the read
 *     completed before the DISCARD was submitted, P if the DISCARD completed before the read was
 *     submitted. Broken: a DISCARD that punches while the DMA is still writing (no wait for
 *     pins) leaves some pages P and some zero, or P reappearing in the range after the punch.
 *     With one vCPU (QEMU runs only the BSP) b1 SKIPs.
 *  b1' (seed 001, one vCPU): the same pair of requests in flight together (one kick, random
 *     order): the device itself may run them concurrently (QEMU's thread pool does).
 *  b2 (seed 001 + DESIGN "break layouts + punch ... drop dirty state"): blk Z, pmem stores A
 *     (dirty), then DISCARD (and in two more ranges WRITE_ZEROES, WRITE_ZEROES|UNMAP); pmem loads
 *     and a blk read show zeros; pmem FLUSH; still zeros both ways. Broken: the guest mapping is
 *     not unmapped (pmem shows A), or dirty state is not dropped and the FLUSH writes A back.
 *  c1 (seed 002, Chinner/Lespinasse 2010, mlock without dirtying): needs the host's populate=on;
 *     runs first when populate=1 (or as scenario coherency-populate): FLUSH with no store, pmem
 *     loads of the 4 MiB compared with blk reads, FLUSH again. The guest checks the FLUSHes and
 *     the views; the host test checks its stats: 0 pages written. Broken: populate marked pages
 *     dirty (the stats show pages written). Without populate=1: SKIP with that pointer.
 *  c2 (seed 002, "silent data loss will occur during mmap writes either by ENOSPC"): covered by
 *     scenario pmem-enospc; here SKIP unless enospc=1 (a backing on a small filesystem): fill
 *     pages from base+4M with pmem_try_store until a machine check, FLUSH, then a blk read of
 *     everything stored before it shows the data and the refused word is absent. Broken: no
 *     machine check (the store was accepted, to be lost at writeback), or flushed data missing.
 *  d1 (seed 003, Morton/Piggin 2007, the write()-from-its-own-mmap deadlock): blk Z over 4
 *     pages; pmem A over page 0 (dirty); a blk write of the 4 pages whose source buffer is the
 *     pmem mapping of those same 4 pages: it completes within timeout_ms and both views show
 *     A Z Z Z (before and after a FLUSH). Broken: the request never completes (self-deadlock:
 *     invalidating pages that the request itself pinned) or writes stale bytes (Z in page 0:
 *     the source was re-read from the file after invalidation).
 *  d2 (seed 003): the same for a blk read into the pmem mapping of the range it reads (A in
 *     page 1 this time): completes, both views show Z A Z Z. Broken: hang; or Z in page 1 (the
 *     direct read did not write back the dirty page before reading the file into it).
 *  e1 (seed 004, Torvalds 2000: lock, gather mmap users, write back, clear uptodate): a
 *     host-write while the guest has the page mapped and dirty (protocol above). Broken: B never
 *     shows (guest mapping not shot down: the guest keeps its stale page), or the rest of the
 *     page reads Z (the guest's dirty A dropped instead of written back before the change).
 *
 *  f1 (seed 004: "marking the page table entry write-protected and causing a TLB invalidate SMP
 *     cross-call - at which point the resulting page fault ... will catch anybody who tries to
 *     write"; DESIGN writeback: "a store after the harvest is logged again, so none is lost";
 *     2 vCPUs): vCPU 1 stores generation after generation over 16 KiB (word i of generation g
 *     = g << 20 | i) while vCPU 0, f1_iters times, FLUSHes (3 times in 4) and then reads the
 *     range through blk: every word must be of a generation >= the last one vCPU 1 finished
 *     before the read was submitted. Broken: a harvest that re-protects without shooting down
 *     the other vCPU's writable translation lets later stores go unlogged; the read shows an
 *     older generation. At the end (quiet, FLUSH) both views hold the last generation.
 *  f2 (seed 000 + 004, 2 vCPUs; fsx-smp found it, see cvmm RESULTS below): a1 in a loop (blk write Z
 *     over a page, pmem stores A into a random part of it, any access style, blk read of the
 *     page) while vCPU 1 FLUSHes the window in a loop. Broken: the read shows Z where A was
 *     stored (the stores' dirty state lost to the concurrent writeback).
 *
 * QEMU 7.2 RESULTS (q35, -accel kvm; the reference: the host kernel's page cache keeps the
 * MAP_SHARED file mapping behind virtio-pmem and the cache=none (O_DIRECT) virtio-blk on the
 * same ext4 file coherent):
 *   truncate -s 64M F; BLK=F PMEM=F guest/run-qemu.sh "scenario=coherency e1=0"
 *   -> 21 passed, 0 failed: a1 a2 a3 a4 b1' b2 (x3) d1 d2 pass; b1 f1 f2 SKIP (QEMU starts
 *   no APs for this guest: only the BSP runs, even with SMP=2); c1 c2 e1 SKIP by default.
 *   With guest/tools/host-write.py --file F (pwrite into the shared page cache) e1 passes too,
 *   the new bytes visible at the first poll. BLK_OFF=1048576 with blk_off=1048576: the same.
 *   Differences from cvmm, all from the host kernel doing the work: a blk buffer inside the pmem
 *   window is a DMA into a file mapping (QEMU's virtio-blk validates nothing: the O_DIRECT read
 *   pins the page-cache pages of F itself through the mapping, GUP); d1/d2 cannot deadlock
 *   there (the kernel takes the pins before any page lock); b1' (read + DISCARD in one kick,
 *   QEMU's thread pool runs them concurrently) ended with the source data in all 200
 *   iterations of every run: the punch always won the race there. QEMU's blk_size is 512, so
 *   a4's 512-byte write is not a sub-block write there.
 *   Negative control (BLK=G PMEM=F, two different files: no coherency at all): a1 a2 a3 a4 b1'
 *   b2 (x3) d1 d2 all fail, each naming the stale data it saw (the checks can fail).
 *
 * cvmm RESULTS (build/cvmm with the page-cache blk path, 2026-11-23; config above, --cpus 2,
 * 64 MiB, granules 4K / 64K / 2M, and [blk] offset=1M with blk_off=1M):
 *   the build of 18:08: a1-a4, b1, b1', b2, d1, d2, c2 (enospc=1, 8 MiB tmpfs) passed, but
 *   f2 failed in 7 of 7 runs (within 2..300 iterations, all granule sizes, bitmap and ring
 *   dirty logging): the blk read returned the file's old bytes Z for the whole stored range
 *   while pmem loads showed A. One run also had a DISCARD (b1 iteration 1) miss the 2 s
 *   timeout (not reproduced in 3 x 1000 iterations; the machine's load average was 6).
 *   The build of 18:33: 21 passed, 0 failed, every granule, with the e1 harness over the
 *   control socket (the host-write shows after 0..19 ms); b1 ended 13..45% with the source
 *   data (DISCARD first) and the rest with zeros (40..85% of the iterations overlapped in
 *   time), b1' about half and half; d1 0.6..24 ms,
 *   d2 0.3..0.8 ms. With [pmem] populate=on: coherency-populate passes and the stats show
 *   flushes 2, pages_written 0; f1 there is very slow (a FLUSH of a populated 64 MiB window
 *   with 4 KiB granules takes ~0.46 s: every granule's dirty log is read), so with populate=1
 *   pass f1_iters=20 or cases=.
 */
#include "arch/arch.h"
#include "lib/pattern.h"
#include "scenarios/fsx_io.h"
#include "scenarios/scenario.h"

#define K ((uint64_t)1024)
#define M ((uint64_t)1024 * 1024)
#define REGION (4 * M)
#define BUF_BYTES (256 * K)

#define A1_OFF (64 * K - 4 * K)
#define A2_OFF (128 * K)
#define A4_OFF (256 * K)
#define B1_BUF (512 * K)
#define B1Q_BUF (640 * K)
#define B2_OFF (768 * K)
#define SRC_OFF (1 * M)
#define D1_OFF (1 * M + 256 * K)
#define D2_OFF (1 * M + 320 * K)
#define E1_PAGE (1 * M + 512 * K)
#define A3_OFF (2 * M - 8 * K)
#define F1_OFF (1 * M + 768 * K)
#define C2_OFF (4 * M)

static uint64_t seed, base;
static struct cio_ctx c0, c0b;
static uint8_t *exp, *got, *got2, *wbuf;
static char why[320];

/* per-case data seeds */
static uint64_t S(uint64_t tag)
{
	return mix64(seed ^ (tag * 0x100000001b3ull));
}

/* ---- comparing a view with what it should hold -------------------------------------- */

struct cand {
	const char *name;
	uint64_t seed;
	bool zero;
};

/* Name the candidate whose bytes equal got[0..n) (n <= 8) at window offset o. */
static const char *which(uint64_t o, const uint8_t *g, uint64_t n, const struct cand *c, int nc)
{
	uint8_t b[8];

	if (n > 8)
		n = 8;
	for (int k = 0; k < nc; k++) {
		if (c[k].zero)
			memset(b, 0, n);
		else
			gen_bytes(b, o, n, c[k].seed);
		if (!memcmp(b, g, n))
			return c[k].name;
	}
	return "none of the case's data";
}

/* false (and why) if got != exp over [o, o + len). */
static bool same(const char *view, uint64_t o, const uint8_t *g, const uint8_t *e, uint64_t len,
		 const struct cand *c, int nc)
{
	uint64_t i = mem_diff(g, e, len), nbad = 0, last = i;

	if (i == len)
		return true;
	for (uint64_t k = i; k < len; k++)
		if (g[k] != e[k]) {
			nbad++;
			last = k;
		}
	snprintf(why, sizeof(why),
		 "%s: window offset 0x%lx (+%lu): got 0x%02x, expected 0x%02x; the bytes there are "
		 "%s; %lu of %lu bytes differ, the last at +%lu",
		 view, base + o + i, i, g[i], e[i], which(base + o + (i & ~7ull), g + (i & ~7ull),
							 len - (i & ~7ull) < 8 ? len - (i & ~7ull) : 8, c, nc),
		 nbad, len, last);
	return false;
}

/* Window range [base + o, +len) through pmem loads and through a blk read against exp.
 * o and len sector aligned, len <= BUF_BYTES. */
static bool both_views(const char *when, uint64_t o, uint64_t len, const struct cand *c, int nc)
{
	char view[64];
	int s;

	win_read(got, base + o, len, WIN_WORDS);
	snprintf(view, sizeof(view), "%spmem view", when);
	if (!same(view, o, got, exp, len, c, nc))
		return false;
	memset(got2, 0xa5, len);
	s = cio_rw(&c0, false, base + o, got2, len);
	if (s != VIRTIO_BLK_S_OK) {
		snprintf(why, sizeof(why), "%sblk read of 0x%lx bytes at window offset 0x%lx: %s", when,
			 len, base + o, cio_status_str(s));
		return false;
	}
	snprintf(view, sizeof(view), "%sblk view", when);
	return same(view, o, got2, exp, len, c, nc);
}

/* exp[at, at + len) = the pattern `s` for window offset base + o + at (zeros if s == 0) */
static void expect(uint64_t o, uint64_t at, uint64_t len, uint64_t s)
{
	if (s)
		gen_bytes(exp + at, base + o + at, len, s);
	else
		memset(exp + at, 0, len);
}

/* blk write of the pattern s over [base + o, +len). */
static int blk_pattern(uint64_t o, uint64_t len, uint64_t s)
{
	gen_bytes(wbuf, base + o, len, s);
	return cio_rw(&c0, true, base + o, wbuf, len);
}

static bool flush_ok(void)
{
	return cio_pflush(&c0, why, sizeof(why));
}

#define SETUP(cond, name, ...)                                                                    \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			t_check(false, name, "setup: " __VA_ARGS__);                              \
			return;                                                                   \
		}                                                                                 \
	} while (0)

/* A `# reason` line, then `ok N - name # SKIP short` (console lines stay under 256 bytes). */
static void skip(const char *name, const char *brief, const char *reason)
{
	char line[220];

	t_diag("%s", reason);
	snprintf(line, sizeof(line), "%s # SKIP %s", name, brief);
	t_check(true, line, "-");
}

/* ---- a: mmap vs direct I/O ---------------------------------------------------------- */

static void a1(void)
{
	const char *name = "a1 a pmem store, then a blk read of that range (no FLUSH), returns the "
			   "stored bytes";
	uint64_t o = A1_OFF, len = 2 * PAGE, z = S(0xa10), a = S(0xa11);
	struct cand c[] = { { "A (stored through pmem)", a, 0 }, { "Z (the file's old data)", z, 0 },
			    { "zeros", 0, 1 } };
	int s = blk_pattern(o, len, z);

	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write Z: %s", cio_status_str(s));
	gen_bytes(wbuf, base + o + 100, 6000, a);
	win_write(base + o + 100, wbuf, 6000, WIN_UNALIGNED);
	expect(o, 0, len, z);
	expect(o, 100, 6000, a);
	/* the blk view first: that read is the check; then both */
	memset(got2, 0xa5, len);
	s = cio_rw(&c0, false, base + o, got2, len);
	if (s != VIRTIO_BLK_S_OK) {
		t_check(false, name, "blk read: %s", cio_status_str(s));
		return;
	}
	if (!same("blk read right after the stores", o, got2, exp, len, c, 3)) {
		t_check(false, name, "%s", why);
		return;
	}
	t_check(both_views("", o, len, c, 3), name, "%s", why);
}

static void a2(void)
{
	const char *name = "a2 a blk write, then pmem loads of that range return the new bytes";
	uint64_t o = A2_OFF, len = 3 * PAGE, z = S(0xa20), a = S(0xa21), b = S(0xa22), b2 = S(0xa23);
	struct cand c[] = { { "B (blk write)", b, 0 },       { "B2 (second blk write)", b2, 0 },
			    { "A (pmem store before)", a, 0 }, { "Z (data before)", z, 0 },
			    { "zeros", 0, 1 } };
	int s = blk_pattern(o, len, z);

	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write Z: %s", cio_status_str(s));
	/* page 0 mapped clean, page 1 mapped dirty, page 2 untouched */
	expect(o, 0, PAGE, z);
	SETUP(win_cmp(base + o, exp, PAGE) == PAGE, name,
	      "pmem loads after a blk write of Z do not show Z (page 0)");
	gen_bytes(wbuf, base + o + PAGE, PAGE, a);
	win_write(base + o + PAGE, wbuf, PAGE, WIN_WORDS);
	s = blk_pattern(o, len, b);
	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write B: %s", cio_status_str(s));
	expect(o, 0, len, b);
	win_read(got, base + o, len, WIN_WORDS);
	if (!same("pmem view after blk write B", o, got, exp, len, c, 5)) {
		t_check(false, name, "%s", why);
		return;
	}
	/* page 1 alone again, with its neighbours mapped */
	s = blk_pattern(o + PAGE, PAGE, b2);
	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write B2: %s", cio_status_str(s));
	expect(o, PAGE, PAGE, b2);
	t_check(both_views("after blk write B2 over page 1: ", o, len, c, 5), name, "%s", why);
}

static void a3(void)
{
	const char *name = "a3 blk write over dirty pmem pages wins after FLUSH";
	uint64_t o = A3_OFF, len = 4 * PAGE, z = S(0xa30), a = S(0xa31), b = S(0xa32);
	struct cand c[] = { { "B (blk write)", b, 0 },
			    { "A (stale dirty pmem data)", a, 0 },
			    { "Z (data before the pmem stores)", z, 0 },
			    { "zeros", 0, 1 } };
	int s = blk_pattern(o, len, z);

	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write Z: %s", cio_status_str(s));
	win_fill(base + o, len, a);
	s = blk_pattern(o + PAGE, 2 * PAGE, b);
	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write B: %s", cio_status_str(s));
	expect(o, 0, len, a);
	expect(o, PAGE, 2 * PAGE, b);
	if (!both_views("before FLUSH: ", o, len, c, 4)) {
		t_check(false, name, "%s", why);
		return;
	}
	if (!flush_ok()) {
		t_check(false, name, "%s", why);
		return;
	}
	t_check(both_views("after FLUSH: ", o, len, c, 4), name, "%s", why);
}

static void a4(void)
{
	bool must = arg_u64("subblock", 0);
	const char *name = must ? "a4 a 512-byte blk write into a page dirtied through pmem keeps "
				  "the page's other bytes (subblock=1)"
				: "a4 a 512-byte blk write into a page dirtied through pmem keeps "
				  "the page's other bytes (or IOERR and the page unchanged)";
	uint64_t o = A4_OFF, z = S(0xa40), a = S(0xa41), b = S(0xa42);
	struct cand c[] = { { "B (512-byte blk write)", b, 0 },
			    { "A (dirty pmem data)", a, 0 },
			    { "Z (the file's stale block)", z, 0 },
			    { "zeros", 0, 1 } };
	int s = blk_pattern(o, PAGE, z);

	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write Z: %s", cio_status_str(s));
	win_fill(base + o, PAGE, a);
	s = blk_pattern(o + 1536, SECTOR, b);
	expect(o, 0, PAGE, a);
	if (s == VIRTIO_BLK_S_OK)
		expect(o, 1536, SECTOR, b);
	else if (s != VIRTIO_BLK_S_IOERR || must) {
		t_check(false, name, "512-byte blk write at byte 1536 of the page (blk_size %u): %s",
			cio.unit, cio_status_str(s));
		return;
	}
	if (s != VIRTIO_BLK_S_OK)
		t_diag("a4: the device refused the 512-byte write (IOERR, blk_size %u)", cio.unit);
	t_check(both_views("", o, PAGE, c, 4), name, "%s", why);
}

/* ---- b: DMA into the window vs DISCARD ------------------------------------------------ */

static struct {
	volatile uint32_t alive, quit, go, done;
	volatile uint32_t mode;      /* what a `go` asks for: AP_DISCARD or AP_STORE */
	volatile uint32_t store_stop;
	volatile uint64_t gen;       /* AP_STORE: the last generation completely stored */
	volatile int status;
	uint64_t o, len, delay_tsc;
	volatile uint64_t t_sub, t_done; /* AP_DISCARD: TSC before submitting, after completion */
	struct cio_ctx ctx;
} ap;

enum { AP_DISCARD, AP_STORE, AP_FLUSH };

/* f1 word i of generation gen */
static inline uint64_t f1_word(uint64_t gen, uint64_t i)
{
	return gen << 20 | i;
}

static void spin_tsc(uint64_t t)
{
	uint64_t end = rdtsc() + t;

	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
}

/* vCPU 1: one DISCARD of [ap.o, +ap.len) per `go`, after ap.delay_tsc. */
static void coh_ap(unsigned cpu)
{
	uint32_t last = 0, g;

	if (cpu != 1)
		return;
	__atomic_store_n(&ap.alive, 1, __ATOMIC_RELEASE);
	for (;;) {
		while ((g = __atomic_load_n(&ap.go, __ATOMIC_ACQUIRE)) == last && !ap.quit)
			cpu_relax();
		if (g == last)
			return;
		last = g;
		if (ap.mode == AP_STORE) {
			/* store generation after generation over [ap.o, +ap.len) until told to stop */
			volatile uint64_t *w = (volatile uint64_t *)(cio.win + ap.o);

			for (uint64_t gen = ap.gen + 1; !ap.store_stop; gen++) {
				for (uint64_t i = 0; i < ap.len / 8; i++)
					w[i] = f1_word(gen, i);
				__atomic_store_n(&ap.gen, gen, __ATOMIC_RELEASE);
			}
		} else if (ap.mode == AP_FLUSH) {
			char w[96];

			while (!ap.store_stop && !ap.status)
				if (!cio_pflush(&ap.ctx, w, sizeof(w)))
					ap.status = -1;
				else
					ap.gen++;
		} else {
			spin_tsc(ap.delay_tsc);
			ap.t_sub = rdtsc();
			ap.status = cio_dwz(&ap.ctx, VIRTIO_BLK_T_DISCARD, ap.o, ap.len, 0);
			ap.t_done = rdtsc();
		}
		__atomic_store_n(&ap.done, g, __ATOMIC_RELEASE);
	}
}

/* After one race: the buffer [base + buf, +len) must be all P (the source data) or all zeros,
 * through pmem and blk. Returns 1 (P), 0 (zeros) or -1 with why. */
static int b_outcome(uint64_t buf, uint64_t len, uint64_t p, uint64_t q, unsigned it)
{
	uint64_t np = 0, nz = 0, nq = 0, first_change = len;
	int cls0 = -1, s;

	win_read(got, base + buf, len, WIN_WORDS);
	gen_bytes(exp, base + SRC_OFF, len, p);     /* P at buffer position i */
	gen_bytes(got2, base + buf, len, q);         /* Q, the poison */
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t g = *(uint64_t *)(got + i);
		int cls = g == *(uint64_t *)(exp + i) ? 1 : !g ? 0 : g == *(uint64_t *)(got2 + i) ? 2 : 3;

		np += cls == 1;
		nz += cls == 0;
		nq += cls == 2;
		if (cls0 < 0)
			cls0 = cls;
		else if (cls != cls0 && first_change == len)
			first_change = i;
	}
	if (np != len / 8 && nz != len / 8) {
		snprintf(why, sizeof(why),
			 "iteration %u: pmem view of the buffer is a mix: %lu words source data, %lu "
			 "zero, %lu old poison, %lu other (of %lu); first change at +%lu",
			 it, np, nz, nq, len / 8 - np - nz - nq, len / 8, first_change);
		return -1;
	}
	memset(exp, 0xa5, len);
	s = cio_rw(&c0, false, base + buf, exp, len);
	if (s != VIRTIO_BLK_S_OK) {
		snprintf(why, sizeof(why), "iteration %u: blk read of the buffer's range: %s", it,
			 cio_status_str(s));
		return -1;
	}
	if (mem_diff(exp, got, len) != len) {
		uint64_t i = mem_diff(exp, got, len);

		snprintf(why, sizeof(why),
			 "iteration %u: pmem view is all %s but the blk view differs at +%lu "
			 "(0x%02x vs 0x%02x)",
			 it, np ? "source data" : "zeros", i, exp[i], got[i]);
		return -1;
	}
	return np ? 1 : 0;
}

static uint64_t b1_setup(uint64_t len, uint64_t p, const char *name)
{
	uint64_t t;
	int s = blk_pattern(SRC_OFF, len, p);

	if (s != VIRTIO_BLK_S_OK) {
		t_check(false, name, "setup: blk write of the source data: %s", cio_status_str(s));
		return 0;
	}
	t = rdtsc();
	s = cio_rw(&c0, false, base + SRC_OFF, got, len);
	t = rdtsc() - t;
	if (s != VIRTIO_BLK_S_OK) {
		t_check(false, name, "setup: blk read of the source data: %s", cio_status_str(s));
		return 0;
	}
	return t ? t : 1;
}

static bool ap_present(void)
{
	uint64_t d = deadline_after_ns(arg_u64("ap_wait_ms", 200) * 1000000ull);

	while (!__atomic_load_n(&ap.alive, __ATOMIC_ACQUIRE) && !deadline_passed(d))
		cpu_relax();
	return ap.alive;
}

static void b1(unsigned iters, uint64_t len)
{
	const char *name = "b1 (2 vCPUs) a blk read into the pmem window racing a DISCARD of the "
			   "buffer: all data or all zeros, never a mix";
	uint64_t p = S(0xb10), rng = S(0xb11) | 1, lat, maxd, margin = ns_to_tsc(20000);
	unsigned ndata = 0, nzero = 0, nbefore = 0, nafter = 0, it;
	int r = 0;

	if (!ap_present()) {
		skip(name, "one vCPU", "b1: only one vCPU runs (no AP checked in within ap_wait_ms; QEMU starts "
			   "no APs for this guest): needs cvmm --cpus 2");
		return;
	}
	if (!(lat = b1_setup(len, p, name)))
		return;
	maxd = arg_u64("b1_delay_us", 0) ? ns_to_tsc(arg_u64("b1_delay_us", 0) * 1000) : 2 * lat;
	t_diag("b1: %u iterations, %lu KiB, one request ~%lu us, random delays up to %lu us", iters,
	       len >> 10, tsc_to_ns(lat) / 1000, tsc_to_ns(maxd) / 1000);
	ap.mode = AP_DISCARD;
	ap.o = base + B1_BUF;
	ap.len = len;
	for (it = 0; it < iters; it++) {
		uint64_t q = S(0xb12 + it), dl, t0, t1;
		int s;

		win_fill(base + B1_BUF, len, q);
		ap.delay_tsc = xorshift64(&rng) % maxd;
		__atomic_store_n(&ap.go, it + 1, __ATOMIC_RELEASE);
		spin_tsc(xorshift64(&rng) % maxd);
		t0 = rdtsc();
		s = cio_rw(&c0, false, base + SRC_OFF, (void *)(cio.win + base + B1_BUF), len);
		t1 = rdtsc();
		dl = deadline_after_ns(10000000000ull);
		while (__atomic_load_n(&ap.done, __ATOMIC_ACQUIRE) != it + 1 && !deadline_passed(dl))
			cpu_relax();
		if (ap.done != it + 1) {
			t_check(false, name, "iteration %u: the DISCARD on vCPU 1 did not complete in 10 s",
				it);
			return;
		}
		if (s != VIRTIO_BLK_S_OK || ap.status != VIRTIO_BLK_S_OK) {
			t_check(false, name, "iteration %u: read into the window %s, DISCARD %s", it,
				cio_status_str(s), cio_status_str(ap.status));
			return;
		}
		if ((r = b_outcome(B1_BUF, len, p, q, it)) < 0)
			break;
		r ? ndata++ : nzero++;
		/* Requests that did not overlap in time have one right answer (20 us margin for
		 * TSC skew between the vCPUs). */
		if (t1 + margin < ap.t_sub) {
			nbefore++;
			if (r) {
				snprintf(why, sizeof(why), "iteration %u: the read completed %lu us before "
					 "the DISCARD was submitted, yet the buffer holds the source data, "
					 "not zeros", it, tsc_to_ns(ap.t_sub - t1) / 1000);
				r = -1;
				break;
			}
		} else if (ap.t_done + margin < t0) {
			nafter++;
			if (!r) {
				snprintf(why, sizeof(why), "iteration %u: the DISCARD completed %lu us before "
					 "the read was submitted, yet the buffer holds zeros, not the source "
					 "data", it, tsc_to_ns(t0 - ap.t_done) / 1000);
				r = -1;
				break;
			}
		}
	}
	t_diag("b1: %u iterations: %u ended with the source data (DISCARD first), %u with zeros "
	       "(DMA first); %u overlapped in time (%u read wholly before, %u wholly after the "
	       "DISCARD)",
	       it, ndata, nzero, it - nbefore - nafter, nbefore, nafter);
	t_check(r >= 0, name, "%s", why);
}

static void b1_one_cpu(unsigned iters, uint64_t len)
{
	const char *name = "b1' (one vCPU) a blk read into the pmem window and a DISCARD of the "
			   "buffer in flight together: all data or all zeros";
	uint64_t p = S(0xb20), rng = S(0xb21) | 1;
	unsigned ndata = 0, nzero = 0, it;
	int r = 0;

	if (!b1_setup(len, p, name))
		return;
	for (it = 0; it < iters; it++) {
		uint64_t q = S(0xb22 + it);
		struct vq_buf rd = { (uint64_t)(cio.win + base + B1Q_BUF), len, true };
		struct vq_buf dz = { (uint64_t)c0b.seg, sizeof(*c0b.seg), false };
		int s1, s2;

		win_fill(base + B1Q_BUF, len, q);
		c0b.seg->sector = cio_sector(base + B1Q_BUF);
		c0b.seg->num_sectors = len / SECTOR;
		c0b.seg->flags = 0;
		if (xorshift64(&rng) & 1)
			cio_pair(&c0, VIRTIO_BLK_T_IN, cio_sector(base + SRC_OFF), &rd, 1, &c0b,
				 VIRTIO_BLK_T_DISCARD, 0, &dz, 1, &s1, &s2);
		else
			cio_pair(&c0b, VIRTIO_BLK_T_DISCARD, 0, &dz, 1, &c0, VIRTIO_BLK_T_IN,
				 cio_sector(base + SRC_OFF), &rd, 1, &s2, &s1);
		if (s1 != VIRTIO_BLK_S_OK || s2 != VIRTIO_BLK_S_OK) {
			t_check(false, name, "iteration %u: read into the window %s, DISCARD %s", it,
				cio_status_str(s1), cio_status_str(s2));
			return;
		}
		if ((r = b_outcome(B1Q_BUF, len, p, q, it)) < 0)
			break;
		r ? ndata++ : nzero++;
	}
	t_diag("b1': %u iterations: %u ended with the source data, %u with zeros", it, ndata, nzero);
	t_check(r >= 0, name, "%s", why);
}

static void b2(const char *name, uint64_t o, uint32_t type, uint32_t flags, uint64_t tag)
{
	uint64_t len = 64 * K, z = S(tag), a = S(tag + 1);
	struct cand c[] = { { "A (dirty pmem data from before)", a, 0 },
			    { "Z (file data from before)", z, 0 } };
	int s = blk_pattern(o, len, z);

	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write Z: %s", cio_status_str(s));
	win_fill(base + o, len, a);
	s = cio_dwz(&c0, type, base + o, len, flags);
	SETUP(s == VIRTIO_BLK_S_OK, name, "%s: %s",
	      type == VIRTIO_BLK_T_DISCARD ? "DISCARD" : "WRITE_ZEROES", cio_status_str(s));
	expect(o, 0, len, 0);
	if (!both_views("after it: ", o, len, c, 2)) {
		t_check(false, name, "%s", why);
		return;
	}
	if (!flush_ok()) {
		t_check(false, name, "%s", why);
		return;
	}
	t_check(both_views("after FLUSH: ", o, len, c, 2), name, "%s", why);
}

/* f1 (2 vCPUs): vCPU 1 stores generation after generation of a 16 KiB range through pmem
 * while vCPU 0 FLUSHes (and sometimes does not) and then reads the range through blk. Every
 * word read must be of a generation at least as new as the last one vCPU 1 had finished before
 * the read was submitted: writeback must catch every store made before it started. */
static void f1(unsigned iters)
{
	const char *name = "f1 (2 vCPUs) stores racing pmem FLUSHes on the other vCPU: the next blk "
			   "read sees every store made before it";
	uint64_t o = F1_OFF, len = 16 * K, n = len / 8, rng = S(0xf10) | 1, dl, bad_i = 0, bad_v = 0;
	uint64_t k = 0;
	unsigned it, nflush = 0;
	bool bad = false;
	int s;

	if (!ap_present()) {
		skip(name, "one vCPU", "f1: only one vCPU runs: needs cvmm --cpus 2");
		return;
	}
	if (!cio_on_disk(base + o, len)) {
		t_check(false, name, "range not on the disk");
		return;
	}
	for (uint64_t i = 0; i < n; i++) /* generation 0 everywhere, through pmem */
		((volatile uint64_t *)(cio.win + base + o))[i] = f1_word(0, i);
	ap.mode = AP_STORE;
	ap.o = base + o;
	ap.len = len;
	ap.gen = 0;
	ap.store_stop = 0;
	__atomic_store_n(&ap.go, ap.go + 1, __ATOMIC_RELEASE);
	for (it = 0; it < iters && !bad; it++) {
		if (xorshift64(&rng) % 4) {
			if (!flush_ok()) {
				bad = true;
				break;
			}
			nflush++;
		}
		k = __atomic_load_n(&ap.gen, __ATOMIC_ACQUIRE);
		s = cio_rw(&c0, false, base + o, got, len);
		if (s != VIRTIO_BLK_S_OK) {
			snprintf(why, sizeof(why), "iteration %u: blk read: %s", it, cio_status_str(s));
			bad = true;
			break;
		}
		for (uint64_t i = 0; i < n; i++) {
			uint64_t v = ((uint64_t *)got)[i];

			if ((v & 0xfffff) != i || (v >> 20) < k) {
				bad = true;
				bad_i = i;
				bad_v = v;
				break;
			}
		}
	}
	ap.store_stop = 1;
	dl = deadline_after_ns(5000000000ull);
	while (ap.done != ap.go && !deadline_passed(dl))
		cpu_relax();
	if (bad && bad_v)
		snprintf(why, sizeof(why),
			 "iteration %u: word %lu (window offset 0x%lx) reads 0x%lx through blk = "
			 "generation %lu%s, but vCPU 1 had finished storing generation %lu before the "
			 "read was submitted: a store was lost to writeback",
			 it - 1, bad_i, base + o + 8 * bad_i, bad_v, bad_v >> 20,
			 (bad_v & 0xfffff) != bad_i ? " (and not this word's data)" : "", k);
	if (bad) {
		t_check(false, name, "%s", why);
		return;
	}
	t_diag("f1: %u blk reads (%u after a FLUSH) while vCPU 1 stored %lu generations", it, nflush,
	       ap.gen);
	/* quiet now: FLUSH, then every word is the last generation through both views */
	for (uint64_t i = 0; i < n; i++)
		((uint64_t *)exp)[i] = f1_word(ap.gen, i);
	if (!flush_ok()) {
		t_check(false, name, "%s", why);
		return;
	}
	{
		struct cand c[] = { { "zeros", 0, 1 } };

		t_check(both_views("at the end, after FLUSH: ", o, len, c, 1), name, "%s", why);
	}
}

/* f2 (2 vCPUs): a1 over and over while vCPU 1 FLUSHes the window in a loop: blk write Z over
 * a page (the direct write unmaps it), pmem stores A into part of it (the stores fault: the VMM
 * completes the first one itself and marks the page DIRTY), a blk read of the page must show A.
 * fsx-smp found lost stores in this shape (a pstore, a FLUSH from the other vCPU, the blk read
 * of the store's range showing the file's old bytes). */
static void f2(unsigned iters)
{
	const char *name = "f2 (2 vCPUs) a pmem store then a blk read of it, while the other vCPU "
			   "FLUSHes in a loop: the read returns the stored bytes";
	uint64_t o0 = F1_OFF + 16 * K, rng = S(0xf20) | 1, dl;
	struct cand c[3] = { { "A (stored through pmem)", 0, 0 }, { "Z (the file's old data)", 0, 0 },
			     { "zeros", 0, 1 } };
	unsigned it;
	bool ok = true;
	int s = 0;

	if (!ap_present()) {
		skip(name, "one vCPU", "f2: only one vCPU runs: needs cvmm --cpus 2");
		return;
	}
	ap.mode = AP_FLUSH;
	ap.status = 0;
	ap.gen = 0;
	ap.store_stop = 0;
	__atomic_store_n(&ap.go, ap.go + 1, __ATOMIC_RELEASE);
	for (it = 0; it < iters && ok; it++) {
		uint64_t o = o0 + (xorshift64(&rng) % 16) * PAGE, z = S(0xf21 + 2 * it), a = S(0xf22 + 2 * it);
		uint64_t at = xorshift64(&rng) % PAGE, n = 1 + xorshift64(&rng) % (PAGE - at);

		c[0].seed = a;
		c[1].seed = z;
		s = blk_pattern(o, PAGE, z);
		if (s != VIRTIO_BLK_S_OK) {
			snprintf(why, sizeof(why), "iteration %u: blk write Z: %s", it, cio_status_str(s));
			ok = false;
			break;
		}
		gen_bytes(wbuf, base + o + at, n, a);
		win_write(base + o + at, wbuf, n, (int)(xorshift64(&rng) % 3));
		expect(o, 0, PAGE, z);
		expect(o, at, n, a);
		memset(got2, 0xa5, PAGE);
		s = cio_rw(&c0, false, base + o, got2, PAGE);
		if (s != VIRTIO_BLK_S_OK) {
			snprintf(why, sizeof(why), "iteration %u: blk read: %s", it, cio_status_str(s));
			ok = false;
			break;
		}
		if (!same("blk read right after the stores", o, got2, exp, PAGE, c, 3)) {
			char tmp[sizeof(why)];

			snprintf(tmp, sizeof(tmp), "iteration %u (stores at +%lu, %lu bytes, after %lu "
						   "FLUSHes on vCPU 1): %s",
				 it, at, n, ap.gen, why);
			memcpy(why, tmp, sizeof(why));
			ok = false;
		}
	}
	ap.store_stop = 1;
	dl = deadline_after_ns(5000000000ull);
	while (ap.done != ap.go && !deadline_passed(dl))
		cpu_relax();
	if (ok && ap.status)
		snprintf(why, sizeof(why), "a FLUSH on vCPU 1 failed");
	if (ok)
		t_diag("f2: %u store+read rounds while vCPU 1 did %lu FLUSHes", it, ap.gen);
	t_check(ok && !ap.status, name, "%s", why);
}

/* ---- c: populate, ENOSPC ------------------------------------------------------------- */

static void c1(void)
{
	const char *name = "c1 populate then FLUSH: no store made, FLUSH ok, views agree (the host "
			   "checks 0 pages written)";
	uint64_t chunk = 64 * K;
	int s;

	if (!flush_ok()) {
		t_check(false, name, "first %s", why);
		return;
	}
	for (uint64_t o = 0; o < REGION; o += chunk) {
		win_read(got, base + o, chunk, WIN_WORDS);
		s = cio_rw(&c0, false, base + o, got2, chunk);
		if (s != VIRTIO_BLK_S_OK) {
			t_check(false, name, "blk read at 0x%lx: %s", base + o, cio_status_str(s));
			return;
		}
		if (mem_diff(got, got2, chunk) != chunk) {
			t_check(false, name, "window offset 0x%lx: pmem load 0x%02x, blk read 0x%02x",
				base + o + mem_diff(got, got2, chunk), got[mem_diff(got, got2, chunk)],
				got2[mem_diff(got, got2, chunk)]);
			return;
		}
	}
	if (!flush_ok()) {
		t_check(false, name, "second %s", why);
		return;
	}
	t_diag("c1: 2 FLUSHes, loads of [0x%lx, 0x%lx) and blk reads of it, no store: the host's "
	       "stats must show 0 pages written back",
	       base, base + REGION);
	t_check(true, name, "-");
}

int pmem_try_store(volatile uint64_t *addr, uint64_t value); /* scenarios/pmem.c */
extern char pmem_try_store_end[], pmem_try_store_fault[];
static volatile unsigned mce_count;

static int c2_hook(struct trap_frame *f)
{
	if (f->rip < (uint64_t)pmem_try_store || f->rip > (uint64_t)pmem_try_store_end)
		return 0;
	mce_count++;
	f->rip = (uint64_t)pmem_try_store_fault;
	return 1;
}

static void c2(void)
{
	const char *name = "c2 mkwrite ENOSPC gives a machine check and loses nothing flushed before";
	uint64_t s = S(0xc20), from = base + C2_OFF, o, end = cio.wsize, fault = 0, mcg_cap;
	unsigned nbanks;
	int st;

	if (!arg_u64("enospc", 0)) {
		skip("c2 mkwrite ENOSPC gives a machine check and loses nothing", "see pmem-enospc",
		     "c2: covered by scenario pmem-enospc (safe_pages=N on a small filesystem); "
		     "enospc=1 runs it here");
		return;
	}
	if (!cio_on_disk(from, PAGE) || from >= end) {
		t_check(false, name, "no window/disk space at 0x%lx", from);
		return;
	}
	if (end - cio.blk_off > cio.disk_bytes)
		end = cio.blk_off + cio.disk_bytes;
	mcg_cap = rdmsr(0x179);
	nbanks = mcg_cap & 0xff;
	if (mcg_cap & (1ull << 8))
		wrmsr(0x17b, ~0ull);
	for (unsigned i = 0; i < nbanks; i++) {
		wrmsr(0x400 + 4 * i, ~0ull);
		wrmsr(0x401 + 4 * i, 0);
	}
	wrmsr(0x17a, 0);
	trap_hooks[VEC_MC] = c2_hook;
	for (o = from; o < end && !fault; o += 8)
		if (pmem_try_store((volatile uint64_t *)(cio.win + o), pattern_word(s, o / 8)))
			fault = o;
	trap_hooks[VEC_MC] = 0;
	for (unsigned i = 0; i < nbanks; i++)
		wrmsr(0x401 + 4 * i, 0);
	wrmsr(0x17a, 0);
	if (!fault) {
		t_check(false, name, "no machine check storing [0x%lx, 0x%lx): is the backing on a "
				     "filesystem too small for the window?", from, end);
		return;
	}
	t_diag("c2: machine check at window offset 0x%lx (%lu pages stored from 0x%lx)", fault,
	       (fault - from) / PAGE, from);
	if (*(volatile uint64_t *)(cio.win + fault) == pattern_word(s, fault / 8)) {
		t_check(false, name, "the refused store at 0x%lx is visible", fault);
		return;
	}
	if (!flush_ok()) {
		t_check(false, name, "%s", why);
		return;
	}
	for (o = from; o + SECTOR <= fault; o += BUF_BYTES) {
		uint64_t n = fault - o < BUF_BYTES ? (fault - o) & ~(SECTOR - 1ull) : BUF_BYTES;

		st = cio_rw(&c0, false, o, got, n);
		gen_bytes(exp, o, n, s);
		if (st != VIRTIO_BLK_S_OK || mem_diff(got, exp, n) != n) {
			t_check(false, name, "blk read at 0x%lx after the FLUSH: %s, first bad byte +%lu", o,
				cio_status_str(st), st ? 0 : mem_diff(got, exp, n));
			return;
		}
	}
	t_check(true, name, "-");
}

/* ---- d: a request whose buffer is the window mapping of its own range ---------------- */

static void d_case(bool write)
{
	const char *name = write ? "d1 a blk write whose source is the pmem mapping of the range it "
				   "writes completes with the right bytes"
				 : "d2 a blk read into the pmem mapping of the range it reads "
				   "completes with the right bytes";
	uint64_t o = write ? D1_OFF : D2_OFF, len = 4 * PAGE, z = S(write ? 0xd10 : 0xd20),
		 a = S(write ? 0xd11 : 0xd21), dirty = write ? 0 : PAGE, t;
	struct cand c[] = { { "A (dirty pmem data)", a, 0 },
			    { "Z (file data before)", z, 0 },
			    { "zeros", 0, 1 } };
	int s = blk_pattern(o, len, z);

	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write Z: %s", cio_status_str(s));
	win_fill(base + o + dirty, PAGE, a);
	t = rdtsc();
	s = cio_rw(&c0, write, base + o, (void *)(cio.win + base + o), len);
	t = rdtsc() - t;
	if (s != VIRTIO_BLK_S_OK) {
		t_check(false, name, "the request: %s%s", cio_status_str(s),
			s == VBLK_R_TIMEOUT ? " (no completion within timeout_ms: self-deadlock?)" : "");
		return;
	}
	t_diag("%s: completed in %lu us", write ? "d1" : "d2", tsc_to_ns(t) / 1000);
	expect(o, 0, len, z);
	expect(o, dirty, PAGE, a);
	if (!both_views("", o, len, c, 3)) {
		t_check(false, name, "%s", why);
		return;
	}
	if (!flush_ok()) {
		t_check(false, name, "%s", why);
		return;
	}
	t_check(both_views("after FLUSH: ", o, len, c, 3), name, "%s", why);
}

/* ---- e: a host-write while the guest has the page mapped and dirty ------------------- */

static void e1(void)
{
	const char *name = "e1 a host-write into a page the guest has mapped and dirty: the new "
			   "bytes appear, the guest's other bytes stay";
	uint64_t o = E1_PAGE, in = arg_u64("e1_off", 100), len = arg_u64("e1_len", 50);
	uint64_t z = S(0xe10), a = S(0xe11), bs = S(0xe12), dl, t;
	struct cand c[] = { { "A (the guest's dirty data)", a, 0 },
			    { "B (the host-write)", bs, 0 },
			    { "Z (file data before)", z, 0 },
			    { "zeros", 0, 1 } };
	char line[256];
	int n, s;

	if (!arg_u64("e1", 1)) {
		skip(name, "e1=0", "e1: e1=0: no host-write harness (QEMU, or cvmm without its control "
			   "socket driver)");
		return;
	}
	if (!len || len > 100 || in + len > PAGE) {
		t_check(false, name, "e1_off=%lu e1_len=%lu: the range must lie in the page, len 1..100",
			in, len);
		return;
	}
	s = blk_pattern(o, PAGE, z);
	SETUP(s == VIRTIO_BLK_S_OK, name, "blk write Z: %s", cio_status_str(s));
	win_fill(base + o, PAGE, a);
	expect(o, 0, PAGE, a);
	expect(o, in, len, bs);
	gen_bytes(got, base + o + in, len, a);
	if (mem_diff(exp + in, got, len) == len) {
		t_check(false, name, "B equals A: pick another seed");
		return;
	}
	n = snprintf(line, sizeof(line), "# e1: host-write offset=%lu length=%lu data=", base + o + in,
		     len);
	for (uint64_t i = 0; i < len; i++)
		n += snprintf(line + n, sizeof(line) - n, "%02x", exp[in + i]);
	console_flush();
	printf("%s\n", line);
	t = rdtsc();
	dl = deadline_after_ns(arg_u64("e1_timeout_ms", 10000) * 1000000ull);
	while (win_cmp(base + o + in, exp + in, len) != len && !deadline_passed(dl))
		cpu_relax();
	t = rdtsc() - t;
	if (win_cmp(base + o + in, exp + in, len) != len) {
		win_read(got, base + o, PAGE, WIN_WORDS);
		same("pmem view", o, got, exp, PAGE, c, 4);
		t_check(false, name, "the host-write did not show in the window within %lu ms (no "
				     "harness? e1=0 skips): %s",
			arg_u64("e1_timeout_ms", 10000), why);
		return;
	}
	t_diag("e1: the host-write showed after %lu ms", tsc_to_ns(t) / 1000000);
	win_read(got, base + o, PAGE, WIN_WORDS);
	if (!same("pmem view once B showed", o, got, exp, PAGE, c, 4)) {
		t_check(false, name, "%s", why);
		return;
	}
	if (!flush_ok()) {
		t_check(false, name, "%s", why);
		return;
	}
	t_check(both_views("after FLUSH: ", o, PAGE, c, 4), name, "%s", why);
}

/* ---- the scenarios ------------------------------------------------------------------- */

static bool setup(void)
{
	uint64_t def;

	seed = arg_u64("seed", rdtsc() | 1);
	if (!cio_open())
		return false;
	cio_ctx_init(&c0);
	cio_ctx_init(&c0b);
	cio_ctx_init(&ap.ctx);
	exp = mem_alloc(BUF_BYTES, 4096);
	got = mem_alloc(BUF_BYTES, 4096);
	got2 = mem_alloc(BUF_BYTES, 4096);
	wbuf = mem_alloc(BUF_BYTES, 4096);
	if (!t_check(exp && got && got2 && wbuf, "buffers", "out of memory"))
		return false;
	def = (cio.blk_off + 2 * M - 1) & ~(2 * M - 1);
	base = arg_u64("base", def);
	t_diag("coherency: seed 0x%lx; region [0x%lx, 0x%lx) of the window = file, disk sectors "
	       "from %lu; blk_size %u",
	       seed, base, base + REGION, base >= cio.blk_off ? cio_sector(base) : 0, cio.unit);
	return t_check(!(base & (PAGE - 1)) && base + REGION <= cio.wsize && cio_on_disk(base, REGION),
		       "the 4 MiB test region lies in the window and on the disk",
		       "base 0x%lx, window 0x%lx bytes, blk_off 0x%lx, disk 0x%lx bytes", base,
		       cio.wsize, cio.blk_off, cio.disk_bytes);
}

/* cases=a1,b1,... runs only those (ids: c1 a1 a2 a3 a4 b1 b1q b2 d1 d2 e1 f1 f2 c2); default all */
static bool want(const char *id)
{
	const char *l = arg_str("cases", ""), *p = l;
	size_t n = strlen(id);

	if (!*l)
		return true;
	for (; *p; p++)
		if ((p == l || p[-1] == ',') && !strncmp(p, id, n) && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

static void coherency(void)
{
	unsigned iters = arg_u64("b1_iters", 200);
	uint64_t blen = arg_u64("b1_len", 64 * K);

	if (!setup())
		return;
	if (blen > 128 * K || !blen || blen % PAGE) {
		t_check(false, "b1_len", "b1_len must be a multiple of 4096 up to 128K");
		return;
	}
	if (!want("c1"))
		;
	else if (arg_u64("populate", 0))
		c1();
	else
		skip("c1 populate then FLUSH writes nothing", "needs populate=1",
		     "c1: needs the host's populate=on: populate=1 here, or scenario=coherency-populate");
	if (want("a1"))
		a1();
	if (want("a2"))
		a2();
	if (want("a3"))
		a3();
	if (want("a4"))
		a4();
	if (want("b1"))
		b1(iters, blen);
	if (want("b1q"))
		b1_one_cpu(iters, blen > 64 * K ? 64 * K : blen);
	if (want("b2")) {
		b2("b2 after a DISCARD the range is zeros through both views, also after FLUSH",
		   B2_OFF, VIRTIO_BLK_T_DISCARD, 0, 0xb30);
		b2("b2 after a WRITE_ZEROES the range is zeros through both views, also after FLUSH",
		   B2_OFF + 64 * K, VIRTIO_BLK_T_WRITE_ZEROES, 0, 0xb40);
		b2("b2 after a WRITE_ZEROES with UNMAP the range is zeros through both views, also "
		   "after FLUSH",
		   B2_OFF + 128 * K, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WZ_FLAG_UNMAP, 0xb50);
	}
	if (want("d1"))
		d_case(true);
	if (want("d2"))
		d_case(false);
	if (want("e1"))
		e1();
	if (want("f1"))
		f1(arg_u64("f1_iters", 500));
	if (want("f2"))
		f2(arg_u64("f2_iters", 500));
	if (want("c2"))
		c2();
	ap.quit = 1;
}

static void coherency_populate(void)
{
	if (setup())
		c1();
}

const struct scenario scenario_coherency = { .name = "coherency", .run = coherency, .ap = coh_ap };
const struct scenario scenario_coherency_populate = { .name = "coherency-populate",
						      .run = coherency_populate };
