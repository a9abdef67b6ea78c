/* CPUID policy: masking by name, the pvm-host preset, per-vCPU topology. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cpuid.h"

static struct kvm_cpuid2 *fake_cpuid(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 6 * sizeof(c->entries[0]));
	c->nent = 6;
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 1, .ebx = 0x00000800,
						   .ecx = 0xffffffff, .edx = 0xffffffff };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 7, .index = 0,
						   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
						   .ebx = 0xffffffff, .ecx = 0xffffffff };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 0xd, .index = 0,
						   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
						   .eax = 7, .ebx = 0x240, .ecx = 0x340 };
	c->entries[3] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 0,
						   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	c->entries[4] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 1,
						   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	c->entries[5] = (struct kvm_cpuid_entry2){ .function = 0x80000001, .edx = 0xffffffff };
	return c;
}

static void test_mask_hides_named_bits_only(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	char err[256];
	assert_int_equal(cpuid_apply_mask(c, "cx16, pdpe1gb", err, sizeof(err)), 0);
	struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
	assert_int_equal(l1->ecx, 0xffffffffu & ~(1u << 13));
	assert_int_equal(l1->edx, 0xffffffffu);
	assert_int_equal(cpuid_find(c, 0x80000001, 0)->edx, 0xffffffffu & ~(1u << 26));
	free(c);
}

static void test_preset_hides_xsave_and_its_leaf(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	char err[256];
	assert_int_equal(cpuid_apply_mask(c, "pvm-host", err, sizeof(err)), 0);
	struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
	assert_false(l1->ecx & (1u << 13)); /* cx16 */
	assert_false(l1->ecx & (1u << 26)); /* xsave */
	assert_false(l1->ecx & (1u << 27)); /* osxsave */
	assert_false(cpuid_find(c, 7, 0)->ebx & (1u << 5)); /* avx2 */
	struct kvm_cpuid_entry2 *d = cpuid_find(c, 0xd, 0);
	assert_int_equal(d->eax | d->ebx | d->ecx | d->edx, 0);
	free(c);
}

static void test_unknown_feature_is_named(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	char err[512];
	assert_int_equal(cpuid_apply_mask(c, "cx16,warp-drive", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'warp-drive'"));
	assert_non_null(strstr(err, "cx16"));
	free(c);
}

static void test_empty_mask_changes_nothing(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid(), *orig = cpuid_dup(c);
	char err[64];
	assert_int_equal(cpuid_apply_mask(c, "", err, sizeof(err)), 0);
	assert_memory_equal(c, orig, sizeof(*c) + c->nent * sizeof(c->entries[0]));
	free(c);
	free(orig);
}

static void test_topology(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	cpuid_set_topology(c, 3, 4);
	struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
	assert_int_equal(l1->ebx >> 24, 3);
	assert_int_equal((l1->ebx >> 16) & 0xff, 4);
	assert_int_equal(l1->ebx & 0xffff, 0x0800); /* CLFLUSH size kept */
	assert_true(l1->edx & (1u << 28));
	struct kvm_cpuid_entry2 *b0 = cpuid_find(c, 0xb, 0), *b1 = cpuid_find(c, 0xb, 1);
	assert_int_equal(b0->ebx, 4);
	assert_int_equal(b0->eax, 2);
	assert_int_equal(b0->edx, 3);
	assert_int_equal((b1->ecx >> 8) & 0xff, 0); /* level 1 invalid: enumeration ends */
	free(c);
}

/* The recovery bit an AMD guest needs to survive cvmm's user-mode machine check (issue 13). */
static void test_succor_on_amd_only(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 3 * sizeof(c->entries[0]));
	c->nent = 3;
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0x10, .ebx = 0x68747541,
						   .edx = 0x69746e65, .ecx = 0x444d4163 };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 0x80000000, .eax = 0x80000008 };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 0x80000007, .ebx = 0x8 };
	assert_true(cpuid_advertise_mce_recovery(c));
	assert_int_equal(cpuid_find(c, 0x80000007, 0)->ebx, 0x8 | 0x2);
	/* GenuineIntel: MCG_SER_P is KVM's business, the leaf is left alone */
	c->entries[0].ebx = 0x756e6547; c->entries[0].edx = 0x49656e69; c->entries[0].ecx = 0x6c65746e;
	c->entries[2].ebx = 0;
	assert_false(cpuid_advertise_mce_recovery(c));
	assert_int_equal(cpuid_find(c, 0x80000007, 0)->ebx, 0);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mask_hides_named_bits_only),
		cmocka_unit_test(test_preset_hides_xsave_and_its_leaf),
		cmocka_unit_test(test_unknown_feature_is_named),
		cmocka_unit_test(test_empty_mask_changes_nothing),
		cmocka_unit_test(test_topology),
		cmocka_unit_test(test_succor_on_amd_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
