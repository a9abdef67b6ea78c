# The Linux-guest suite: a small test kernel (scripts/mkkernel.sh, cached outside the clone) runs
# tests/linux/guest/init.c's storage checks in Linux userspace under cvmm (tests/linux/guest.sh).
.PHONY: test-linux-guest linux-guest-kernel

# Build (or find in /var/cache/cvmm/kernel) the test kernel; links it into build/linux-guest/.
linux-guest-kernel:
	@scripts/mkkernel.sh $(B)/linux-guest

# Boot it with configs/linux-guest.conf and check what the guest and the host saw.
test-linux-guest: all
	@tests/linux/guest.sh
