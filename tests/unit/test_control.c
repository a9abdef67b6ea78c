/* The control socket (vmm/control.c) over a real UNIX socket and its thread, with a page cache
 * on a temp file behind it (fake shadow): every command, coherency of host-read / host-write
 * with the window, and bad input of every kind answered with a JSON error while the
 * connection (and the "VM") goes on: malformed JSON, unknown commands and keys, out-of-range
 * arguments, a line over the limit, a client vanishing mid-line, many clients. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tests/unit/test_pcache_env.h"
#include "vmm/control.h"
#include "devices/fault.h"
#include "vmm/control_json.h"

struct cx {
	struct env e;
	struct control *c;
	char path[108];
};

static int setup(void **state)
{
	struct cx *x = calloc(1, sizeof(*x));
	assert_int_equal(env_open(&x->e, 4 * MIB, 4 * MIB, 64 * KIB, true), 0);
	snprintf(x->path, sizeof(x->path), "/tmp/cvmm-test-ctl.%d", getpid());
	unlink(x->path);
	struct control_deps d = { .pc = x->e.pc, .image_limit = 4 * MIB };
	char err[256];
	if (control_start(&x->c, x->path, &d, err, sizeof(err)))
		fail_msg("control_start: %s", err);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct cx *x = *state;
	control_stop(x->c);
	struct stat st;
	assert_int_not_equal(stat(x->path, &st), 0); /* the socket is gone */
	env_close(&x->e);
	free(x);
	return 0;
}

static int conn(struct cx *x)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, x->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void sendall(int fd, const void *b, size_t n)
{
	const char *p = b;
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		assert_true(k > 0);
		p += k;
		n -= (size_t)k;
	}
}

/* One reply line (malloc'd, no newline), or NULL on EOF / 5 s timeout. */
static char *recv_line(int fd)
{
	size_t cap = 1 << 16, len = 0;
	char *b = malloc(cap);
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		if (poll(&pf, 1, 5000) <= 0) {
			free(b);
			return NULL;
		}
		if (len + 4096 > cap)
			b = realloc(b, cap *= 2);
		ssize_t n = recv(fd, b + len, cap - len - 1, 0);
		if (n <= 0) {
			free(b);
			return NULL;
		}
		len += (size_t)n;
		char *nl = memchr(b, '\n', len);
		if (nl) {
			*nl = 0;
			assert_true((size_t)(nl - b) == len - 1); /* one reply per request */
			return b;
		}
	}
}

/* Send one line, get the reply; check ok or error (and a substring of it). */
static char *ask(int fd, const char *line)
{
	sendall(fd, line, strlen(line));
	sendall(fd, "\n", 1);
	char *r = recv_line(fd);
	if (!r)
		fail_msg("no reply to %s", line);
	return r;
}

static void expect(int fd, const char *line, bool ok, const char *has)
{
	char *r = ask(fd, line);
	bool got_ok = !strncmp(r, "{\"ok\":true", 10);
	bool got_err = !strncmp(r, "{\"ok\":false,\"error\":\"", 21);
	if (got_ok != ok || (!ok && !got_err) || (has && !strstr(r, has)))
		fail_msg("request %.200s: reply %.300s (wanted %s%s%s)", line, r,
			 ok ? "ok" : "an error", has ? " with " : "", has ? has : "");
	free(r);
}

static void test_stats_and_flush(void **state)
{
	struct cx *x = *state;
	int fd = conn(x);
	expect(fd, "{\"cmd\":\"stats\"}", true, "\"pcache\":{");
	expect(fd, " { \"cmd\" : \"stats\" } ", true, "\"window_size\":4194304");
	expect(fd, "{\"cmd\":\"flush\"}", true, NULL);
	/* a flush error reaches this client once (its own errseq cursor) */
	assert_int_equal(env_store8(&x->e, 4096, 1), PCACHE_FAULT_DONE);
	struct pcache_inject inj = { .pwrite_errno = EIO, .pwrite_count = 1 };
	pcache_set_inject(x->e.pc, &inj);
	expect(fd, "{\"cmd\":\"flush\"}", false, "flush: Input/output error");
	expect(fd, "{\"cmd\":\"flush\"}", true, NULL);
	close(fd);
}

/* host-write / host-read are coherent with the window (e1 from the host's side). */
static void test_host_read_write_coherent(void **state)
{
	struct cx *x = *state;
	int fd = conn(x);
	/* the guest dirties a page; host-read sees it without a FLUSH */
	assert_int_equal(env_store8(&x->e, 8192, 0x1122334455667788ULL), PCACHE_FAULT_DONE);
	char *r = ask(fd, "{\"cmd\":\"host-read\",\"offset\":8192,\"length\":8}");
	assert_non_null(strstr(r, "\"data\":\"8877665544332211\""));
	free(r);
	/* host-write into that dirty, mapped page: the guest loads the new bytes, and its store
	 * outside the written range survives */
	expect(fd, "{\"cmd\":\"host-write\",\"offset\":8200,\"data\":\"DEADbeef\"}", true,
	       "\"length\":4");
	memcpy(x->e.model + 8200, "\xde\xad\xbe\xef", 4);
	assert_int_equal(env_load8(&x->e, 8192), 0x1122334455667788ULL);
	assert_int_equal(env_load8(&x->e, 8200), *(uint64_t *)(x->e.model + 8200));
	r = ask(fd, "{\"cmd\":\"host-read\",\"offset\":8198,\"length\":8}");
	assert_non_null(strstr(r, "\"data\":\"2211deadbeef"));
	free(r);
	expect(fd, "{\"cmd\":\"flush\"}", true, NULL);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	/* invalidate after a host tool changed the file behind our back (page mapped clean) */
	(void)env_load8(&x->e, 65536);
	int f = open(x->e.path, O_WRONLY);
	assert_int_equal(pwrite(f, "hello", 5, 65536 + 10), 5);
	close(f);
	memcpy(x->e.model + 65536 + 10, "hello", 5);
	expect(fd, "{\"cmd\":\"invalidate\",\"offset\":65536,\"length\":4096}", true, NULL);
	assert_int_equal(env_load8(&x->e, 65536 + 8), *(uint64_t *)(x->e.model + 65536 + 8));
	close(fd);
}

/* Bad input of every kind: answered, and the connection goes on. */
static void test_bad_input_answered(void **state)
{
	struct cx *x = *state;
	int fd = conn(x);
	static const struct {
		const char *line, *has;
	} bad[] = {
		{ "{", "bad JSON" },
		{ "}", "bad JSON" },
		{ "[1,2]", "bad JSON" },
		{ "\"stats\"", "bad JSON" },
		{ "{\"cmd\":}", "bad JSON" },
		{ "{\"cmd\":\"stats\",}", "bad JSON" },
		{ "{\"cmd\":\"stats\"} x", "trailing" },
		{ "{\"cmd\":\"stats\",\"cmd\":\"flush\"}", "duplicate" },
		{ "{\"cmd\":{\"a\":1}}", "nested" },
		{ "{\"cmd\":[]}", "nested" },
		{ "{\"offset\":1.5}", "integers" },
		{ "{\"offset\":1e3}", "integers" },
		{ "{\"offset\":01}", "leading zero" },
		{ "{\"offset\":-}", "digit" },
		{ "{\"offset\":99999999999999999999}", "out of range" },
		{ "{\"cmd\":\"st\x01" "ats\"}", "control character" },
		{ "{\"cmd\":\"\xff\"}", "UTF-8" },
		{ "{\"cmd\":\"\xc0\xaf\"}", "UTF-8" },
		{ "{\"cmd\":\"\\u0000\"}", "\\\\u0000" },
		{ "{\"cmd\":\"\\ud800\"}", "surrogate" },
		{ "{\"cmd\":\"\\q\"}", "escape" },
		{ "{\"cmd\":\"stats", "unterminated" },
		{ "{\"cmd\":tru}", "bad JSON" },
		{ "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1}", "key longer" },
		{ "{}", "missing \\\"cmd\\\"" },
		{ "{\"cmd\":5}", "must be a string" },
		{ "{\"cmd\":\"frobnicate\"}", "unknown cmd" },
		{ "{\"cmd\":\"stats\",\"verbose\":true}", "unknown key" },
		{ "{\"cmd\":\"host-read\",\"offset\":0}", "missing \\\"length\\\"" },
		{ "{\"cmd\":\"host-read\",\"offset\":\"0\",\"length\":4}", "must be an integer" },
		{ "{\"cmd\":\"host-read\",\"offset\":-1,\"length\":4}", "negative" },
		{ "{\"cmd\":\"host-read\",\"offset\":0,\"length\":0}", "out of range" },
		{ "{\"cmd\":\"host-read\",\"offset\":0,\"length\":262145}", "out of range" },
		{ "{\"cmd\":\"host-read\",\"offset\":4194300,\"length\":8}", "beyond the image" },
		{ "{\"cmd\":\"host-read\",\"offset\":9223372036854775807,\"length\":8}", "beyond" },
		{ "{\"cmd\":\"invalidate\",\"offset\":4194304,\"length\":1}", "beyond" },
		{ "{\"cmd\":\"host-write\",\"offset\":0}", "missing \\\"data\\\"" },
		{ "{\"cmd\":\"host-write\",\"offset\":0,\"data\":7}", "must be a string" },
		{ "{\"cmd\":\"host-write\",\"offset\":0,\"data\":\"abc\"}", "odd number" },
		{ "{\"cmd\":\"host-write\",\"offset\":0,\"data\":\"zz\"}", "not a hex digit" },
		{ "{\"cmd\":\"host-write\",\"offset\":0,\"data\":\"\"}", "out of range" },
		{ "{\"cmd\":\"host-write\",\"offset\":4194303,\"data\":\"0000\"}", "beyond" },
		{ "{\"cmd\":\"truncate\",\"size\":4095}", "multiple of 4096" },
		{ "{\"cmd\":\"truncate\",\"size\":8388608}", "beyond the image" },
		{ "{\"cmd\":\"truncate\",\"size\":null}", "must be an integer" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect(fd, bad[i].line, false, bad[i].has);
	/* the same connection still works; blank lines and CRLF are fine */
	sendall(fd, "\n\r\n  \n", 6);
	expect(fd, "{\"cmd\":\"stats\"}\r", true, NULL);
	/* nothing happened to the file or the window */
	assert_int_equal(env_file_mismatch(&x->e), -1);
	close(fd);
}

/* A line over the limit is answered once and skipped; the next line works. */
static void test_huge_line(void **state)
{
	struct cx *x = *state;
	int fd = conn(x);
	size_t n = CONTROL_LINE_MAX + 100000;
	char *big = malloc(n);
	memset(big, 'x', n);
	sendall(fd, big, n);
	sendall(fd, "\n", 1);
	char *r = recv_line(fd);
	assert_non_null(r);
	assert_non_null(strstr(r, "line longer than"));
	free(r);
	expect(fd, "{\"cmd\":\"stats\"}", true, NULL);
	/* a maximal host-write (256 KiB = 512 Ki hex digits) fits in a line */
	size_t dlen = CONTROL_DATA_MAX;
	char *line = malloc(2 * dlen + 64);
	int k = sprintf(line, "{\"cmd\":\"host-write\",\"offset\":0,\"data\":\"");
	for (size_t i = 0; i < dlen; i++)
		memcpy(line + k + 2 * i, "a5", 2);
	strcpy(line + k + 2 * dlen, "\"}");
	expect(fd, line, true, "\"length\":262144");
	memset(x->e.model, 0xa5, dlen);
	r = ask(fd, "{\"cmd\":\"host-read\",\"offset\":0,\"length\":262144}");
	assert_true(strlen(r) > 2 * dlen);
	free(r);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	free(line);
	free(big);
	close(fd);
}

/* Clients that vanish mid-line, clients in a row, clients at once. */
static void test_clients(void **state)
{
	struct cx *x = *state;
	for (int i = 0; i < 20; i++) {
		int fd = conn(x);
		if (i % 3 == 0) {
			sendall(fd, "{\"cmd\":\"host-wr", 15); /* mid-line, then gone */
		} else if (i % 3 == 1) {
			sendall(fd, "{\"cmd\":\"stats\"}\n", 16); /* gone before reading the reply */
		} else {
			expect(fd, "{\"cmd\":\"stats\"}", true, NULL);
		}
		close(fd);
	}
	/* CONTROL_CLIENTS at once, each served; one more is told and closed */
	int fds[CONTROL_CLIENTS];
	for (int i = 0; i < CONTROL_CLIENTS; i++)
		fds[i] = conn(x);
	for (int i = CONTROL_CLIENTS - 1; i >= 0; i--)
		expect(fds[i], "{\"cmd\":\"stats\"}", true, NULL);
	int extra = conn(x);
	char *r = recv_line(extra);
	assert_non_null(r);
	assert_non_null(strstr(r, "too many"));
	free(r);
	close(extra);
	/* a silent client does not hold up the others */
	sendall(fds[0], "{\"cmd\":", 7);
	expect(fds[1], "{\"cmd\":\"stats\"}", true, NULL);
	for (int i = 0; i < CONTROL_CLIENTS; i++)
		close(fds[i]);
	int fd = conn(x);
	r = ask(fd, "{\"cmd\":\"stats\"}");
	assert_non_null(strstr(r, "\"refused\":1"));
	free(r);
	close(fd);
}

/* ---- issue 14 defect 4: one slow client must not stall the others ---------------------- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct slow_reader {
	int fd;
	volatile bool stop;
	size_t got;
};

/* Reads 4 KiB every 20 ms (200 KiB/s): always making progress, never keeping up. */
static void *slow_read(void *p)
{
	struct slow_reader *s = p;
	char buf[4096];
	while (!s->stop) {
		ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			s->got += (size_t)n;
		usleep(20 * 1000);
	}
	return NULL;
}

/* A client pipelines 40 host-reads of 256 KiB (20 MiB of hex replies) and reads them back
 * slowly; another client's stats must still be answered at once, every time. */
static void test_slow_reader_beside_fast(void **state)
{
	struct cx *x = *state;
	int slow = conn(x);
	int rcv = 4096;
	setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	const char *req = "{\"cmd\":\"host-read\",\"offset\":0,\"length\":262144}\n";
	for (int i = 0; i < 40; i++)
		sendall(slow, req, strlen(req));
	struct slow_reader sr = { .fd = slow };
	pthread_t t;
	pthread_create(&t, NULL, slow_read, &sr);
	usleep(200 * 1000); /* the server is now busy with the slow client's replies */
	int fast = conn(x);
	double worst = 0;
	bool all_ok = true;
	for (int i = 0; i < 10 && all_ok; i++) {
		double t0 = now_s();
		sendall(fast, "{\"cmd\":\"stats\"}\n", 16);
		char *r = recv_line(fast); /* NULL after 5 s */
		all_ok = r && !strncmp(r, "{\"ok\":true", 10);
		free(r);
		double dt = now_s() - t0;
		if (dt > worst)
			worst = dt;
		usleep(100 * 1000);
	}
	sr.stop = true; /* before any assertion: a failing test must not leave it running */
	pthread_join(t, NULL);
	close(slow);
	if (!all_ok || worst > 2.0) /* typically a few ms; the old code never answered */
		fail_msg("the fast client's stats %s (slowest %.2f s) behind a slow reader",
			 all_ok ? "were slow" : "went unanswered", worst);
	assert_true(sr.got > 0); /* the slow client was being served too */
	close(fast);
}

/* Many idle connections (more than any small fixed cap) do not lock everyone else out. */
static void test_idle_connections_do_not_lock_out(void **state)
{
	struct cx *x = *state;
	enum { IDLE = 100 };
	int fds[IDLE];
	for (int i = 0; i < IDLE; i++)
		fds[i] = conn(x);
	usleep(1500 * 1000);
	int fd = conn(x);
	char *r = ask(fd, "{\"cmd\":\"stats\"}");
	assert_true(!strncmp(r, "{\"ok\":true", 10));
	free(r);
	/* made room by closing the longest-idle one (the first), which was told why */
	r = recv_line(fds[0]);
	assert_non_null(r);
	assert_non_null(strstr(r, "idle control connection closed"));
	free(r);
	close(fd);
	for (int i = 0; i < IDLE; i++)
		close(fds[i]);
}

/* Pipelined requests, then the client shuts down its sending side: every complete request is
 * answered, in order, then the connection closes; an unfinished last line is dropped. */
static void test_pipelined_then_shutdown(void **state)
{
	struct cx *x = *state;
	int fd = conn(x);
	const char *reqs = "{\"cmd\":\"stats\"}\n{\"cmd\":\"nope\"}\n"
			   "{\"cmd\":\"host-read\",\"offset\":0,\"length\":262144}\n"
			   "{\"cmd\":\"stats\"}\n{\"cmd\":\"sta";
	sendall(fd, reqs, strlen(reqs));
	shutdown(fd, SHUT_WR);
	const char *want[] = { "{\"ok\":true,\"exits\"", "{\"ok\":false,\"error\":\"unknown cmd",
			       "{\"ok\":true,\"offset\":0", "{\"ok\":true,\"exits\"" };
	/* read everything up to EOF, then split */
	size_t cap = 1 << 21, len = 0;
	char *b = malloc(cap);
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		assert_int_equal(poll(&pf, 1, 5000), 1);
		ssize_t n = recv(fd, b + len, cap - len - 1, 0);
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	b[len] = 0;
	char *p = b;
	for (int i = 0; i < 4; i++) {
		char *nl = strchr(p, '\n');
		assert_non_null(nl);
		*nl = 0;
		if (strncmp(p, want[i], strlen(want[i])))
			fail_msg("reply %d: %.100s (wanted %s...)", i, p, want[i]);
		p = nl + 1;
	}
	assert_int_equal(*p, 0); /* nothing for the unfinished line */
	free(b);
	close(fd);
}

/* A silent connection is closed after idle_ms; a reply not sent within reply_ms drops its
 * client; the others never notice. */
static void test_idle_and_reply_timeouts(void **state)
{
	struct cx *x = *state;
	control_stop(x->c);
	struct control_deps d = { .pc = x->e.pc, .image_limit = 4 * MIB, .idle_ms = 600,
				  .reply_ms = 600 };
	char err[256];
	if (control_start(&x->c, x->path, &d, err, sizeof(err)))
		fail_msg("control_start: %s", err);
	int idle = conn(x), midline = conn(x), stuck = conn(x), busy = conn(x);
	sendall(midline, "{\"cmd\":", 7);
	int rcv = 4096;
	setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	const char *req = "{\"cmd\":\"host-read\",\"offset\":0,\"length\":262144}\n";
	sendall(stuck, req, strlen(req)); /* and never read */
	for (int i = 0; i < 12; i++) {   /* a client that keeps talking stays (>= 1.2 s) */
		expect(busy, "{\"cmd\":\"stats\"}", true, NULL);
		usleep(100 * 1000);
	}
	char c;
	struct pollfd pf[2] = { { idle, POLLIN, 0 }, { midline, POLLIN, 0 } };
	assert_int_equal(poll(pf, 2, 0), 2);
	assert_int_equal(recv(idle, &c, 1, MSG_DONTWAIT), 0);    /* closed: EOF */
	assert_int_equal(recv(midline, &c, 1, MSG_DONTWAIT), 0);
	char *r = ask(busy, "{\"cmd\":\"stats\"}");
	if (!strstr(r, "\"timed_out\":3"))
		fail_msg("wanted 3 connections timed out: %s", strstr(r, "\"control\""));
	free(r);
	/* the stuck one was dropped: reading now gets part of its reply, then EOF */
	ssize_t n;
	char buf[65536];
	size_t got = 0;
	while ((n = recv(stuck, buf, sizeof(buf), 0)) > 0)
		got += (size_t)n;
	assert_true(got < 2 * 262144);
	close(idle);
	close(midline);
	close(stuck);
	close(busy);
}

/* invalidate waits (briefly) for a DMA pin to go away. */
static void *unpin_later(void *p)
{
	struct cx *x = p;
	usleep(50 * 1000);
	pcache_unpin(x->e.pc, 0, 4096, false);
	return NULL;
}

static void test_invalidate_waits_for_pin(void **state)
{
	struct cx *x = *state;
	int fd = conn(x);
	(void)env_load8(&x->e, 0);
	assert_int_equal(pcache_pin(x->e.pc, 0, 4096, false), 0);
	pthread_t t;
	pthread_create(&t, NULL, unpin_later, x);
	expect(fd, "{\"cmd\":\"invalidate\",\"offset\":0,\"length\":8192}", true, NULL);
	pthread_join(t, NULL);
	assert_false(pcache_page_flags(x->e.pc, 0) & PG_UPTODATE);
	close(fd);
}

static void test_truncate(void **state)
{
	struct cx *x = *state;
	int fd = conn(x);
	assert_int_equal(env_store8(&x->e, 3 * MIB + 8, 5), PCACHE_FAULT_DONE);
	expect(fd, "{\"cmd\":\"truncate\",\"size\":3145728}", true, "\"size\":3145728");
	assert_int_equal(pcache_file_size(x->e.pc), 3 * MIB);
	assert_int_equal(env_load8(&x->e, 3 * MIB + 8), 0); /* beyond EOF: zeros */
	expect(fd, "{\"cmd\":\"truncate\",\"size\":4194304}", true, NULL);
	assert_int_equal(pcache_file_size(x->e.pc), 4 * MIB);
	memset(x->e.model + 3 * MIB, 0, 1 * MIB);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	close(fd);
}

/* The socket path: a stale socket is replaced, a live one or another file is an error. */
static void test_socket_path(void **state)
{
	struct cx *x = *state;
	struct control *c2;
	struct control_deps d = { .pc = x->e.pc, .image_limit = 4 * MIB };
	char err[256];
	assert_int_equal(control_start(&c2, x->path, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "another process is listening"));
	char other[128];
	snprintf(other, sizeof(other), "%s.file", x->path);
	FILE *f = fopen(other, "w");
	fclose(f);
	assert_int_equal(control_start(&c2, other, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a socket"));
	assert_non_null(strstr(err, other));
	unlink(other);
	/* a stale socket (bound, nobody listening) */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/cvmm-test-ctl.%d.stale", getpid());
	unlink(sa.sun_path);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	assert_int_equal(control_start(&c2, sa.sun_path, &d, err, sizeof(err)), 0);
	control_stop(c2);
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	assert_int_equal(control_start(&c2, longp, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than"));
}

/* No page cache (a VM without [pmem]): image commands are refused, stats still work. */
static void test_no_pcache(void **state)
{
	(void)state;
	struct control_deps d = { 0 };
	struct control *c = control_new(&d);
	const char *q = "{\"cmd\":\"host-read\",\"offset\":0,\"length\":1}";
	char *r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "no [pmem] window"));
	free(r);
	r = control_handle(c, "{\"cmd\":\"stats\"}", 15);
	assert_non_null(strstr(r, "\"pcache\":null"));
	free(r);
	r = control_handle(c, "{\"cmd\":\"flush\"}", 15);
	assert_non_null(strstr(r, "nothing to flush"));
	free(r);
	control_free(c);
}

/* Several devices (issue 15 item 1): "device" picks whose file a request works on; without it
 * the default (the first window); unknown names and cacheless disks are refused by name. */
static void test_named_devices(void **state)
{
	struct cx *x = *state; /* its cache is device "pmem", the default */
	struct env b = { 0 };
	assert_int_equal(env_open(&b, 2 * MIB, 0, 64 * KIB, true), 0);
	struct control_deps d = { .pc = x->e.pc, .image_limit = 4 * MIB };
	d.dev[d.ndev++] = (struct control_device){ .name = "scratch", .kind = "blk" };
	d.dev[d.ndev++] = (struct control_device){ .name = "pmem", .kind = "pmem", .pc = x->e.pc,
						   .image_limit = 4 * MIB };
	d.dev[d.ndev++] = (struct control_device){ .name = "log", .kind = "pmem", .pc = b.pc,
						   .image_limit = 2 * MIB };
	struct control *c = control_new(&d);
	char *r;
	const char *q = "{\"cmd\":\"host-write\",\"device\":\"log\",\"offset\":8192,"
			"\"data\":\"c0ffee\"}";
	r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "\"ok\":true"));
	free(r);
	/* it went to log's file, not to the default's */
	uint8_t got[3];
	int fd = open(b.path, O_RDONLY);
	assert_int_equal(pread(fd, got, 3, 8192), 3);
	close(fd);
	assert_memory_equal(got, "\xc0\xff\xee", 3);
	fd = open(x->e.path, O_RDONLY);
	assert_int_equal(pread(fd, got, 3, 8192), 3);
	close(fd);
	assert_memory_not_equal(got, "\xc0\xff\xee", 3);
	q = "{\"cmd\":\"host-read\",\"device\":\"log\",\"offset\":8192,\"length\":3}";
	r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "\"data\":\"c0ffee\""));
	free(r);
	/* each device's own bounds */
	q = "{\"cmd\":\"host-read\",\"device\":\"log\",\"offset\":3145728,\"length\":1}";
	r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "beyond the image (2097152 bytes)"));
	free(r);
	q = "{\"cmd\":\"host-read\",\"offset\":3145728,\"length\":1}";
	r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "\"ok\":true"));
	free(r);
	q = "{\"cmd\":\"host-read\",\"device\":\"nope\",\"offset\":0,\"length\":1}";
	r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "nope\\\" (devices: scratch, pmem, log)"));
	free(r);
	q = "{\"cmd\":\"invalidate\",\"device\":\"scratch\",\"offset\":0,\"length\":1}";
	r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "scratch\\\" has no page cache"));
	free(r);
	q = "{\"cmd\":\"flush\",\"device\":\"scratch\"}";
	r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "scratch\\\" is read-only"));
	free(r);
	q = "{\"cmd\":\"flush\",\"device\":7}";
	r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "device\\\" must be a string"));
	free(r);
	q = "{\"cmd\":\"flush\",\"device\":\"log\"}";
	r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "\"ok\":true"));
	free(r);
	r = control_handle(c, "{\"cmd\":\"stats\"}", 15);
	assert_non_null(strstr(r, "\"devices\":{\"scratch\":{\"kind\":\"blk\",\"stats\":null},"
				  "\"pmem\":{\"kind\":\"pmem\""));
	assert_non_null(strstr(r, "\"log\":{\"kind\":\"pmem\""));
	free(r);
	control_free(c);
	env_close(&b);
}

/* Fault rules over the socket (issue 15 item 2): added, listed, removed, on the named device
 * (or the only one); a bad rule is refused with the engine's message. */
static void test_fault_commands(void **state)
{
	(void)state;
	struct fault_set fa, fb;
	fault_set_init(&fa, "a", FAULT_OPS_BLK, FAULT_EFFECTS_BLK);
	fault_set_init(&fb, "p", FAULT_OPS_PMEM, FAULT_EFFECTS_PMEM);
	struct control_deps d = { 0 };
	d.dev[d.ndev++] = (struct control_device){ .name = "a", .kind = "blk", .faults = &fa };
	d.dev[d.ndev++] = (struct control_device){ .name = "p", .kind = "pmem", .faults = &fb };
	struct control *c = control_new(&d);
	const struct { const char *q, *want; } cases[] = {
		{ "{\"cmd\":\"fault-add\",\"device\":\"a\",\"rule\":\"op=write effect=ioerr\"}",
		  "{\"ok\":true,\"device\":\"a\",\"id\":1}" },
		{ "{\"cmd\":\"fault-add\",\"device\":\"a\",\"rule\":\"op=read when=once effect=unsupp\"}",
		  "\"id\":2}" },
		{ "{\"cmd\":\"fault-list\",\"device\":\"a\"}",
		  "\"rule\": \"op=read when=once effect=unsupp\"" },
		{ "{\"cmd\":\"fault-add\",\"device\":\"p\",\"rule\":\"op=write effect=ioerr\"}",
		  "\"ok\":false" },                       /* pmem has no write op */
		{ "{\"cmd\":\"fault-add\",\"device\":\"a\",\"rule\":\"op=write effect=bogus\"}",
		  "bogus" },
		{ "{\"cmd\":\"fault-add\",\"rule\":\"op=write effect=ioerr\"}", "give \\\"device\\\"" },
		{ "{\"cmd\":\"fault-add\",\"device\":\"a\"}", "missing \\\"rule\\\"" },
		{ "{\"cmd\":\"fault-remove\",\"device\":\"a\",\"id\":1}", "\"ok\":true" },
		{ "{\"cmd\":\"fault-remove\",\"device\":\"a\",\"id\":1}", "has no rule 1" },
		{ "{\"cmd\":\"fault-remove\",\"device\":\"a\",\"id\":\"all\"}", "\"ok\":true" },
		{ "{\"cmd\":\"fault-list\",\"device\":\"a\"}", "\"faults\":[],\"fired\":0}" },
		{ "{\"cmd\":\"fault-add\",\"device\":\"p\",\"rule\":\"op=flush when=nth:2 effect=ioerr\"}",
		  "\"id\":1}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = control_handle(c, cases[i].q, strlen(cases[i].q));
		if (!strstr(r, cases[i].want))
			fail_msg("%s\n-> %s\nwanted %s", cases[i].q, r, cases[i].want);
		free(r);
	}
	/* the rule added over the socket is the device's: the 2nd flush fails */
	struct fault_action act;
	assert_false(fault_check(&fb, FAULT_OP_FLUSH, NULL, 0, &act));
	assert_true(fault_check(&fb, FAULT_OP_FLUSH, NULL, 0, &act));
	assert_int_equal(act.effect, FAULT_IOERR);
	control_free(c);
	/* one device: "device" may be left out */
	struct control_deps d1 = { 0 };
	d1.dev[d1.ndev++] = (struct control_device){ .name = "a", .kind = "blk", .faults = &fa };
	c = control_new(&d1);
	const char *q = "{\"cmd\":\"fault-add\",\"rule\":\"op=flush effect=ioerr\"}";
	char *r = control_handle(c, q, strlen(q));
	assert_non_null(strstr(r, "\"device\":\"a\""));
	free(r);
	control_free(c);
	fault_set_destroy(&fa);
	fault_set_destroy(&fb);
}

struct cut_rec {
	int cuts, marks;
	bool sample;
	uint64_t seed;
	char device[32], text[64];
};

static void rec_cut(void *ctx, bool sample, uint64_t seed)
{
	struct cut_rec *r = ctx;
	r->cuts++;
	r->sample = sample;
	r->seed = seed;
}

static int rec_mark(void *ctx, const char *device, const char *text, char *err, size_t errlen)
{
	struct cut_rec *r = ctx;
	if (device && strcmp(device, "a")) {
		snprintf(err, errlen, "no device \"%s\"", device);
		return -1;
	}
	r->marks++;
	snprintf(r->device, sizeof(r->device), "%s", device ? device : "(all)");
	snprintf(r->text, sizeof(r->text), "%s", text);
	return 2;
}

/* "mark" and "power-cut" (issue 16): arguments checked, then handed to the VM. */
static void test_mark_and_power_cut(void **state)
{
	(void)state;
	struct cut_rec rec = { 0 };
	struct control_deps d = { .ctx = &rec, .power_cut = rec_cut, .mark = rec_mark };
	struct control *c = control_new(&d);
	const struct { const char *q, *want; } cases[] = {
		{ "{\"cmd\":\"mark\",\"text\":\"before fsync\"}", "{\"ok\":true,\"logs\":2}" },
		{ "{\"cmd\":\"mark\",\"device\":\"a\",\"text\":\"x\"}", "\"ok\":true" },
		{ "{\"cmd\":\"mark\",\"device\":\"b\",\"text\":\"x\"}", "mark: no device" },
		{ "{\"cmd\":\"mark\"}", "missing \\\"text\\\"" },
		{ "{\"cmd\":\"mark\",\"text\":5}", "must be a string" },
		{ "{\"cmd\":\"power-cut\",\"state\":\"sample:x\"}", "bad state" },
		{ "{\"cmd\":\"power-cut\",\"when\":1}", "unknown key" },
		{ "{\"cmd\":\"power-cut\",\"state\":\"sample:9\"}", "{\"ok\":true}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = control_handle(c, cases[i].q, strlen(cases[i].q));
		if (!strstr(r, cases[i].want))
			fail_msg("%s\n-> %s\nwanted %s", cases[i].q, r, cases[i].want);
		free(r);
	}
	assert_int_equal(rec.marks, 2);
	assert_string_equal(rec.device, "a");
	assert_string_equal(rec.text, "x");
	assert_int_equal(rec.cuts, 1);          /* the bad requests did not cut */
	assert_true(rec.sample);
	assert_int_equal(rec.seed, 9);
	control_free(c);
	/* without the VM's hooks: refused, not crashed */
	struct control_deps none = { 0 };
	c = control_new(&none);
	char *r = control_handle(c, "{\"cmd\":\"power-cut\"}", 19);
	assert_non_null(strstr(r, "not available"));
	free(r);
	control_free(c);
}

/* The parser alone: what it accepts. */
static void test_json_accepts(void **state)
{
	(void)state;
	struct cj_object o;
	char buf[256], err[128];
	const char *t = "{\"s\":\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\xc3\xa9\",\"i\":-9223372036854775808,"
			"\"j\":0,\"t\":true,\"f\":false,\"n\":null}";
	assert_int_equal(cj_parse(t, strlen(t), &o, buf, sizeof(buf), err, sizeof(err)), 0);
	assert_int_equal(o.n, 6);
	const struct cj_member *s = cj_get(&o, "s");
	assert_string_equal(s->str, "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80\xc3\xa9");
	assert_int_equal(cj_get(&o, "i")->i, INT64_MIN);
	assert_true(cj_get(&o, "t")->b);
	assert_int_equal(cj_get(&o, "n")->type, CJ_NULL);
	assert_null(cj_get(&o, "x"));
	/* not NUL-terminated input: only len bytes are read */
	char nt[15];
	memcpy(nt, "{\"cmd\":\"stats\"}", 15);
	assert_int_equal(cj_parse(nt, 15, &o, buf, sizeof(buf), err, sizeof(err)), 0);
	assert_int_equal(cj_parse(nt, 14, &o, buf, sizeof(buf), err, sizeof(err)), -1);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stats_and_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_read_write_coherent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader_beside_fast, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_connections_do_not_lock_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_and_reply_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_then_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalidate_waits_for_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_path, setup, teardown),
		cmocka_unit_test(test_no_pcache),
		cmocka_unit_test_setup_teardown(test_named_devices, setup, teardown),
		cmocka_unit_test(test_fault_commands),
		cmocka_unit_test(test_mark_and_power_cut),
		cmocka_unit_test(test_json_accepts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
