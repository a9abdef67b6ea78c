/* Boot tables: what a guest entered at the 64-bit entry finds in memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/boot.h"
#include "vmm/vm.h"

#define RAM (64u << 20)

static void test_start_info_and_memmap(void **state)
{
	uint8_t *ram = calloc(1, RAM);
	struct guest_mem m = { 0 };
	char err[128];
	assert_int_equal(guest_mem_add(&m, 0, RAM, ram), 0);
	assert_int_equal(boot_setup_pvh(&m, RAM, 0, "scenario=hello x=1", err, sizeof(err)), 0);
	struct hvm_start_info *si = (void *)(ram + GPA_START_INFO);
	assert_int_equal(si->magic, HVM_START_MAGIC);
	assert_int_equal(si->version, 1);
	assert_string_equal((char *)ram + si->cmdline_paddr, "scenario=hello x=1");
	assert_int_equal(si->memmap_entries, 2);
	struct hvm_memmap_entry *e = (void *)(ram + si->memmap_paddr);
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].type, 1);
	assert_int_equal(e[1].addr, 0x100000);
	assert_int_equal(e[1].addr + e[1].size, RAM);
	free(ram);
}

static void test_page_tables_identity_map_4g(void **state)
{
	uint8_t *ram = calloc(1, RAM);
	struct guest_mem m = { 0 };
	char err[128];
	guest_mem_add(&m, 0, RAM, ram);
	assert_int_equal(boot_setup_pvh(&m, RAM, 0, "", err, sizeof(err)), 0);
	uint64_t *pml4 = (void *)(ram + GPA_BOOT_PML4);
	/* Walk a few addresses the way the MMU would. */
	uint64_t addrs[] = { 0, 0x100000, 0x3fffffff, 0xB0000000, 0xfee00000, 0xffffffff };
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		uint64_t va = addrs[i];
		uint64_t e4 = pml4[(va >> 39) & 511];
		assert_true(e4 & 1);
		uint64_t *pdpt = (void *)(ram + (e4 & ~0xfffULL));
		uint64_t e3 = pdpt[(va >> 30) & 511];
		assert_true(e3 & 1);
		uint64_t *pd = (void *)(ram + (e3 & ~0xfffULL));
		uint64_t e2 = pd[(va >> 21) & 511];
		assert_true((e2 & 0x81) == 0x81); /* present, 2 MiB page */
		assert_int_equal((e2 & ~0x1fffffULL & ((1ULL << 52) - 1)) | (va & 0x1fffff), va);
		/* the PCI hole is uncached, RAM is not */
		assert_int_equal(!!(e2 & 0x10), va >= GPA_PCI_HOLE);
	}
	free(ram);
}

static void test_high_ram_in_memmap(void **state)
{
	uint8_t *ram = calloc(1, RAM);
	struct guest_mem m = { 0 };
	char err[128];
	guest_mem_add(&m, 0, RAM, ram);
	assert_int_equal(boot_setup_pvh(&m, RAM, 1ULL << 30, "", err, sizeof(err)), 0);
	struct hvm_start_info *si = (void *)(ram + GPA_START_INFO);
	assert_int_equal(si->memmap_entries, 3);
	struct hvm_memmap_entry *e = (void *)(ram + si->memmap_paddr);
	assert_int_equal(e[2].addr, GPA_HIGH_RAM);
	assert_int_equal(e[2].size, 1ULL << 30);
	free(ram);
}

static void test_overlong_cmdline_refused(void **state)
{
	uint8_t *ram = calloc(1, RAM);
	struct guest_mem m = { 0 };
	char err[128];
	guest_mem_add(&m, 0, RAM, ram);
	char *cl = malloc(5000);
	memset(cl, 'a', 4999);
	cl[4999] = 0;
	assert_int_equal(boot_setup_pvh(&m, RAM, 0, cl, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cmdline"));
	free(cl);
	free(ram);
}

static void test_tiny_ram_refused(void **state)
{
	uint8_t *ram = calloc(1, 0x4000);
	struct guest_mem m = { 0 };
	char err[128];
	guest_mem_add(&m, 0, 0x4000, ram);
	assert_int_equal(boot_setup_pvh(&m, 0x4000, 0, "", err, sizeof(err)), -1);
	free(ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_info_and_memmap),
		cmocka_unit_test(test_page_tables_identity_map_4g),
		cmocka_unit_test(test_high_ram_in_memmap),
		cmocka_unit_test(test_overlong_cmdline_refused),
		cmocka_unit_test(test_tiny_ram_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
