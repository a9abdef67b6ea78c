/* A seccomp filter for the running VM (issue 14): an allow-list of the system calls cvmm's
 * threads make once the VM is set up (vCPUs: KVM_RUN and exits; device and control threads:
 * file I/O on the images, eventfds, sockets already open; the main thread: waiting, the exit
 * summary, teardown). Installed by vm_run just before the vCPU threads start, with
 * SECCOMP_FILTER_FLAG_TSYNC so the threads already running (control socket, device queues,
 * blk workers) get it too, and every thread started later inherits it.
 *
 * A call outside the list raises SIGSYS; the handler writes one line naming the call's number
 * and ends the process with status 125 (like any abnormal stop). open/openat are answered
 * EACCES instead: nothing opens a file once the VM runs, and glibc's lazy reads (e.g. of
 * /sys/devices/system/cpu/online for malloc arenas) fail softly. clone is allowed for threads
 * only (CLONE_THREAD: no new processes); clone3, whose flags BPF cannot read, gets ENOSYS and
 * glibc falls back to clone. `--no-seccomp` or
 * `seccomp = off` in [vm] turns the filter off. x86-64 only (cvmm is). */
#ifndef CVMM_SECCOMP_H
#define CVMM_SECCOMP_H

#include <stddef.h>

/* Install the filter on every thread of the process. Returns 0, or -1 with one line in err. */
int seccomp_install(char *err, size_t errlen);

#endif
