/* virtio-pmem scenarios: loads and stores in the DAX window, FLUSH, and what a host test checks
 * in the backing file afterwards.
 *
 * THE PATTERN (what the file holds after `pmem`, and in the pages that `pmem-populate` and
 * `pmem-enospc` report): window offset o == file offset o, and the byte there is
 *
 *     pattern_byte(seed, o) = (mix64((o / 8) ^ (seed * 0x9E3779B97F4A7C15)) >> (8 * (o % 8))) & 0xff
 *     mix64(z): z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
 *               return z ^ (z >> 31)                               (64-bit wrapping arithmetic)
 *
 * i.e. each 8-byte little-endian word w (at o = 8w) is mix64(w ^ (seed * 0x9E3779B97F4A7C15)).
 * seed is `seed=` (default 0x63766d6d, "cvmm"). lib/pattern.h has the C.
 *
 * scenario=pmem [pages=LIST] [seed=N] [pmem_dev=N]
 *   Stores and loads across granule boundaries (the VMM's granule may be any power of two from
 *   4 KiB to 2 MiB): single bytes (each loaded first, then stored, then loaded back) at window
 *   offsets 0, 4095, 4096, 65535, 65536, 65537, 2M-1, 2M, 2M+1 and size-1; unaligned 8-byte
 *   stores straddling 4 KiB, 64 KiB and 2 MiB (offsets boundary-4) and an 8-byte store at
 *   size-8; offsets outside the window are skipped. Then every byte of every 4 KiB page in
 *   LIST and of every page a probe touched gets the pattern, is checked, FLUSHed (ret 0), and
 *   checked again. LIST: comma-separated page numbers, decimal or 0x hex, or `mid` / `last`
 *   (default "0,1,15,16,17,511,512,513,mid,last"). The exact page set is printed as
 *   `# pmem: pattern seed=0x... pages=...`: after the VM exits, each of those pages in the
 *   backing file must equal the pattern byte for byte (FLUSHed data, virtio 1.2 5.19.6.1).
 *
 * scenario=pmem-populate [pages=LIST] [seed=N]
 *   FLUSH with nothing stored, then one 8-byte pattern word stored at the start of exactly 3
 *   pages (default 0, mid, last), then FLUSH. The host checks cvmm's stats: the first FLUSH
 *   wrote 0 pages, the second exactly 3. The guest touches nothing else in the window.
 *
 * scenario=pmem-enospc safe_pages=N [max_pages=M] [seed=N]
 *   For a backing file on a filesystem that cannot hold the whole window (the host test tells
 *   how many pages are certainly safe). Installs a machine-check hook (vector 18) and enables
 *   machine checks (MCG_CTL, MCi_CTL all ones, as an OS does), then fills pages 0, 1, 2, ... with
 *   the pattern, every 8-byte store through pmem_try_store (below) whose machine-check recovery
 *   skips the store. Expected: no machine check below page N; one at some page P >= N, with
 *   MCi_STATUS VAL|UC|ADDRV and MCi_ADDR the exact guest-physical address of the refused store;
 *   the refused store is not visible; pages [0, P) still hold the pattern; FLUSH returns 0.
 *   The line `# pmem-enospc: machine check at page P ...` tells the host test which pages
 *   ([0, P)) must hold the pattern in the file.
 *
 * scenario=mce [timeout_ms=30000]
 *   The recovery machinery alone, without a pmem device: spins on stores to RAM (inside
 *   pmem_spin_store) until a machine check is injected from outside (QEMU monitor:
 *   `mce 0 0 0xbd00000000000000 0x5 ADDR 0`), recovers and prints the bank registers.
 *
 * Test knob for all three: `window_start=ADDR window_size=SIZE` uses a DAX window at a known
 * address without a virtio-pmem device (FLUSH checks are skipped): for a VMM whose window
 * exists before its device does.
 *
 * Recovery design: a store that the VMM refuses raises #MC (cvmm injects it from the MMIO exit
 * of the store, so RIP is at the store or just after it). Every store that may fault is the one
 * `movq` in pmem_try_store; the ring-0 hook (trap_hooks[18]) accepts a machine check only if
 * RIP is in [pmem_try_store, pmem_try_store_end], moves RIP to pmem_try_store_fault (which
 * returns 1 instead of 0) and records it; anything else falls through to the crash report.
 * Ring 3 then reads MCG_STATUS and the bank MSRs through the rdmsr syscall and clears them
 * (MCG_STATUS.MCIP must be 0 before another machine check, or the CPU shuts down). */
#include "arch/arch.h"
#include "drivers/virtio_devs.h"
#include "drivers/virtio_pmem.h"
#include "lib/pattern.h"
#include "lib/rt.h"
#include "scenarios/scenario.h"

#define PAGE 4096ull
#define MAX_PAGES 64
#define DEFAULT_SEED 0x63766d6dull

#define MSR_MCG_CAP 0x179
#define MSR_MCG_STATUS 0x17a
#define MSR_MCG_CTL 0x17b
#define MSR_MC_CTL(i) (0x400 + 4 * (i))
#define MSR_MC_STATUS(i) (0x401 + 4 * (i))
#define MSR_MC_ADDR(i) (0x402 + 4 * (i))
#define MCG_CTL_P (1ull << 8)
#define MCG_STATUS_RIPV 1ull
#define MCG_STATUS_EIPV 2ull
#define MCG_STATUS_MCIP 4ull
#define MCI_STATUS_VAL (1ull << 63)
#define MCI_STATUS_UC (1ull << 61)
#define MCI_STATUS_ADDRV (1ull << 58)

/* int pmem_try_store(uint64_t *addr, uint64_t value): 0 stored, 1 refused by a machine check. */
int pmem_try_store(volatile uint64_t *addr, uint64_t value);
extern char pmem_try_store_end[], pmem_try_store_fault[];
__asm__(".text\n"
	".globl pmem_try_store\n"
	"pmem_try_store:\n\t"
	"movq %rsi, (%rdi)\n"
	".globl pmem_try_store_end\n"
	"pmem_try_store_end:\n\t"
	"xorl %eax, %eax\n\t"
	"ret\n"
	".globl pmem_try_store_fault\n"
	"pmem_try_store_fault:\n\t"
	"movl $1, %eax\n\t"
	"ret\n"
	/* int pmem_spin_store(addr, value, count): the same store `count` times in a loop (the
	 * `mce` scenario: whenever a machine check comes, RIP is inside); 0, or 1 after a #MC */
	".globl pmem_spin_store\n"
	"pmem_spin_store:\n"
	"1:\tmovq %rsi, (%rdi)\n\t"
	"decq %rdx\n\t"
	"jnz 1b\n"
	".globl pmem_spin_store_end\n"
	"pmem_spin_store_end:\n\t"
	"xorl %eax, %eax\n\t"
	"ret\n");
int pmem_spin_store(volatile uint64_t *addr, uint64_t value, uint64_t count);
extern char pmem_spin_store_end[];

static struct vpmem p;
static uint64_t seed;
static uint64_t pages[MAX_PAGES];
static unsigned npages;

static uint64_t npages_window(void)
{
	return p.size / PAGE;
}

static void add_page(uint64_t pg)
{
	if (pg >= npages_window())
		return;
	for (unsigned i = 0; i < npages; i++)
		if (pages[i] == pg)
			return;
	if (npages < MAX_PAGES) {
		unsigned i = npages++;

		while (i > 0 && pages[i - 1] > pg) { /* keep sorted */
			pages[i] = pages[i - 1];
			i--;
		}
		pages[i] = pg;
	}
}

/* Parse `pages=` into pages[]. Returns false on a malformed list. */
static bool parse_pages(const char *def)
{
	const char *s = arg_str("pages", def);
	char tok[24];

	npages = 0;
	while (*s) {
		unsigned n = 0;
		uint64_t v = 0;
		const char *t = tok;
		unsigned base = 10;

		while (*s && *s != ',' && n < sizeof(tok) - 1)
			tok[n++] = *s++;
		tok[n] = '\0';
		if (*s == ',')
			s++;
		if (!n)
			continue;
		if (!strcmp(tok, "last")) {
			v = npages_window() - 1;
		} else if (!strcmp(tok, "mid")) {
			v = npages_window() / 2;
		} else {
			if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
				base = 16;
				t += 2;
			}
			if (!*t)
				return false;
			for (; *t; t++) {
				unsigned d = *t >= '0' && *t <= '9'   ? *t - '0'
					     : *t >= 'a' && *t <= 'f' ? *t - 'a' + 10
					     : *t >= 'A' && *t <= 'F' ? *t - 'A' + 10
								      : 99;
				if (d >= base)
					return false;
				v = v * base + d;
			}
		}
		add_page(v);
	}
	return true;
}

static void print_pages(const char *prefix)
{
	char line[200];
	int len = snprintf(line, sizeof(line), "%s", prefix);

	for (unsigned i = 0; i < npages && len < (int)sizeof(line); i++)
		len += snprintf(line + len, sizeof(line) - len, "%s%lu", i ? "," : "", pages[i]);
	t_diag("%s", line);
}

static bool no_device; /* window_start= given: a bare window, no virtio-pmem device */

static bool open_pmem(void)
{
	uint64_t ws = arg_u64("window_start", 0), wsz = arg_u64("window_size", 0);

	seed = arg_u64("seed", DEFAULT_SEED);
	if (ws) {
		/* Test knob: a VMM's DAX window without its virtio-pmem device (no FLUSH). */
		no_device = true;
		p.start = ws;
		p.size = wsz;
		p.base = wsz ? map_phys(ws, wsz, MAP_WB) : 0;
		t_diag("pmem: bare window [0x%lx, 0x%lx) from the command line; FLUSH checks skipped",
		       ws, ws + wsz);
		return t_check(p.base && !(wsz & 0xfff), "window_start/window_size window mapped",
			       "size 0x%lx", wsz);
	}
	return t_check(vpmem_open(&p, vdev_pmem_arg(1)) == 0,
		       "virtio-pmem found, window mapped", "see above");
}

static bool flush(const char *name)
{
	uint32_t ret = VPMEM_RET_NONE;
	int r;

	if (no_device) {
		char skip[96];

		snprintf(skip, sizeof(skip), "%s # SKIP no device (window_start=)", name);
		return t_check(true, skip, "-");
	}
	r = vpmem_flush(&p, &ret);

	return t_check(r == VQ_DONE && ret == 0, name, "%s, ret 0x%x", vq_result_str(r), ret);
}

/* ---- pmem ------------------------------------------------------------------------------ */

static volatile uint8_t *at(uint64_t off)
{
	return p.base + off;
}

static void pmem(void)
{
	static const uint64_t K = 1024, M = 1024 * 1024;
	const uint64_t bytes[] = { 0, 4095, 4096, 64 * K - 1, 64 * K, 64 * K + 1, 2 * M - 1, 2 * M,
				   2 * M + 1, ~0ull /* size - 1 */ };
	const uint64_t straddle[] = { 4096 - 4, 64 * K - 4, 2 * M - 4 };
	unsigned bad = 0, n = 0;
	char why[120] = "";

	if (!open_pmem())
		return;
	if (!t_check(parse_pages("0,1,15,16,17,511,512,513,mid,last"), "pages= list parses",
		     "'%s'", arg_str("pages", "")))
		return;
	/* single bytes: load (any value), store the pattern byte, load it back */
	for (unsigned i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++) {
		uint64_t o = bytes[i] == ~0ull ? p.size - 1 : bytes[i];
		uint8_t want = pattern_byte(seed, o), got;

		if (o >= p.size)
			continue;
		(void)*at(o);
		*at(o) = want;
		got = *at(o);
		n++;
		add_page(o / PAGE);
		if (got != want && !bad++)
			snprintf(why, sizeof(why), "offset 0x%lx: stored 0x%x, loaded 0x%x", o, want, got);
	}
	t_check(!bad, "byte stores and loads at 4 KiB / 64 KiB / 2 MiB boundaries and the last byte",
		"%u of %u wrong; first: %s", bad, n, why);
	/* 8-byte stores across boundaries (no load first: the granules may still be absent) */
	bad = n = 0;
	for (unsigned i = 0; i <= sizeof(straddle) / sizeof(straddle[0]); i++) {
		uint64_t o = i < sizeof(straddle) / sizeof(straddle[0]) ? straddle[i] : p.size - 8;
		uint64_t want = 0, got;

		if (o + 8 > p.size)
			continue;
		for (int k = 7; k >= 0; k--)
			want = want << 8 | pattern_byte(seed, o + k);
		*(volatile uint64_t *)at(o) = want;
		got = *(volatile uint64_t *)at(o);
		n++;
		add_page(o / PAGE);
		add_page((o + 7) / PAGE);
		if (got != want && !bad++)
			snprintf(why, sizeof(why), "offset 0x%lx: stored 0x%lx, loaded 0x%lx", o, want, got);
	}
	t_check(!bad, "8-byte stores straddling 4 KiB / 64 KiB / 2 MiB boundaries, and at the end",
		"%u of %u wrong; first: %s", bad, n, why);
	/* whole pages */
	for (unsigned i = 0; i < npages; i++)
		pattern_fill((void *)at(pages[i] * PAGE), pages[i] * PAGE, PAGE, seed);
	bad = 0;
	for (unsigned i = 0; i < npages; i++) {
		size_t k = pattern_check((const void *)at(pages[i] * PAGE), pages[i] * PAGE, PAGE, seed);

		if (k != PAGE && !bad++)
			snprintf(why, sizeof(why), "page %lu byte %lu", pages[i], (uint64_t)k);
	}
	t_check(!bad, "pattern stored in every listed page reads back", "%u pages wrong; first %s",
		bad, why);
	flush("FLUSH returns 0");
	bad = 0;
	for (unsigned i = 0; i < npages; i++)
		if (pattern_check((const void *)at(pages[i] * PAGE), pages[i] * PAGE, PAGE, seed) != PAGE)
			bad++;
	t_check(!bad, "the pattern is still there after FLUSH", "%u pages changed", bad);
	t_diag("pmem: pattern seed=0x%lx (window offset = file offset; lib/pattern.h)", seed);
	print_pages("pmem: pattern pages=");
}

/* ---- pmem-populate ---------------------------------------------------------------------- */

static void pmem_populate(void)
{
	unsigned bad = 0;

	if (!open_pmem())
		return;
	if (!t_check(parse_pages("0,mid,last") && npages == 3, "exactly 3 distinct pages in pages=",
		     "'%s' gives %u pages in the window", arg_str("pages", "0,mid,last"), npages))
		return;
	flush("FLUSH before any store returns 0");
	for (unsigned i = 0; i < npages; i++)
		*(volatile uint64_t *)at(pages[i] * PAGE) = pattern_word(seed, pages[i] * PAGE / 8);
	for (unsigned i = 0; i < npages; i++)
		bad += *(volatile uint64_t *)at(pages[i] * PAGE) != pattern_word(seed, pages[i] * PAGE / 8);
	t_check(!bad, "one 8-byte store into each of 3 pages reads back", "%u wrong", bad);
	flush("FLUSH after storing into 3 pages returns 0");
	print_pages("pmem-populate: FLUSH, one 8-byte store at the start of pages ");
	t_diag("pmem-populate: then FLUSH (expect the stats to show 0 then 3 pages written back)");
}

/* ---- pmem-enospc ------------------------------------------------------------------------ */

static volatile unsigned mce_count;
static volatile uint64_t mce_rip, mce_other_rip;

/* Ring 0 (emulated: keep it tiny). */
static int mce_hook(struct trap_frame *f)
{
	if ((f->rip < (uint64_t)pmem_try_store || f->rip > (uint64_t)pmem_try_store_end) &&
	    (f->rip < (uint64_t)pmem_spin_store || f->rip > (uint64_t)pmem_spin_store_end)) {
		mce_other_rip = f->rip;
		return 0; /* not ours: crash report */
	}
	mce_rip = f->rip;
	mce_count++;
	f->rip = (uint64_t)pmem_try_store_fault;
	return 1;
}

struct mce_info {
	uint64_t mcg_status, status, addr;
	int bank;
};

static struct mce_info read_mce(unsigned nbanks)
{
	struct mce_info m = { .mcg_status = rdmsr(MSR_MCG_STATUS), .bank = -1 };

	for (unsigned i = 0; i < nbanks; i++) {
		uint64_t st = rdmsr(MSR_MC_STATUS(i));

		if (st & MCI_STATUS_VAL) {
			m.bank = i;
			m.status = st;
			m.addr = st & MCI_STATUS_ADDRV ? rdmsr(MSR_MC_ADDR(i)) : 0;
			wrmsr(MSR_MC_STATUS(i), 0);
			break;
		}
	}
	wrmsr(MSR_MCG_STATUS, 0); /* MCIP off: a second machine check must not shut the CPU down */
	return m;
}

/* Enable machine checks as an OS does (KVM drops an injected #MC otherwise), clear the banks,
 * install the hook. */
static bool mce_enable(uint64_t *mcg_cap, unsigned *nbanks)
{
	*mcg_cap = rdmsr(MSR_MCG_CAP);
	*nbanks = *mcg_cap & 0xff;
	if (!t_check(*nbanks > 0, "machine-check banks exist", "MCG_CAP 0x%lx", *mcg_cap))
		return false;
	if (*mcg_cap & MCG_CTL_P)
		wrmsr(MSR_MCG_CTL, ~0ull);
	for (unsigned i = 0; i < *nbanks; i++) {
		wrmsr(MSR_MC_CTL(i), ~0ull);
		wrmsr(MSR_MC_STATUS(i), 0);
	}
	wrmsr(MSR_MCG_STATUS, 0);
	trap_hooks[VEC_MC] = mce_hook;
	return true;
}

static void pmem_enospc(void)
{
	uint64_t safe = arg_u64("safe_pages", 0), max, mcg_cap, fault_pg = ~0ull, fault_off = 0;
	unsigned nbanks;
	struct mce_info m = { 0 };
	unsigned bad = 0;

	if (!open_pmem())
		return;
	max = arg_u64("max_pages", npages_window());
	if (max > npages_window())
		max = npages_window();
	if (!t_check(safe > 0 && safe < max, "safe_pages=N given, below the window size",
		     "safe_pages=%lu, window %lu pages", safe, max))
		return;
	if (!mce_enable(&mcg_cap, &nbanks))
		return;
	t_diag("pmem-enospc: MCG_CAP 0x%lx (%u banks); filling pages from 0, safe_pages=%lu, max %lu",
	       mcg_cap, nbanks, safe, max);
	for (uint64_t pg = 0; pg < max && fault_pg == ~0ull; pg++) {
		for (uint64_t o = pg * PAGE; o < (pg + 1) * PAGE; o += 8) {
			if (pmem_try_store((volatile uint64_t *)at(o), pattern_word(seed, o / 8))) {
				fault_pg = pg;
				fault_off = o;
				m = read_mce(nbanks);
				break;
			}
		}
	}
	trap_hooks[VEC_MC] = 0;
	if (!t_check(fault_pg != ~0ull, "a store beyond the backing's space raises a machine check",
		     "no machine check in %lu pages (other #MC rip 0x%lx)", max, mce_other_rip))
		return;
	t_diag("pmem-enospc: machine check at page %lu (window offset 0x%lx, address 0x%lx), rip 0x%lx"
	       " (store at %p); MCG_STATUS 0x%lx, bank %d STATUS 0x%lx ADDR 0x%lx",
	       fault_pg, fault_off, p.start + fault_off, mce_rip, (void *)pmem_try_store,
	       m.mcg_status, m.bank, m.status, m.addr);
	t_check(fault_pg >= safe, "no machine check below safe_pages", "page %lu < %lu", fault_pg, safe);
	t_check(mce_count == 1, "exactly one machine check", "%u", mce_count);
	t_check((m.mcg_status & MCG_STATUS_MCIP) && (m.mcg_status & (MCG_STATUS_RIPV | MCG_STATUS_EIPV)),
		"MCG_STATUS: MCIP, and RIPV or EIPV", "MCG_STATUS 0x%lx", m.mcg_status);
	t_check(m.bank >= 0 && (m.status & (MCI_STATUS_VAL | MCI_STATUS_UC | MCI_STATUS_ADDRV)) ==
				       (MCI_STATUS_VAL | MCI_STATUS_UC | MCI_STATUS_ADDRV),
		"MCi_STATUS: VAL, UC, ADDRV", "bank %d STATUS 0x%lx", m.bank, m.status);
	t_check(m.addr == p.start + fault_off, "MCi_ADDR is the address of the refused store",
		"MCi_ADDR 0x%lx, store at 0x%lx", m.addr, p.start + fault_off);
	t_check(*(volatile uint64_t *)at(fault_off) != pattern_word(seed, fault_off / 8),
		"the refused store is not visible", "the pattern word is there");
	for (uint64_t pg = 0; pg < fault_pg; pg++)
		if (pattern_check((const void *)at(pg * PAGE), pg * PAGE, PAGE, seed) != PAGE)
			bad++;
	t_check(!bad, "pages before the fault still hold the pattern", "%u pages differ", bad);
	flush("FLUSH of the data written before the fault returns 0");
	t_diag("pmem-enospc: pages [0, %lu) hold the pattern (seed 0x%lx) and were flushed", fault_pg,
	       seed);
}

/* ---- mce: the recovery machinery alone ------------------------------------------------ */

/* Spin storing to a RAM word until a machine check arrives (the VMM or a QEMU monitor `mce`
 * command injects it) or timeout_ms (default 30000) passes; report what the banks say. Needs
 * no pmem device: it checks the hook, the RIP redirection and the MSR reads, so that
 * pmem-enospc failures can be told apart from guest bugs. */
static void mce(void)
{
	static volatile uint64_t word;
	uint64_t mcg_cap, deadline = deadline_after_ns(arg_u64("timeout_ms", 30000) * 1000000ull);
	unsigned nbanks;
	struct mce_info m;
	int got = 0;

	if (!mce_enable(&mcg_cap, &nbanks))
		return;
	printf("# mce: MCG_CAP 0x%lx; spinning on stores to %p until a machine check\n", mcg_cap,
	       (void *)&word);
	while (!got && !deadline_passed(deadline))
		got = pmem_spin_store(&word, 0x1234, 1000000);
	trap_hooks[VEC_MC] = 0;
	if (!t_check(got, "a machine check arrived and was recovered from", "none within timeout_ms"))
		return;
	m = read_mce(nbanks);
	t_diag("mce: rip 0x%lx; MCG_STATUS 0x%lx, bank %d STATUS 0x%lx ADDR 0x%lx", mce_rip,
	       m.mcg_status, m.bank, m.status, m.addr);
	t_check(mce_count == 1 && (m.mcg_status & MCG_STATUS_MCIP) && m.bank >= 0,
		"MCG_STATUS.MCIP set and a bank holds the error", "count %u MCG_STATUS 0x%lx bank %d",
		mce_count, m.mcg_status, m.bank);
	t_check(!(rdmsr(MSR_MCG_STATUS) & MCG_STATUS_MCIP), "MCIP cleared", "still set");
}

const struct scenario scenario_mce = { .name = "mce", .run = mce };
const struct scenario scenario_pmem = { .name = "pmem", .run = pmem };
const struct scenario scenario_pmem_populate = { .name = "pmem-populate", .run = pmem_populate };
const struct scenario scenario_pmem_enospc = { .name = "pmem-enospc", .run = pmem_enospc };
