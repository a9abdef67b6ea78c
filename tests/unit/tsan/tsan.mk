# ThreadSanitizer build of the threaded tests (the page cache's pins and breaks, the blk
# paths over it, the virtqueue executor).
#
# TSan cannot be linked with the ASan library, so the test is compiled together with the mm/
# sources (which depend on nothing outside mm/ but headers). To hook into `make test`, add to
# the Makefile, after `include guest/guest.mk`:
#
#     include tests/unit/tsan/tsan.mk
#
# and make the `test` target depend on $(TSAN_BINS) and run them next to the unit tests, e.g.
# in tests/run-all.sh:  TSAN_OPTIONS=halt_on_error=1 unit_run build/tsan/test_*
# (a race report makes the binary exit nonzero, which unit_run counts as a failure).
# Standalone: make -f Makefile -f tests/unit/tsan/tsan.mk tsan

TSAN_FLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
TSAN_SRCS  := tests/unit/test_pcache_pin.c tests/unit/test_blk_pcache_threads.c \
	      tests/unit/test_vq_exec.c
TSAN_BINS  := $(TSAN_SRCS:tests/unit/%.c=$(B)/tsan/%)
MM_SRCS    := $(sort $(wildcard mm/*.c))
# the queue executor and what it stands on (no KVM, no mm/). -Wno-tsan: TSan does not model
# the virtqueue's two fences (they order guest-visible ring fields, not our threads)
VQ_SRCS    := devices/vq_exec.c devices/virtqueue.c devices/virtio.c vmm/guest_mem.c

$(B)/tsan/test_vq_exec: tests/unit/test_vq_exec.c $(VQ_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O2,$(CFLAGS)) $(TSAN_FLAGS) -Wno-tsan -o $@ $< $(VQ_SRCS) -lcmocka $(LDLIBS)

$(B)/tsan/%: tests/unit/%.c $(MM_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O2,$(CFLAGS)) $(TSAN_FLAGS) -o $@ $< $(MM_SRCS) -lcmocka $(LDLIBS)

tsan: $(TSAN_BINS)
	@TSAN_OPTIONS=halt_on_error=1 tests/run-unit.sh $(TSAN_BINS)
.PHONY: tsan
