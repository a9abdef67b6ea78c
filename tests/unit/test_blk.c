/* virtio-blk: request parsing and execution against a temp file (and an in-memory backend
 * where we need to count calls), over a synthetic guest memory and a real split ring. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/blk.h"
#include "tests/unit/test_blk_req.h"
#include "devices/virtqueue.h"

#define RAM_SIZE  (8u << 20)
#define HDR_GPA   0x10000
#define STAT_GPA  0x11000
#define DATA_GPA  0x100000
#define DISK_SIZE (1u << 20)

/* ---- an in-memory backend that counts ---- */
struct mem_be {
	struct blk_backend be;
	uint8_t *data;
	int reads, writes, flushes, discards, zeroes, fail;
};

static int mem_rw(struct blk_backend *be, const struct iovec *iov, unsigned n, uint64_t off,
		  uint64_t len, bool wr)
{
	struct mem_be *m = (struct mem_be *)be;
	if (m->fail)
		return -EIO;
	assert_true(off + len <= be->size);
	for (unsigned i = 0; i < n; i++) {
		if (wr)
			memcpy(m->data + off, iov[i].iov_base, iov[i].iov_len);
		else
			memcpy(iov[i].iov_base, m->data + off, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	wr ? m->writes++ : m->reads++;
	return 0;
}
static int mem_read(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		    unsigned n, uint64_t off, uint64_t len)
{
	(void)gpa;
	return mem_rw(be, iov, n, off, len, false);
}
static int mem_write(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		     unsigned n, uint64_t off, uint64_t len)
{
	(void)gpa;
	return mem_rw(be, iov, n, off, len, true);
}
static int mem_flush(struct blk_backend *be)
{
	((struct mem_be *)be)->flushes++;
	return 0;
}
static int mem_discard(struct blk_backend *be, uint64_t off, uint64_t len)
{
	(void)off;
	(void)len;
	((struct mem_be *)be)->discards++;
	return 0;
}
static int mem_wz(struct blk_backend *be, uint64_t off, uint64_t len, bool unmap)
{
	struct mem_be *m = (struct mem_be *)be;
	(void)unmap;
	memset(m->data + off, 0, len);
	m->zeroes++;
	return 0;
}
static void mem_destroy(struct blk_backend *be)
{
	struct mem_be *m = (struct mem_be *)be;
	free(m->data);
	free(m);
}
static const struct blk_backend_ops mem_ops = { mem_read, mem_write, mem_flush, mem_discard,
						 mem_wz, mem_destroy };

static struct mem_be *mem_be_new(uint64_t size, bool ro)
{
	struct mem_be *m = calloc(1, sizeof(*m));
	m->data = calloc(1, size);
	m->be = (struct blk_backend){ .ops = &mem_ops, .size = size, .readonly = ro, .serial = 42 };
	return m;
}

/* ---- fixture: guest RAM, a queue, a device ---- */
struct fx {
	uint8_t *ram;
	struct guest_mem mem;
	struct virtq q;
	struct vq_req r;
	uint16_t avail;
	struct blk_dev b;
	char path[64];
	int fd;            /* the temp file, for checking what landed there */
	struct mem_be *m;  /* when the memory backend is used */
};

static void fx_ram(struct fx *f)
{
	assert_int_equal(posix_memalign((void **)&f->ram, 4096, RAM_SIZE), 0);
	memset(f->ram, 0, RAM_SIZE);
	assert_int_equal(guest_mem_add(&f->mem, 0, RAM_SIZE, f->ram), 0);
	char err[128];
	assert_int_equal(virtq_setup(&f->q, &(struct virtq_dma){ .mem = &f->mem }, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA, false,
				     true, QSZ, err, sizeof(err)), 0);
	assert_int_equal(vq_req_init(&f->r, QSZ), 0);
	f->fd = -1;
}

/* A temp file of `fsize` bytes with a recognisable pattern, opened as a backend. */
static int open_file(struct fx *f, uint64_t fsize, struct blk_file_opts o, char *err,
		     size_t errlen, struct blk_backend **be)
{
	strcpy(f->path, "/tmp/cvmm-test-blk.XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	uint8_t *buf = malloc(fsize ? fsize : 1);
	for (uint64_t i = 0; i < fsize; i++)
		buf[i] = (uint8_t)(i * 7 + i / 4096);
	assert_int_equal(pwrite(f->fd, buf, fsize, 0), (ssize_t)fsize);
	free(buf);
	o.path = f->path;
	int rc = blk_file_open(&o, be, err, errlen);
	if (rc && o.direct && strstr(err, "O_DIRECT")) { /* a /tmp without O_DIRECT */
		o.direct = false;
		rc = blk_file_open(&o, be, err, errlen);
	}
	return rc;
}

static int setup_file(void **state, struct blk_file_opts o, uint64_t fsize)
{
	struct fx *f = calloc(1, sizeof(*f));
	fx_ram(f);
	char err[256];
	struct blk_backend *be;
	assert_int_equal(open_file(f, fsize, o, err, sizeof(err), &be), 0);
	assert_int_equal(blk_init(&f->b, be, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int setup_rw(void **state)
{
	return setup_file(state, (struct blk_file_opts){ .offset = 8192, .size = DISK_SIZE, .direct = true },
			  DISK_SIZE + 16384);
}

static int setup_ro(void **state)
{
	return setup_file(state, (struct blk_file_opts){ .size = DISK_SIZE, .readonly = true, .direct = true },
			  DISK_SIZE);
}

/* O_DIRECT with a forced 4096-byte alignment: every unaligned request bounces. */
static int setup_align4k(void **state)
{
	return setup_file(state, (struct blk_file_opts){ .size = 4 * DISK_SIZE, .direct = true, .align = 4096 },
			  4 * DISK_SIZE);
}

static int setup_mem(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	fx_ram(f);
	f->m = mem_be_new(DISK_SIZE, false);
	char err[128];
	assert_int_equal(blk_init(&f->b, &f->m->be, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	blk_destroy(&f->b);
	vq_req_free(&f->r);
	if (f->fd >= 0) {
		close(f->fd);
		unlink(f->path);
	}
	free(f->ram);
	free(f);
	return 0;
}

/* ---- building requests ---- */

/* Chain the segments into descriptors 0..n-1, offer, pop, handle, push. Returns used.len. */
static uint32_t submit(struct fx *f, const struct seg *s, int n)
{
	uint32_t len = blk_req_submit(f->ram, &f->avail, &f->q, &f->r, &f->b, s, n);
	struct virtq_used *u = (struct virtq_used *)(f->ram + USED_GPA);
	assert_int_equal(u->ring[(f->avail - 1) % QSZ].len, len);
	return len;
}

static void put_hdr(struct fx *f, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = type, .sector = sector };
	memcpy(f->ram + HDR_GPA, &h, sizeof(h));
	f->ram[STAT_GPA] = 0xee; /* so we see it written */
}

static uint8_t status(struct fx *f)
{
	return f->ram[STAT_GPA];
}

/* header, one data buffer, status */
static uint8_t rw(struct fx *f, uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len,
		  uint32_t *used)
{
	put_hdr(f, type, sector);
	struct seg s[3] = { { HDR_GPA, 16, false }, { gpa, len, type != VIRTIO_BLK_T_OUT },
			    { STAT_GPA, 1, true } };
	uint32_t u = len ? submit(f, s, 3) : submit(f, (struct seg[]){ s[0], s[2] }, 2);
	if (used)
		*used = u;
	return status(f);
}

static uint8_t dwz(struct fx *f, uint32_t type, const struct virtio_blk_dwz_seg *segs,
		   unsigned n, uint32_t bytes)
{
	put_hdr(f, type, 0);
	memcpy(f->ram + DATA_GPA, segs, n * sizeof(*segs));
	struct seg s[3] = { { HDR_GPA, 16, false }, { DATA_GPA, bytes, false }, { STAT_GPA, 1, true } };
	submit(f, s, 3);
	return status(f);
}

static void fill(struct fx *f, uint64_t gpa, uint32_t len, uint8_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		f->ram[gpa + i] = (uint8_t)(seed + i * 13);
}

static uint8_t pattern_at(uint64_t file_off)
{
	return (uint8_t)(file_off * 7 + file_off / 4096);
}

/* ---- config ---- */

static void test_config_rw(void **state)
{
	struct fx *f = *state;
	struct virtio_blk_config c;
	blk_virtio_ops.config_read(&f->b, 0, &c, sizeof(c));
	assert_int_equal(c.capacity, DISK_SIZE / 512);
	assert_int_equal(c.blk_size, 4096);
	assert_int_equal(c.seg_max, BLK_SEG_MAX);
	assert_int_equal(c.size_max, BLK_SIZE_MAX);
	assert_int_equal(c.max_discard_seg, BLK_MAX_DWZ_SEG);
	assert_int_equal(c.discard_sector_alignment, 8);
	assert_int_equal(c.max_write_zeroes_sectors, BLK_MAX_DWZ_SECTORS);
	assert_int_equal(c.write_zeroes_may_unmap, 1);
	uint64_t feat = blk_virtio_ops.features(&f->b);
	assert_true(feat & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_true(feat & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_true(feat & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_true(feat & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
	assert_true(feat & (1ULL << VIRTIO_BLK_F_SEG_MAX));
	assert_false(feat & (1ULL << VIRTIO_BLK_F_RO));
	/* a partial read of one field, as a driver does */
	uint32_t bs;
	blk_virtio_ops.config_read(&f->b, 20, &bs, 4);
	assert_int_equal(bs, 4096);
}

static void test_config_ro(void **state)
{
	struct fx *f = *state;
	uint64_t feat = blk_virtio_ops.features(&f->b);
	assert_true(feat & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(feat & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_false(feat & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
}

/* ---- data path ---- */

static void test_write_read_roundtrip(void **state)
{
	struct fx *f = *state;
	uint32_t used;
	fill(f, DATA_GPA, 4096, 1);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 2, DATA_GPA, 4096, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
	/* it is in the file at window offset 8192 + 2 * 512, and nothing around it moved */
	uint8_t buf[4096 + 2];
	assert_int_equal(pread(f->fd, buf, sizeof(buf), 8192 + 1024 - 1), (ssize_t)sizeof(buf));
	assert_int_equal(buf[0], pattern_at(8192 + 1023));
	assert_memory_equal(buf + 1, f->ram + DATA_GPA, 4096);
	assert_int_equal(buf[4097], pattern_at(8192 + 1024 + 4096));
	/* read it back into another buffer */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 2, DATA_GPA + 0x10000, 4096, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 4097);
	assert_memory_equal(f->ram + DATA_GPA + 0x10000, f->ram + DATA_GPA, 4096);
	/* sector 0 of the disk is file offset 8192 */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(f->ram[DATA_GPA + 5], pattern_at(8192 + 5));
	/* the last sector */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 1, DATA_GPA, 512, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(f->ram[DATA_GPA], pattern_at(8192 + DISK_SIZE - 512));
}

static void test_many_segments(void **state)
{
	struct fx *f = *state;
	/* 8 data descriptors of 4 KiB scattered in RAM, written then read back */
	struct seg s[10];
	s[0] = (struct seg){ HDR_GPA, 16, false };
	for (int i = 0; i < 8; i++) {
		s[1 + i] = (struct seg){ DATA_GPA + 0x3000 * (uint64_t)i, 4096, false };
		fill(f, s[1 + i].gpa, 4096, (uint8_t)(i * 31));
	}
	s[9] = (struct seg){ STAT_GPA, 1, true };
	put_hdr(f, VIRTIO_BLK_T_OUT, 64);
	assert_int_equal(submit(f, s, 10), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	uint8_t buf[4096];
	for (int i = 0; i < 8; i++) {
		assert_int_equal(pread(f->fd, buf, 4096, 8192 + 64 * 512 + 4096 * i), 4096);
		assert_memory_equal(buf, f->ram + s[1 + i].gpa, 4096);
	}
}

static void test_bounds(void **state)
{
	struct fx *f = *state;
	uint64_t cap = DISK_SIZE / 512;
	uint32_t used;
	/* a failed IN wrote only its status byte, at the end: used.len 0 (2.7.8.2) */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, cap, DATA_GPA, 512, &used), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used, 0);
	/* a failed OUT: the status byte is the whole writable part: 1 */
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, cap, DATA_GPA, 512, &used), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used, 1);
	/* crossing the end */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, cap - 1, DATA_GPA, 1024, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, cap, DATA_GPA, 512, NULL), VIRTIO_BLK_S_IOERR);
	/* zero bytes at the very end: nothing to do */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, cap, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, cap + 1, 0, 0, NULL), VIRTIO_BLK_S_IOERR);
	/* sector arithmetic that would overflow */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, UINT64_MAX, DATA_GPA, 512, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, DATA_GPA, 512, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 1ULL << 55, DATA_GPA, 512, NULL), VIRTIO_BLK_S_IOERR);
	/* lengths that are not whole sectors */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 0, DATA_GPA, 100, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 513, NULL), VIRTIO_BLK_S_IOERR);
	/* the file was not touched by any of them */
	uint8_t b;
	assert_int_equal(pread(f->fd, &b, 1, 8192), 1);
	assert_int_equal(b, pattern_at(8192));
	assert_int_equal(f->b.st.ioerr, 10);
}

static void test_stray_bytes(void **state)
{
	struct fx *f = *state;
	/* an IN with readable data after the header, an OUT with writable data before status */
	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	struct seg s1[4] = { { HDR_GPA, 16, false }, { DATA_GPA, 512, false }, { DATA_GPA, 512, true },
			     { STAT_GPA, 1, true } };
	submit(f, s1, 4);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	put_hdr(f, VIRTIO_BLK_T_OUT, 0);
	submit(f, s1, 4);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
}

static void test_flush(void **state)
{
	struct fx *f = *state;
	uint32_t used;
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
	assert_int_equal(f->m->flushes, 1);
	/* a flush with data is malformed */
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, DATA_GPA, 512, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->m->flushes, 1);
	/* writes do not flush when FLUSH was negotiated */
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(f->m->flushes, 1);
}

/* [blk] flush = ignore (issue 15, for throwaway CI guests): FLUSH completes OK without
 * reaching the backend, and so does the write-through sync of a driver that did not
 * negotiate FLUSH; both are counted, and the stats say the policy. */
static void test_flush_ignore(void **state)
{
	struct fx *f = *state;
	f->b.flush_ignore = true;
	uint32_t used;
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
	assert_int_equal(f->m->flushes, 0);
	assert_int_equal(f->b.st.flushes_ignored, 1);
	assert_int_equal(blk_virtio_ops.set_features(&f->b, f->b.offered &
						     ~(1ULL << VIRTIO_BLK_F_FLUSH)), 0);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(f->m->writes, 1);
	assert_int_equal(f->m->flushes, 0);
	char *buf;
	size_t len;
	FILE *mf = open_memstream(&buf, &len);
	blk_stats_json(&f->b, mf);
	fclose(mf);
	assert_non_null(strstr(buf, "\"flush\": \"ignore\", \"flushes_ignored\": 1"));
	free(buf);
}

static void test_flush_not_negotiated(void **state)
{
	struct fx *f = *state;
	/* 5.2.6.2: FLUSH offered but not negotiated => every write is stable on completion */
	assert_int_equal(blk_virtio_ops.set_features(&f->b, f->b.offered &
						     ~((1ULL << VIRTIO_BLK_F_FLUSH) |
						       (1ULL << VIRTIO_BLK_F_DISCARD))), 0);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(f->m->writes, 1);
	assert_int_equal(f->m->flushes, 1);
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_UNSUPP);
	/* same for DISCARD / WRITE_ZEROES when not negotiated */
	struct virtio_blk_dwz_seg s = { 0, 8, 0 };
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, &s, 1, 16), VIRTIO_BLK_S_UNSUPP);
	/* reset restores the offer */
	blk_virtio_ops.reset(&f->b);
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
}

static void test_backend_error(void **state)
{
	struct fx *f = *state;
	f->m->fail = 1;
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512, NULL), VIRTIO_BLK_S_IOERR);
}

static void test_get_id(void **state)
{
	struct fx *f = *state;
	struct stat st;
	assert_int_equal(fstat(f->fd, &st), 0);
	char want[21];
	snprintf(want, sizeof(want), "cvmm-blk-%llu", (unsigned long long)st.st_ino);
	uint32_t used;
	memset(f->ram + DATA_GPA, 0xaa, 32);
	assert_int_equal(rw(f, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 20, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 21);
	assert_memory_equal(f->ram + DATA_GPA, want, strlen(want));
	for (size_t i = strlen(want); i < 20; i++)
		assert_int_equal(f->ram[DATA_GPA + i], 0); /* NUL-padded */
	assert_int_equal(f->ram[DATA_GPA + 20], 0xaa);
	/* a bigger buffer is NUL-padded to its end, so used.len covers it exactly */
	memset(f->ram + DATA_GPA, 0xaa, 64);
	assert_int_equal(rw(f, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 200, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 201);
	assert_memory_equal(f->ram + DATA_GPA, want, strlen(want));
	for (size_t i = strlen(want); i < 200; i++)
		assert_int_equal(f->ram[DATA_GPA + i], 0);
	/* a short buffer gets what fits */
	assert_int_equal(rw(f, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA + 100, 8, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 9);
	assert_memory_equal(f->ram + DATA_GPA + 100, "cvmm-blk", 8);
}

static uint64_t blocks(struct fx *f)
{
	struct stat st;
	assert_int_equal(fstat(f->fd, &st), 0);
	return (uint64_t)st.st_blocks;
}

static void test_discard(void **state)
{
	struct fx *f = *state;
	uint64_t before = blocks(f);
	struct virtio_blk_dwz_seg s[2] = { { 0, 128, 0 }, { 256, 128, 0 } };
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, s, 2, 32), VIRTIO_BLK_S_OK);
	assert_int_equal(f->b.st.discards, 1);
	/* 2 x 64 KiB punched (where the filesystem can: ext4, xfs, tmpfs can) */
	assert_true(blocks(f) <= before);
	/* 5.2.6.2: unmap on discard, unknown flags => UNSUPP */
	s[0].flags = VIRTIO_BLK_WZ_UNMAP;
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, s, 1, 16), VIRTIO_BLK_S_UNSUPP);
	s[0].flags = 2;
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, s, 1, 16), VIRTIO_BLK_S_UNSUPP);
	s[0].flags = 0;
	/* past capacity, overflowing, over the per-segment maximum */
	s[0].sector = DISK_SIZE / 512 - 8;
	s[0].num_sectors = 16;
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, s, 1, 16), VIRTIO_BLK_S_IOERR);
	s[0].sector = UINT64_MAX - 1;
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, s, 1, 16), VIRTIO_BLK_S_IOERR);
	s[0].sector = 0;
	s[0].num_sectors = BLK_MAX_DWZ_SECTORS + 1;
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, s, 1, 16), VIRTIO_BLK_S_IOERR);
	/* segment list lengths: none, not a multiple of 16, too many */
	s[0].num_sectors = 8;
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, s, 1, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, s, 1, 17), VIRTIO_BLK_S_IOERR);
	struct virtio_blk_dwz_seg many[BLK_MAX_DWZ_SEG + 1] = { { 0, 8, 0 } };
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, many, BLK_MAX_DWZ_SEG + 1,
			     16 * (BLK_MAX_DWZ_SEG + 1)), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, many, BLK_MAX_DWZ_SEG,
			     16 * BLK_MAX_DWZ_SEG), VIRTIO_BLK_S_OK);
	/* a bad segment after a good one: nothing is done (all checked first) */
	struct virtio_blk_dwz_seg mixed[2] = { { 512, 8, 0 }, { 0, 8, 4 } };
	uint64_t discards = f->b.st.discards;
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, mixed, 2, 32), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(f->b.st.discards, discards);
}

static void check_zero(struct fx *f, uint64_t disk_off, uint64_t len, bool zero)
{
	uint8_t *buf = malloc(len);
	assert_int_equal(pread(f->fd, buf, len, 8192 + disk_off), (ssize_t)len);
	for (uint64_t i = 0; i < len; i++)
		assert_int_equal(buf[i], zero ? 0 : pattern_at(8192 + disk_off + i));
	free(buf);
}

static void test_write_zeroes(void **state)
{
	struct fx *f = *state;
	/* without unmap, 512-byte granular (not block aligned) */
	struct virtio_blk_dwz_seg s = { 1, 3, 0 };
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1, 16), VIRTIO_BLK_S_OK);
	check_zero(f, 0, 512, false);
	check_zero(f, 512, 1536, true);
	check_zero(f, 2048, 512, false);
	/* with unmap: may punch, must read zeroes */
	s = (struct virtio_blk_dwz_seg){ 64, 256, VIRTIO_BLK_WZ_UNMAP };
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1, 16), VIRTIO_BLK_S_OK);
	check_zero(f, 64 * 512 - 512, 512, false);
	check_zero(f, 64 * 512, 256 * 512, true);
	check_zero(f, 320 * 512, 512, false);
	/* and reading through the device agrees */
	memset(f->ram + DATA_GPA, 0xff, 4096);
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 64, DATA_GPA, 4096, NULL), VIRTIO_BLK_S_OK);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(f->ram[DATA_GPA + i], 0);
	/* unknown flags => UNSUPP */
	s.flags = 0x80;
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1, 16), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(f->b.st.write_zeroes, 2);
}

static void test_readonly(void **state)
{
	struct fx *f = *state;
	fill(f, DATA_GPA, 4096, 9);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 4096, NULL), VIRTIO_BLK_S_IOERR);
	struct virtio_blk_dwz_seg s = { 0, 8, 0 };
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, &s, 1, 16), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1, 16), VIRTIO_BLK_S_IOERR);
	s.flags = VIRTIO_BLK_WZ_UNMAP;
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1, 16), VIRTIO_BLK_S_IOERR);
	/* the file is unchanged */
	uint8_t buf[4096];
	assert_int_equal(pread(f->fd, buf, 4096, 0), 4096);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(buf[i], pattern_at((uint64_t)i));
	/* reads and flushes work */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 0, DATA_GPA, 4096, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(f->ram + DATA_GPA, buf, 4096);
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
}

static void test_unsupported_types(void **state)
{
	struct fx *f = *state;
	const uint32_t types[] = { 2, 3, 5, VIRTIO_BLK_T_GET_LIFETIME, VIRTIO_BLK_T_SECURE_ERASE,
				   16, 0x80000000u, 0xffffffffu };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		assert_int_equal(rw(f, types[i], 0, DATA_GPA, 512, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(f->b.st.unsupp, sizeof(types) / sizeof(types[0]));
}

static void test_header_framing(void **state)
{
	struct fx *f = *state;
	/* a short header: IOERR in the status byte */
	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	struct seg s1[2] = { { HDR_GPA, 8, false }, { STAT_GPA, 1, true } };
	assert_int_equal(submit(f, s1, 2), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* the header split 4 + 12 over two descriptors, data and status in one descriptor
	 * (2.7.4: the device makes no assumption about the framing) */
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN, .sector = 3 };
	memcpy(f->ram + HDR_GPA, &h, 4);
	memcpy(f->ram + HDR_GPA + 0x100, (uint8_t *)&h + 4, 12);
	f->ram[DATA_GPA + 512] = 0xee;
	struct seg s2[3] = { { HDR_GPA, 4, false }, { HDR_GPA + 0x100, 12, false },
			     { DATA_GPA, 513, true } };
	assert_int_equal(submit(f, s2, 3), 513);
	assert_int_equal(f->ram[DATA_GPA + 512], VIRTIO_BLK_S_OK);
	assert_int_equal(f->ram[DATA_GPA], pattern_at(8192 + 3 * 512));
}

static void test_no_status_byte(void **state)
{
	struct fx *f = *state;
	/* nothing device-writable: the chain comes back with used.len 0, nothing written */
	put_hdr(f, VIRTIO_BLK_T_OUT, 0);
	fill(f, DATA_GPA, 512, 3);
	struct seg s[2] = { { HDR_GPA, 16, false }, { DATA_GPA, 512, false } };
	assert_int_equal(submit(f, s, 2), 0);
	assert_int_equal(status(f), 0xee);
	uint8_t b;
	assert_int_equal(pread(f->fd, &b, 1, 8192), 1);
	assert_int_equal(b, pattern_at(8192)); /* the write did not happen */
	assert_int_equal(f->b.st.dropped, 1);
	/* a zero-length writable "status" is no status either */
	struct seg s2[3] = { { HDR_GPA, 16, false }, { DATA_GPA, 512, false }, { STAT_GPA, 0, true } };
	assert_int_equal(submit(f, s2, 3), 0);
	assert_int_equal(status(f), 0xee);
}

static void test_bad_chain(void **state)
{
	struct fx *f = *state;
	/* a data buffer outside RAM, valid status: IOERR, used 1, no I/O */
	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	struct seg s[3] = { { HDR_GPA, 16, false }, { RAM_SIZE - 256, 512, true },
			    { STAT_GPA, 1, true } };
	assert_int_equal(submit(f, s, 3), 0); /* only the last byte written: used.len 0 */
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* the status buffer itself outside RAM: nothing can be written */
	struct seg s2[3] = { { HDR_GPA, 16, false }, { DATA_GPA, 512, true },
			     { 0xfffffffffffff000ULL, 1, true } };
	f->ram[DATA_GPA] = 0x5a;
	assert_int_equal(submit(f, s2, 3), 0);
	assert_int_equal(f->ram[DATA_GPA], 0x5a);
}

static void test_unaligned_bounce(void **state)
{
	struct fx *f = *state;
	/* O_DIRECT with 4 KiB alignment: odd guest addresses, 512-byte offsets */
	uint64_t g = DATA_GPA + 1;
	fill(f, g, 1536, 77);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 1, g, 1536, NULL), VIRTIO_BLK_S_OK);
	uint8_t buf[8192];
	assert_int_equal(pread(f->fd, buf, 8192, 0), 8192);
	for (int i = 0; i < 512; i++)
		assert_int_equal(buf[i], pattern_at((uint64_t)i)); /* RMW kept the head */
	assert_memory_equal(buf + 512, f->ram + g, 1536);
	for (int i = 2048; i < 8192; i++)
		assert_int_equal(buf[i], pattern_at((uint64_t)i)); /* and the tail */
	/* read back into another odd place, spanning the written and unwritten parts */
	uint64_t g2 = DATA_GPA + 0x10003;
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 0, g2, 4608, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(f->ram + g2, buf, 4608);
	/* two unaligned segments at once, over a 4 KiB boundary */
	put_hdr(f, VIRTIO_BLK_T_OUT, 7);
	fill(f, DATA_GPA + 0x20005, 512, 1);
	fill(f, DATA_GPA + 0x30007, 1024, 2);
	struct seg s[4] = { { HDR_GPA, 16, false }, { DATA_GPA + 0x20005, 512, false },
			    { DATA_GPA + 0x30007, 1024, false }, { STAT_GPA, 1, true } };
	assert_int_equal(submit(f, s, 4), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(f->fd, buf, 2048, 7 * 512), 2048);
	assert_memory_equal(buf, f->ram + DATA_GPA + 0x20005, 512);
	assert_memory_equal(buf + 512, f->ram + DATA_GPA + 0x30007, 1024);
	assert_int_equal(buf[1536], pattern_at(10 * 512));
}

static void test_unaligned_large(void **state)
{
	struct fx *f = *state;
	/* more than one bounce chunk (1 MiB), unaligned both in memory and on disk */
	uint32_t len = (2u << 20) + 1024;
	uint64_t g = DATA_GPA + 9;
	fill(f, g, len, 5);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 3, g, len, NULL), VIRTIO_BLK_S_OK);
	uint8_t *buf = malloc(len + 2048);
	assert_int_equal(pread(f->fd, buf, len + 2048, 1024), (ssize_t)(len + 2048));
	assert_int_equal(buf[511], pattern_at(1024 + 511));
	assert_memory_equal(buf + 512, f->ram + g, len);
	assert_int_equal(buf[512 + len], pattern_at(1024 + 512 + len));
	memset(f->ram + DATA_GPA + 0x300000 + 3, 0, len);
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 3, DATA_GPA + 0x300000 + 3, len, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(f->ram + DATA_GPA + 0x300000 + 3, f->ram + g, len);
	free(buf);
	/* aligned buffers take the direct path and agree */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 8, DATA_GPA + 0x600000, 8192, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(f->ram + DATA_GPA + 0x600000, f->ram + g + 5 * 512, 8192);
}

/* ---- injected faults (devices/fault.h) ---- */

static int fault_add_ok(struct fx *f, const char *text)
{
	char err[256];
	int id = fault_add_text(&f->b.faults, text, err, sizeof(err));
	if (id < 0)
		fprintf(stderr, "%s: %s\n", text, err);
	assert_true(id > 0);
	return id;
}

/* disk [off, off + len) of the file holds the setup pattern */
static void check_pattern(struct fx *f, uint64_t disk_off, uint64_t len)
{
	check_zero(f, disk_off, len, false);
}

/* disk [off, off + len) of the file holds guest RAM at gpa */
static void check_data(struct fx *f, uint64_t disk_off, uint64_t gpa, uint64_t len)
{
	uint8_t *buf = malloc(len);
	assert_int_equal(pread(f->fd, buf, len, 8192 + disk_off), (ssize_t)len);
	assert_memory_equal(buf, f->ram + gpa, len);
	free(buf);
}

/* ioerr on writes in a range: IOERR, the file unchanged, writes elsewhere fine; after:N;
 * once removed, the same write succeeds. */
static void test_fault_ioerr(void **state)
{
	struct fx *f = *state;
	uint32_t used;
	int id = fault_add_ok(f, "op=write range=64K+8K when=after:1 effect=ioerr");
	fill(f, DATA_GPA, 8192, 21);
	/* the first matching write passes (after:1) */
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 128, DATA_GPA, 4096, NULL), VIRTIO_BLK_S_OK);
	check_data(f, 65536, DATA_GPA, 4096);
	/* the second fails and leaves the file as it was, even the part outside the range */
	fill(f, DATA_GPA, 8192, 99);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 126, DATA_GPA, 8192, &used), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used, 1);
	check_pattern(f, 126 * 512, 1024);
	uint8_t buf[4096];
	assert_int_equal(pread(f->fd, buf, 4096, 8192 + 65536), 4096);
	fill(f, DATA_GPA + 0x20000, 4096, 21);
	assert_memory_equal(buf, f->ram + DATA_GPA + 0x20000, 4096); /* still the first write */
	check_pattern(f, 65536 + 4096, 4096 + 1024);
	/* outside the range, reads, flushes: untouched by the rule */
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 4096, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 144, DATA_GPA, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 128, DATA_GPA + 0x30000, 4096, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
	/* the last sector of the range still fails */
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 143, DATA_GPA, 512, NULL), VIRTIO_BLK_S_IOERR);
	check_pattern(f, 143 * 512, 512);
	assert_int_equal(f->b.st.ioerr, 2);
	/* removed: the device works normally */
	assert_int_equal(fault_remove(&f->b.faults, (unsigned)id), 0);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 126, DATA_GPA, 8192, NULL), VIRTIO_BLK_S_OK);
	check_data(f, 126 * 512, DATA_GPA, 8192);
	assert_int_equal(fault_fired(&f->b.faults), 2);
}

/* unsupp and ioerr on reads: the exact status, no data moved, used length 0 */
static void test_fault_read(void **state)
{
	struct fx *f = *state;
	uint32_t used;
	int id = fault_add_ok(f, "op=read when=once effect=unsupp");
	memset(f->ram + DATA_GPA, 0x5a, 4096);
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 0, DATA_GPA, 4096, &used), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(used, 0);
	assert_int_equal(f->ram[DATA_GPA], 0x5a);
	assert_int_equal(f->b.st.unsupp, 1);
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 0, DATA_GPA, 4096, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 4097);
	assert_int_equal(f->ram[DATA_GPA + 7], pattern_at(8192 + 7));
	assert_int_equal(fault_remove(&f->b.faults, (unsigned)id), 0);
	fault_add_ok(f, "op=any range=4K+512 effect=ioerr");
	memset(f->ram + DATA_GPA, 0x5a, 8192);
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 0, DATA_GPA, 8192, &used), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used, 0);
	assert_int_equal(f->ram[DATA_GPA], 0x5a);
	/* a zero-length read touches nothing: not faulted */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 8, 0, 0, NULL), VIRTIO_BLK_S_OK);
	/* GET_ID is not an op of the rules */
	assert_int_equal(rw(f, VIRTIO_BLK_T_GET_ID, 8, DATA_GPA, 20, NULL), VIRTIO_BLK_S_OK);
	/* malformed requests fail as they would anyway, before the rules */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 8, DATA_GPA, 100, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(fault_fired(&f->b.faults), 2);
}

/* torn:K: exactly the first K sectors reach the file, then IOERR; K beyond the write: all */
static void test_fault_torn(void **state)
{
	struct fx *f = *state;
	uint32_t used;
	int id = fault_add_ok(f, "op=write effect=torn:3");
	fill(f, DATA_GPA, 8192, 40);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 16, DATA_GPA, 8192, &used), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used, 1);
	check_pattern(f, 15 * 512, 512);
	check_data(f, 16 * 512, DATA_GPA, 3 * 512);
	check_pattern(f, 19 * 512, 8192 - 3 * 512 + 512);
	assert_int_equal(f->b.st.write_bytes, 3 * 512);
	/* several descriptors, the tear inside the second one */
	put_hdr(f, VIRTIO_BLK_T_OUT, 64);
	fill(f, DATA_GPA + 0x10000, 1024, 50);
	fill(f, DATA_GPA + 0x20000, 2048, 60);
	struct seg s[4] = { { HDR_GPA, 16, false }, { DATA_GPA + 0x10000, 1024, false },
			    { DATA_GPA + 0x20000, 2048, false }, { STAT_GPA, 1, true } };
	assert_int_equal(submit(f, s, 4), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	check_data(f, 64 * 512, DATA_GPA + 0x10000, 1024);
	check_data(f, 66 * 512, DATA_GPA + 0x20000, 512);
	check_pattern(f, 67 * 512, 1536);
	assert_int_equal(fault_remove(&f->b.faults, (unsigned)id), 0);
	/* K at least the write's sectors: all of it written, still IOERR */
	id = fault_add_ok(f, "op=write effect=torn:8");
	fill(f, DATA_GPA, 4096, 70);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 200, DATA_GPA, 4096, NULL), VIRTIO_BLK_S_IOERR);
	check_data(f, 200 * 512, DATA_GPA, 4096);
	check_pattern(f, 208 * 512, 512);
	fill(f, DATA_GPA, 2048, 71);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 300, DATA_GPA, 2048, NULL), VIRTIO_BLK_S_IOERR);
	check_data(f, 300 * 512, DATA_GPA, 2048);
	check_pattern(f, 304 * 512, 512);
	/* reads are not torn */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 300, DATA_GPA + 0x40000, 2048, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(f->ram + DATA_GPA + 0x40000, f->ram + DATA_GPA, 2048);
	/* removed: whole writes again */
	assert_int_equal(fault_remove(&f->b.faults, (unsigned)id), 0);
	fill(f, DATA_GPA, 8192, 80);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 16, DATA_GPA, 8192, NULL), VIRTIO_BLK_S_OK);
	check_data(f, 16 * 512, DATA_GPA, 8192);
	assert_int_equal(f->b.st.ioerr, 4);
}

static uint64_t mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

/* delay: the request completes normally, not sooner than the delay */
static void test_fault_delay(void **state)
{
	struct fx *f = *state;
	fault_add_ok(f, "op=read range=0+4K effect=delay:30ms");
	uint64_t t0 = mono_us();
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 0, DATA_GPA, 4096, NULL), VIRTIO_BLK_S_OK);
	assert_true(mono_us() - t0 >= 30000);
	assert_int_equal(f->ram[DATA_GPA + 9], pattern_at(8192 + 9));
	t0 = mono_us();
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 8, DATA_GPA, 4096, NULL), VIRTIO_BLK_S_OK);
	assert_true(mono_us() - t0 < 30000); /* outside the range: no wait */
	assert_int_equal(fault_fired(&f->b.faults), 1);
}

/* A request built by hand (no ring), for running blk_handle on several threads at once as
 * the workers of devices/vq_exec.c do. */
struct hand_req {
	struct vq_req r;
	struct virtio_blk_outhdr h;
	uint8_t data[4096];
	uint8_t status;
	struct blk_dev *b;
	int done;          /* atomic */
	uint64_t took_us;
};

static void hand_req_init(struct hand_req *q, struct blk_dev *b, uint64_t sector)
{
	memset(q, 0, sizeof(*q));
	assert_int_equal(vq_req_init(&q->r, 4), 0);
	q->b = b;
	q->h = (struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_IN, .sector = sector };
	q->status = 0xee;
	q->r.iov[0] = (struct iovec){ &q->h, sizeof(q->h) };
	q->r.iov[1] = (struct iovec){ q->data, sizeof(q->data) };
	q->r.iov[2] = (struct iovec){ &q->status, 1 };
	q->r.nseg = 3;
	q->r.nout = 1;
	q->r.out_len = sizeof(q->h);
	q->r.in_len = sizeof(q->data) + 1;
}

static void *hand_req_run(void *arg)
{
	struct hand_req *q = arg;
	uint64_t t0 = mono_us();
	blk_handle(q->b, 0, &q->r);
	q->took_us = mono_us() - t0;
	__atomic_store_n(&q->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A delayed request holds only its own worker: another request of the device, on another
 * worker, completes while the first one still sleeps. */
static void test_fault_delay_concurrent(void **state)
{
	struct fx *f = *state;
	fault_add_ok(f, "op=read range=0+4K effect=delay:300ms");
	struct hand_req slow, fast;
	hand_req_init(&slow, &f->b, 0);
	hand_req_init(&fast, &f->b, 64);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, hand_req_run, &slow), 0);
	while (fault_fired(&f->b.faults) == 0) /* the slow one is in its delay */
		usleep(1000);
	hand_req_run(&fast);
	assert_int_equal(fast.status, VIRTIO_BLK_S_OK);
	assert_true(fast.took_us < 300000);
	assert_false(__atomic_load_n(&slow.done, __ATOMIC_ACQUIRE));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(slow.status, VIRTIO_BLK_S_OK);
	assert_true(slow.took_us >= 300000);
	vq_req_free(&slow.r);
	vq_req_free(&fast.r);
}

/* FLUSH: ioerr (the backend is not asked), once; unsupp; even with flush = ignore */
static void test_fault_flush(void **state)
{
	struct fx *f = *state;
	fault_add_ok(f, "op=flush when=once effect=ioerr");
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->m->flushes, 0);
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(f->m->flushes, 1);
	fault_clear(&f->b.faults);
	fault_add_ok(f, "op=flush when=nth:2 effect=unsupp");
	f->b.flush_ignore = true;
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(f->m->flushes, 1);
	assert_int_equal(f->b.st.flushes, 5);
	/* a ranged op=any rule never matches a flush */
	fault_clear(&f->b.faults);
	fault_add_ok(f, "op=any range=0+1M effect=ioerr");
	assert_int_equal(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
	/* and the stats say it all */
	char *buf;
	size_t len;
	FILE *mf = open_memstream(&buf, &len);
	blk_stats_json(&f->b, mf);
	fclose(mf);
	assert_non_null(strstr(buf, "\"faults_injected\": 2, \"faults\": [{\"id\": 3, \"rule\": "
				    "\"op=any range=0+1M effect=ioerr\", \"matched\": 0, \"fired\": 0}]}"));
	free(buf);
}

/* DISCARD / WRITE_ZEROES: a segment in the range fails the whole request before any segment
 * is done (the file unchanged); segments elsewhere work */
static void test_fault_dwz(void **state)
{
	struct fx *f = *state;
	int id = fault_add_ok(f, "op=write-zeroes range=32K-36K effect=ioerr");
	struct virtio_blk_dwz_seg s[2] = { { 0, 8, 0 }, { 70, 2, 0 } }; /* 35K..36K: in */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, s, 2, 32), VIRTIO_BLK_S_IOERR);
	check_pattern(f, 0, 4096);
	check_pattern(f, 70 * 512, 1024);
	s[1].sector = 72; /* 36K: just past the end */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, s, 2, 32), VIRTIO_BLK_S_OK);
	check_zero(f, 0, 4096, true);
	check_zero(f, 72 * 512, 1024, true);
	check_pattern(f, 70 * 512, 1024);
	/* discards are another op */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, &(struct virtio_blk_dwz_seg){ 64, 8, 0 }, 1,
			     16), VIRTIO_BLK_S_OK);
	assert_int_equal(fault_remove(&f->b.faults, (unsigned)id), 0);
	fault_add_ok(f, "op=discard effect=unsupp");
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, &(struct virtio_blk_dwz_seg){ 256, 8, 0 }, 1,
			     16), VIRTIO_BLK_S_UNSUPP);
	check_pattern(f, 256 * 512, 4096);
	assert_int_equal(f->b.st.discards, 1);
	fault_clear(&f->b.faults);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &(struct virtio_blk_dwz_seg){ 70, 2, 0 },
			     1, 16), VIRTIO_BLK_S_OK);
	check_zero(f, 70 * 512, 1024, true);
}

/* ---- opening ---- */

static void test_open_errors(void **state)
{
	(void)state;
	char err[512];
	struct blk_backend *be;
	struct blk_file_opts o = { .path = "/nonexistent/cvmm-disk.img", .direct = true };
	assert_int_equal(blk_file_open(&o, &be, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/cvmm-disk.img"));
	assert_non_null(strstr(err, "no such file"));
	o.path = "/tmp";
	assert_int_equal(blk_file_open(&o, &be, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/tmp"));

	struct fx f = { 0 };
	o = (struct blk_file_opts){ .offset = 1000 };
	assert_int_equal(open_file(&f, 65536, o, err, sizeof(err), &be), -1);
	assert_non_null(strstr(err, "offset"));
	assert_non_null(strstr(err, "4096"));
	close(f.fd);
	unlink(f.path);
	o = (struct blk_file_opts){ .offset = 65536 };
	assert_int_equal(open_file(&f, 65536, o, err, sizeof(err), &be), -1);
	assert_non_null(strstr(err, "past the end"));
	close(f.fd);
	unlink(f.path);
	o = (struct blk_file_opts){ 0 };
	assert_int_equal(open_file(&f, 4000, o, err, sizeof(err), &be), -1);
	assert_non_null(strstr(err, "smaller than one"));
	close(f.fd);
	unlink(f.path);
	/* 10000 bytes: two whole 4 KiB blocks */
	assert_int_equal(open_file(&f, 10000, o, err, sizeof(err), &be), 0);
	assert_int_equal(be->size, 8192);
	be->ops->destroy(be);
	close(f.fd);
	unlink(f.path);
}

static void test_window_past_eof(void **state)
{
	(void)state;
	/* a 1 MiB window over a 64 KiB file: reads past EOF are zeroes, writes grow the file */
	struct fx *f = calloc(1, sizeof(*f));
	fx_ram(f);
	char err[256];
	struct blk_backend *be;
	assert_int_equal(open_file(f, 65536 + 100, (struct blk_file_opts){ .size = DISK_SIZE, .direct = true },
				   err, sizeof(err), &be), 0);
	assert_int_equal(blk_init(&f->b, be, err, sizeof(err)), 0);
	memset(f->ram + DATA_GPA, 0xff, 8192);
	/* straddling EOF (which is not even sector aligned) */
	assert_int_equal(rw(f, VIRTIO_BLK_T_IN, 120, DATA_GPA, 8192, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(f->ram[DATA_GPA], pattern_at(120 * 512));
	assert_int_equal(f->ram[DATA_GPA + 65536 + 99 - 120 * 512], pattern_at(65536 + 99));
	for (int i = 65536 + 100 - 120 * 512; i < 8192; i++)
		assert_int_equal(f->ram[DATA_GPA + i], 0);
	fill(f, DATA_GPA, 4096, 3);
	assert_int_equal(rw(f, VIRTIO_BLK_T_OUT, 1024, DATA_GPA, 4096, NULL), VIRTIO_BLK_S_OK);
	struct stat st;
	assert_int_equal(fstat(f->fd, &st), 0);
	assert_int_equal(st.st_size, 1024 * 512 + 4096);
	void **s = (void **)&f;
	teardown(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_rw, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_config_ro, setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_roundtrip, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_many_segments, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_stray_bytes, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_flush_ignore, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_flush_not_negotiated, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_backend_error, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_get_id, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_discard, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_write_zeroes, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_types, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_header_framing, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_no_status_byte, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_bad_chain, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_unaligned_bounce, setup_align4k, teardown),
		cmocka_unit_test_setup_teardown(test_unaligned_large, setup_align4k, teardown),
		cmocka_unit_test_setup_teardown(test_fault_ioerr, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_fault_read, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_fault_torn, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_fault_delay, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_fault_delay_concurrent, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_fault_flush, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_fault_dwz, setup_rw, teardown),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_window_past_eof),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
