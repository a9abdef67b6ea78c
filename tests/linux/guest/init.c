/*
 * /init of the Linux-guest suite (make test-linux-guest; tests/linux/guest.sh boots it with
 * configs/linux-guest.conf and the kernel of scripts/mkkernel.sh). A static program (musl), the
 * only file of its initramfs besides /dev/console.
 *
 * cvmm gives the guest ONE host file twice: /dev/pmem0 (virtio-pmem, ext4 mounted -o dax: loads
 * and stores go to cvmm's page cache) and /dev/vda (virtio-blk, O_DIRECT on the same file). The
 * guest kernel does not know the two alias, so every check below that crosses views is a check of
 * cvmm's coherency protocol (shared/DESIGN.md "The protocol"), made by a real kernel: DAX faults,
 * ext4's block zeroing and journal, the pmem driver's FLUSH, the block layer's O_DIRECT.
 *
 * Prints "ok N - name" / "not ok N - name" and "N passed, N failed", then powers off (ACPI S5).
 * Kernel command line: cvmm.seed=S (fsx seed, default 1), cvmm.ops=N (fsx ops, default 2000),
 * cvmm.smp_ops=N (ops per CPU in the 2-vCPU run, default 1000).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

/* The image scripts and configs/linux-guest.conf agree on (tests/linux/guest.sh makes it). */
#define DISK_SIZE (64u << 20)
#define FS_SIZE (48u << 20)              /* ext4 ends here; the rest is raw */
#define RAW_OFF (56u << 20)              /* the block-write-past-the-fs checks use this */
#define MNT "/mnt"

/* ---- reporting ------------------------------------------------------------------------ */
static int n_tests, n_pass, n_fail;

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
	buf[n++] = '\n';
	ssize_t w = write(1, buf, n);
	(void)w;
}

static int check(int cond, const char *name)
{
	n_tests++;
	if (cond) { n_pass++; say("ok %d - %s", n_tests, name); }
	else { n_fail++; say("not ok %d - %s", n_tests, name); }
	return cond;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void uptime(char *up, size_t len)
{
	snprintf(up, len, "?");
	int u = open("/proc/uptime", O_RDONLY);
	if (u >= 0) { ssize_t n = read(u, up, len - 1); if (n > 0) up[n] = 0; close(u); }
	up[strcspn(up, " \n")] = 0;
}

static void poweroff(void)
{
	char up[64];
	uptime(up, sizeof up);
	say("cvmm-init: checks done after %s s of kernel time", up);
	say("%d passed, %d failed", n_pass, n_fail);
	sync();
	reboot(RB_POWER_OFF);
	say("cvmm-init: power off failed (%s), resetting", strerror(errno));
	reboot(RB_AUTOBOOT);
	for (;;) pause();
}

/* ---- helpers ---------------------------------------------------------------------------- */
static uint64_t rnd_state;
static uint64_t rnd(void)                 /* xorshift64* */
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545F4914F6CDD1DULL;
}

/* pattern(): the bytes tests/linux/guest.sh regenerates on the host (same formula). */
static void pattern(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131 + (i >> 12) * 7 + seed * 29 + 1) ^ (seed >> 3));
}

static void *aligned(size_t len)
{
	void *p = NULL;
	if (posix_memalign(&p, 4096, len)) return NULL;
	memset(p, 0, len);
	return p;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0) return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int full_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n <= 0) return -1;
		p += n; len -= n; off += n;
	}
	return 0;
}

static int full_pread(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, off);
		if (n <= 0) return -1;
		p += n; len -= n; off += n;
	}
	return 0;
}

/* Where a file's bytes are on the disk: FS_IOC_FIEMAP (musl has no linux/fiemap.h). */
struct fiemap_extent {
	uint64_t fe_logical, fe_physical, fe_length, fe_reserved64[2];
	uint32_t fe_flags, fe_reserved[3];
};
struct fiemap {
	uint64_t fm_start, fm_length;
	uint32_t fm_flags, fm_mapped_extents, fm_extent_count, fm_reserved;
	struct fiemap_extent fm_extents[];
};
#define FS_IOC_FIEMAP 0xC020660BUL
#define FIEMAP_FLAG_SYNC 1u
#define FIEMAP_EXTENT_UNKNOWN 0x2u
#define FIEMAP_EXTENT_DELALLOC 0x4u
#define FIEMAP_EXTENT_UNWRITTEN 0x800u
#define MAX_EXT 32
struct extmap { int n; uint64_t log[MAX_EXT], phys[MAX_EXT], len[MAX_EXT]; };

static int get_extents(int fd, struct extmap *m)
{
	char buf[sizeof(struct fiemap) + MAX_EXT * sizeof(struct fiemap_extent)];
	struct fiemap *fm = (struct fiemap *)buf;
	memset(buf, 0, sizeof buf);
	fm->fm_length = ~0ULL;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = MAX_EXT;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) return -1;
	m->n = 0;
	for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
		struct fiemap_extent *e = &fm->fm_extents[i];
		if (e->fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNWRITTEN))
			return -2;  /* not plain, written blocks: a disk read would not match */
		m->log[m->n] = e->fe_logical;
		m->phys[m->n] = e->fe_physical;
		m->len[m->n] = e->fe_length;
		m->n++;
	}
	return 0;
}

/* The disk offset of file offset off, and how many bytes stay contiguous from there. */
static int64_t disk_off(const struct extmap *m, uint64_t off, uint64_t *contig)
{
	for (int i = 0; i < m->n; i++)
		if (off >= m->log[i] && off < m->log[i] + m->len[i]) {
			*contig = m->log[i] + m->len[i] - off;
			return (int64_t)(m->phys[i] + off - m->log[i]);
		}
	return -1;
}

/* Read a file's range through /dev/vda (O_DIRECT) following its extents. */
static int read_via_disk(int vda, const struct extmap *m, uint64_t off, uint8_t *out, size_t len)
{
	uint8_t *b = aligned(1 << 20);
	if (!b) return -1;
	int rc = 0;
	while (len && !rc) {
		uint64_t contig;
		int64_t d = disk_off(m, off & ~4095ULL, &contig);
		if (d < 0) { rc = -1; break; }
		size_t head = off & 4095, chunk = contig - 0 > (1 << 20) ? (1 << 20) : contig;
		if (chunk > head + len) chunk = (head + len + 4095) & ~4095UL;
		if (full_pread(vda, b, chunk, d) < 0) { rc = -1; break; }
		size_t use = chunk - head < len ? chunk - head : len;
		memcpy(out, b + head, use);
		out += use; off += use; len -= use;
	}
	free(b);
	return rc;
}

static void drop_caches(void)
{
	sync();
	write_str("/proc/sys/vm/drop_caches", "3");
}

static int first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i]) return (int)i;
	return -1;
}

/* ---- the checks ------------------------------------------------------------------------- */

/* DESIGN "direct read": a DAX store is seen by a later blk read of the range (coherency a1;
 * seeds: the mmap-vs-O_DIRECT threads, a direct read writes back the range first). Also
 * fsync + drop_caches: the data is on pmem itself, not in a guest cache. */
static void t_dax_file(int vda)
{
	enum { LEN = 64 << 10 };
	uint8_t *want = aligned(LEN), *got = aligned(LEN);
	pattern(want, LEN, 1);
	int fd = open(MNT "/a.dat", O_CREAT | O_TRUNC | O_RDWR, 0644);
	int okw = fd >= 0 && full_pwrite(fd, want, LEN, 0) == 0 && fsync(fd) == 0;
	check(okw, "dax: write + fsync a 64 KiB file on the -o dax mount");
	if (fd >= 0) close(fd);
	drop_caches();
	fd = open(MNT "/a.dat", O_RDWR);
	check(fd >= 0 && full_pread(fd, got, LEN, 0) == 0 && !memcmp(got, want, LEN),
	      "dax: read back after drop_caches");
	struct extmap m;
	int e = fd >= 0 ? get_extents(fd, &m) : -1;
	if (e) say("# fiemap: %d (%s)", e, strerror(errno));
	memset(got, 0, LEN);
	int r = e ? -1 : read_via_disk(vda, &m, 0, got, LEN);
	int d = first_diff(got, want, LEN);
	if (!e && d >= 0) say("# disk view differs at file offset %d (disk 0x%llx)", d,
			      (unsigned long long)m.phys[0]);
	check(!e && r == 0 && d < 0, "dax: the file's bytes are visible through /dev/vda (O_DIRECT)");
	if (fd >= 0) close(fd);
	free(want); free(got);
}

/* DESIGN "direct write" + "fault": a blk write is seen by a later pmem load (coherency a2),
 * here past the end of the file system, through the pmem driver (/dev/pmem0) and the disk. */
static void t_blk_raw(int vda)
{
	enum { LEN = 8192 };
	uint8_t *want = aligned(LEN), *got = aligned(LEN);
	pattern(want, LEN, 2);
	/* First make the pmem view fault the range in, so the write must invalidate it. */
	int pm = open("/dev/pmem0", O_RDWR | O_DIRECT);
	int okp = pm >= 0 && full_pread(pm, got, LEN, RAW_OFF) == 0;
	int okw = full_pwrite(vda, want, LEN, RAW_OFF) == 0 && fsync(vda) == 0;
	check(okp && okw, "raw: O_DIRECT write of 8 KiB to /dev/vda at 56 MiB (past the fs)");
	memset(got, 0, LEN);
	int okr = pm >= 0 && full_pread(pm, got, LEN, RAW_OFF) == 0;
	int d = first_diff(got, want, LEN);
	if (okr && d >= 0) say("# /dev/pmem0 differs at +%d: %02x, want %02x", d, got[d], want[d]);
	check(okr && d < 0, "raw: the disk write is visible through /dev/pmem0");
	/* And the other way: the pmem driver writes (kernel-mode stores), the disk reads. */
	pattern(want, LEN, 3);
	okw = pm >= 0 && full_pwrite(pm, want, LEN, RAW_OFF + LEN) == 0;
	memset(got, 0, LEN);
	okr = full_pread(vda, got, LEN, RAW_OFF + LEN) == 0;
	check(okw && okr && !memcmp(got, want, LEN), "raw: a /dev/pmem0 write is visible through /dev/vda");
	if (pm >= 0) { fsync(pm); close(pm); }
	free(want); free(got);
}

/* DESIGN "writeback" (FLUSH): mmap stores on a DAX file, msync + fsync; tests/linux/guest.sh
 * then finds these bytes in the host file after cvmm exits (debugfs) and reads cvmm's FLUSH
 * count. Also MAP_SYNC: virtio-pmem is not synchronous, the kernel must refuse it. */
static void t_mmap(int vda)
{
	enum { LEN = 1 << 20 };
	uint8_t *want = aligned(LEN), *got = aligned(LEN);
	pattern(want, LEN, 4);
	int fd = open(MNT "/mmap.dat", O_CREAT | O_TRUNC | O_RDWR, 0644);
	int ok = fd >= 0 && ftruncate(fd, LEN) == 0;
	uint8_t *p = ok ? mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
	ok = p != MAP_FAILED;
	double t = now();
	if (ok) {
		memcpy(p, want, LEN);   /* 256 DAX page faults: ext4 allocates and zeroes each block */
		ok = msync(p, LEN, MS_SYNC) == 0 && fsync(fd) == 0;
	}
	check(ok, "mmap: 1 MiB of stores into a sparse DAX file, msync + fsync");
	say("# mmap: stores + msync + fsync in %.2f s", now() - t);
	struct extmap m;
	int e = fd >= 0 ? get_extents(fd, &m) : -1;
	int r = e ? -1 : read_via_disk(vda, &m, 0, got, LEN);
	check(ok && !e && r == 0 && !memcmp(got, want, LEN),
	      "mmap: the stores are visible through /dev/vda without another flush");
	if (!e) say("# mmap.dat: %d extent(s), first at disk 0x%llx", m.n, (unsigned long long)m.phys[0]);
	if (p != MAP_FAILED) munmap(p, LEN);

	/* MAP_SYNC must be refused (EOPNOTSUPP); the same mapping without it must work. */
	void *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	int err = errno;
	check(s == MAP_FAILED && err == EOPNOTSUPP, "mmap: MAP_SYNC on virtio-pmem is refused with EOPNOTSUPP");
	if (s != MAP_FAILED) munmap(s, 4096);
	else if (err != EOPNOTSUPP) say("# MAP_SYNC: %s", strerror(err));
	s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE, fd, 0);
	check(s != MAP_FAILED, "mmap: MAP_SHARED_VALIDATE without MAP_SYNC is accepted");
	if (s != MAP_FAILED) munmap(s, 4096);
	if (fd >= 0) close(fd);
	free(want); free(got);
}

/* ---- fsx: random ops over one file's blocks, through both views, against a model ----------
 * Seeds (../shared/seeds/): 000 (Arcangeli, zap_pte_range / direct I/O invalidation: a direct
 * write must not be undone by a stale mapped page or a later writeback of it) and 004 (Linus on
 * local consistency: mmap, read() and write() of one file agree); DESIGN invariants "A page's data
 * reaches the file only by writeback of a page that was DIRTY, or by a direct write" and the direct
 * read / direct write / writeback operations. Seed 001 (Williams/Kara, DMA vs block-map changes)
 * and DESIGN pin/unpin: the blk-*-map ops give the disk a buffer that IS the DAX mapping (cvmm
 * pins window pages for the DMA); seed 003 (Morton/Piggin, write() from an mmap of the same file)
 * and DESIGN "no self-deadlock": pwrite-map and the identity cases of blk-*-map (a disk write whose
 * source is the mapping of the very blocks it writes, a read into them) must terminate with the
 * right bytes. The guest kernel caches nothing here (DAX and O_DIRECT): a mismatch is cvmm's. */
enum { F_MSTORE, F_MLOAD, F_PWRITE, F_PREAD, F_BWRITE, F_BREAD, F_FSYNC, F_MSYNC,
       F_BWRITE_MAP, F_BREAD_MAP, F_PWRITE_MAP, F_NOPS };
static const char *fop_name[] = { "mmap-store", "mmap-load", "pwrite", "pread",
				  "blk-write", "blk-read", "fsync", "msync",
				  "blk-write-map", "blk-read-map", "pwrite-map" };

static int fsx(const char *path, int vda, uint32_t seed, int ops, char *why, size_t whylen)
{
	enum { SZ = 256 << 10, MAXLEN = 16 << 10 };
	uint8_t *model = aligned(SZ), *buf = aligned(MAXLEN + 4096);
	int fd = -1, rc = 1;
	uint8_t *p = MAP_FAILED;
	struct extmap m;
	int counts[F_NOPS] = { 0 };
	rnd_state = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed << 17) ^ seed;
	if (!model || !buf) { snprintf(why, whylen, "out of memory"); goto out; }
	for (size_t i = 0; i < SZ; i++) model[i] = (uint8_t)rnd();
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0 || full_pwrite(fd, model, SZ, 0) || fsync(fd)) {
		snprintf(why, whylen, "setup write: %s", strerror(errno)); goto out;
	}
	int e = get_extents(fd, &m);
	if (e) { snprintf(why, whylen, "fiemap: %d %s", e, strerror(errno)); goto out; }
	p = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) { snprintf(why, whylen, "mmap: %s", strerror(errno)); goto out; }

	for (int op = 0; op < ops; op++) {
		int kind = (int)(rnd() % F_NOPS);
		uint64_t off = rnd() % SZ, len = 1 + rnd() % MAXLEN, contig, src = rnd() % SZ;
		int blk = kind == F_BWRITE || kind == F_BREAD || kind == F_BWRITE_MAP || kind == F_BREAD_MAP;
		if (blk) {  /* the disk takes 512-byte sectors, and O_DIRECT 512-aligned buffers */
			off &= ~511ULL;
			len = (len + 511) & ~511ULL;
			src &= ~511ULL;
		}
		if (off + len > SZ) len = SZ - off;
		int64_t d = 0;
		if (blk) {
			d = disk_off(&m, off, &contig);
			if (d < 0) { snprintf(why, whylen, "op %d: no extent at %llu", op, (unsigned long long)off); goto out; }
			if (len > contig) len = contig;
		}
		/* The mapping-side range of the *-map ops: the same blocks one time in four (the
		 * self-referencing case), else a range that does not overlap them. */
		if (src + len > SZ) src = SZ - len;
		if (src < off + len && off < src + len) src = off;
		if (rnd() % 4 == 0) src = off;
		counts[kind]++;
		const char *bad = NULL;
		errno = 0;
		switch (kind) {
		case F_MSTORE:
			for (uint64_t i = 0; i < len; i++) model[off + i] = (uint8_t)rnd();
			memcpy(p + off, model + off, len);
			break;
		case F_MLOAD:
			memcpy(buf, p + off, len);
			if (memcmp(buf, model + off, len)) bad = "mmap load differs from the model";
			break;
		case F_PWRITE:
			for (uint64_t i = 0; i < len; i++) model[off + i] = (uint8_t)rnd();
			if (full_pwrite(fd, model + off, len, off)) bad = "pwrite failed";
			break;
		case F_PREAD:
			if (full_pread(fd, buf, len, off)) bad = "pread failed";
			else if (memcmp(buf, model + off, len)) bad = "pread differs from the model";
			break;
		case F_BWRITE:
			for (uint64_t i = 0; i < len; i++) model[off + i] = (uint8_t)rnd();
			memcpy(buf, model + off, len);
			if (full_pwrite(vda, buf, len, d)) bad = "O_DIRECT write to /dev/vda failed";
			break;
		case F_BREAD:
			if (full_pread(vda, buf, len, d)) bad = "O_DIRECT read of /dev/vda failed";
			else if (memcmp(buf, model + off, len)) bad = "/dev/vda read differs from the model";
			break;
		case F_FSYNC:
			if (fsync(fd)) bad = "fsync failed";
			break;
		case F_MSYNC:
			if (msync(p, SZ, MS_SYNC)) bad = "msync failed";
			break;
		case F_BWRITE_MAP:   /* disk <- the mapping at src (device DMA out of the window) */
			memmove(model + off, model + src, len);
			if (full_pwrite(vda, p + src, len, d)) bad = "O_DIRECT write to /dev/vda from the DAX mapping failed";
			break;
		case F_BREAD_MAP:    /* the mapping at src <- disk (device DMA into the window) */
			memmove(model + src, model + off, len);
			if (full_pread(vda, p + src, len, d)) bad = "O_DIRECT read of /dev/vda into the DAX mapping failed";
			break;
		case F_PWRITE_MAP:   /* write() whose source is the mapping of the same file */
			memmove(model + off, model + src, len);
			if (full_pwrite(fd, p + src, len, off)) bad = "pwrite from the DAX mapping failed";
			break;
		}
		/* After every op the whole file, through the mapping, equals the model. */
		int err = errno;
		if (!bad && memcmp(p, model, SZ)) bad = "the mapping differs from the model";
		if (bad) {
			int at = first_diff(p, model, SZ);
			char where[48] = "";
			if (at >= 0) snprintf(where, sizeof where, "; mapping differs at %d", at);
			snprintf(why, whylen, "seed %u op %d (%s off %llu len %llu): %s%s%s%s",
				 seed, op, fop_name[kind], (unsigned long long)off, (unsigned long long)len,
				 bad, strstr(bad, "failed") ? ": " : "", strstr(bad, "failed") ? strerror(err) : "", where);
			goto out;
		}
	}
	/* At the end the file through read() and through the disk equals the model too. */
	uint8_t *all = aligned(SZ);
	if (!all || full_pread(fd, all, SZ, 0) || memcmp(all, model, SZ)) {
		snprintf(why, whylen, "final pread differs"); free(all); goto out;
	}
	memset(all, 0, SZ);
	if (read_via_disk(vda, &m, 0, all, SZ) || memcmp(all, model, SZ)) {
		snprintf(why, whylen, "final /dev/vda read differs"); free(all); goto out;
	}
	free(all);
	snprintf(why, whylen, "%d ops: %d mstore %d mload %d pwrite %d pread %d bwrite %d bread %d fsync "
		 "%d msync %d bwrite-map %d bread-map %d pwrite-map", ops, counts[0], counts[1], counts[2],
		 counts[3], counts[4], counts[5], counts[6], counts[7], counts[8], counts[9], counts[10]);
	rc = 0;
out:
	if (p != MAP_FAILED) munmap(p, SZ);
	if (fd >= 0) close(fd);
	free(model); free(buf);
	return rc;
}

static unsigned long cmdline_num(const char *key, unsigned long dflt);

/* ---- the kernel patch (tests/linux/kernel/syscall-from-pf.patch) -------------------------------
 * On the project's hosts every `syscall` arrives in the kernel as a user-mode instruction fetch
 * fault at entry_SYSCALL_64, which the patch turns into the system call. Make that fault on
 * purpose, on any host: put in RCX/R11 what SYSCALL would (return address, RFLAGS) and jump to
 * entry_SYSCALL_64 from user mode (its address: cvmm.entry_syscall=, from the vmlinux's symbols,
 * no KASLR). Without the patch the jump is a SIGSEGV, so it runs in a child. */
static long fake_syscall(unsigned long entry, long nr, long a1, long a2, long a3)
{
	long ret;
	asm volatile("lea 1f(%%rip), %%rcx\n\t"
		     "sub $128, %%rsp\n\t"      /* pushfq must not clobber the red zone */
		     "pushfq\n\t"
		     "pop %%r11\n\t"
		     "add $128, %%rsp\n\t"
		     "xor %%r10d, %%r10d\n\t"   /* a 4th argument of 0 (wait4's rusage) */
		     "jmp *%[entry]\n"
		     "1:"
		     : "=a"(ret)
		     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), [entry] "r"(entry)
		     : "rcx", "r11", "r10", "r8", "r9", "memory", "cc");
	return ret;
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static void t_syscall_patch(void)
{
	unsigned long entry = cmdline_num("cvmm.entry_syscall", 0);
	int pfd[2];
	if (!entry || pipe(pfd)) {
		check(0, "kernel patch: cvmm.entry_syscall= on the command line");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int bad = 0;
		long r = fake_syscall(entry, SYS_getpid, 0, 0, 0);
		if (r != getpid()) bad |= 1;
		r = fake_syscall(entry, SYS_write, pfd[1], (long)"cvmm", 4);
		if (r != 4) bad |= 2;
		r = fake_syscall(entry, SYS_close, -1, 0, 0);
		if (r != -EBADF) bad |= 4;
		/* A signal delivered on the way back to user mode (its frame built from the fixed-up
		 * registers; the handler returns through rt_sigreturn). */
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_usr1;
		sigaction(SIGUSR1, &sa, NULL);
		r = fake_syscall(entry, SYS_kill, getpid(), SIGUSR1, 0);
		if (r != 0 || !got_usr1) bad |= 8;
		/* fork, execve and wait4 the same way: the grandchild re-executes /init, which exits 7. */
		r = fake_syscall(entry, SYS_fork, 0, 0, 0);
		if (r == 0) {
			static char *argv[] = { "/init", "--exit-7", NULL }, *envp[] = { NULL };
			fake_syscall(entry, SYS_execve, (long)"/init", (long)argv, (long)envp);
			_exit(1);
		}
		int st = 0;
		long w = r > 0 ? fake_syscall(entry, SYS_wait4, r, (long)&st, 0) : -1;
		if (r <= 0 || w != r || !WIFEXITED(st) || WEXITSTATUS(st) != 7) bad |= 16;
		_exit(bad);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	char buf[8] = "";
	close(pfd[1]);
	ssize_t n = read(pfd[0], buf, sizeof buf - 1);
	close(pfd[0]);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		say("# fake syscall child: %s %d (exit bits: 1 getpid, 2 write, 4 close, 8 signal, 16 fork/execve/wait4)",
		    WIFSIGNALED(st) ? "killed by signal" : "exit status",
		    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0 && n == 4 && !memcmp(buf, "cvmm", 4),
	      "kernel patch: a user-mode fetch at entry_SYSCALL_64 completes the system call "
	      "(getpid, write, close -> -EBADF, kill + handler, fork + execve + wait4)");
}

static unsigned long cmdline_num(const char *key, unsigned long dflt)
{
	static char cl[4096];
	if (!cl[0]) {
		int fd = open("/proc/cmdline", O_RDONLY);
		if (fd >= 0) { ssize_t n = read(fd, cl, sizeof cl - 1); if (n > 0) cl[n] = 0; close(fd); }
	}
	size_t kl = strlen(key);
	for (char *s = cl; (s = strstr(s, key)); s += kl)
		if ((s == cl || s[-1] == ' ') && s[kl] == '=')
			return strtoul(s + kl + 1, NULL, 0);
	return dflt;
}

static void t_fsx(int vda)
{
	char why[256];
	uint32_t seed = cmdline_num("cvmm.seed", 1);
	int ops = cmdline_num("cvmm.ops", 2000);
	double t = now();
	int r = fsx(MNT "/fsx.dat", vda, seed, ops, why, sizeof why);
	say("# fsx: %s (%.1f s)", why, now() - t);
	char name[96];
	snprintf(name, sizeof name, "fsx: %d random ops (seed %u), model checked after each", ops, seed);
	check(r == 0, name);
}

/* Two vCPUs at once: a child pinned to each CPU runs fsx on its own file. The page cache is
 * shared between the vCPUs' exits (DESIGN "Page cache state"): faults, writebacks and direct
 * I/O from two CPUs interleave. */
static void t_smp(int vda)
{
	char online[32] = "";
	int fd = open("/sys/devices/system/cpu/online", O_RDONLY);
	if (fd >= 0) { ssize_t n = read(fd, online, sizeof online - 1); if (n > 0) online[n] = 0; close(fd); }
	online[strcspn(online, "\n")] = 0;
	say("# cpus online: %s", online);
	if (!check(!strcmp(online, "0-1"), "smp: the second vCPU came up (cpus online 0-1)"))
		return;
	int ops = cmdline_num("cvmm.smp_ops", 1000);
	uint32_t seed = cmdline_num("cvmm.seed", 1);
	int pfd[2];
	if (pipe(pfd)) { check(0, "smp: pipe"); return; }
	pid_t pid[2];
	for (int c = 0; c < 2; c++) {
		pid[c] = fork();
		if (pid[c] == 0) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(c, &set);
			char why[256], path[64], line[400];
			int r = sched_setaffinity(0, sizeof set, &set);
			int cpu0 = sched_getcpu();
			double t0 = now();
			snprintf(path, sizeof path, MNT "/fsx-cpu%d.dat", c);
			if (!r) r = fsx(path, vda, seed * 100 + c + 1, ops, why, sizeof why);
			else snprintf(why, sizeof why, "sched_setaffinity: %s", strerror(errno));
			double t1 = now();
			int cpu1 = sched_getcpu();
			snprintf(line, sizeof line, "%d %d %d %d %.6f %.6f %s\n", c, r, cpu0, cpu1, t0, t1, why);
			ssize_t w = write(pfd[1], line, strlen(line));
			_exit(w > 0 && r == 0 ? 0 : 1);
		}
	}
	close(pfd[1]);
	char out[1024] = "";
	size_t got = 0;
	ssize_t n;
	while (got < sizeof out - 1 && (n = read(pfd[0], out + got, sizeof out - 1 - got)) > 0) got += n;
	out[got] = 0;
	close(pfd[0]);
	int st[2] = { -1, -1 };
	for (int c = 0; c < 2; c++) waitpid(pid[c], &st[c], 0);
	double t0[2] = { 0 }, t1[2] = { 0 };
	int okc[2] = { 0 };
	for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
		int c, r, a, b, k;
		double s, e;
		if (sscanf(l, "%d %d %d %d %lf %lf %n", &c, &r, &a, &b, &s, &e, &k) >= 6 && c >= 0 && c < 2) {
			say("# smp: cpu%d: fsx %s on cpu %d..%d, %.1f s: %s", c, r ? "FAILED" : "ok", a, b, e - s, l + k);
			okc[c] = r == 0 && a == c && b == c;
			t0[c] = s; t1[c] = e;
		}
	}
	char name[96];
	snprintf(name, sizeof name, "smp: fsx on cpu0 and cpu1, %d ops each, both pass", ops);
	check(okc[0] && okc[1] && WIFEXITED(st[0]) && !WEXITSTATUS(st[0]) &&
	      WIFEXITED(st[1]) && !WEXITSTATUS(st[1]), name);
	double overlap = (t1[0] < t1[1] ? t1[0] : t1[1]) - (t0[0] > t0[1] ? t0[0] : t0[1]);
	say("# smp: the two runs overlapped for %.1f s", overlap);
	check(okc[0] && okc[1] && overlap > 0, "smp: the two fsx runs overlapped in time");
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--exit-7"))  /* t_syscall_patch's execve */
		return 7;
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	int con = open("/dev/console", O_RDWR);
	if (con >= 0) { dup2(con, 0); dup2(con, 1); dup2(con, 2); if (con > 2) close(con); }
	mkdir("/proc", 0755); mkdir("/sys", 0755); mkdir(MNT, 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	char up[64];
	uptime(up, sizeof up);
	say("cvmm-init: userspace reached after %s s of kernel time", up);

	t_syscall_patch();
	struct stat sb;
	int i;
	/* Up to 60 s: every ring-0 instruction is emulated on the project's hosts. */
	for (i = 0; i < 600 && (stat("/dev/vda", &sb) || stat("/dev/pmem0", &sb)); i++) usleep(100000);
	if (!check(!stat("/dev/vda", &sb) && !stat("/dev/pmem0", &sb), "boot: /dev/vda and /dev/pmem0 appeared"))
		poweroff();
	int vda = open("/dev/vda", O_RDWR | O_DIRECT);
	check(vda >= 0, "boot: /dev/vda opens with O_DIRECT");
	int mnt = mount("/dev/pmem0", MNT, "ext4", 0, "dax") == 0;
	if (!mnt) say("# mount: %s", strerror(errno));
	char mounts[4096] = "";
	int mf = open("/proc/mounts", O_RDONLY);
	if (mf >= 0) { ssize_t n = read(mf, mounts, sizeof mounts - 1); if (n > 0) mounts[n] = 0; close(mf); }
	char *l = strstr(mounts, "/dev/pmem0 " MNT " ext4 ");
	int dax = l && strstr(l, "dax") && strstr(l, "dax") < strchr(l, '\n');
	check(mnt && dax, "boot: mount -t ext4 -o dax /dev/pmem0 (and /proc/mounts says dax)");
	if (!mnt || vda < 0) poweroff();

	struct { const char *name; void (*fn)(int); } tests[] = {
		{ "dax", t_dax_file }, { "raw", t_blk_raw }, { "mmap", t_mmap },
		{ "fsx", t_fsx }, { "smp", t_smp },
	};
	for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++) {
		double t = now();
		tests[k].fn(vda);
		say("# %s: %.1f s", tests[k].name, now() - t);
	}
	int um = umount(MNT);
	check(um == 0, "umount /mnt (ext4 commits its journal through the pmem view)");
	close(vda);
	poweroff();
	return 0;
}
