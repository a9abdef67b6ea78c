/* vmm/signals: SIGPIPE does not kill cvmm (a console reader that went away, `cvmm run | head`),
 * and a terminating signal becomes one call of the VM's stop path, so the exit-time writeback
 * runs (issue 12 finding 6). Before vmm/signals.c both signals killed the process outright. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "vmm/seccomp.h"
#include "vmm/signals.h"

static int calls, last_sig;

static void on_term(void *ctx, int sig)
{
	(void)ctx;
	__atomic_store_n(&last_sig, sig, __ATOMIC_RELEASE);
	__atomic_add_fetch(&calls, 1, __ATOMIC_ACQ_REL);
}

static void wait_calls(int want)
{
	for (int i = 0; i < 200 && __atomic_load_n(&calls, __ATOMIC_ACQUIRE) < want; i++)
		usleep(10 * 1000);
}

static void test_sigpipe_is_a_write_error(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	errno = 0;
	assert_int_equal(write(p[1], "x", 1), -1); /* without signals_start: killed here */
	assert_int_equal(errno, EPIPE);
	close(p[1]);
}

static void test_term_signal_stops_once(void **state)
{
	(void)state;
	signals_on_term(on_term, NULL);
	assert_int_equal(kill(getpid(), SIGTERM), 0);
	wait_calls(1);
	assert_int_equal(__atomic_load_n(&calls, __ATOMIC_ACQUIRE), 1);
	assert_int_equal(__atomic_load_n(&last_sig, __ATOMIC_ACQUIRE), SIGTERM);
	/* a second signal while stopping only says so */
	assert_int_equal(kill(getpid(), SIGINT), 0);
	usleep(200 * 1000);
	assert_int_equal(__atomic_load_n(&calls, __ATOMIC_ACQUIRE), 1);
}

/* Under the running VM's seccomp filter the signal thread keeps waiting (its sigwait is
 * allowed): a signal during the run, and another after it, do not kill the process before
 * the writeback. Last: the filter stays on for the rest of the process. */
static void test_signal_thread_under_seccomp(void **state)
{
	(void)state;
	/* kill(2) is not on the VM's allow-list: a child (not under the filter) sends them */
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t parent = getpid(), child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) == 1)
			kill(parent, c == 'h' ? SIGHUP : SIGTERM);
		_exit(0);
	}
	close(p[0]);
	char err[256];
	assert_int_equal(seccomp_install(err, sizeof(err)), 0);
	assert_int_equal(write(p[1], "h", 1), 1);
	usleep(300 * 1000);
	assert_int_equal(write(p[1], "t", 1), 1);
	usleep(300 * 1000);
	close(p[1]);
	assert_int_equal(__atomic_load_n(&calls, __ATOMIC_ACQUIRE), 1); /* still alive, still 1 */
}

int main(void)
{
	if (signals_start())
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigpipe_is_a_write_error),
		cmocka_unit_test(test_term_signal_stops_once),
		cmocka_unit_test(test_signal_thread_under_seccomp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
