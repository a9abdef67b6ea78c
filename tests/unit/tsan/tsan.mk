# ThreadSanitizer build of the threaded tests (the page cache's pins and breaks, the blk paths
# over it, the virtqueue executor, the blk write log's writers and flushes, the fault rules
# added, removed and checked at once, the pmem write log's FLUSH order). TSan cannot be linked
# with ASan, so the host sources are compiled a third time into their own archive (the same
# LIB_SRCS as build/cvmm), and each test below is linked against it. make test runs them
# (tests/run-all.sh); `make tsan` alone.
# -Wno-tsan: TSan does not model the virtqueue's two fences (they order guest-visible ring
# fields, not our threads).

TSAN_FLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan
TSAN_SRCS  := tests/unit/test_pcache_pin.c tests/unit/test_blk_pcache_threads.c \
	      tests/unit/test_pcache_races.c tests/unit/test_pcache_poison.c \
	      tests/unit/test_vq_exec.c tests/unit/test_blk_log.c tests/unit/test_fault.c \
	      tests/unit/test_pmem_log.c
TSAN_BINS  := $(TSAN_SRCS:tests/unit/%.c=$(B)/tsan/%)
$(B)/tsan/test_blk_log: $(B)/cvmm-replay
$(B)/tsan/test_pmem_log: $(B)/cvmm-replay
TSAN_OBJS  := $(LIB_SRCS:%.c=$(B)/tsan-obj/%.o)

$(B)/tsan-obj/%.o: %.c Makefile tests/unit/tsan/tsan.mk
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O2,$(CFLAGS)) $(TSAN_FLAGS) $(DEPFLAGS) -c $< -o $@

$(B)/libcvmm-tsan.a: $(TSAN_OBJS)
	@rm -f $@; ar rcs $@ $^

$(B)/tsan/%: tests/unit/%.c $(B)/libcvmm-tsan.a
	@mkdir -p $(dir $@) $(B)/dep
	$(CC) $(filter-out -O2,$(CFLAGS)) $(TSAN_FLAGS) $(DEPFLAGS) -MF $(B)/dep/$(@F).tsan.d -o $@ $< $(B)/libcvmm-tsan.a -lcmocka $(LDLIBS)

tsan: $(TSAN_BINS)
	@TSAN_OPTIONS=halt_on_error=1 tests/run-unit.sh $(TSAN_BINS)
.PHONY: tsan
