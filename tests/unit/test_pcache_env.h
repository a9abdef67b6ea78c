/* Shared by the page-cache unit tests: a temp backing file, a pcache on it, a map with the fake
 * shadow table, and "guest" loads/stores that go through the fake (no exit) or, when the fake
 * says the access would exit, through pcache_fault like vcpu.c does. */
#ifndef CVMM_TEST_PCACHE_ENV_H
#define CVMM_TEST_PCACHE_ENV_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/page.h"
#include "mm/pcache.h"
#include "mm/shadow_fake.h"

#define ENV_BASE 0x100000000ULL
#define KIB 1024ULL
#define MIB (1024ULL * 1024)

struct env {
	char path[256];
	uint64_t size, gran;
	struct pcache *pc;
	struct shadow_fake *fk;
	struct pcache_map *m;
	uint8_t *model;   /* what the file must hold after a full writeback */
};

static inline uint8_t env_pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + i / 4096 + 1);
}

/* Create the backing file: `prefill` bytes of pattern (0 = sparse file of `size`). */
static inline void env_file(struct env *e, uint64_t size, uint64_t prefill)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(e->path, sizeof(e->path), "%s/cvmm-pcache-test.XXXXXX", dir);
	int fd = mkstemp(e->path);
	if (fd < 0) {
		perror("mkstemp");
		abort();
	}
	e->size = size;
	e->model = calloc(1, size);
	if (prefill) {
		uint8_t *b = malloc(prefill);
		for (uint64_t i = 0; i < prefill; i++)
			b[i] = e->model[i] = env_pattern(i);
		if (pwrite(fd, b, prefill, 0) != (ssize_t)prefill)
			abort();
		free(b);
	}
	close(fd);
}

static inline int env_map(struct env *e, uint64_t gran, bool writable)
{
	char err[256];
	e->gran = gran;
	e->fk = shadow_fake_create(ENV_BASE, gran, (uint32_t)(e->size / gran));
	int r = pcache_map_create(e->pc, &e->fk->base, ENV_BASE, gran, writable, &e->m, err,
				  sizeof(err));
	if (r)
		fprintf(stderr, "map: %s\n", err);
	return r;
}

static inline int env_open(struct env *e, uint64_t size, uint64_t prefill, uint64_t gran,
			   bool writable)
{
	char err[256];
	env_file(e, size, prefill);
	if (pcache_open(e->path, size, false, &e->pc, err, sizeof(err))) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	return env_map(e, gran, writable);
}

/* A second window onto the same cache: 1 MiB granules at ENV_BASE + 64 MiB (e->size must be
 * 4 MiB), through its own fake shadow (*f2). */
static inline struct pcache_map *env_second_map(struct env *e, struct shadow_fake **f2)
{
	char err[256];
	struct pcache_map *m2;
	*f2 = shadow_fake_create(ENV_BASE + 64 * MIB, 1 * MIB, 4);
	assert_int_equal(pcache_map_create(e->pc, &(*f2)->base, ENV_BASE + 64 * MIB, 1 * MIB, true,
					   &m2, err, sizeof(err)), 0);
	return m2;
}

static inline void env_close(struct env *e)
{
	if (e->m)
		pcache_map_destroy(e->m);
	if (e->pc)
		pcache_put(e->pc);
	unlink(e->path);
	free(e->model);
	memset(e, 0, sizeof(*e));
}

/* A guest access: the fake completes it like the CPU, or it exits into pcache_fault. */
static inline enum pcache_fault_result env_access(struct env *e, uint64_t off, bool write,
						  void *data, unsigned len)
{
	int r = shadow_fake_access(e->fk, ENV_BASE + off, write, data, len);
	if (r == 0)
		return PCACHE_FAULT_DONE;
	if (r < 0)
		return PCACHE_FAULT_OUTSIDE;
	return pcache_fault(e->m, ENV_BASE + off, write ? PCACHE_STORE : PCACHE_LOAD, data, len);
}

static inline enum pcache_fault_result env_store8(struct env *e, uint64_t off, uint64_t v)
{
	enum pcache_fault_result r = env_access(e, off, true, &v, 8);
	if (r == PCACHE_FAULT_DONE)
		memcpy(e->model + off, &v, 8);
	return r;
}

static inline uint64_t env_load8(struct env *e, uint64_t off)
{
	uint64_t v = 0;
	if (env_access(e, off, false, &v, 8) != PCACHE_FAULT_DONE)
		return 0xdeadbeefdeadbeefULL;
	return v;
}

/* The whole backing file equals the model, byte for byte. Returns the first bad offset or -1. */
static inline long long env_file_mismatch(struct env *e)
{
	uint8_t *b = malloc(e->size);
	int fd = open(e->path, O_RDONLY);
	ssize_t n = pread(fd, b, e->size, 0);
	close(fd);
	long long bad = -1;
	if (n != (ssize_t)e->size)
		bad = n < 0 ? 0 : n;
	for (uint64_t i = 0; bad < 0 && i < e->size; i++)
		if (b[i] != e->model[i])
			bad = (long long)i;
	free(b);
	return bad;
}

static inline void env_file_write(struct env *e, uint64_t off, const void *buf, size_t len)
{
	int fd = open(e->path, O_WRONLY);
	if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
		abort();
	close(fd);
	memcpy(e->model + off, buf, len);
}

static inline struct pcache_stats env_stats(struct env *e)
{
	struct pcache_stats s;
	pcache_stats_get(e->pc, &s);
	return s;
}

/* For the threaded tests: cmocka's assert_* longjmp to the test's frame, so they must not be
 * used from another thread; this prints where and aborts. */
#define CHECK(c)                                                                   \
	do {                                                                           \
		if (!(c)) {                                                                \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                               \
		}                                                                          \
	} while (0)

#endif
