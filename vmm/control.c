/* The control socket: see control.h for the protocol. One thread polls the listening socket,
 * every connection and a wake-up eventfd; each connection has its own line buffer. Requests
 * run on this thread, concurrently with the vCPUs and the device I/O threads: every mm/ call
 * used here is thread-safe and takes pins/locks in the documented order (mm/pcache.h). */
#include "vmm/control.h"

#include "devices/fault.h"
#include "vmm/power_cut.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "devices/blk.h"
#include "mm/pcache.h"
#include "vmm/config.h"
#include "vmm/control_json.h"

/* One connection. Input is read only while no reply is waiting to go out (backpressure: a
 * client that pipelines requests and reads slowly keeps them in its own socket buffer, not in
 * cvmm's memory); output is sent without blocking as the socket drains. */
struct client {
	int fd;                 /* -1: free slot */
	char *in;               /* bytes received and not yet consumed (at most one line + a recv) */
	size_t in_len, in_cap;
	bool discarding;        /* skipping the rest of an over-long line */
	bool eof;               /* the client shut down its side: answer what is complete, close */
	char *out;              /* the reply being sent (with its newline) */
	size_t out_len, out_off;
	uint64_t out_deadline;  /* ms (CLOCK_MONOTONIC) by which out must be sent, else close */
	uint64_t last_active;   /* ms of the last byte received or sent */
};

struct control {
	struct control_deps d;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd, wake_fd;
	pthread_t thread;
	bool running;
	struct client cl[CONTROL_CLIENTS];
	unsigned idle_ms, reply_ms; /* deps' values or the defaults */
	uint64_t errseq;        /* the control socket's own FLUSH cursor (default device) */
	uint64_t dev_errseq[CONTROL_DEVICES_MAX]; /* ... and per named device (its own cache) */
	uint64_t requests, errors, connections, refused, evicted, timed_out;
};

/* ---- replies ------------------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static int reply_err(struct control *c, FILE *f, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fputs("{\"ok\":false,\"error\":", f);
	cj_put_string(f, msg, strlen(msg));
	fputc('}', f);
	__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
	return -1;
}

static void put_hex(FILE *f, const uint8_t *b, size_t n)
{
	static const char dig[] = "0123456789abcdef";
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		fputc(dig[b[i] >> 4], f);
		fputc(dig[b[i] & 15], f);
	}
	fputc('"', f);
}

/* ---- arguments ---------------------------------------------------------------------------- */

/* A required non-negative integer member. */
static int get_u64(struct control *c, FILE *f, const struct cj_object *o, const char *key,
		   uint64_t *v)
{
	const struct cj_member *m = cj_get(o, key);
	if (!m)
		return reply_err(c, f, "missing \"%s\"", key);
	if (m->type != CJ_INT)
		return reply_err(c, f, "\"%s\" must be an integer", key);
	if (m->i < 0)
		return reply_err(c, f, "\"%s\" out of range: %lld is negative", key,
				 (long long)m->i);
	*v = (uint64_t)m->i;
	return 0;
}

/* What a request works on: the default device, or the one its "device" names. */
struct target {
	const char *name;       /* NULL: the default */
	struct pcache *pc;
	struct blk_dev *blk;
	uint64_t limit;
	uint64_t *errseq;
	const struct control_device *dev; /* NULL: the default */
};

static int get_target(struct control *c, FILE *f, const struct cj_object *o, struct target *t)
{
	const struct cj_member *m = cj_get(o, "device");
	*t = (struct target){ .pc = c->d.pc, .blk = c->d.blk, .limit = c->d.image_limit,
			      .errseq = &c->errseq };
	if (!m)
		return 0;
	if (m->type != CJ_STRING)
		return reply_err(c, f, "\"device\" must be a string (a device name)");
	for (unsigned i = 0; i < c->d.ndev; i++) {
		const struct control_device *d = &c->d.dev[i];
		if (strcmp(d->name, m->str))
			continue;
		*t = (struct target){ .name = d->name, .pc = d->pc, .blk = d->blk,
				      .limit = d->image_limit, .errseq = &c->dev_errseq[i],
				      .dev = d };
		return 0;
	}
	char names[256] = "";
	size_t n = 0;
	for (unsigned i = 0; i < c->d.ndev && n < sizeof(names); i++)
		n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "",
				      c->d.dev[i].name);
	char name[64];
	snprintf(name, sizeof(name), "%s", m->str);
	return reply_err(c, f, "no device \"%s\" (devices: %s)", name, n ? names : "none");
}

static uint64_t image_limit(const struct target *t)
{
	uint64_t fs = pcache_file_size(t->pc);
	return fs > t->limit ? fs : t->limit;
}

/* [off, off+len) with 1 <= len <= max and inside the image. */
static int check_range(struct control *c, FILE *f, const struct target *t, uint64_t off,
		       uint64_t len, uint64_t max)
{
	uint64_t lim = image_limit(t);
	if (len == 0)
		return reply_err(c, f, "length out of range: 0 (at least 1 byte)");
	if (len > max)
		return reply_err(c, f, "length out of range: %llu bytes (at most %llu)",
				 (unsigned long long)len, (unsigned long long)max);
	if (off >= lim || len > lim - off)
		return reply_err(c, f, "range out of range: %llu+%llu is beyond the image (%llu bytes)",
				 (unsigned long long)off, (unsigned long long)len,
				 (unsigned long long)lim);
	return 0;
}

/* The target, which must have a page cache (image commands). */
static int need_pc(struct control *c, FILE *f, const struct cj_object *o, struct target *t)
{
	if (get_target(c, f, o, t))
		return -1;
	if (t->pc)
		return 0;
	if (t->name)
		return reply_err(c, f, "device \"%s\" has no page cache: its file is not a [pmem] "
				 "window's (cvmm caches only those; its file may be used directly)",
				 t->name);
	return reply_err(c, f, "this VM has no [pmem] window: no page cache to keep coherent");
}

/* ---- commands ----------------------------------------------------------------------------- */

static int cmd_stats(struct control *c, FILE *f, const struct cj_object *o)
{
	(void)o;
	fputs("{\"ok\":true,\"exits\":", f);
	if (c->d.exits_json)
		c->d.exits_json(c->d.ctx, f);
	else
		fputs("{}", f);
	fputs(",\"pcache\":", f);
	if (c->d.pc) {
		pcache_stats_json(c->d.pc, f);
		fprintf(f, ",\"image\":{\"window_size\":%llu,\"file_size\":%llu}",
			(unsigned long long)pcache_size(c->d.pc),
			(unsigned long long)pcache_file_size(c->d.pc));
	} else {
		fputs("null", f);
	}
	fputs(",\"blk\":", f);
	if (c->d.blk)
		blk_stats_json(c->d.blk, f);
	else
		fputs("null", f);
	/* Every device by name (the two above are the defaults', kept for existing scripts). */
	fputs(",\"devices\":{", f);
	for (unsigned i = 0; i < c->d.ndev; i++) {
		const struct control_device *d = &c->d.dev[i];
		fprintf(f, "%s\"%s\":{\"kind\":\"%s\",\"stats\":", i ? "," : "", d->name, d->kind);
		if (d->blk)
			blk_stats_json(d->blk, f);
		else if (d->stats_json)
			d->stats_json(d->stats_ctx, f);
		else
			fputs("null", f);
		fputc('}', f);
	}
	fputc('}', f);
	fprintf(f, ",\"control\":{\"requests\":%llu,\"errors\":%llu,\"connections\":%llu,"
		   "\"refused\":%llu,\"evicted\":%llu,\"timed_out\":%llu}}",
		(unsigned long long)__atomic_load_n(&c->requests, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&c->errors, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&c->connections, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&c->refused, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&c->evicted, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&c->timed_out, __ATOMIC_RELAXED));
	return 0;
}

static int cmd_flush(struct control *c, FILE *f, const struct cj_object *o)
{
	struct target t;
	if (get_target(c, f, o, &t))
		return -1;
	int r;
	if (t.pc && !(t.dev && t.blk))
		r = pcache_flush(t.pc, t.errseq);
	else if (t.blk && t.blk->be && !t.blk->be->readonly)
		r = t.blk->be->ops->flush(t.blk->be);
	else if (t.name)
		return reply_err(c, f, "nothing to flush: device \"%s\" is read-only", t.name);
	else
		return reply_err(c, f, "nothing to flush: no [pmem] window and no writable [blk]");
	if (r)
		return reply_err(c, f, "flush: %s", strerror(-r));
	fputs("{\"ok\":true}", f);
	return 0;
}

static int cmd_invalidate(struct control *c, FILE *f, const struct cj_object *o)
{
	uint64_t off, len;
	struct target t;
	if (need_pc(c, f, o, &t) || get_u64(c, f, o, "offset", &off) ||
	    get_u64(c, f, o, "length", &len) || check_range(c, f, &t, off, len, UINT64_MAX))
		return -1;
	/* DESIGN "external change": lock; unmap (shootdown); write back local dirty data; drop
	 * UPTODATE; unlock (seed 004). DMAs in flight on the range are waited for (new ones wait
	 * for us): the answer is definite (mm/truncate.c, issue 14 defect 5). */
	int r = pcache_external_change(t.pc, off, len);
	if (r)
		return reply_err(c, f, "invalidate: %s", strerror(-r));
	fprintf(f, "{\"ok\":true,\"offset\":%llu,\"length\":%llu}", (unsigned long long)off,
		(unsigned long long)len);
	return 0;
}

static int cmd_host_read(struct control *c, FILE *f, const struct cj_object *o)
{
	uint64_t off, len;
	struct target t;
	if (need_pc(c, f, o, &t) || get_u64(c, f, o, "offset", &off) ||
	    get_u64(c, f, o, "length", &len) || check_range(c, f, &t, off, len, CONTROL_DATA_MAX))
		return -1;
	uint8_t *buf = malloc(len);
	if (!buf)
		return reply_err(c, f, "host-read: out of memory");
	/* coherent with the window: the range's dirty pages are written back first */
	ssize_t r = pcache_direct_read(t.pc, off, buf, len);
	if (r < 0) {
		free(buf);
		return reply_err(c, f, "host-read: %s", strerror((int)-r));
	}
	fprintf(f, "{\"ok\":true,\"offset\":%llu,\"length\":%llu,\"data\":",
		(unsigned long long)off, (unsigned long long)len);
	put_hex(f, buf, len);
	fputc('}', f);
	free(buf);
	return 0;
}

static int cmd_host_write(struct control *c, FILE *f, const struct cj_object *o)
{
	uint64_t off;
	struct target t;
	if (need_pc(c, f, o, &t) || get_u64(c, f, o, "offset", &off))
		return -1;
	const struct cj_member *d = cj_get(o, "data");
	if (!d)
		return reply_err(c, f, "missing \"data\" (hex, two digits per byte)");
	if (d->type != CJ_STRING)
		return reply_err(c, f, "\"data\" must be a string of hex digits");
	if (d->str_len % 2)
		return reply_err(c, f, "\"data\": odd number of hex digits (%zu)", d->str_len);
	uint64_t len = d->str_len / 2;
	if (check_range(c, f, &t, off, len, CONTROL_DATA_MAX))
		return -1;
	if (pcache_is_readonly(t.pc))
		return reply_err(c, f, "host-write: the [pmem] file is open read-only");
	uint8_t *buf = malloc(len);
	if (!buf)
		return reply_err(c, f, "host-write: out of memory");
	for (uint64_t i = 0; i < len; i++) {
		int hi = config_hex_digit(d->str[2 * i]), lo = config_hex_digit(d->str[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(buf);
			return reply_err(c, f, "\"data\": not a hex digit at position %llu",
					 (unsigned long long)(2 * i + (hi < 0 ? 0 : 1)));
		}
		buf[i] = (uint8_t)(hi << 4 | lo);
	}
	/* The external-change protocol around the write (seed 004): lock the pages, unmap them
	 * (the guest's view is shot down), write back the guest's dirty data (its stores outside
	 * the range survive, e1), write, drop the pages so the guest's next load reads the file. */
	ssize_t r = pcache_direct_write(t.pc, off, buf, len);
	free(buf);
	if (r < 0)
		return reply_err(c, f, "host-write: %s", strerror((int)-r));
	fprintf(f, "{\"ok\":true,\"offset\":%llu,\"length\":%llu}", (unsigned long long)off,
		(unsigned long long)len);
	return 0;
}

static int cmd_truncate(struct control *c, FILE *f, const struct cj_object *o)
{
	uint64_t size;
	struct target t;
	if (need_pc(c, f, o, &t) || get_u64(c, f, o, "size", &size))
		return -1;
	uint64_t lim = image_limit(&t);
	if (size % 4096)
		return reply_err(c, f, "size out of range: %llu is not a multiple of 4096",
				 (unsigned long long)size);
	if (size > lim)
		return reply_err(c, f, "size out of range: %llu is beyond the image (%llu bytes)",
				 (unsigned long long)size, (unsigned long long)lim);
	int r = pcache_truncate(t.pc, size);
	if (r)
		return reply_err(c, f, "truncate: %s", strerror(-r));
	fprintf(f, "{\"ok\":true,\"size\":%llu}", (unsigned long long)size);
	return 0;
}

/* The device of a fault command: the one "device" names, or the VM's only device. */
static int fault_target(struct control *c, FILE *f, const struct cj_object *o,
			const struct control_device **out)
{
	struct target t;
	if (get_target(c, f, o, &t))
		return -1;
	if (!t.dev && c->d.ndev == 1)
		t.dev = &c->d.dev[0];
	if (!t.dev)
		return reply_err(c, f, "give \"device\": which device the rule is for");
	if (!t.dev->faults)
		return reply_err(c, f, "device \"%s\" takes no fault rules", t.dev->name);
	*out = t.dev;
	return 0;
}

static int cmd_fault_add(struct control *c, FILE *f, const struct cj_object *o)
{
	const struct control_device *d;
	if (fault_target(c, f, o, &d))
		return -1;
	const struct cj_member *m = cj_get(o, "rule");
	if (!m)
		return reply_err(c, f, "missing \"rule\" (e.g. \"op=write effect=ioerr\")");
	if (m->type != CJ_STRING)
		return reply_err(c, f, "\"rule\" must be a string");
	char why[256];
	int id = fault_add_text(d->faults, m->str, why, sizeof(why));
	if (id < 0)
		return reply_err(c, f, "fault-add: %s", why);
	fprintf(f, "{\"ok\":true,\"device\":\"%s\",\"id\":%d}", d->name, id);
	return 0;
}

static int cmd_fault_list(struct control *c, FILE *f, const struct cj_object *o)
{
	const struct control_device *d;
	if (fault_target(c, f, o, &d))
		return -1;
	fprintf(f, "{\"ok\":true,\"device\":\"%s\",\"faults\":", d->name);
	fault_list_json(d->faults, f);
	fprintf(f, ",\"fired\":%llu}", (unsigned long long)fault_fired(d->faults));
	return 0;
}

static int cmd_fault_remove(struct control *c, FILE *f, const struct cj_object *o)
{
	const struct control_device *d;
	if (fault_target(c, f, o, &d))
		return -1;
	const struct cj_member *m = cj_get(o, "id");
	if (m && m->type == CJ_STRING && !strcmp(m->str, "all")) {
		fault_clear(d->faults);
		fprintf(f, "{\"ok\":true,\"device\":\"%s\"}", d->name);
		return 0;
	}
	uint64_t id;
	if (get_u64(c, f, o, "id", &id))
		return -1;
	if (id > UINT32_MAX || fault_remove(d->faults, (unsigned)id))
		return reply_err(c, f, "fault-remove: device \"%s\" has no rule %llu", d->name,
				 (unsigned long long)id);
	fprintf(f, "{\"ok\":true,\"device\":\"%s\",\"id\":%llu}", d->name,
		(unsigned long long)id);
	return 0;
}

static int cmd_mark(struct control *c, FILE *f, const struct cj_object *o)
{
	const struct cj_member *m = cj_get(o, "text");
	const struct cj_member *dv = cj_get(o, "device");
	if (!m)
		return reply_err(c, f, "missing \"text\" (the mark)");
	if (m->type != CJ_STRING)
		return reply_err(c, f, "\"text\" must be a string");
	if (dv && dv->type != CJ_STRING)
		return reply_err(c, f, "\"device\" must be a string (a device name)");
	if (!c->d.mark)
		return reply_err(c, f, "marks are not available here");
	char why[256];
	int n = c->d.mark(c->d.ctx, dv ? dv->str : NULL, m->str, why, sizeof(why));
	if (n < 0)
		return reply_err(c, f, "mark: %s", why);
	fprintf(f, "{\"ok\":true,\"logs\":%d}", n);
	return 0;
}

static int cmd_power_cut(struct control *c, FILE *f, const struct cj_object *o)
{
	struct power_cut_plan p = { 0 };
	const struct cj_member *m = cj_get(o, "state");
	char why[256];
	if (m && m->type != CJ_STRING)
		return reply_err(c, f, "\"state\" must be a string (last-flush or sample:SEED)");
	if (m && power_cut_parse_state(m->str, &p, why, sizeof(why)))
		return reply_err(c, f, "%s", why);
	if (!c->d.power_cut)
		return reply_err(c, f, "power-cut is not available here");
	/* The answer goes out before the VM is torn down (the reply is queued first; the
	 * thread sends it before control_stop closes the connection, best effort). */
	c->d.power_cut(c->d.ctx, p.sample, p.seed);
	fputs("{\"ok\":true}", f);
	return 0;
}

static const struct command {
	const char *name;
	int (*fn)(struct control *c, FILE *f, const struct cj_object *o);
	const char *keys[3];
} commands[] = {
	{ "stats", cmd_stats, { NULL } },
	{ "flush", cmd_flush, { NULL } },
	{ "invalidate", cmd_invalidate, { "offset", "length", NULL } },
	{ "host-read", cmd_host_read, { "offset", "length", NULL } },
	{ "host-write", cmd_host_write, { "offset", "data", NULL } },
	{ "truncate", cmd_truncate, { "size", NULL } },
	{ "fault-add", cmd_fault_add, { "rule", NULL } },
	{ "fault-list", cmd_fault_list, { NULL } },
	{ "fault-remove", cmd_fault_remove, { "id", NULL } },
	{ "mark", cmd_mark, { "text", NULL } },
	{ "power-cut", cmd_power_cut, { "state", NULL } },
};

static void dispatch(struct control *c, FILE *f, const struct cj_object *o)
{
	const struct cj_member *cmd = cj_get(o, "cmd");
	if (!cmd) {
		reply_err(c, f, "missing \"cmd\" (one of: stats, flush, invalidate, host-read, "
			  "host-write, truncate, fault-add, fault-list, fault-remove, mark, power-cut)");
		return;
	}
	if (cmd->type != CJ_STRING) {
		reply_err(c, f, "\"cmd\" must be a string");
		return;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *k = &commands[i];
		if (strcmp(cmd->str, k->name))
			continue;
		for (unsigned j = 0; j < o->n; j++) {
			const char *key = o->m[j].key;
			bool known = !strcmp(key, "cmd") || !strcmp(key, "device");
			for (unsigned q = 0; !known && k->keys[q]; q++)
				known = !strcmp(key, k->keys[q]);
			if (!known) {
				char msg[96];
				snprintf(msg, sizeof(msg), "%s", key);
				reply_err(c, f, "unknown key \"%s\" for \"%s\"", msg, k->name);
				return;
			}
		}
		k->fn(c, f, o);
		return;
	}
	char name[64];
	snprintf(name, sizeof(name), "%s", cmd->str);
	reply_err(c, f, "unknown cmd \"%s%s\" (one of: stats, flush, invalidate, host-read, "
		  "host-write, truncate, fault-add, fault-list, fault-remove, mark, power-cut)", name,
		  cmd->str_len >= sizeof(name) ? "..." : "");
}

char *control_handle(struct control *c, const char *line, size_t len)
{
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	if (!f)
		return NULL;
	__atomic_add_fetch(&c->requests, 1, __ATOMIC_RELAXED);
	char *strbuf = malloc(len + 1);
	struct cj_object *o = malloc(sizeof(*o));
	char err[256];
	if (!strbuf || !o)
		reply_err(c, f, "out of memory");
	else if (cj_parse(line, len, o, strbuf, len + 1, err, sizeof(err)))
		reply_err(c, f, "%s", err);
	else
		dispatch(c, f, o);
	free(o);
	free(strbuf);
	fclose(f);
	return out;
}

struct control *control_new(const struct control_deps *deps)
{
	struct control *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->d = *deps;
	c->idle_ms = deps->idle_ms ? deps->idle_ms : CONTROL_IDLE_MS;
	c->reply_ms = deps->reply_ms ? deps->reply_ms : CONTROL_REPLY_MS;
	c->lfd = c->wake_fd = -1;
	for (int i = 0; i < CONTROL_CLIENTS; i++)
		c->cl[i].fd = -1;
	if (c->d.pc)
		c->errseq = pcache_errseq_sample(c->d.pc);
	if (c->d.ndev > CONTROL_DEVICES_MAX)
		c->d.ndev = CONTROL_DEVICES_MAX;
	for (unsigned i = 0; i < c->d.ndev; i++)
		if (c->d.dev[i].pc)
			c->dev_errseq[i] = pcache_errseq_sample(c->d.dev[i].pc);
	return c;
}

void control_free(struct control *c)
{
	free(c);
}

/* ---- the thread --------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void client_close(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->in);
	free(cl->out);
	memset(cl, 0, sizeof(*cl));
	cl->fd = -1;
}

/* Send what the socket takes now. false: the client is gone. */
static bool client_send(struct client *cl)
{
	while (cl->out && cl->out_off < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n <= 0)
			return false;
		cl->out_off += (size_t)n;
		cl->last_active = now_ms();
	}
	free(cl->out);
	cl->out = NULL;
	cl->out_len = cl->out_off = 0;
	return true;
}

/* Queue one reply line (reply: malloc'd, taken over) and start sending it. */
static bool client_reply(struct control *c, struct client *cl, char *reply)
{
	if (!reply)
		return false;
	size_t n = strlen(reply);
	char *line = realloc(reply, n + 1);
	if (!line) {
		free(reply);
		return false;
	}
	line[n] = '\n'; /* the NUL is not sent */
	cl->out = line;
	cl->out_len = n + 1;
	cl->out_off = 0;
	cl->out_deadline = now_ms() + c->reply_ms;
	return client_send(cl);
}

static char *too_long_reply(struct control *c)
{
	char *msg = malloc(128);
	if (msg)
		snprintf(msg, 128, "{\"ok\":false,\"error\":\"line longer than %u bytes: skipped\"}",
			 CONTROL_LINE_MAX);
	__atomic_add_fetch(&c->requests, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
	return msg;
}

/* Answer complete lines from cl->in, one at a time, while no reply is waiting to go out.
 * false: close the client. */
static bool client_process(struct control *c, struct client *cl)
{
	size_t pos = 0;
	bool ok = true;
	while (ok && !cl->out && pos < cl->in_len) {
		char *p = cl->in + pos;
		size_t avail = cl->in_len - pos;
		char *nl = memchr(p, '\n', avail);
		if (cl->discarding) {
			if (!nl) {
				pos = cl->in_len;
				break;
			}
			cl->discarding = false;
			pos += (size_t)(nl - p) + 1;
			continue;
		}
		if (!nl) {
			if (avail > CONTROL_LINE_MAX) { /* no newline in sight: answer, skip the rest */
				cl->discarding = true;
				pos = cl->in_len;
				ok = client_reply(c, cl, too_long_reply(c));
			}
			break;
		}
		size_t len = (size_t)(nl - p);
		pos += len + 1;
		if (len > CONTROL_LINE_MAX) {
			ok = client_reply(c, cl, too_long_reply(c));
			continue;
		}
		while (len && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (!len)
			continue; /* blank lines are ignored (interactive use) */
		ok = client_reply(c, cl, control_handle(c, p, len));
	}
	if (pos) {
		memmove(cl->in, cl->in + pos, cl->in_len - pos);
		cl->in_len -= pos;
	}
	return ok;
}

/* Readable: take what is there (only called while no reply is pending). false: close. */
static bool client_recv(struct client *cl)
{
	if (cl->in_cap - cl->in_len < 65536) {
		size_t cap = cl->in_cap ? cl->in_cap * 2 : 65536;
		if (cap > CONTROL_LINE_MAX + 2 * 65536)
			cap = CONTROL_LINE_MAX + 2 * 65536;
		if (cap > cl->in_cap) {
			char *b = realloc(cl->in, cap);
			if (!b)
				return false;
			cl->in = b;
			cl->in_cap = cap;
		}
	}
	ssize_t n = recv(cl->fd, cl->in + cl->in_len, cl->in_cap - cl->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return true;
	if (n < 0)
		return false;
	if (n == 0) { /* shut down: what it sent of an unfinished line is simply dropped */
		cl->eof = true;
		return true;
	}
	cl->in_len += (size_t)n;
	cl->last_active = now_ms();
	return true;
}

static void client_event(struct control *c, struct client *cl, short revents)
{
	bool ok = true;
	if (cl->out && (revents & (POLLOUT | POLLERR | POLLHUP)))
		ok = client_send(cl);
	else if (!cl->out && (revents & (POLLIN | POLLERR | POLLHUP)))
		ok = client_recv(cl);
	if (ok && !cl->out)
		ok = client_process(c, cl);
	/* Gone: after its shutdown, once every complete line is answered and sent. */
	if (!ok || (cl->eof && !cl->out))
		client_close(cl);
}

/* Deadlines: a reply not sent in reply_ms, a connection silent for idle_ms. Returns the poll
 * timeout until the next one (ms, -1: none). */
static int client_timeouts(struct control *c)
{
	uint64_t now = now_ms(), next = UINT64_MAX;
	for (int i = 0; i < CONTROL_CLIENTS; i++) {
		struct client *cl = &c->cl[i];
		if (cl->fd < 0)
			continue;
		uint64_t due = cl->out ? cl->out_deadline : cl->last_active + c->idle_ms;
		if (due <= now) {
			__atomic_add_fetch(&c->timed_out, 1, __ATOMIC_RELAXED);
			client_close(cl);
			continue;
		}
		if (due < next)
			next = due;
	}
	if (next == UINT64_MAX)
		return -1;
	return next - now > INT32_MAX ? INT32_MAX : (int)(next - now);
}

static void client_accept(struct control *c)
{
	int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	uint64_t now = now_ms();
	struct client *slot = NULL, *idlest = NULL;
	for (int i = 0; i < CONTROL_CLIENTS && !slot; i++) {
		struct client *cl = &c->cl[i];
		if (cl->fd < 0)
			slot = cl;
		else if (!cl->out && !cl->in_len && (!idlest || cl->last_active < idlest->last_active))
			idlest = cl;
	}
	/* Full: the connection silent for longest makes room, if it has been silent a while:
	 * idle connections cannot lock everyone else out. */
	if (!slot && idlest && now - idlest->last_active >= CONTROL_EVICT_MS) {
		static const char bye[] = "{\"ok\":false,\"error\":\"idle control connection closed "
					  "to make room for a new one\"}\n";
		ssize_t w = send(idlest->fd, bye, sizeof(bye) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
		client_close(idlest);
		__atomic_add_fetch(&c->evicted, 1, __ATOMIC_RELAXED);
		slot = idlest;
	}
	if (slot) {
		slot->fd = fd;
		slot->last_active = now;
		__atomic_add_fetch(&c->connections, 1, __ATOMIC_RELAXED);
		return;
	}
	static const char busy[] = "{\"ok\":false,\"error\":\"too many control connections\"}\n";
	ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	__atomic_add_fetch(&c->refused, 1, __ATOMIC_RELAXED);
	close(fd);
}

static void *control_thread(void *arg)
{
	struct control *c = arg;
	for (;;) {
		struct pollfd pf[2 + CONTROL_CLIENTS];
		int map[2 + CONTROL_CLIENTS];
		int timeout = client_timeouts(c);
		nfds_t n = 0;
		pf[n++] = (struct pollfd){ .fd = c->wake_fd, .events = POLLIN };
		pf[n++] = (struct pollfd){ .fd = c->lfd, .events = POLLIN };
		for (int i = 0; i < CONTROL_CLIENTS; i++)
			if (c->cl[i].fd >= 0) {
				map[n] = i;
				pf[n++] = (struct pollfd){ .fd = c->cl[i].fd,
							   .events = c->cl[i].out ? POLLOUT : POLLIN };
			}
		int r = poll(pf, n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents)
			break;
		for (nfds_t k = 2; k < n; k++)
			if (pf[k].revents)
				client_event(c, &c->cl[map[k]], pf[k].revents);
		if (pf[1].revents & POLLIN)
			client_accept(c);
	}
	for (int i = 0; i < CONTROL_CLIENTS; i++)
		client_close(&c->cl[i]);
	return NULL;
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int control_start(struct control **out, const char *path, const struct control_deps *deps,
		  char *err, size_t errlen)
{
	*out = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!path[0] || strlen(path) >= sizeof(sa.sun_path))
		return fail(err, errlen, "control path '%s': empty or longer than %zu bytes (the limit "
			    "of a UNIX socket path)", path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return fail(err, errlen, "control path '%s': exists and is not a socket", path);
		/* A socket: in use, or left behind by a cvmm that died? */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int r = probe >= 0 ? connect(probe, (struct sockaddr *)&sa, sizeof(sa)) : -1;
		int e = errno;
		if (probe >= 0)
			close(probe);
		if (r == 0)
			return fail(err, errlen, "control path '%s': another process is listening on it",
				    path);
		if (e != ECONNREFUSED || unlink(path) < 0)
			return fail(err, errlen, "control path '%s': cannot replace the stale socket: %s",
				    path, strerror(e == ECONNREFUSED ? errno : e));
	}
	struct control *c = control_new(deps);
	if (!c)
		return fail(err, errlen, "control: out of memory");
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (c->lfd < 0 || c->wake_fd < 0) {
		fail(err, errlen, "control: socket: %s", strerror(errno));
		goto bad;
	}
	/* 0600: whoever can connect can rewrite the image */
	mode_t old = umask(0177);
	int rb = bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa));
	int eb = errno;
	umask(old);
	if (rb < 0) {
		fail(err, errlen, "control path '%s': %s", path, strerror(eb));
		goto bad;
	}
	if (listen(c->lfd, 16) < 0) {
		fail(err, errlen, "control path '%s': listen: %s", path, strerror(errno));
		unlink(path);
		goto bad;
	}
	if (pthread_create(&c->thread, NULL, control_thread, c)) {
		fail(err, errlen, "control: cannot start its thread");
		unlink(path);
		goto bad;
	}
	c->running = true;
	*out = c;
	return 0;
bad:
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	free(c);
	return -1;
}

void control_stop(struct control *c)
{
	if (!c)
		return;
	if (c->running) {
		uint64_t one = 1;
		if (write(c->wake_fd, &one, sizeof(one)) < 0) {
			/* cannot happen for an eventfd below its maximum */
		}
		pthread_join(c->thread, NULL);
	}
	if (c->lfd >= 0) {
		close(c->lfd);
		unlink(c->path);
	}
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	free(c);
}
