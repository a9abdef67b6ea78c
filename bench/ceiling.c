/* The host's own speed at what the pmem rows measure in the guest: the ceiling a VMM cannot
 * beat on this machine. bench/run.py builds it (build/bench/ceiling) and runs:
 *
 *   ceiling touch FILE MIB        first touch: one 8-byte store per 4 KiB page of a fresh
 *                                 MAP_SHARED mapping of FILE (new, sparse), then fdatasync
 *   ceiling flush FILE PAGES REPS dirty PAGES pages of a MAP_SHARED mapping (one store each),
 *                                 time fdatasync (what QEMU's virtio-pmem FLUSH does); median
 *                                 of REPS after a warm-up
 *   ceiling coherent FILE PAGES REPS
 *                                 store a pattern into PAGES pages through a MAP_SHARED mapping,
 *                                 time an O_DIRECT pread of them (the kernel writes them back
 *                                 first), then of PAGES never-mapped pages; medians
 *
 * Each prints `metric=NAME value=V unit=U` lines, the names the guest uses. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ull
#define MAX_REPS 256

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what)
{
	fprintf(stderr, "ceiling: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint8_t *map(int fd, uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static uint64_t file_size(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		die("fstat");
	return (uint64_t)st.st_size;
}

static int touch(const char *path, uint64_t mib)
{
	uint64_t len = mib << 20;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
		die(path);
	uint8_t *p = map(fd, len);
	double t0 = now();
	for (uint64_t o = 0; o < len; o += PAGE)
		*(volatile uint64_t *)(p + o) = o + 1;
	double t1 = now();
	if (fdatasync(fd) < 0)
		die("fdatasync");
	double t2 = now();
	printf("metric=pmem_touch_mbps value=%.3f unit=MB/s\n", len / (t1 - t0) / 1e6);
	printf("metric=pmem_touch_us_per_page value=%.3f unit=us\n", (t1 - t0) * 1e6 / (len / PAGE));
	printf("metric=pmem_flush_after_touch_ms value=%.3f unit=ms\n", (t2 - t1) * 1e3);
	return 0;
}

static int flush(const char *path, uint64_t pages, int reps)
{
	int fd = open(path, O_RDWR);
	double lat[MAX_REPS];

	if (fd < 0)
		die(path);
	if (file_size(fd) < pages * PAGE) {
		fprintf(stderr, "ceiling: %s is smaller than %llu pages\n", path, (unsigned long long)pages);
		return 1;
	}
	uint8_t *p = map(fd, pages * PAGE);
	if (reps > MAX_REPS)
		reps = MAX_REPS;
	for (int r = 0; r <= reps; r++) {
		for (uint64_t i = 0; i < pages; i++)
			*(volatile uint64_t *)(p + i * PAGE) = (uint64_t)r << 32 | i;
		double t0 = now();
		if (fdatasync(fd) < 0)
			die("fdatasync");
		if (r)
			lat[r - 1] = now() - t0;
	}
	printf("metric=pmem_flush_%llu_us value=%.3f unit=us\n", (unsigned long long)pages,
	       median(lat, reps) * 1e6);
	return 0;
}

static int coherent(const char *path, uint64_t pages, int reps)
{
	int fd = open(path, O_RDWR), dfd = open(path, O_RDONLY | O_DIRECT);
	uint64_t bytes = pages * PAGE, dirty_at = 1ull << 20, clean_at;
	double dl[MAX_REPS], cl[MAX_REPS];
	int wrong = 0;
	void *buf;

	if (fd < 0 || dfd < 0)
		die(path);
	clean_at = (file_size(fd) / 2) & ~(PAGE - 1);
	if (dirty_at + bytes > clean_at) {
		fprintf(stderr, "ceiling: %s is too small\n", path);
		return 1;
	}
	if (posix_memalign(&buf, PAGE, bytes))
		die("posix_memalign");
	uint8_t *p = map(fd, dirty_at + bytes);
	if (reps > MAX_REPS)
		reps = MAX_REPS;
	for (int r = 0; r <= reps; r++) {
		uint64_t *w = (uint64_t *)(p + dirty_at), seed = (uint64_t)r * 0x9E3779B97F4A7C15ull + 1;
		for (uint64_t i = 0; i < bytes / 8; i++)
			w[i] = seed ^ i;
		double t0 = now();
		if (pread(dfd, buf, bytes, (off_t)dirty_at) != (ssize_t)bytes)
			die("pread");
		double t1 = now();
		for (uint64_t i = 0; i < bytes / 8; i++)
			if (((uint64_t *)buf)[i] != (seed ^ i)) {
				wrong++;
				break;
			}
		double t2 = now();
		if (pread(dfd, buf, bytes, (off_t)clean_at) != (ssize_t)bytes)
			die("pread");
		double t3 = now();
		if (r) {
			dl[r - 1] = t1 - t0;
			cl[r - 1] = t3 - t2;
		}
	}
	printf("metric=coherent_read_data_ok value=%d unit=bool\n", !wrong);
	printf("metric=coherent_read_dirty%llu_us value=%.3f unit=us\n", (unsigned long long)pages,
	       median(dl, reps) * 1e6);
	printf("metric=coherent_read_clean%llu_us value=%.3f unit=us\n", (unsigned long long)pages,
	       median(cl, reps) * 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "touch"))
		return touch(argv[2], strtoull(argv[3], NULL, 0));
	if (argc == 5 && !strcmp(argv[1], "flush"))
		return flush(argv[2], strtoull(argv[3], NULL, 0), atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "coherent"))
		return coherent(argv[2], strtoull(argv[3], NULL, 0), atoi(argv[4]));
	fprintf(stderr, "usage: ceiling touch FILE MIB | flush FILE PAGES REPS | coherent FILE PAGES REPS\n");
	return 64;
}
