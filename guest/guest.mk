# The freestanding test guest: $(B)/guest.elf (included by the top-level Makefile).
# Ring 0 code is emulated on the project's hosts, so the guest boots, sets up traps and runs
# everything else in ring 3: see guest/README.md.

GUEST_CC     ?= $(CC)
GUEST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -Iguest \
	-ffreestanding -nostdlib -fno-pic -fno-pie -mcmodel=small -mno-red-zone \
	-mgeneral-regs-only -mno-sse -fno-stack-protector -fcf-protection=none \
	-fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,guest/guest.ld -Wl,--build-id=none \
	-Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments \
	-Wl,-z,noexecstack

GUEST_SRCS := $(sort $(wildcard guest/arch/*.S guest/arch/*.c guest/lib/*.c guest/drivers/*.c \
	guest/scenarios/*.c))
GUEST_OBJS := $(patsubst guest/%,$(B)/guest/%.o,$(GUEST_SRCS))
GUEST_HDRS := $(wildcard guest/*/*.h)

$(B)/guest/%.c.o: guest/%.c $(GUEST_HDRS) guest/guest.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(B)/guest/%.S.o: guest/%.S $(GUEST_HDRS) guest/guest.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(B)/guest.elf: $(GUEST_OBJS) guest/guest.ld
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(GUEST_OBJS)

.PHONY: guest
guest: $(B)/guest.elf
