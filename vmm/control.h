/* The control socket: a UNIX stream socket (`cvmm run --control PATH`, or [vm] control) where
 * host tools talk to a running VM in JSON lines, one request object per line, one reply object
 * per line. `cvmmctl` (tools/cvmmctl.c) is the ready-made client.
 *
 * Requests (file offsets are byte offsets in the backing file of the [pmem] window, which is
 * also the [blk] disk's file when both name one file). Every request takes an optional
 * "device":"NAME" (a [blk "NAME"] / [pmem "NAME"] device; plain [blk] / [pmem] are "blk" /
 * "pmem"): without it, the first [pmem] window (stats: every device). A blk device's image
 * commands need its file to be a window's file (that is when cvmm caches it):
 *   {"cmd":"stats"}                                  exits by kind, page-cache and blk counters
 *   {"cmd":"flush"}                                  write back the window's dirty pages, sync
 *   {"cmd":"invalidate","offset":N,"length":N}       a host tool changed the file there: the
 *                                                    external-change protocol (DESIGN.md)
 *   {"cmd":"host-read","offset":N,"length":N}        coherent read: {"data":"<hex>"}
 *   {"cmd":"host-write","offset":N,"data":"<hex>"}   coherent write
 *   {"cmd":"truncate","size":N}                      truncate/extend the file (size: multiple
 *                                                    of 4096); the window keeps its size and
 *                                                    reads zeros beyond the end of file
 *   {"cmd":"fault-add","device":D,"rule":"op=write effect=ioerr"}
 *                                                    a fault-injection rule (devices/fault.h
 *                                                    syntax, as `fault =` in the config):
 *                                                    {"ok":true,"id":N}
 *   {"cmd":"fault-list","device":D}                  {"ok":true,"faults":[{"id":..,"rule":..,
 *                                                    "matched":..,"fired":..}],"fired":N}
 *   {"cmd":"fault-remove","device":D,"id":N}         remove one rule ("id":"all": every rule)
 * The fault commands need "device" unless the VM has just one device.
 *   {"cmd":"mark","text":"T"}                        a MARK entry in every write log (or the
 *                                                    "device"'s): {"ok":true,"logs":N}; also the
 *                                                    [vm] power_cut = at-mark:T trigger
 *   {"cmd":"power-cut"}                              stop the VM at once, files left as a crash
 *                                                    state (vmm/power_cut.h); optional
 *                                                    "state":"last-flush"|"sample:SEED"
 * Data is hex: two digits per byte, either case on input, lowercase on output (hex rather than
 * base64: trivially produced by shell tools, printf %02x in a guest, and python's
 * bytes.hex(); it doubles the size, which the limits below allow for).
 * Replies: {"ok":true,...} or {"ok":false,"error":"..."}. A request never stops the VM.
 *
 * Limits: a line is at most CONTROL_LINE_MAX bytes (a longer one is answered with an error
 * and skipped up to its newline); host-read/host-write move at most CONTROL_DATA_MAX bytes.
 * One thread serves every connection (poll) with non-blocking sockets, so a slow or silent
 * client holds up no one:
 *   - requests on one connection are answered in order, one at a time: the next line is read
 *     only once the previous reply has gone out (pipelined requests wait in the client's own
 *     socket buffer); a reply not wholly sent within CONTROL_REPLY_MS drops its client;
 *   - a connection silent (nothing received, nothing to send) for CONTROL_IDLE_MS is closed;
 *   - at most CONTROL_CLIENTS connections at once; when all are taken, a new one replaces the
 *     one silent for longest if that has been silent CONTROL_EVICT_MS or more (it is told
 *     why), else the new one is told "too many control connections" and closed;
 *   - a client that disconnects mid-line just goes away; after a shutdown of its sending side
 *     its complete requests are still answered.
 * Counters in stats: requests, errors, connections, refused, evicted, timed_out. */
#ifndef CVMM_CONTROL_H
#define CVMM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONTROL_LINE_MAX  (1u << 20)
#define CONTROL_DATA_MAX  (256u * 1024)
#define CONTROL_CLIENTS   64
#define CONTROL_REPLY_MS  10000   /* a whole reply must go out within this */
#define CONTROL_IDLE_MS   60000   /* a silent connection is closed after this */
#define CONTROL_EVICT_MS  1000    /* when full, one silent this long makes room */

struct pcache;
struct blk_dev;
struct control;
struct fault_set;

#define CONTROL_DEVICES_MAX 16

/* A device a request may name ("device":"NAME"). */
struct control_device {
	const char *name;       /* as in [blk "NAME"] / [pmem "NAME"]; "blk" / "pmem" for plain ones */
	const char *kind;       /* "blk" or "pmem" */
	struct pcache *pc;      /* its file's page cache (a pmem window's; a blk disk's when the
				 * disk is a window's file), or NULL */
	struct blk_dev *blk;    /* kind "blk": the device */
	uint64_t image_limit;   /* as control_deps.image_limit, for this device's file */
	struct fault_set *faults; /* devices/fault.h: its fault-injection rules, or NULL */
	/* kind "pmem": the device's own stats object (window, cache); may be NULL */
	void (*stats_json)(void *ctx, FILE *f);
	void *stats_ctx;
};

struct control_deps {
	/* The device a request without "device" means: */
	struct pcache *pc;      /* the first [pmem] window's cache; NULL: image commands answer an
				 * error */
	struct blk_dev *blk;    /* for stats; may be NULL */
	/* offsets must satisfy offset + length <= max(image_limit, size of the file) */
	uint64_t image_limit;
	/* Every device by name (may be empty: then only the default above). */
	struct control_device dev[CONTROL_DEVICES_MAX];
	unsigned ndev;
	/* "power-cut": vmm/power_cut.h (NULL: refused) */
	void (*power_cut)(void *ctx, bool sample, uint64_t seed);
	/* "mark": add text as a MARK entry to the write log of `device` (NULL: every log);
	 * returns how many logs took it, or -1 with err set (no such device, no log, bad text) */
	int (*mark)(void *ctx, const char *device, const char *text, char *err, size_t errlen);
	/* writes the VM's exits as a JSON object ({"io": 3, ...}); may be NULL */
	void (*exits_json)(void *ctx, FILE *f);
	void *ctx;
	/* 0: CONTROL_IDLE_MS / CONTROL_REPLY_MS (tests use shorter ones) */
	unsigned idle_ms, reply_ms;
};

/* Create the socket at path (a stale socket left by a dead cvmm is replaced; a live one, or
 * any other file, is an error) with mode 0600 and start the thread. Returns 0, or -1 with a
 * one-line message naming the path. */
int control_start(struct control **out, const char *path, const struct control_deps *deps,
		  char *err, size_t errlen);
/* Stop the thread, close every connection, remove the socket. NULL is fine. */
void control_stop(struct control *c);

/* Answer one request line (without its newline): a malloc'd reply, NUL-terminated, without
 * a newline. Used by the thread; exposed for unit tests. */
char *control_handle(struct control *c, const char *line, size_t len);
/* A control with no socket and no thread, for control_handle in tests. */
struct control *control_new(const struct control_deps *deps);
void control_free(struct control *c);

#endif
