/* cvmmctl: a client for cvmm's control socket (vmm/control.h has the protocol).
 *
 *   cvmmctl --socket PATH stats
 *   cvmmctl --socket PATH flush
 *   cvmmctl --socket PATH invalidate OFFSET LENGTH
 *   cvmmctl --socket PATH host-read OFFSET LENGTH
 *   cvmmctl --socket PATH host-write OFFSET HEX
 *   cvmmctl --socket PATH truncate SIZE
 *   cvmmctl --socket PATH [--device NAME] fault-add 'op=write effect=ioerr'
 *   cvmmctl --socket PATH [--device NAME] fault-list | fault-remove ID|all
 *   cvmmctl --socket PATH [--device NAME] mark TEXT
 *   cvmmctl --socket PATH power-cut [last-flush|sample:SEED]
 *   cvmmctl --socket PATH raw 'JSON'          (sent as one line, unchecked: for testing)
 *
 * Prints the reply line on stdout. Exit status: 0 the VM answered {"ok":true,...}; 1 it
 * answered an error; 2 bad usage, or no answer (socket missing, connection closed, timeout). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
"usage: cvmmctl [--socket PATH] [--timeout SECONDS] [--device NAME] CMD [ARGS]\n"
"  stats                      exits, page-cache and blk counters, every device's\n"
"  flush                      write back the pmem window's dirty pages, sync\n"
"  invalidate OFFSET LENGTH   a host tool changed the file there\n"
"  host-read OFFSET LENGTH    coherent read; data comes back as hex\n"
"  host-write OFFSET HEX      coherent write of the bytes HEX (two digits per byte)\n"
"  truncate SIZE              truncate/extend the backing file (multiple of 4096)\n"
"  fault-add RULE             a fault-injection rule, e.g. 'op=write range=1M+64K effect=ioerr'\n"
"  fault-list                 the device's rules with their matched/fired counts\n"
"  fault-remove ID|all        remove a rule (or every rule)\n"
"  mark TEXT                  a MARK entry in every write log (or the --device's)\n"
"  power-cut [STATE]          stop the VM at once, files left as a crash state: last-flush\n"
"                             (default) or sample:SEED (README: power cut)\n"
"  raw JSON                   send one JSON line as it is\n"
"--device NAME: the [blk \"NAME\"] / [pmem \"NAME\"] device the command is for (plain [blk] and\n"
"[pmem] are \"blk\" and \"pmem\"); without it the first pmem window (faults: the only device).\n"
"The socket is cvmm's --control PATH (default: $CVMM_CONTROL). Numbers are decimal or 0x hex.\n"
"Prints the reply; exit 0 if it says ok, 1 if it is an error, 2 if there is no reply.\n";

/* s as a JSON string (quotes, backslashes and control characters escaped). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "cvmmctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see cvmmctl --help)\n");
	return 2;
}

/* A non-negative number, decimal or 0x hex, as JSON digits (validated here so that a typo
 * is a usage error, not a round trip). */
static int number(const char *s, unsigned long long *v)
{
	if (!*s || *s == '-' || *s == '+')
		return -1;
	char *end;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return (errno || *end || *v > 0x7fffffffffffffffULL) ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *path = getenv("CVMM_CONTROL");
	const char *device = NULL;
	int timeout_s = 30;
	int i = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		if (!strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			path = argv[++i];
		} else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
			device = argv[++i];
			if (!*device)
				return bad("%s--device wants a name", "");
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			timeout_s = atoi(argv[++i]);
			if (timeout_s <= 0)
				return bad("--timeout '%s': want a positive number of seconds", argv[i]);
		} else {
			return bad("unknown or incomplete option '%s'", argv[i]);
		}
	}
	if (!path || !*path)
		return bad("%sno socket: give --socket PATH or set CVMM_CONTROL", "");
	if (i >= argc)
		return bad("%sno command", "");
	const char *cmd = argv[i++];
	int nargs = argc - i;
	char **a = argv + i;
	unsigned long long x, y;
	char *req = NULL;
	size_t reqlen = 0;
	FILE *f = open_memstream(&req, &reqlen);
	if (!f)
		return 2;
	if (!strcmp(cmd, "raw")) {
		if (nargs != 1)
			return bad("%s wants one JSON argument", cmd);
		if (strchr(a[0], '\n'))
			return bad("%sraw JSON must be one line", "");
		fputs(a[0], f);
		goto send;
	}
	/* {"cmd":CMD[,"device":NAME] then the command's own members and "}" */
	fprintf(f, "{\"cmd\":");
	json_str(f, cmd);
	if (device) {
		fputs(",\"device\":", f);
		json_str(f, device);
	}
	if (!strcmp(cmd, "stats") || !strcmp(cmd, "flush") || !strcmp(cmd, "fault-list")) {
		if (nargs)
			return bad("%s takes no arguments", cmd);
		fputc('}', f);
	} else if (!strcmp(cmd, "fault-add") || !strcmp(cmd, "mark")) {
		if (nargs != 1)
			return bad("%s wants one argument (quote it)", cmd);
		fprintf(f, ",\"%s\":", !strcmp(cmd, "mark") ? "text" : "rule");
		json_str(f, a[0]);
		fputc('}', f);
	} else if (!strcmp(cmd, "fault-remove")) {
		if (nargs != 1)
			return bad("%s wants ID or all", cmd);
		if (!strcmp(a[0], "all"))
			fputs(",\"id\":\"all\"}", f);
		else if (number(a[0], &x))
			return bad("bad ID '%s' (a number or all)", a[0]);
		else
			fprintf(f, ",\"id\":%llu}", x);
	} else if (!strcmp(cmd, "power-cut")) {
		if (nargs > 1)
			return bad("%s wants at most a STATE", cmd);
		if (nargs) {
			fputs(",\"state\":", f);
			json_str(f, a[0]);
		}
		fputc('}', f);
	} else if (!strcmp(cmd, "invalidate") || !strcmp(cmd, "host-read")) {
		if (nargs != 2)
			return bad("%s wants OFFSET LENGTH", cmd);
		if (number(a[0], &x))
			return bad("bad OFFSET '%s'", a[0]);
		if (number(a[1], &y))
			return bad("bad LENGTH '%s'", a[1]);
		fprintf(f, ",\"offset\":%llu,\"length\":%llu}", x, y);
	} else if (!strcmp(cmd, "host-write")) {
		if (nargs != 2)
			return bad("%s wants OFFSET HEX", cmd);
		if (number(a[0], &x))
			return bad("bad OFFSET '%s'", a[0]);
		for (const char *p = a[1]; *p; p++)
			if (!strchr("0123456789abcdefABCDEF", *p))
				return bad("HEX '%s': only hex digits, please", a[1]);
		fprintf(f, ",\"offset\":%llu,\"data\":\"%s\"}", x, a[1]);
	} else if (!strcmp(cmd, "truncate")) {
		if (nargs != 1)
			return bad("%s wants SIZE", cmd);
		if (number(a[0], &x))
			return bad("bad SIZE '%s'", a[0]);
		fprintf(f, ",\"size\":%llu}", x);

	} else {
		return bad("unknown command '%s'", cmd);
	}
send:
	fputc('\n', f);
	fclose(f);

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return bad("socket path '%s' is too long", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "cvmmctl: %s: %s (is cvmm running with --control %s?)\n", path,
			strerror(errno), path);
		return 2;
	}
	for (size_t off = 0; off < reqlen;) {
		ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "cvmmctl: %s: send: %s\n", path, strerror(errno));
			return 2;
		}
		off += (size_t)n;
	}
	free(req);
	/* One reply line. */
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = timeout_s * 1000L - ((now.tv_sec - t0.tv_sec) * 1000L +
						  (now.tv_nsec - t0.tv_nsec) / 1000000L);
		struct pollfd pf = { fd, POLLIN, 0 };
		int pr = left > 0 ? poll(&pf, 1, (int)left) : 0;
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			fprintf(stderr, "cvmmctl: %s: no reply within %d s\n", path, timeout_s);
			return 2;
		}
		if (len + 4096 > cap) {
			cap *= 2;
			char *nb = realloc(buf, cap);
			if (!nb)
				return 2;
			buf = nb;
		}
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "cvmmctl: %s: connection closed without a reply\n", path);
			return 2;
		}
		len += (size_t)n;
		char *nl = memchr(buf, '\n', len);
		if (nl) {
			*nl = 0;
			puts(buf);
			close(fd);
			return !strncmp(buf, "{\"ok\":true", 10) ? 0 : 1;
		}
	}
}
