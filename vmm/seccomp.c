/* The seccomp allow-list: see seccomp.h. */
#include "vmm/seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC 1
#endif

/* What cvmm's threads call once the VM is set up (see seccomp.h). Taken from the code's own
 * calls and from strace of the unit tests that drive the same mm/, devices/ and control paths,
 * plus glibc's own needs (thread start and exit, malloc, sleeping). */
static const int allowed[] = {
	/* I/O on descriptors already open: images (pcache, blk), eventfds, the control socket,
	 * the serial log and stats JSON, stdout/stderr */
	SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv,
	SYS_pwritev, SYS_preadv2, SYS_pwritev2, SYS_lseek, SYS_close, SYS_fstat, SYS_newfstatat,
	SYS_statx, SYS_fcntl, SYS_fallocate, SYS_fsync, SYS_fdatasync, SYS_sync_file_range,
	SYS_ftruncate, SYS_poll, SYS_ppoll, SYS_accept4, SYS_recvfrom, SYS_sendto, SYS_recvmsg,
	SYS_sendmsg, SYS_shutdown, SYS_unlink, /* the control socket's path at stop */
	SYS_eventfd2, /* none is made once running today; harmless if one is */
	/* KVM: KVM_RUN, memslots, dirty log, interrupts, machine checks, registers */
	SYS_ioctl,
	/* memory: malloc, the page cache's mappings, thread stacks */
	SYS_mmap, SYS_munmap, SYS_mprotect, SYS_mremap, SYS_madvise, SYS_msync, SYS_brk,
	/* threads: started on demand (blk workers, virtio queue threads), joined, kicked; clone is
	 * checked apart (threads only), clone3 answered ENOSYS (below) */
	SYS_set_robust_list, SYS_rseq, SYS_futex, SYS_exit, SYS_exit_group,
	SYS_gettid, SYS_getpid, SYS_tgkill, SYS_sched_yield, SYS_sched_getaffinity, SYS_getcpu,
	/* signals: the vCPU kick, abort() */
	SYS_rt_sigreturn, SYS_rt_sigprocmask, SYS_rt_sigaction, SYS_sigaltstack,
	SYS_restart_syscall, SYS_rt_sigtimedwait, /* vmm/signals.c: the signal thread's sigwait */
	/* time */
	SYS_clock_gettime, SYS_gettimeofday, SYS_nanosleep, SYS_clock_nanosleep,
	SYS_getrandom,
};

#define NALLOWED (sizeof(allowed) / sizeof(allowed[0]))
#define X32_SYSCALL_BIT 0x40000000

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	/* async-signal-safe only: format by hand, write, _exit */
	char msg[256] = "cvmm: seccomp: a thread made system call ";
	size_t n = strlen(msg);
	char num[16];
	int k = 0, nr = si->si_syscall;
	unsigned v = nr < 0 ? 0 : (unsigned)nr;
	do {
		num[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && k < (int)sizeof(num));
	while (k)
		msg[n++] = num[--k];
	static const char tail[] = ", which the filter does not allow: VM stopped (--no-seccomp "
				   "turns the filter off; `ausyscall NUMBER` names the call)\n";
	memcpy(msg + n, tail, sizeof(tail) - 1 < sizeof(msg) - n ? sizeof(tail) - 1 : sizeof(msg) - n);
	n += sizeof(tail) - 1 < sizeof(msg) - n ? sizeof(tail) - 1 : sizeof(msg) - n;
	ssize_t w = write(STDERR_FILENO, msg, n);
	(void)w;
	_exit(125);
}

int seccomp_install(char *err, size_t errlen)
{
	/* arch (3) + nr (1) + x32 (2) + clone3 (2) + clone (5) + open (3) + the list + 2 */
	struct sock_filter prog[16 + NALLOWED + 2];
	unsigned n = 0;
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, arch));
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, nr));
	/* x32 system calls: never cvmm's */
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	/* clone3: its flags are in memory BPF cannot read; ENOSYS makes glibc use clone */
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	/* clone: a thread (CLONE_THREAD) only, never a new process */
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, args[0]));
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	/* open, openat: EACCES (see seccomp.h) */
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_open, 1, 0);
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 0, 1);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES);
	/* each allowed call jumps to the ALLOW at the end */
	for (unsigned i = 0; i < NALLOWED; i++) {
		unsigned to_allow = (unsigned)(NALLOWED - i); /* skips the rest and the TRAP */
		prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
							 (unsigned)allowed[i], to_allow, 0);
	}
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	if (n > sizeof(prog) / sizeof(prog[0]))
		abort(); /* the program outgrew its array: a bug here, caught before use */
	struct sock_fprog fp = { .len = (unsigned short)n, .filter = prog };

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		snprintf(err, errlen, "seccomp: sigaction(SIGSYS): %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "seccomp: PR_SET_NO_NEW_PRIVS: %s (--no-seccomp runs without "
			 "the filter)", strerror(errno));
		return -1;
	}
	long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fp);
	if (r != 0) {
		snprintf(err, errlen, "seccomp: installing the filter: %s (--no-seccomp runs without "
			 "the filter)", r > 0 ? "a thread could not be synchronised" : strerror(errno));
		return -1;
	}
	return 0;
}
