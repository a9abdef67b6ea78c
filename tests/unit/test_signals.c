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
#include <sys/wait.h>
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
 * allowed): a signal during the run, and another after it, do not kill the process before the
 * writeback. Run in a child process: the filter stays on for the rest of a process, and the
 * sanitizers' exit-time work is not on the VM's allow-list. A grandchild (not under the
 * filter) sends the signals: kill(2) is not on it either. */
static int seccomp_child(void)
{
	__atomic_store_n(&calls, 0, __ATOMIC_RELEASE);
	int p[2];
	if (pipe(p))
		return 2;
	pid_t me = getpid(), gc = fork();
	if (gc < 0)
		return 2;
	if (gc == 0) {
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) == 1)
			kill(me, c == 'h' ? SIGHUP : SIGTERM);
		_exit(0);
	}
	close(p[0]);
	char err[256];
	if (signals_start() || seccomp_install(err, sizeof(err)))
		return 3;
	signals_on_term(on_term, NULL);
	if (write(p[1], "t", 1) != 1)
		return 2;
	wait_calls(1);
	if (write(p[1], "h", 1) != 1) /* the second wait happens under the filter */
		return 2;
	usleep(300 * 1000);
	close(p[1]);
	return __atomic_load_n(&calls, __ATOMIC_ACQUIRE) == 1 &&
	       __atomic_load_n(&last_sig, __ATOMIC_ACQUIRE) == SIGTERM ? 0 : 4;
}

static void test_signal_thread_under_seccomp(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(seccomp_child());
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st))
		fail_msg("the child died of signal %d (SIGSYS = the filter)", WTERMSIG(st));
	assert_int_equal(WEXITSTATUS(st), 0);
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
