/* blk-log-drive: run a script of writes and FLUSHes through cvmm's own blk write log
 * (devices/blk_log.c over devices/blk_file.c, attached as [blk] write_log does it:
 * blk_log_attach, base image included), so that the crash-state pipeline of
 * tests/integration/powercut.sh can check cvmm's writer without a VM.
 *
 *   blk-log-drive DISK LOG OPS DATA
 *
 * DISK exists (its size is the disk's); LOG is created, with LOG.base. OPS
 * (tests/tools/gen-crash-log.py --ops) holds one operation per line:
 *   W SECTOR NR OFFSET   a write of NR 512-byte sectors at SECTOR, its data at OFFSET of DATA
 *   B                    the writes since the last B or F run together, one thread each (as
 *                        requests in flight together do in cvmm): wait for all of them
 *   F                    a FLUSH (after the writes before it completed)
 * Exit 0, or 1 with a message (an operation failed, a bad line). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>

#include "devices/blk.h"
#include "devices/blk_log.h"

#define MAX_INFLIGHT 64

struct wr {
	struct blk_backend *be;
	uint64_t sector, nr;
	uint8_t *buf;
	int rc;
	pthread_t t;
};

static void *do_write(void *arg)
{
	struct wr *w = arg;
	struct iovec v = { w->buf, w->nr * 512 };
	w->rc = w->be->ops->write(w->be, &v, NULL, 1, w->sector * 512, w->nr * 512);
	return NULL;
}

/* Start the pending writes, one thread each, and wait for them all. */
static int run_batch(struct wr *w, unsigned n)
{
	int rc = 0;
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&w[i].t, NULL, do_write, &w[i]))
			return -EAGAIN;
	for (unsigned i = 0; i < n; i++) {
		pthread_join(w[i].t, NULL);
		if (w[i].rc && !rc)
			rc = w[i].rc;
		free(w[i].buf);
	}
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: blk-log-drive DISK LOG OPS DATA\n");
		return 64;
	}
	struct blk_file_opts o = { .path = argv[1] };
	struct blk_backend *be;
	char err[512], line[256];
	if (blk_file_open(&o, &be, err, sizeof(err)) ||
	    blk_log_attach(argv[1], 0, argv[2], &be, err, sizeof(err))) {
		fprintf(stderr, "blk-log-drive: %s\n", err);
		return 1;
	}
	FILE *ops = fopen(argv[3], "r");
	int data = open(argv[4], O_RDONLY | O_CLOEXEC);
	if (!ops || data < 0) {
		fprintf(stderr, "blk-log-drive: %s: %s\n", !ops ? argv[3] : argv[4], strerror(errno));
		return 1;
	}
	static struct wr w[MAX_INFLIGHT];
	unsigned n = 0, lineno = 0, nw = 0, nf = 0;
	int rc = 0;
	while (!rc && fgets(line, sizeof(line), ops)) {
		unsigned long long sec, nr, off;
		lineno++;
		if (sscanf(line, "W %llu %llu %llu", &sec, &nr, &off) == 3) {
			if (n == MAX_INFLIGHT || !nr || nr > 4096) {
				fprintf(stderr, "blk-log-drive: %s:%u: too many writes in flight or a bad "
					"count\n", argv[3], lineno);
				rc = 1;
				break;
			}
			w[n] = (struct wr){ .be = be, .sector = sec, .nr = nr, .buf = malloc(nr * 512) };
			if (!w[n].buf || pread(data, w[n].buf, nr * 512, (off_t)off) != (ssize_t)(nr * 512)) {
				fprintf(stderr, "blk-log-drive: %s:%u: no data at %llu of %s\n", argv[3],
					lineno, off, argv[4]);
				rc = 1;
				break;
			}
			n++;
			nw++;
		} else if (line[0] == 'B' || line[0] == 'F') {
			int r = run_batch(w, n);
			n = 0;
			if (!r && line[0] == 'F') {
				r = be->ops->flush(be);
				nf++;
			}
			if (r) {
				fprintf(stderr, "blk-log-drive: %s:%u: %s failed: %s\n", argv[3], lineno,
					line[0] == 'F' ? "FLUSH" : "a write", strerror(-r));
				rc = 1;
			}
		} else {
			fprintf(stderr, "blk-log-drive: %s:%u: bad line\n", argv[3], lineno);
			rc = 1;
		}
	}
	if (!rc && n && run_batch(w, n)) {
		fprintf(stderr, "blk-log-drive: a write failed\n");
		rc = 1;
	}
	uint64_t entries = blk_log_entries(be);
	be->ops->destroy(be);
	fclose(ops);
	close(data);
	if (!rc)
		printf("blk-log-drive: %u writes, %u FLUSHes, %llu log entries\n", nw, nf,
		       (unsigned long long)entries);
	return rc;
}
