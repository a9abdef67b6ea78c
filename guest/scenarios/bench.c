/* Benchmark scenarios: what `make bench` (bench/run.py) runs under cvmm and under QEMU.
 *
 * Every measurement is one line the runner parses,
 *
 *     # bench: metric=NAME value=V unit=U
 *
 * (V a decimal with up to 3 fractional digits), and the run closes with the usual
 * `N passed, M failed` (a check fails only when a request fails or never completes, or a
 * coherence check that was asked for with expect_coherent=1 fails). Timing is rdtsc in ring 3
 * (lib/time.h: the rate from kvmclock / CPUID). Drivers are polled; waiting spins on the used
 * ring without the driver's periodic device_status read (an MMIO exit every 200 us), so a
 * measurement pays only for what the device does.
 *
 * scenario=bench-blk mode=randread|randwrite|seqread|seqwrite [bs=4096] [qd=1] [secs=2] [n=N]
 *   QD requests in flight on the one queue, each refilled as soon as it completes (all the
 *   completions seen in one poll are refilled, then one kick). Random offsets are bs-aligned,
 *   uniform over the disk; sequential wraps at the end. n=N: exactly N requests instead of
 *   `secs` (n=0: none; the runner counts VM exits per request as the difference of n=N and
 *   n=0). Prints MODE_BS_qdQD_{iops,mbps,lat_us,requests}.
 * scenario=bench-pmem-touch [mib=64] [at_mib=WINDOW/2]
 *   First touch: one 8-byte store per 4 KiB page over `mib` MiB of the window from `at_mib`
 *   (the VMM process is fresh, the backing file new and sparse). pmem_touch_mbps; then the FLUSH
 *   that writes all of it back, pmem_flush_after_touch_ms.
 * scenario=bench-pmem-flush [pages=1,64,4096] [reps=R]
 *   Dirty N pages (one store each, pages [0, N) of the window), time one FLUSH; R times after a
 *   warm-up round (first touch, block allocation); the median: pmem_flush_N_us.
 * scenario=bench-coherent-read [pages=64] [reps=12] [expect_coherent=0]
 *   Needs the pmem window and the disk on one file (window offset o == disk byte o). Store a
 *   pattern into N whole pages of the window, then time one blk read of those N pages; then
 *   time a read of N pages that pmem never touched. Medians: coherent_read_dirtyN_us,
 *   coherent_read_cleanN_us, and coherent_read_data_ok (1: the disk read returned what was
 *   stored through the window, every time).
 * scenario=bench-idle [secs=2]
 *   Opens the devices, prints `# bench: READY`, spins on `pause` in ring 3 for secs seconds (the
 *   runner samples the VMM's resident memory meanwhile).
 * scenario=bench [secs=2] [idle=2] [blk=1] [pmem=1] [touch_mib=64] [pages=1,64,4096] [reps=R]
 *   The suite in one boot (q35 takes seconds to boot here): idle; pmem FLUSH with 1, 64 and
 *   4096 dirty pages (first: before the big writes of this boot); pmem first touch; the six blk
 *   rows (4 KiB randread/randwrite at qd 1 and 16, 1 MiB seqread/seqwrite at qd 1). */
#include "drivers/virtio_blk.h"
#include "drivers/virtio_devs.h"
#include "drivers/virtio_pmem.h"
#include "lib/pattern.h"
#include "lib/rt.h"
#include "scenarios/scenario.h"

#define PAGE 4096ull
#define MAX_QD 64
#define MAX_REPS 64
#define WAIT_NS 10000000000ull /* a request that takes 10 s is a failure, not a slow device */

static struct vblk b;
static struct vpmem p;
static bool have_blk, have_pmem;

/* ---- output --------------------------------------------------------------------------- */

/* value in thousandths */
static void metric(const char *name, uint64_t milli, const char *unit)
{
	t_diag("bench: metric=%s value=%lu.%03lu unit=%s", name, milli / 1000, milli % 1000, unit);
}

static uint64_t elapsed_ns(uint64_t t0, uint64_t t1)
{
	return tsc_to_ns(t1 - t0);
}

static void sort_u64(uint64_t *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint64_t t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
}

static uint64_t median(uint64_t *v, unsigned n)
{
	if (!n)
		return 0;
	sort_u64(v, n);
	return n & 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Spin on the used ring until head is back (no device_status reads), then collect it. */
static int wait_head(struct virtq *q, uint16_t head, uint32_t *len)
{
	uint64_t deadline = deadline_after_ns(WAIT_NS);
	uint32_t id, l;

	for (;;) {
		while (vq_poll(q, &id, &l) != VQ_EMPTY)
			;
		if (q->inflight[head] == 2)
			return vq_wait(q, head, len); /* collects at once */
		if (deadline_passed(deadline))
			return VQ_TIMEOUT;
		cpu_relax();
	}
}

/* ---- devices -------------------------------------------------------------------------- */

static bool open_blk(void)
{
	if (have_blk)
		return true;
	have_blk = t_check(vblk_open(&b, vdev_blk_arg()) == 0, "bench: virtio-blk found",
			   "no device or initialisation failed");
	if (have_blk)
		t_diag("bench: disk %lu MiB, queue %u, event_idx %u", b.capacity >> 11, b.q.size,
		       b.q.event_idx);
	return have_blk;
}

static bool open_pmem(void)
{
	if (have_pmem)
		return true;
	have_pmem = t_check(vpmem_open(&p, vdev_pmem_arg(0)) == 0,
			    "bench: virtio-pmem found, window mapped", "no device or mapping failed");
	return have_pmem;
}

static int pmem_flush(uint32_t *ret)
{
	struct vq_buf d[2] = { { (uint64_t)p.req, 4, false }, { (uint64_t)p.resp, 4, true } };
	uint16_t head;
	uint32_t used;
	int r;

	__asm__ volatile("sfence" ::: "memory");
	*p.req = VIRTIO_PMEM_REQ_TYPE_FLUSH;
	*p.resp = VPMEM_RET_NONE;
	if (vq_add_chain(&p.q, d, 2, false, &head) < 0)
		return VQ_FULL;
	vq_kick(&p.q);
	r = wait_head(&p.q, head, &used);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	*ret = *p.resp;
	return r;
}

/* ---- blk -------------------------------------------------------------------------------- */

struct slot {
	struct vblk_req req;
	uint8_t *buf;
	bool busy;
};

static const char *const modes[] = { "randread", "randwrite", "seqread", "seqwrite" };

/* Is a busy slot's request used but not yet collected? */
static bool ready_slots(const struct slot *slots, unsigned qd)
{
	for (unsigned i = 0; i < qd; i++)
		if (slots[i].busy && b.q.inflight[slots[i].req.head] == 2)
			return true;
	return false;
}

/* mode 0..3 as in modes[]; n = ~0ull: run for secs seconds. */
static void bench_blk(unsigned mode, uint32_t bs, unsigned qd, uint64_t secs, uint64_t n)
{
	static struct slot *slots;
	static uint8_t *bufs;
	static uint64_t bufs_bytes;
	bool write = mode == 1 || mode == 3, seq = mode >= 2;
	uint64_t blocks = (b.capacity * SECTOR) / bs, next_seq = 0, done = 0, issued = 0, errors = 0;
	uint64_t t0, t1, deadline, stall, rekick, rekicks = 0, stuck = 0, bad_used = 0;
	int pr = VQ_EMPTY;
	unsigned inflight = 0, per_req = b.q.indirect ? 1 : 3;
	char name[48], m[64];
	int bad = VQ_DONE;

	snprintf(name, sizeof(name), "%s_%u%s_qd%u", modes[mode], bs >= (1u << 20) ? bs >> 20 : bs >> 10,
		 bs >= (1u << 20) ? "m" : "k", qd);
	if (!bs || bs % SECTOR || !blocks || qd < 1 || qd > MAX_QD || qd * per_req > b.q.size) {
		t_check(false, name, "bad parameters: bs %u, qd %u (queue %u), disk %lu blocks", bs, qd,
			b.q.size, blocks);
		return;
	}
	if (!slots)
		slots = mem_zalloc(sizeof(*slots) * MAX_QD, 64);
	if (bufs_bytes < (uint64_t)bs * qd) {
		bufs = mem_alloc((uint64_t)bs * qd, PAGE);
		bufs_bytes = bufs ? (uint64_t)bs * qd : 0;
	}
	if (!slots || !bufs) {
		t_check(false, name, "out of guest memory for %u x %u bytes", qd, bs);
		return;
	}
	for (unsigned i = 0; i < qd; i++) {
		slots[i].buf = bufs + (uint64_t)i * bs;
		slots[i].busy = false;
	}
	if (write) /* not zeros: nothing on the way may take a shortcut for them */
		pattern_fill(bufs, 0, (uint64_t)bs * qd, rdtsc());
	t0 = rdtsc();
	deadline = t0 + ns_to_tsc(secs * 1000000000ull);
	stall = deadline_after_ns(WAIT_NS);
	for (;;) {
		bool more = n == ~0ull ? !deadline_passed(deadline) : issued < n;
		unsigned added = 0;
		uint32_t id, l;

		/* refill every free slot */
		for (unsigned i = 0; more && i < qd; i++) {
			struct slot *s = &slots[i];
			uint64_t blk = seq ? next_seq++ % blocks : xorshift() % blocks;
			struct vq_buf d = { (uint64_t)s->buf, bs, !write };

			if (s->busy)
				continue;
			if (vblk_submit(&b, &s->req, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
					blk * (bs / SECTOR), &d, 1, b.q.indirect) < 0) {
				bad = VQ_FULL;
				break;
			}
			s->busy = true;
			inflight++;
			issued++;
			added++;
			if (n != ~0ull && issued >= n)
				break;
		}
		if (added)
			vq_kick(&b.q);
		if (bad != VQ_DONE || !inflight)
			break;
		/* wait for at least one completion; after 1 s without one, notify the device again
		 * (once a second): if that revives the queue, a notification was lost on the way
		 * (the row then fails, its time is meaningless, and the log says so) */
		rekick = deadline_after_ns(1000000000ull);
		/* A completion the last sweep's vblk_wait polled for a slot the sweep had already
		 * passed is used but not collected: nothing new will come for it, so do not wait
		 * (a device that completes out of order left the last request of a run waiting
		 * here forever). */
		while (!ready_slots(slots, qd) && (pr = vq_poll(&b.q, &id, &l)) == VQ_EMPTY) {
			if (deadline_passed(stall)) {
				bad = VQ_TIMEOUT;
				break;
			}
			if (deadline_passed(rekick)) {
				if (!rekicks)
					stuck = inflight;
				*b.q.notify = b.q.index;
				rekicks++;
				rekick = deadline_after_ns(1000000000ull);
			}
			cpu_relax();
		}
		if (pr == VQ_BAD_USED && bad_used++ < 4)
			t_diag("bench: used element with id %u (len %u) that is not outstanding", id, l);
		pr = VQ_EMPTY;
		if (bad != VQ_DONE)
			break;
		while ((pr = vq_poll(&b.q, &id, &l)) != VQ_EMPTY)
			if (pr == VQ_BAD_USED && bad_used++ < 4)
				t_diag("bench: used element with id %u (len %u) that is not outstanding",
				       id, l);
		for (unsigned i = 0; i < qd; i++) {
			struct slot *s = &slots[i];

			if (!s->busy || b.q.inflight[s->req.head] != 2)
				continue;
			vblk_wait(&b, &s->req); /* collects */
			s->busy = false;
			inflight--;
			done++;
			if (s->req.status != VIRTIO_BLK_S_OK)
				errors++;
		}
		stall = deadline_after_ns(WAIT_NS);
	}
	t1 = rdtsc();
	if (rekicks) {
		t_diag("bench: %s: no completion for 1 s with %u requests in flight (after %lu done); "
		       "%lu extra notifications %s", name, (unsigned)stuck, done, rekicks,
		       bad == VQ_DONE ? "revived the queue: a notification was lost" : "did not help");
		/* what the driver sees: which heads wait, and where the rings stand */
		for (unsigned i = 0; i < qd; i++)
			if (slots[i].busy)
				t_diag("bench: slot %u waits on head %u (state %u)", i, slots[i].req.head,
				       b.q.inflight[slots[i].req.head]);
		t_diag("bench: avail idx %u, used idx %u, last used %u, bad used elements %lu",
		       b.q.avail_idx, __atomic_load_n(&b.q.used->idx, __ATOMIC_ACQUIRE),
		       b.q.last_used, bad_used);
	}
	if (!t_check(bad == VQ_DONE && !errors && !rekicks && !bad_used, name,
		     "%s, %lu of %lu requests failed, %lu re-notifications, %lu bad used elements",
		     vq_result_str(bad), errors, done, rekicks, bad_used)) {
		if (bad != VQ_DONE)
			vblk_reinit(&b);
		return;
	}
	uint64_t ns = elapsed_ns(t0, t1);

	snprintf(m, sizeof(m), "%s_requests", name);
	metric(m, done * 1000, "req");
	if (!done || !ns)
		return;
	snprintf(m, sizeof(m), "%s_iops", name);
	metric(m, done * 1000000000000ull / ns, "iops");
	snprintf(m, sizeof(m), "%s_mbps", name);
	metric(m, done * bs * 1000000ull / ns, "MB/s"); /* bytes/ns * 1000 = MB/s; x1000 milli */
	snprintf(m, sizeof(m), "%s_lat_us", name);
	metric(m, ns * qd / done, "us"); /* Little's law: mean latency at this depth */
}

static int parse_mode(const char *s)
{
	for (unsigned i = 0; i < 4; i++)
		if (!strcmp(s, modes[i]))
			return (int)i;
	return -1;
}

static void scenario_bench_blk_run(void)
{
	int mode = parse_mode(arg_str("mode", "randread"));
	uint64_t n = arg_u64("n", ~0ull);

	if (!t_check(mode >= 0, "bench-blk: mode is randread|randwrite|seqread|seqwrite", "'%s'",
		     arg_str("mode", "")))
		return;
	if (!open_blk())
		return;
	bench_blk((unsigned)mode, (uint32_t)arg_u64("bs", 4096), (unsigned)arg_u64("qd", 1),
		  arg_u64("secs", 2), n);
}

/* ---- pmem ------------------------------------------------------------------------------ */

/* MB/s (in thousandths, as metric() takes it) of 8-byte stores to every word of
 * [base, base + bytes). */
static uint64_t store_pass(void *base, uint64_t bytes)
{
	uint64_t t0 = rdtsc();
	for (uint64_t o = 0; o < bytes; o += 8)
		*(volatile uint64_t *)((uint8_t *)base + o) = o;
	uint64_t ns = elapsed_ns(t0, rdtsc());
	return bytes * 1000000ull / (ns ? ns : 1); /* metric() prints thousandths */
}

static void bench_pmem_touch(uint64_t mib, uint64_t at)
{
	uint64_t pages = mib << 8, t0, t1, ns;
	uint32_t ret = VPMEM_RET_NONE;
	int r;

	if (at + (mib << 20) > p.size) {
		t_check(false, "pmem first touch", "%lu MiB at %lu MiB is past the %lu MiB window",
			mib, at >> 20, p.size >> 20);
		return;
	}
	t0 = rdtsc();
	for (uint64_t i = 0; i < pages; i++)
		*(volatile uint64_t *)(p.base + at + i * PAGE) = i + 1;
	t1 = rdtsc();
	ns = elapsed_ns(t0, t1);
	metric("pmem_touch_mbps", pages * PAGE * 1000000ull / (ns ? ns : 1), "MB/s");
	metric("pmem_touch_us_per_page", ns / pages, "us");
	/* Steady state: every word of the now-mapped (and already dirty) range, next to the same
	 * on plain guest RAM (touched once first, so neither pass pays first-touch faults). */
	metric("pmem_store_mbps", store_pass((uint8_t *)p.base + at, mib << 20), "MB/s");
	uint8_t *ram = mem_alloc(mib << 20, PAGE);
	if (ram) {
		for (uint64_t i = 0; i < pages; i++)
			*(volatile uint64_t *)(ram + i * PAGE) = i + 1;
		metric("ram_store_mbps", store_pass(ram, mib << 20), "MB/s");
	}
	t0 = rdtsc();
	r = pmem_flush(&ret);
	t1 = rdtsc();
	if (t_check(r == VQ_DONE && ret == 0, "pmem first touch, then FLUSH", "%s, ret 0x%x",
		    vq_result_str(r), ret))
		metric("pmem_flush_after_touch_ms", elapsed_ns(t0, t1) / 1000, "ms");
}

static void bench_pmem_flush(uint64_t npages, unsigned reps)
{
	uint64_t lat[MAX_REPS];
	unsigned nl = 0, bad = 0;
	char m[48];

	if (npages * PAGE > p.size) {
		t_check(false, "pmem FLUSH", "%lu pages > window", npages);
		return;
	}
	if (reps > MAX_REPS)
		reps = MAX_REPS;
	for (unsigned rep = 0; rep <= reps; rep++) { /* rep 0: warm-up */
		uint32_t ret = VPMEM_RET_NONE;
		uint64_t t0, t1;
		int r;

		for (uint64_t i = 0; i < npages; i++)
			*(volatile uint64_t *)(p.base + i * PAGE) = rdtsc() ^ i;
		t0 = rdtsc();
		r = pmem_flush(&ret);
		t1 = rdtsc();
		if (r != VQ_DONE || ret != 0) {
			bad++;
			if (r != VQ_DONE)
				break;
			continue;
		}
		if (rep)
			lat[nl++] = elapsed_ns(t0, t1);
	}
	snprintf(m, sizeof(m), "pmem FLUSH with %lu dirty pages", npages);
	if (!t_check(!bad && nl, m, "%u of %u FLUSHes failed", bad, reps + 1))
		return;
	snprintf(m, sizeof(m), "pmem_flush_%lu_us", npages);
	metric(m, median(lat, nl), "us"); /* ns as thousandths of us */
}

static unsigned default_reps(uint64_t npages)
{
	return npages >= 1024 ? 6 : 20;
}

static void scenario_bench_pmem_touch_run(void)
{
	if (!open_pmem())
		return;
	bench_pmem_touch(arg_u64("mib", 64), arg_u64("at_mib", (p.size >> 20) / 2) << 20);
}

/* pages=1,64,4096 */
static void flush_list(const char *list)
{
	while (*list) {
		uint64_t v = 0;

		while (*list >= '0' && *list <= '9')
			v = v * 10 + (uint64_t)(*list++ - '0');
		if (*list)
			list++;
		if (v)
			bench_pmem_flush(v, (unsigned)arg_u64("reps", default_reps(v)));
	}
}

static void scenario_bench_pmem_flush_run(void)
{
	if (!open_pmem())
		return;
	flush_list(arg_str("pages", "1,64,4096"));
}

/* ---- coherent read ----------------------------------------------------------------------- */

static void scenario_bench_coherent_read_run(void)
{
	uint64_t npages = arg_u64("pages", 64), bytes = npages * PAGE;
	unsigned reps = (unsigned)arg_u64("reps", 12), nd = 0, nc = 0, wrong = 0, failed = 0;
	bool expect = arg_u64("expect_coherent", 0);
	uint64_t dirty_at, clean_at, dlat[MAX_REPS], clat[MAX_REPS];
	uint8_t *buf;
	char m[48];

	if (!open_blk() || !open_pmem())
		return;
	if (reps > MAX_REPS)
		reps = MAX_REPS;
	/* dirty range 1 MiB in, clean range in the middle: both inside window and disk */
	dirty_at = 1ull << 20;
	clean_at = (p.size / 2) & ~(PAGE - 1);
	if (!t_check(bytes && bytes <= (1u << 20) && clean_at + bytes <= p.size &&
			     (clean_at + bytes) / SECTOR <= b.capacity && dirty_at + bytes <= clean_at,
		     "bench-coherent-read: ranges fit the window and the disk",
		     "%lu pages, window %lu MiB, disk %lu MiB", npages, p.size >> 20, b.capacity >> 11))
		return;
	buf = mem_alloc(bytes, PAGE);
	for (unsigned rep = 0; rep <= reps && buf; rep++) {
		uint64_t seed = rdtsc() | 1, t0, t1;
		uint64_t *w = (uint64_t *)(p.base + dirty_at);
		int s;

		/* dirty npages whole pages through the window */
		for (uint64_t i = 0; i < bytes / 8; i++)
			w[i] = pattern_word(seed, i);
		t0 = rdtsc();
		s = vblk_rw(&b, false, dirty_at / SECTOR, buf, (uint32_t)bytes);
		t1 = rdtsc();
		if (s != VIRTIO_BLK_S_OK) {
			failed++;
			continue;
		}
		for (uint64_t i = 0; i < bytes / 8; i++)
			if (((uint64_t *)buf)[i] != pattern_word(seed, i)) {
				wrong++;
				break;
			}
		if (rep)
			dlat[nd++] = elapsed_ns(t0, t1);
		t0 = rdtsc();
		s = vblk_rw(&b, false, clean_at / SECTOR, buf, (uint32_t)bytes);
		t1 = rdtsc();
		if (s != VIRTIO_BLK_S_OK)
			failed++;
		else if (rep)
			clat[nc++] = elapsed_ns(t0, t1);
	}
	if (!t_check(buf && !failed, "bench-coherent-read: every blk read completed OK",
		     "%u failed", failed))
		return;
	t_check(!expect || !wrong, "blk read returns what was stored through the pmem window",
		"%u of %u reads returned other data", wrong, reps + 1);
	metric("coherent_read_data_ok", wrong ? 0 : 1000, "bool");
	snprintf(m, sizeof(m), "coherent_read_dirty%lu_us", npages);
	metric(m, median(dlat, nd), "us");
	snprintf(m, sizeof(m), "coherent_read_clean%lu_us", npages);
	metric(m, median(clat, nc), "us");
	/* leave nothing dirty for the VMM's exit path to write back while it is being timed */
	uint32_t ret;

	pmem_flush(&ret);
}

/* ---- idle -------------------------------------------------------------------------------- */

static void idle(uint64_t secs)
{
	uint64_t deadline;

	t_diag("bench: READY idle %lu s", secs);
	deadline = deadline_after_ns(secs * 1000000000ull);
	while (!deadline_passed(deadline))
		for (int i = 0; i < 1000; i++)
			cpu_relax();
	t_diag("bench: idle done");
}

static void scenario_bench_idle_run(void)
{
	/* the devices the other runs use, initialised, so the VMM is in its working state */
	if (arg_u64("blk", 1))
		open_blk();
	if (arg_u64("pmem", 1))
		open_pmem();
	idle(arg_u64("secs", 2));
}

/* ---- the suite ---------------------------------------------------------------------------- */

static void scenario_bench_run(void)
{
	uint64_t secs = arg_u64("secs", 2);
	bool blk = arg_u64("blk", 1), pmem = arg_u64("pmem", 1);

	if (blk && !open_blk())
		blk = false;
	if (pmem && !open_pmem())
		pmem = false;
	if (arg_u64("idle", 2))
		idle(arg_u64("idle", 2));
	/* FLUSH latencies first: before this boot has written anything big to the host's disk */
	if (pmem) {
		flush_list(arg_str("pages", "1,64,4096"));
		bench_pmem_touch(arg_u64("touch_mib", 64), ((p.size >> 20) / 2) << 20);
	}
	if (blk) {
		bench_blk(0, 4096, 1, secs, ~0ull);
		bench_blk(0, 4096, 16, secs, ~0ull);
		bench_blk(1, 4096, 1, secs, ~0ull);
		bench_blk(1, 4096, 16, secs, ~0ull);
		bench_blk(2, 1u << 20, 1, secs, ~0ull);
		bench_blk(3, 1u << 20, 1, secs, ~0ull);
	}
}

const struct scenario scenario_bench = { "bench", scenario_bench_run, NULL };
const struct scenario scenario_bench_blk = { "bench-blk", scenario_bench_blk_run, NULL };
const struct scenario scenario_bench_pmem_touch = { "bench-pmem-touch",
						    scenario_bench_pmem_touch_run, NULL };
const struct scenario scenario_bench_pmem_flush = { "bench-pmem-flush",
						    scenario_bench_pmem_flush_run, NULL };
const struct scenario scenario_bench_coherent_read = { "bench-coherent-read",
						       scenario_bench_coherent_read_run, NULL };
const struct scenario scenario_bench_idle = { "bench-idle", scenario_bench_idle_run, NULL };
