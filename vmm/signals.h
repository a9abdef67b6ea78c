/* What the process does with the signals that would otherwise end it without its exit-time
 * writeback (issue 12 finding 6: `cvmm run ... | head` died of SIGPIPE on the guest's next
 * line, and Ctrl-C or a `kill` lost every pmem store not yet FLUSHed, which a clean stop
 * writes back like the last munmap of a MAP_SHARED file).
 *
 *   SIGPIPE             ignored: a console whose reader went away is a write error, and the
 *                       serial device stops writing to it (the guest goes on, devices/serial.c).
 *   SIGINT SIGTERM      end the VM through its normal stop path: vCPUs stop, dirty pages are
 *   SIGHUP SIGQUIT      written back, cvmm exits with 128 + the signal number. A second signal
 *                       while that runs only says so; SIGKILL still ends the process at once.
 *
 * signals_start() must run before the process creates any thread (it blocks the signals so
 * every thread inherits the mask, and one thread takes them with sigwait). Until
 * signals_on_term() names a handler, a terminating signal exits at once with 128 + signal
 * (there is nothing to write back before the VM runs). */
#ifndef CVMM_SIGNALS_H
#define CVMM_SIGNALS_H

/* 0, or -1 with a message on stderr. */
int signals_start(void);
/* Call fn(ctx, sig) (from the signal thread) on the first terminating signal. */
void signals_on_term(void (*fn)(void *ctx, int sig), void *ctx);

#endif
