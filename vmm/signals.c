#include "vmm/signals.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One watcher per process (signal dispositions are per process): the handler it calls is set
 * once the VM exists. Under lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void (*term_fn)(void *ctx, int sig);
static void *term_ctx;

static void term_set(sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGINT);
	sigaddset(s, SIGTERM);
	sigaddset(s, SIGHUP);
	sigaddset(s, SIGQUIT);
}

static void *watcher(void *arg)
{
	(void)arg;
	sigset_t s;
	term_set(&s);
	int seen = 0;
	for (;;) {
		int sig;
		if (sigwait(&s, &sig))
			continue;
		pthread_mutex_lock(&lock);
		void (*fn)(void *, int) = term_fn;
		void *ctx = term_ctx;
		pthread_mutex_unlock(&lock);
		if (!fn) {
			fprintf(stderr, "cvmm: %s before the VM ran: exiting\n", strsignal(sig));
			_exit(128 + sig);
		}
		if (seen++) {
			fprintf(stderr, "cvmm: %s: already stopping (writing back dirty pmem data); "
				"SIGKILL abandons it\n", strsignal(sig));
			continue;
		}
		fn(ctx, sig);
	}
	return NULL;
}

int signals_start(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) < 0) {
		perror("cvmm: ignoring SIGPIPE");
		return -1;
	}
	sigset_t s;
	term_set(&s);
	int e = pthread_sigmask(SIG_BLOCK, &s, NULL);
	pthread_t t;
	if (!e)
		e = pthread_create(&t, NULL, watcher, NULL);
	if (e) {
		fprintf(stderr, "cvmm: starting the signal thread: %s\n", strerror(e));
		return -1;
	}
	pthread_detach(t);
	return 0;
}

void signals_on_term(void (*fn)(void *ctx, int sig), void *ctx)
{
	pthread_mutex_lock(&lock);
	term_fn = fn;
	term_ctx = ctx;
	pthread_mutex_unlock(&lock);
}
