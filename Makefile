# cvmm: one entry point.  make | make run | make test | make bench | make fuzz | make clean
#
# Host code in vmm/ devices/ mm/ lib/ is compiled three times: optimised for build/cvmm, with
# AddressSanitizer + UndefinedBehaviorSanitizer for the unit tests (build/asan/), and with
# ThreadSanitizer for the threaded tests (build/tsan-obj/, tests/unit/tsan/tsan.mk).
# Layers point one way: vmm/ -> devices/ -> mm/ -> lib/ (README "Layout").

CC      ?= gcc
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -D_GNU_SOURCE -I. $(WARN) -pthread -DCVMM_VERSION=\"$(VERSION)\"
# Each object depends on the headers it includes (and nothing else): -MMD writes the list next
# to the object (binaries: under build/dep/, so test directories hold only tests), -MP keeps a
# removed header from breaking the build.
DEPFLAGS := -MMD -MP
LDLIBS  := -lelf -pthread
SANFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

B := build
HOST_SRCS := $(sort $(wildcard vmm/*.c devices/*.c mm/*.c lib/*.c))
LIB_SRCS  := $(filter-out vmm/main.c,$(HOST_SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(B)/obj/%.o)
ASAN_OBJS := $(LIB_SRCS:%.c=$(B)/asan/%.o)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)

.PHONY: all run test unit integration bench bench-log fuzz clean deps images linux-images test-linux
all: deps-check $(B)/cvmm $(B)/cvmmctl $(B)/cvmm-replay $(B)/guest.elf

# Install missing Debian packages (as root) on first use: a plain `make` needs only the build
# group; test and bench add theirs (scripts/deps.sh says which package each tool comes from).
deps-check:
	@scripts/deps.sh --check-or-install build
deps-test:
	@scripts/deps.sh --check-or-install build test
deps-bench:
	@scripts/deps.sh --check-or-install build test bench
.PHONY: deps-check deps-test deps-bench

# Objects also depend on the Makefile: its flags are part of what they are built with.
$(B)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# `cvmm --version` is compiled into main.o: rebuild it when the version changes, not only when
# main.c does (else a commit that touched only devices/ kept printing the old version).
$(B)/version.stamp: FORCE
	@mkdir -p $(B); echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
$(B)/obj/vmm/main.o: $(B)/version.stamp
FORCE:
.PHONY: FORCE

$(B)/asan/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O2,$(CFLAGS)) $(SANFLAGS) $(DEPFLAGS) -c $< -o $@

$(B)/libcvmm.a: $(LIB_OBJS)
	@rm -f $@; ar rcs $@ $^

$(B)/libcvmm-asan.a: $(ASAN_OBJS)
	@rm -f $@; ar rcs $@ $^

$(B)/cvmm: $(B)/obj/vmm/main.o $(B)/libcvmm.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The control-socket client (tools/cvmmctl.c; the protocol is in vmm/control.h).
$(B)/cvmmctl: tools/cvmmctl.c
	@mkdir -p $(dir $@) $(B)/dep
	$(CC) $(CFLAGS) $(DEPFLAGS) -MF $(B)/dep/$(@F).d -o $@ $<

# The write-log replay tool (tools/cvmm-replay.c; the format is in devices/blk_log.h).
$(B)/cvmm-replay: tools/cvmm-replay.c
	@mkdir -p $(dir $@) $(B)/dep
	$(CC) $(CFLAGS) $(DEPFLAGS) -MF $(B)/dep/$(@F).d -o $@ $<

# Runs a script of writes and FLUSHes through cvmm's write log (tests/integration/powercut.sh).
$(B)/blk-log-drive: tests/tools/blk-log-drive.c $(B)/libcvmm.a
	@mkdir -p $(dir $@) $(B)/dep
	$(CC) $(CFLAGS) $(DEPFLAGS) -MF $(B)/dep/$(@F).d -o $@ $< $(B)/libcvmm.a $(LDLIBS)

# test_blk_log and test_pmem_log run the replay tool on the logs they make; test_replay on
# logs it writes by hand.
$(B)/tests/test_blk_log: $(B)/cvmm-replay
$(B)/tests/test_pmem_log: $(B)/cvmm-replay
$(B)/tests/test_replay: $(B)/cvmm-replay

$(B)/tests/%: tests/unit/%.c $(B)/libcvmm-asan.a
	@mkdir -p $(dir $@) $(B)/dep
	$(CC) $(filter-out -O2,$(CFLAGS)) $(SANFLAGS) $(DEPFLAGS) -MF $(B)/dep/$(@F).asan.d -o $@ $< $(B)/libcvmm-asan.a -lcmocka $(LDLIBS)

# The freestanding guest (rules in guest/guest.mk).
include guest/guest.mk
# ThreadSanitizer build of the threaded page-cache tests.
include tests/unit/tsan/tsan.mk

images:
	@scripts/mkimages.sh $(B)

run: all images
	$(B)/cvmm run --config configs/default.conf

unit: deps-test $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

test: deps-test all $(UNIT_BINS) $(TSAN_BINS) $(B)/blk-log-drive images
	@tests/run-all.sh

# A Debian cloud kernel + busybox initramfs under build/linux/ (downloads the package once).
linux-images:
	@scripts/mklinux.sh $(B)

# Boot it (configs/linux.conf) and check what it saw: e820, command line, ACPI (~5 min here).
test-linux: deps-test all linux-images
	@tests/linux/run.sh

# The Linux-guest suite: storage checks in a real Linux userspace (test-linux-guest).
include tests/linux/linux-guest.mk

# cvmm against QEMU q35 and the host on the same guest and images (bench/run.py, ~4 min here):
# prints the table, writes build/bench/results.json and results.png.
bench: deps-bench all
	@python3 bench/run.py

# The write logs' own cost on the host (no KVM): bench/pmem_log_micro.c, fake shadow table.
$(B)/pmem_log_micro: bench/pmem_log_micro.c $(B)/libcvmm.a
	$(CC) -O2 -std=gnu11 -D_GNU_SOURCE -I. -pthread -o $@ $< $(B)/libcvmm.a -lelf -pthread
bench-log: $(B)/pmem_log_micro
	@TMPDIR=$${TMPDIR:-/dev/shm} $(B)/pmem_log_micro

# libFuzzer targets, FUZZ_SECONDS each (default 20; make test runs them too).
fuzz: deps-test
	@bash -c '. tests/lib.sh; . tests/fuzz/run.sh; fuzz_tests; summary'

clean:
	rm -rf $(B)

# The header lists -MMD wrote (none before the first build).
-include $(shell find $(B) -name '*.d' 2>/dev/null)
