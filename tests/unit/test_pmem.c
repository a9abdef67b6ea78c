/* virtio-pmem device model: FLUSH reaches the window's flush and reports its result; every
 * malformed request is answered (EIO where a response fits, consumed otherwise), never a
 * write outside the chain. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/pmem.h"
#include "mm/page.h"
#include "mm/pcache.h"

struct flush_fake {
	int calls;
	int result;
};

static int fake_flush(void *ctx)
{
	struct flush_fake *f = ctx;
	f->calls++;
	return f->result;
}

/* A request: `out` readable bytes then `in` writable bytes, each one segment. */
struct req_buf {
	uint8_t out[16];
	uint8_t in[16];
	struct iovec iov[2];
	uint64_t gpa[2];
	struct vq_req r;
};

static void mkreq(struct req_buf *b, uint32_t type, size_t out, size_t in)
{
	memset(b, 0, sizeof(*b));
	memcpy(b->out, &type, sizeof(type));
	memset(b->in, 0xcc, sizeof(b->in));
	unsigned n = 0;
	if (out)
		b->iov[n++] = (struct iovec){ b->out, out };
	b->r.nout = n;
	if (in)
		b->iov[n++] = (struct iovec){ b->in, in };
	b->r.nseg = n;
	b->r.out_len = out;
	b->r.in_len = in;
	b->r.iov = b->iov;
	b->r.gpa = b->gpa;
}

static uint32_t ret_of(const struct req_buf *b)
{
	uint32_t v;
	memcpy(&v, b->in, 4);
	return v;
}

static void test_flush_ok_and_error(void **state)
{
	struct flush_fake f = { 0, 0 };
	struct pmem_dev p;
	struct req_buf b;
	pmem_dev_init(&p, 0x100000000ULL, 64 << 20, fake_flush, &f);

	mkreq(&b, VIRTIO_PMEM_REQ_TYPE_FLUSH, 4, 4);
	assert_int_equal(pmem_handle(&p, 0, &b.r), 4);
	assert_int_equal(ret_of(&b), VIRTIO_PMEM_RESP_TYPE_OK);
	assert_int_equal(f.calls, 1);

	f.result = -EIO; /* a writeback error since the last FLUSH */
	mkreq(&b, VIRTIO_PMEM_REQ_TYPE_FLUSH, 4, 4);
	assert_int_equal(pmem_handle(&p, 0, &b.r), 4);
	assert_int_equal(ret_of(&b), VIRTIO_PMEM_RESP_TYPE_EIO);
	assert_int_equal(p.flush_errors, 1);
	pmem_dev_destroy(&p);
}

static void test_malformed_requests(void **state)
{
	struct flush_fake f = { 0, 0 };
	struct pmem_dev p;
	struct req_buf b;
	pmem_dev_init(&p, 0, 2 << 20, fake_flush, &f);

	mkreq(&b, 7, 4, 4); /* unknown type: EIO, no flush */
	assert_int_equal(pmem_handle(&p, 0, &b.r), 4);
	assert_int_equal(ret_of(&b), VIRTIO_PMEM_RESP_TYPE_EIO);

	mkreq(&b, VIRTIO_PMEM_REQ_TYPE_FLUSH, 2, 4); /* short request: EIO */
	assert_int_equal(pmem_handle(&p, 0, &b.r), 4);
	assert_int_equal(ret_of(&b), VIRTIO_PMEM_RESP_TYPE_EIO);

	mkreq(&b, VIRTIO_PMEM_REQ_TYPE_FLUSH, 4, 3); /* no room for the response: consumed */
	assert_int_equal(pmem_handle(&p, 0, &b.r), 0);
	assert_int_equal(b.in[0], 0xcc);

	mkreq(&b, VIRTIO_PMEM_REQ_TYPE_FLUSH, 4, 0); /* nothing writable at all */
	assert_int_equal(pmem_handle(&p, 0, &b.r), 0);

	mkreq(&b, VIRTIO_PMEM_REQ_TYPE_FLUSH, 4, 4); /* a chain the walker rejected */
	b.r.error = 1;
	assert_int_equal(pmem_handle(&p, 0, &b.r), 0);
	assert_int_equal(b.in[0], 0xcc);

	assert_int_equal(f.calls, 0);
	assert_int_equal(p.bad_requests, 5);
	pmem_dev_destroy(&p);
}

static void test_config_reports_window(void **state)
{
	struct flush_fake f = { 0, 0 };
	struct pmem_dev p;
	pmem_dev_init(&p, 0x108000000ULL, 96 << 20, fake_flush, &f);
	struct virtio_pmem_config c;
	for (unsigned off = 0; off < sizeof(c); off += 4)
		pmem_virtio_ops.config_read(&p, off, (uint8_t *)&c + off, 4);
	assert_int_equal(c.start, 0x108000000ULL);
	assert_int_equal(c.size, 96 << 20);
	uint64_t junk = ~0ULL;
	pmem_virtio_ops.config_write(&p, 0, &junk, 8); /* read-only */
	pmem_virtio_ops.config_read(&p, 0, &c.start, 8);
	assert_int_equal(c.start, 0x108000000ULL);
	pmem_dev_destroy(&p);
}

/* ---- injected faults (devices/fault.h) ---- */

static int add_rule(struct pmem_dev *p, const char *text)
{
	char err[256];
	int id = fault_add_text(&p->faults, text, err, sizeof(err));
	if (id < 0)
		fprintf(stderr, "%s: %s\n", text, err);
	return id;
}

static uint32_t flush_req(struct pmem_dev *p)
{
	struct req_buf b;
	mkreq(&b, VIRTIO_PMEM_REQ_TYPE_FLUSH, 4, 4);
	assert_int_equal(pmem_handle(p, 0, &b.r), 4);
	return ret_of(&b);
}

static void test_fault_flush_fake(void **state)
{
	struct flush_fake f = { 0, 0 };
	struct pmem_dev p;
	pmem_dev_init(&p, 0, 2 << 20, fake_flush, &f);
	char err[256];
	/* what a pmem device does not do is refused, naming it */
	assert_int_equal(fault_add_text(&p.faults, "op=write effect=ioerr", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "op=write"));
	assert_int_equal(fault_add_text(&p.faults, "op=flush effect=unsupp", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unsupp"));
	/* enospc needs the window's cache */
	assert_int_equal(fault_add_text(&p.faults, "op=flush effect=enospc", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "enospc"));
	/* ioerr, on the 2nd FLUSH only: the flush is not called for it */
	assert_int_equal(add_rule(&p, "op=flush when=nth:2 effect=ioerr"), 1);
	assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_OK);
	assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_EIO);
	assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_OK);
	assert_int_equal(f.calls, 2);
	assert_int_equal(p.flush_errors, 1);
	assert_int_equal(fault_remove(&p.faults, 1), 0);
	/* delay: then the flush runs */
	assert_int_equal(add_rule(&p, "op=any effect=delay:20ms"), 2);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) >= 20000000L);
	assert_int_equal(f.calls, 3);
	char *buf;
	size_t len;
	FILE *mf = open_memstream(&buf, &len);
	pmem_dev_stats_json(&p, mf);
	fclose(mf);
	assert_string_equal(buf, "{\"flushes\": 4, \"flush_errors\": 1, \"bad_requests\": 0, "
				 "\"faults_injected\": 2, \"faults\": [{\"id\": 2, \"rule\": "
				 "\"op=any effect=delay:20ms\", \"matched\": 1, \"fired\": 1}]}");
	free(buf);
	pmem_dev_destroy(&p);
}

/* A real page cache behind the device, flushed as pmem_window_flush does (pcache_flush with
 * the device's errseq cursor). */
struct cache_fx {
	char path[256];
	struct pcache *pc;
	uint64_t cursor;
	int fd;  /* the file, to see what reached it */
};

static int cache_flush(void *ctx)
{
	struct cache_fx *c = ctx;
	return pcache_flush(c->pc, &c->cursor);
}

static void cache_open(struct cache_fx *c)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(c->path, sizeof(c->path), "%s/cvmm-pmem-fault.XXXXXX", dir);
	int fd = mkstemp(c->path);
	assert_true(fd >= 0);
	close(fd);
	char err[256];
	assert_int_equal(pcache_open(c->path, 2 << 20, false, &c->pc, err, sizeof(err)), 0);
	c->cursor = pcache_errseq_sample(c->pc);
	c->fd = open(c->path, O_RDONLY);
	assert_true(c->fd >= 0);
}

static void cache_close(struct cache_fx *c)
{
	pcache_put(c->pc);
	close(c->fd);
	unlink(c->path);
}

/* A store by "the device" into the cache page at off (pinned, marked DIRTY at unpin). */
static void dirty_page(struct cache_fx *c, uint64_t off, uint8_t v)
{
	assert_int_equal(pcache_pin(c->pc, off, 4096, true), 0);
	memset(pcache_mem(c->pc) + off, v, 4096);
	pcache_unpin(c->pc, off, 4096, true);
	assert_true(pcache_page_flags(c->pc, off) & PG_DIRTY);
}

/* The file's page at off is all v. */
static bool file_is(struct cache_fx *c, uint64_t off, uint8_t v)
{
	uint8_t buf[4096];
	assert_int_equal(pread(c->fd, buf, 4096, (off_t)off), 4096);
	for (int i = 0; i < 4096; i++)
		if (buf[i] != v)
			return false;
	return true;
}

/* op=flush effect=ioerr on a real cache: EIO, nothing written back, pages stay dirty; the
 * next FLUSH writes them and succeeds. */
static void test_fault_flush_ioerr_cache(void **state)
{
	struct cache_fx c;
	cache_open(&c);
	struct pmem_dev p;
	pmem_dev_init(&p, 0, 2 << 20, cache_flush, &c);
	pmem_dev_set_pcache(&p, c.pc);
	dirty_page(&c, 8192, 0xa1);
	assert_int_equal(add_rule(&p, "op=flush when=once effect=ioerr"), 1);
	assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_EIO);
	assert_true(pcache_page_flags(c.pc, 8192) & PG_DIRTY);
	assert_true(file_is(&c, 8192, 0));
	assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_OK);
	assert_false(pcache_page_flags(c.pc, 8192) & PG_DIRTY);
	assert_true(file_is(&c, 8192, 0xa1));
	pmem_dev_destroy(&p);
	cache_close(&c);
}

/* op=flush effect=enospc: the writeback's writes fail with ENOSPC, the guest sees EIO, the
 * pages stay DIRTY (retried, and failing again, at each FLUSH under the rule); the first
 * FLUSH without the rule writes them and succeeds. */
static void test_fault_flush_enospc(void **state)
{
	struct cache_fx c;
	cache_open(&c);
	struct pmem_dev p;
	pmem_dev_init(&p, 0, 2 << 20, cache_flush, &c);
	pmem_dev_set_pcache(&p, c.pc);
	/* nothing dirty: nothing to fail */
	int id = add_rule(&p, "op=flush effect=enospc");
	assert_int_equal(id, 1);
	assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_OK);
	dirty_page(&c, 0, 0x11);
	dirty_page(&c, 1 << 20, 0x22);
	struct pcache_stats st0, st1;
	pcache_stats_get(c.pc, &st0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_EIO);
		assert_true(pcache_page_flags(c.pc, 0) & PG_DIRTY);
		assert_true(pcache_page_flags(c.pc, 1 << 20) & PG_DIRTY);
		assert_true(file_is(&c, 0, 0));
		assert_true(file_is(&c, 1 << 20, 0));
	}
	pcache_stats_get(c.pc, &st1);
	assert_true(st1.write_errors >= st0.write_errors + 4); /* 2 pages x 2 FLUSHes */
	assert_int_equal(st1.pages_written, st0.pages_written);
	assert_int_equal(p.flush_errors, 2);
	assert_int_equal(fault_fired(&p.faults), 3);
	/* the knob is off once the FLUSH is over: the cache's other writes work */
	assert_int_equal(pcache_writeback_range(c.pc, 0, 4096), 0);
	assert_true(file_is(&c, 0, 0x11));
	dirty_page(&c, 0, 0x33);
	/* the rule removed: the next FLUSH writes every page and succeeds */
	assert_int_equal(fault_remove(&p.faults, (unsigned)id), 0);
	assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_OK);
	assert_false(pcache_page_flags(c.pc, 0) & PG_DIRTY);
	assert_false(pcache_page_flags(c.pc, 1 << 20) & PG_DIRTY);
	assert_true(file_is(&c, 0, 0x33));
	assert_true(file_is(&c, 1 << 20, 0x22));
	assert_int_equal(flush_req(&p), VIRTIO_PMEM_RESP_TYPE_OK);
	pmem_dev_destroy(&p);
	cache_close(&c);
}

/* op=load range=R effect=media-error: R is poisoned while the rule exists (the dirty data
 * there reaches the file first), overlapping rules keep their ranges bad when one goes,
 * and a rule without a range or with timing is refused. */
static void test_fault_media_error(void **state)
{
	(void)state;
	struct cache_fx c;
	cache_open(&c);
	struct pmem_dev p;
	pmem_dev_init(&p, 0, 2 << 20, cache_flush, &c);
	char err[256];
	/* no cache yet: the device cannot do it */
	assert_int_equal(fault_add_text(&p.faults, "op=load range=64K+4K effect=media-error", err,
					sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot do it"));
	pmem_dev_set_pcache(&p, c.pc);
	dirty_page(&c, 65536, 0x5a);
	int a = add_rule(&p, "op=load range=64K+8K effect=media-error");
	int b = add_rule(&p, "op=load range=68K+8K effect=media-error");
	assert_true(a > 0 && b > 0);
	assert_true(file_is(&c, 65536, 0x5a));   /* written back before the page went bad */
	struct pcache_extent ex[4];
	assert_int_equal(pcache_poison_list(c.pc, ex, 4), 1);
	assert_int_equal(ex[0].off, 65536);
	assert_int_equal(ex[0].len, 12288);
	uint8_t buf[4096];
	assert_true(pcache_direct_read(c.pc, 69632, buf, 4096) < 0); /* bad media: EIO */
	/* a goes: its first page heals, the page it shared with b stays bad */
	assert_int_equal(fault_remove(&p.faults, (unsigned)a), 0);
	assert_int_equal(pcache_poison_list(c.pc, ex, 4), 1);
	assert_int_equal(ex[0].off, 69632);
	assert_int_equal(ex[0].len, 8192);
	assert_int_equal(pcache_direct_read(c.pc, 65536, buf, 4096), 4096);
	assert_int_equal(buf[0], 0x5a);
	fault_clear(&p.faults);
	assert_int_equal(pcache_poison_list(c.pc, ex, 4), 0);
	const char *bad[] = { "op=load effect=media-error", "op=load range=0+4K when=once effect=media-error",
			      "op=read range=0+4K effect=media-error", "op=load range=0+4K effect=ioerr" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(fault_add_text(&p.faults, bad[i], err, sizeof(err)), -1);
	/* outside the window: refused, nothing listed */
	assert_int_equal(fault_add_text(&p.faults, "op=load range=4M+4K effect=media-error", err,
					sizeof(err)), -1);
	assert_int_equal(pcache_poison_list(c.pc, ex, 4), 0);
	pmem_dev_destroy(&p);
	cache_close(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_ok_and_error),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_config_reports_window),
		cmocka_unit_test(test_fault_flush_fake),
		cmocka_unit_test(test_fault_flush_ioerr_cache),
		cmocka_unit_test(test_fault_flush_enospc),
		cmocka_unit_test(test_fault_media_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
