# ThreadSanitizer build of the threaded page-cache tests (tests/unit/test_pcache_pin.c).
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
TSAN_SRCS  := tests/unit/test_pcache_pin.c tests/unit/test_blk_pcache_threads.c
TSAN_BINS  := $(TSAN_SRCS:tests/unit/%.c=$(B)/tsan/%)
MM_SRCS    := $(sort $(wildcard mm/*.c))

$(B)/tsan/%: tests/unit/%.c $(MM_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O2,$(CFLAGS)) $(TSAN_FLAGS) -o $@ $< $(MM_SRCS) -lcmocka $(LDLIBS)

tsan: $(TSAN_BINS)
	@TSAN_OPTIONS=halt_on_error=1 tests/run-unit.sh $(TSAN_BINS)
.PHONY: tsan
