/* The cache of one backing file: open (a registry by dev+inode), references, the exit-time
 * writeback at the last put, accessors, statistics, fault injection and the race-delay knob.
 * The protocol operations live beside it, one kind per file, named after their Linux mm/
 * counterparts (mm/README.md "Files"). */
#include "mm/pcache_internal.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The registry is process-wide on purpose, like the kernel's one page cache per inode: two
 * devices (or two VMs in one process, as the unit tests build them) opening the same file must
 * share one cache, or their views of the file could disagree. Under reg_lock. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pcache *registry;

__attribute__((format(printf, 3, 4)))
int pcache_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

void pcache_set_race_delay(struct pcache *pc, unsigned us)
{
	__atomic_store_n(&pc->race_delay_us, us, __ATOMIC_RELAXED);
}

void pcache_bug(struct pcache *pc, const char *what, const char *file, int line)
{
	pthread_mutex_lock(&pc->err_lock);
	bool first = !pc->broken;
	if (first)
		snprintf(pc->broken_why, sizeof(pc->broken_why), "invariant broken: %s (%s:%d)", what,
			 file, line);
	__atomic_store_n(&pc->broken, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&pc->err_lock);
	if (first)
		fprintf(stderr, "cvmm: pmem '%s': %s\n", pc->path, pc->broken_why);
}

const char *pcache_broken(const struct pcache *pc)
{
	return __atomic_load_n(&pc->broken, __ATOMIC_ACQUIRE) ? pc->broken_why : NULL;
}

/* ---- injection --------------------------------------------------------------------------- */

void pcache_set_inject(struct pcache *pc, const struct pcache_inject *inj)
{
	pthread_mutex_lock(&pc->inj_lock);
	pc->inj = *inj;
	pthread_mutex_unlock(&pc->inj_lock);
}

int pcache_injected(struct pcache *pc, int *err, int *count)
{
	int r = 0;
	if (!__atomic_load_n(err, __ATOMIC_RELAXED))
		return 0;
	pthread_mutex_lock(&pc->inj_lock);
	if (*err && *count) {
		r = *err;
		if (*count > 0 && --*count == 0)
			*err = 0;
	}
	pthread_mutex_unlock(&pc->inj_lock);
	return r;
}

/* ---- open / close ------------------------------------------------------------------------ */

uint64_t pcache_size(const struct pcache *pc) { return pc->size; }
uint64_t pcache_file_ino(const struct pcache *pc) { return (uint64_t)pc->ino; }
bool pcache_is_readonly(const struct pcache *pc) { return pc->readonly; }

void pcache_get(struct pcache *pc)
{
	pthread_mutex_lock(&reg_lock);
	pc->refs++;
	pthread_mutex_unlock(&reg_lock);
}

bool pcache_same_file(const struct pcache *pc, const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && st.st_dev == pc->dev && st.st_ino == pc->ino;
}

uint8_t *pcache_mem(const struct pcache *pc) { return pc->mem; }
bool pcache_is_direct(const struct pcache *pc) { return pc->direct; }

uint32_t pcache_page_flags(struct pcache *pc, uint64_t off)
{
	return page_flags(&pc->flags[off / PAGE_SIZE]);
}

uint32_t pcache_page_pins(struct pcache *pc, uint64_t off)
{
	return __atomic_load_n(&pc->pins[off / PAGE_SIZE], __ATOMIC_ACQUIRE);
}

static void *zalloc_big(size_t bytes)
{
	/* calloc of a large block is a fresh anonymous mapping: the page words of an untouched
	 * part of the window cost no memory. */
	return calloc(1, bytes ? bytes : 1);
}

static uint32_t dio_alignment(int fd, bool direct)
{
	if (!direct)
		return 1;
#ifdef STATX_DIOALIGN
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
		uint32_t a = sx.stx_dio_offset_align > sx.stx_dio_mem_align ? sx.stx_dio_offset_align
									   : sx.stx_dio_mem_align;
		if (a && !(a & (a - 1)) && a <= PAGE_SIZE)
			return a;
	}
#endif
	return PAGE_SIZE; /* safe for every block device */
}

static void pcache_free(struct pcache *pc)
{
	if (pc->mem)
		munmap(pc->mem, pc->size);
	if (pc->memfd >= 0)
		close(pc->memfd);
	if (pc->fd >= 0)
		close(pc->fd);
	free(pc->flags);
	free(pc->pins);
	free(pc->dh1);
	free(pc->dh0);
	pthread_rwlock_destroy(&pc->maps_lock);
	pthread_rwlock_destroy(&pc->wb_lock);
	pthread_rwlock_destroy(&pc->obs_lock);
	pthread_mutex_destroy(&pc->err_lock);
	pthread_mutex_destroy(&pc->break_lock);
	pthread_mutex_destroy(&pc->rmw_lock);
	pthread_mutex_destroy(&pc->size_lock);
	pthread_mutex_destroy(&pc->inj_lock);
	free(pc);
}

int pcache_open(const char *path, uint64_t size, bool readonly, struct pcache **out, char *err,
		size_t errlen)
{
	*out = NULL;
	if (!path || !path[0])
		return pcache_fail(err, errlen, "pmem path: empty");
	if (size % (2 * MIB))
		return pcache_fail(err, errlen, "pmem size: %llu bytes is not a multiple of 2 MiB",
			    (unsigned long long)size);
	/* An existing image is opened as it is (a symbolic link to it is the user's choice); a
	 * missing one is created 0600 with O_EXCL|O_NOFOLLOW, so a link planted where a new file
	 * is expected is refused rather than followed (cvmm often runs as root; issue 14). */
	int oflags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	bool direct = true;
	int fd = open(path, oflags | O_DIRECT);
	if (fd < 0 && errno == ENOENT && !readonly) {
		fd = open(path, oflags | O_CREAT | O_EXCL | O_NOFOLLOW | O_DIRECT, 0600);
		if (fd < 0 && errno == EEXIST) /* created meanwhile, or a dangling link: as it is */
			fd = open(path, oflags | O_DIRECT);
	}
	if (fd < 0 && errno == EINVAL) {
		direct = false;
		fd = open(path, oflags);
		if (fd < 0 && errno == ENOENT && !readonly)
			fd = open(path, oflags | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	}
	if (fd < 0)
		return pcache_fail(err, errlen, "pmem path '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return pcache_fail(err, errlen, "pmem path '%s': not a regular file", path);
	}

	pthread_mutex_lock(&reg_lock);
	for (struct pcache *c = registry; c; c = c->next) {
		if (c->dev != st.st_dev || c->ino != st.st_ino)
			continue;
		int r = 0;
		if (size > c->size)
			r = pcache_fail(err, errlen, "pmem path '%s': already open with size %llu, smaller "
				 "than %llu", path, (unsigned long long)c->size,
				 (unsigned long long)size);
		else if (c->readonly && !readonly)
			r = pcache_fail(err, errlen, "pmem path '%s': already open read-only", path);
		else
			c->refs++;
		pthread_mutex_unlock(&reg_lock);
		close(fd);
		if (r == 0)
			*out = c;
		return r;
	}

	struct pcache *pc = calloc(1, sizeof(*pc));
	if (!pc) {
		pthread_mutex_unlock(&reg_lock);
		close(fd);
		return pcache_fail(err, errlen, "pmem: out of memory");
	}
	pc->fd = fd;
	pc->memfd = -1;
	pc->refs = 1;
	pc->dev = st.st_dev;
	pc->ino = st.st_ino;
	pc->direct = direct;
	pc->readonly = readonly;
	snprintf(pc->path, sizeof(pc->path), "%s", path);
	pthread_rwlock_init(&pc->maps_lock, NULL);
	pthread_rwlockattr_t wa;
	pthread_rwlockattr_init(&wa);
	pthread_rwlockattr_setkind_np(&wa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&pc->wb_lock, &wa);
	pthread_rwlock_init(&pc->obs_lock, &wa);
	pthread_rwlockattr_destroy(&wa);
	pthread_mutex_init(&pc->err_lock, NULL);
	pthread_mutex_init(&pc->break_lock, NULL);
	pthread_mutex_init(&pc->rmw_lock, NULL);
	pthread_mutex_init(&pc->size_lock, NULL);
	pthread_mutex_init(&pc->inj_lock, NULL);
	int r = -1;

	if (size == 0) {
		size = (uint64_t)st.st_size;
		if (size == 0 || size % (2 * MIB)) {
			pcache_fail(err, errlen, "pmem path '%s': file size %llu is not a nonzero multiple of "
			     "2 MiB (set [pmem] size to use a part of it, or resize the file)", path,
			     (unsigned long long)size);
			goto out;
		}
	} else if ((uint64_t)st.st_size < size) {
		/* A shorter file is extended to the window size (sparse: ftruncate allocates no
		 * blocks; mkwrite reserves them on the first store, seed 002). */
		if (readonly) {
			pcache_fail(err, errlen, "pmem path '%s': file is %llu bytes, shorter than size %llu, "
			     "and readonly = on forbids extending it", path,
			     (unsigned long long)st.st_size, (unsigned long long)size);
			goto out;
		}
		if (ftruncate(fd, (off_t)size) < 0) {
			pcache_fail(err, errlen, "pmem path '%s': extending to %llu bytes: %s", path,
			     (unsigned long long)size, strerror(errno));
			goto out;
		}
	}
	pc->size = size;
	pc->npages = size / PAGE_SIZE;
	pc->dio_align = dio_alignment(fd, direct);
	const char *rd = getenv("CVMM_RACE_DELAY_US");
	if (rd && *rd) {
		char *end;
		unsigned long us = strtoul(rd, &end, 10);
		if (*end || us > 10000000) {
			pcache_fail(err, errlen, "CVMM_RACE_DELAY_US='%s': want microseconds, 0..10000000",
			     rd);
			goto out;
		}
		pc->race_delay_us = (unsigned)us;
	}
	if (!direct)
		fprintf(stderr, "cvmm: pmem '%s': the filesystem refuses O_DIRECT (tmpfs?); using "
			"buffered I/O, so data also passes through the host page cache\n", path);

	pc->memfd = memfd_create("cvmm-pcache", MFD_CLOEXEC);
	if (pc->memfd < 0 || ftruncate(pc->memfd, (off_t)size) < 0) {
		pcache_fail(err, errlen, "pmem: cache memory (memfd of %llu bytes): %s",
		     (unsigned long long)size, strerror(errno));
		goto out;
	}
	pc->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, pc->memfd, 0);
	if (pc->mem == MAP_FAILED) {
		pc->mem = NULL;
		pcache_fail(err, errlen, "pmem: mapping cache memory: %s", strerror(errno));
		goto out;
	}
	pc->ndh1 = (pc->npages + 63) / 64;
	pc->ndh0 = (pc->ndh1 + 63) / 64;
	pc->flags = zalloc_big(pc->npages * sizeof(uint32_t));
	pc->pins = zalloc_big(pc->npages * sizeof(uint32_t));
	pc->dh1 = zalloc_big(pc->ndh1 * sizeof(uint64_t));
	pc->dh0 = zalloc_big(pc->ndh0 * sizeof(uint64_t));
	if (!pc->flags || !pc->pins || !pc->dh1 || !pc->dh0) {
		pcache_fail(err, errlen, "pmem: out of memory for %llu page words",
		     (unsigned long long)pc->npages);
		goto out;
	}
	pc->next = registry;
	registry = pc;
	*out = pc;
	r = 0;
out:
	pthread_mutex_unlock(&reg_lock);
	if (r)
		pcache_free(pc);
	return r;
}

void pcache_put(struct pcache *pc)
{
	if (!pc)
		return;
	pthread_mutex_lock(&reg_lock);
	if (--pc->refs > 0) {
		pthread_mutex_unlock(&reg_lock);
		return;
	}
	for (struct pcache **pp = &registry; *pp; pp = &(*pp)->next)
		if (*pp == pc) {
			*pp = pc->next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	assert(!pc->maps);
	if (pcache_is_cut(pc)) {
		/* A power cut: what was not written back is gone, as on the machine it models. */
		uint64_t dirty = 0;
		for (uint64_t p = 0; p < pc->npages; p++)
			dirty += (page_flags(&pc->flags[p]) & PG_DIRTY) != 0;
		if (dirty)
			fprintf(stderr, "cvmm: pmem '%s': power cut: %llu dirty pages not written "
				"back\n", pc->path, (unsigned long long)dirty);
		pcache_free(pc);
		return;
	}
	/* Like closing the last mapping of a MAP_SHARED file: dirty data is written, not lost. */
	uint64_t cursor = pcache_errseq_sample(pc);
	int r = pcache_flush(pc, &cursor);
	if (r)
		fprintf(stderr, "cvmm: pmem '%s': writing back dirty data at exit: %s\n", pc->path,
			strerror(-r));
	pcache_free(pc);
}

void pcache_power_cut(struct pcache *pc)
{
	__atomic_store_n(&pc->power_cut, 1, __ATOMIC_RELEASE);
}

/* ---- statistics -------------------------------------------------------------------------- */

void pcache_stats_get(struct pcache *pc, struct pcache_stats *out)
{
	uint64_t *dst = (uint64_t *)out, *src = (uint64_t *)&pc->st;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void pcache_stats_line(struct pcache *pc, char *buf, size_t len)
{
	struct pcache_stats s;
	pcache_stats_get(pc, &s);
	snprintf(buf, len,
		 "faults %llu (load %llu, store %llu, store-ro %llu, fetch %llu), read %llu pages "
		 "(+%llu holes), "
		 "wrote %llu pages, %llu flushes (%.3f ms), mkwrite ENOSPC %llu",
		 (unsigned long long)(s.fault_load_absent + s.fault_store_absent +
				      s.fault_store_readonly + s.fault_fetch),
		 (unsigned long long)s.fault_load_absent, (unsigned long long)s.fault_store_absent,
		 (unsigned long long)s.fault_store_readonly, (unsigned long long)s.fault_fetch,
		 (unsigned long long)s.pages_read, (unsigned long long)s.pages_zeroed,
		 (unsigned long long)s.pages_written,
		 (unsigned long long)s.flushes, (double)s.flush_ns / 1e6,
		 (unsigned long long)s.mkwrite_enospc);
	size_t n = strlen(buf);
	if ((s.poison_pages || s.poison_faults) && n < len)
		snprintf(buf + n, len - n, ", poisoned %llu pages (%llu machine checks, %llu EIO)",
			 (unsigned long long)s.poison_pages, (unsigned long long)s.poison_faults,
			 (unsigned long long)s.poison_eio);
}

void pcache_stats_json(struct pcache *pc, FILE *f)
{
	struct pcache_stats s;
	pcache_stats_get(pc, &s);
#define U(x) (unsigned long long)(x)
	fprintf(f, "{\"faults\": {\"load_absent\": %llu, \"store_absent\": %llu, "
		   "\"store_readonly\": %llu, \"fetch\": %llu, \"waited_breaking\": %llu}, "
		   "\"pages_read\": %llu, \"pages_zeroed\": %llu, \"pages_written\": %llu, "
		   "\"wb_writes\": %llu, \"flushes\": %llu, "
		   "\"flush_s\": %.6f, \"mkwrite\": %llu, \"mkwrite_enospc\": %llu, "
		   "\"read_errors\": %llu, \"write_errors\": %llu, \"stores_discarded\": %llu, "
		   "\"slot_maps\": %llu, \"slot_unmaps\": %llu, \"harvests\": %llu, "
		   "\"pages_harvested\": %llu, \"invalidations\": %llu, \"pins\": %llu, "
		   "\"breaks\": %llu, \"direct_reads\": %llu, \"direct_writes\": %llu, "
		   "\"direct_read_bytes\": %llu, \"direct_write_bytes\": %llu, "
		   "\"direct_write_fallback_pages\": %llu, \"pages_pinned\": %llu, "
		   "\"pin_waits_breaking\": %llu, \"truncates\": %llu, "
		   "\"wb_pages_examined\": %llu, \"stores_unbacked\": %llu, "
		   "\"poison\": {\"pages\": %llu, \"faults\": %llu, \"eio\": %llu, "
		   "\"cleared\": %llu, \"ranges\": ",
		U(s.fault_load_absent), U(s.fault_store_absent), U(s.fault_store_readonly),
		U(s.fault_fetch), U(s.fault_wait_breaking), U(s.pages_read), U(s.pages_zeroed),
		U(s.pages_written), U(s.wb_writes),
		U(s.flushes), (double)s.flush_ns / 1e9, U(s.mkwrite_runs), U(s.mkwrite_enospc),
		U(s.read_errors), U(s.write_errors), U(s.stores_discarded), U(s.slot_maps),
		U(s.slot_unmaps), U(s.harvests), U(s.pages_harvested), U(s.invalidations),
		U(s.pins), U(s.breaks), U(s.direct_reads), U(s.direct_writes),
		U(s.direct_read_bytes), U(s.direct_write_bytes), U(s.direct_write_fallback),
		U(s.pages_pinned), U(s.pin_waits_breaking), U(s.truncates), U(s.wb_pages_examined),
		U(s.stores_unbacked), U(s.poison_pages), U(s.poison_faults), U(s.poison_eio),
		U(s.poison_cleared));
#undef U
	pcache_poison_json(pc, f);
	fputs("}}", f);
}
