/* virtio-pmem device model: FLUSH reaches the window's flush and reports its result; every
 * malformed request is answered (EIO where a response fits, consumed otherwise), never a
 * write outside the chain. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "devices/pmem.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_ok_and_error),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_config_reports_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
