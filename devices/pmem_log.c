/* The pmem window's write log (devices/pmem_log.h): the page cache's observer feeding the
 * dm-log-writes writer of devices/blk_log.c. The callbacks run inside the cache's lock
 * sections (mm/pcache.h "observer"); they only append to the log (the writer's own mutex)
 * and never call back into the cache. */
#include "devices/pmem_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "devices/blk_log.h"

#define PAGE 4096u

struct pmem_log {
	struct pcache *pc;
	struct blk_log_writer *w;
	uint64_t base_size;
	const char *how;
};

static void on_writeback(void *ctx, uint64_t off, const void *data, size_t len)
{
	struct pmem_log *pl = ctx;
	(void)blk_log_writer_append_units(pl->w, off, data, len, PAGE, BLK_LOG_PMEM_WB);
}

static void on_write(void *ctx, uint64_t off, const struct iovec *iov, unsigned n, uint64_t len)
{
	struct pmem_log *pl = ctx;
	(void)blk_log_writer_append(pl->w, off / BLK_LOG_SECTOR, len / BLK_LOG_SECTOR, 0, NULL,
				    iov, n);
}

static void on_zero(void *ctx, uint64_t off, uint64_t len, bool punch)
{
	struct pmem_log *pl = ctx;
	(void)blk_log_writer_append(pl->w, off / BLK_LOG_SECTOR, len / BLK_LOG_SECTOR,
				    punch ? BLK_LOG_DISCARD : 0, NULL, NULL, 0);
}

static void on_truncate(void *ctx, uint64_t size)
{
	struct pmem_log *pl = ctx;
	uint64_t from = (size + BLK_LOG_SECTOR - 1) / BLK_LOG_SECTOR;
	uint64_t to = pl->base_size / BLK_LOG_SECTOR;
	if (from < to)
		(void)blk_log_writer_append(pl->w, from, to - from, BLK_LOG_DISCARD, NULL, NULL, 0);
}

static void on_flush(void *ctx)
{
	struct pmem_log *pl = ctx;
	(void)blk_log_writer_flush(pl->w);
}

static const struct pcache_observer_ops pmem_log_ops = {
	.writeback = on_writeback,
	.write = on_write,
	.zero = on_zero,
	.truncate = on_truncate,
	.flush = on_flush,
};

int pmem_log_attach(struct pcache *pc, const char *file_path, const char *log_path,
		    struct pmem_log **out, char *err, size_t errlen)
{
	*out = NULL;
	struct stat st;
	if (stat(file_path, &st) < 0) {
		snprintf(err, errlen, "pmem write_log: '%s': %s", file_path, strerror(errno));
		return -1;
	}
	if (!pcache_same_file(pc, file_path)) {
		snprintf(err, errlen, "pmem write_log: '%s' is not the window's file", file_path);
		return -1;
	}
	/* the file as the window shows it: a dirty page would otherwise be in neither the base
	 * nor the log */
	int r = pcache_writeback_range(pc, 0, pcache_size(pc));
	if (r) {
		snprintf(err, errlen, "pmem write_log: writing back '%s': %s", file_path,
			 strerror(-r));
		return -1;
	}
	uint64_t size = pcache_file_size(pc);
	struct pmem_log *pl = calloc(1, sizeof(*pl));
	size_t n = strlen(log_path);
	char *base = malloc(n + sizeof(".base"));
	if (!pl || !base) {
		free(pl);
		free(base);
		snprintf(err, errlen, "pmem write_log: out of memory");
		return -1;
	}
	memcpy(base, log_path, n);
	memcpy(base + n, ".base", sizeof(".base"));
	r = blk_log_capture_base(file_path, 0, size, base, &pl->how, err, errlen);
	free(base);
	if (r || blk_log_writer_open(log_path, "pmem write_log", &pl->w, err, errlen)) {
		free(pl);
		return -1;
	}
	pl->pc = pc;
	pl->base_size = size;
	if (pcache_set_observer(pc, &pmem_log_ops, pl)) {
		snprintf(err, errlen, "pmem write_log '%s': the file already has a write log",
			 log_path);
		blk_log_writer_close(pl->w);
		free(pl);
		return -1;
	}
	pcache_get(pc);
	*out = pl;
	return 0;
}

int pmem_log_mark(struct pmem_log *pl, const char *text)
{
	if (!pl)
		return -EINVAL;
	return blk_log_writer_mark(pl->w, text);
}

uint64_t pmem_log_entries(struct pmem_log *pl)
{
	return pl ? blk_log_writer_entries(pl->w) : 0;
}

const char *pmem_log_base_how(const struct pmem_log *pl)
{
	return pl ? pl->how : NULL;
}

void pmem_log_detach(struct pmem_log *pl)
{
	if (!pl)
		return;
	pcache_set_observer(pl->pc, NULL, NULL);
	blk_log_writer_close(pl->w);
	pcache_put(pl->pc);
	free(pl);
}
