/* ACPI tables: structure and checksums, the MADT's CPU count, the AML names, and iasl's view of
 * every table (disassembled, then recompiled: any error or warning fails). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/irq.h"
#include "vmm/acpi.h"

#define GPA 0xE0000ULL
#define CAP 0x20000

static uint8_t buf[CAP];

static uint32_t r32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t r64(const uint8_t *p) { return r32(p) | (uint64_t)r32(p + 4) << 32; }

static struct acpi_params params(unsigned ncpus)
{
	return (struct acpi_params){
		.ncpus = ncpus, .ecam_base = 0xB0000000, .ecam_bus_end = 255,
		.mmio32_base = 0xC0000000, .mmio32_end = 0xFEC00000,
		.mmio64_base = 0x140000000ULL, .mmio64_end = 0x1140000000ULL,
	};
}

static void build(unsigned ncpus, struct acpi_tables *t)
{
	char err[256];
	struct acpi_params p = params(ncpus);
	memset(buf, 0xa5, sizeof(buf));
	assert_int_equal(acpi_build(buf, CAP, GPA, &p, t, err, sizeof(err)), 0);
}

/* The table at guest-physical gpa, checked: inside the buffer, length and checksum right. */
static const uint8_t *table_at(uint64_t gpa, const char *sig)
{
	assert_true(gpa >= GPA && gpa + 36 <= GPA + CAP);
	const uint8_t *t = buf + (gpa - GPA);
	assert_memory_equal(t, sig, 4);
	uint32_t len = r32(t + 4);
	assert_true(len >= 36 && gpa + len <= GPA + CAP);
	assert_int_equal(acpi_checksum(t, len), 0);
	return t;
}

static void test_rsdp_and_every_checksum(void **state)
{
	struct acpi_tables t;
	build(2, &t);
	assert_int_equal(t.rsdp, GPA); /* 16-byte aligned in the BIOS area the OS scans */
	const uint8_t *r = buf;
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(acpi_checksum(r, 20), 0);
	assert_int_equal(acpi_checksum(r, 36), 0);
	assert_int_equal(r[15], 2);
	assert_int_equal(r32(r + 20), 36);
	const uint8_t *x = table_at(r64(r + 24), "XSDT");
	const uint8_t *rs = table_at(r32(r + 16), "RSDT");
	uint32_t nx = (r32(x + 4) - 36) / 8, nr = (r32(rs + 4) - 36) / 4;
	assert_int_equal(nx, 3);
	assert_int_equal(nr, 3);
	const char *want[] = { "FACP", "APIC", "MCFG" };
	for (uint32_t i = 0; i < nx; i++) {
		table_at(r64(x + 36 + 8 * i), want[i]);
		assert_int_equal(r64(x + 36 + 8 * i), r32(rs + 36 + 4 * i));
	}
	for (int i = 0; i < t.n; i++)
		if (strcmp(t.t[i].sig, "RSDP"))
			assert_int_equal(acpi_checksum(buf + t.t[i].off, t.t[i].len), 0);
}

static void test_fadt_hw_reduced_reset_and_dsdt(void **state)
{
	struct acpi_tables t;
	build(1, &t);
	const uint8_t *x = table_at(r64(buf + 24), "XSDT");
	const uint8_t *f = table_at(r64(x + 36), "FACP");
	assert_int_equal(r32(f + 4), 276);
	assert_int_equal(f[8], 6);
	uint32_t flags = r32(f + 112);
	assert_true(flags & (1u << 20));  /* HW_REDUCED_ACPI */
	assert_true(flags & (1u << 10));  /* RESET_REG_SUP */
	assert_int_equal(f[116], 1);      /* reset register in System I/O */
	assert_int_equal(r64(f + 120), ACPI_PORT_CTL);
	assert_int_equal(f[128], ACPI_RESET_VALUE);
	assert_int_equal(r64(f + 244 + 4), ACPI_PORT_CTL); /* sleep control */
	assert_int_equal(r64(f + 256 + 4), ACPI_PORT_STS); /* sleep status */
	assert_int_equal(f[109] & 0x2, 0); /* no 8042 */
	table_at(r64(f + 140), "DSDT");
}

static void madt_check(unsigned ncpus)
{
	struct acpi_tables t;
	build(ncpus, &t);
	const uint8_t *x = table_at(r64(buf + 24), "XSDT");
	const uint8_t *m = table_at(r64(x + 44), "APIC");
	assert_int_equal(r32(m + 36), ACPI_LAPIC_GPA);
	uint32_t len = r32(m + 4);
	unsigned lapics = 0, ioapics = 0, isos = 0;
	for (uint32_t off = 44; off < len;) {
		const uint8_t *e = m + off;
		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[3], lapics); /* APIC ID i for vCPU i */
			assert_int_equal(r32(e + 4) & 1, 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(r32(e + 4), ACPI_IOAPIC_GPA);
			assert_int_equal(r32(e + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(e[3], 0);
			assert_int_equal(r32(e + 4), IRQ_TIMER_GSI);
			isos++;
			break;
		}
		off += e[1];
	}
	assert_int_equal(lapics, ncpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 1);
}

static void test_madt_one_lapic_per_vcpu(void **state)
{
	madt_check(1);
	madt_check(2);
	madt_check(64);
}

static void test_mcfg(void **state)
{
	struct acpi_tables t;
	build(2, &t);
	const uint8_t *x = table_at(r64(buf + 24), "XSDT");
	const uint8_t *m = table_at(r64(x + 52), "MCFG");
	assert_int_equal(r32(m + 4), 60);
	assert_int_equal(r64(m + 44), 0xB0000000);
	assert_int_equal(m[44 + 10], 0);
	assert_int_equal(m[44 + 11], 255);
}

static bool contains(const uint8_t *p, size_t n, const void *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (!memcmp(p + i, needle, m))
			return true;
	return false;
}

static void test_dsdt_names(void **state)
{
	struct acpi_tables t;
	build(2, &t);
	const uint8_t *x = table_at(r64(buf + 24), "XSDT");
	const uint8_t *f = table_at(r64(x + 36), "FACP");
	const uint8_t *d = table_at(r64(f + 140), "DSDT");
	size_t n = r32(d + 4);
	assert_int_equal(acpi_eisaid("PNP0A03"), 0x030AD041);
	const char *ids[] = { "PNP0A08", "PNP0A03", "PNP0501", "PNP0C02" };
	for (int i = 0; i < 4; i++) {
		uint32_t v = acpi_eisaid(ids[i]);
		uint8_t b[5] = { 0x0c, (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
				 (uint8_t)(v >> 24) };
		assert_true(contains(d, n, b, 5));
	}
	assert_true(contains(d, n, "PCI0", 4));
	assert_true(contains(d, n, "COM1", 4));
	assert_true(contains(d, n, "_S5_", 4));
	uint8_t io3f8[] = { 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03 };
	assert_true(contains(d, n, io3f8, sizeof(io3f8)));
	uint8_t irq4[] = { 0x22, 0x10, 0x00 };
	assert_true(contains(d, n, irq4, sizeof(irq4)));
}

static void test_bad_input(void **state)
{
	struct acpi_tables t;
	char err[256];
	struct acpi_params p = params(2);
	assert_int_equal(acpi_build(buf, 64, GPA, &p, &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not enough"));
	p.ncpus = 0;
	assert_int_equal(acpi_build(buf, CAP, GPA, &p, &t, err, sizeof(err)), -1);
	p = params(2);
	p.ecam_bus_end = 256;
	assert_int_equal(acpi_build(buf, CAP, GPA, &p, &t, err, sizeof(err)), -1);
}

/* Run a command; its combined output in *out (malloc'd). Returns the exit status. */
static int run(const char *cmd, char **out)
{
	char full[1024];
	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	FILE *p = popen(full, "r");
	assert_non_null(p);
	size_t cap = 4096, len = 0;
	char *b = malloc(cap);
	size_t r;
	while ((r = fread(b + len, 1, cap - len - 1, p)) > 0) {
		len += r;
		if (cap - len < 2) {
			cap *= 2;
			b = realloc(b, cap);
		}
	}
	b[len] = 0;
	*out = b;
	return pclose(p);
}

/* iasl's own complaints: lines starting "Error"/"Warning", or a summary with nonzero counts. */
static const char *iasl_complaint(const char *out)
{
	for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, "Error", 5) || !strncmp(l, "Warning", 7))
			return l;
		const char *s = strstr(l, " Errors, ");
		if (s && (s - l) < 200) {
			unsigned e = 0, w = 0;
			const char *c = strstr(l, "successful.");
			if (!c || sscanf(c, "successful. %u Errors, %u Warnings", &e, &w) != 2 || e || w)
				return l;
		}
	}
	return NULL;
}

static void test_iasl_disassembles_every_table(void **state)
{
	char *out;
	if (run("command -v iasl", &out) != 0) {
		free(out);
		fprintf(stderr, "\n*** SKIP: iasl not installed (Debian: apt-get install acpica-tools): "
				"the ACPI tables were NOT checked by iasl ***\n\n");
		skip();
	}
	free(out);
	struct acpi_tables t;
	build(4, &t);
	char dir[] = "/tmp/cvmm-acpi-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int checked = 0;
	for (int i = 0; i < t.n; i++) {
		/* iasl 20200925 refuses a binary RSDP ("RSD " is not a valid name): its fields and
		 * both checksums are checked by test_rsdp_and_every_checksum instead. */
		if (!strcmp(t.t[i].sig, "RSDP"))
			continue;
		char path[256], cmd[1024];
		snprintf(path, sizeof(path), "%s/%s.dat", dir, t.t[i].sig);
		FILE *f = fopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(buf + t.t[i].off, 1, t.t[i].len, f), t.t[i].len);
		fclose(f);
		/* Disassemble... */
		snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat", dir, t.t[i].sig);
		int rc = run(cmd, &out);
		const char *bad = iasl_complaint(out);
		if (rc != 0 || bad) {
			fprintf(stderr, "iasl -d %s.dat (exit %d):\n%s\n", t.t[i].sig, rc, out);
			fail_msg("iasl -d %s: %.120s", t.t[i].sig, bad ? bad : "nonzero exit");
		}
		free(out);
		/* ...check the listing has no complaint inside... */
		snprintf(cmd, sizeof(cmd), "cd %s && grep -n -E 'Error|Warning|Invalid|Unknown|\\*\\*\\*\\*' %s.dsl",
			 dir, t.t[i].sig);
		rc = run(cmd, &out);
		if (rc == 0)
			fail_msg("iasl's listing of %s complains:\n%s", t.t[i].sig, out);
		free(out);
		/* ...and recompile it: the ASL compiler checks what the disassembler only prints. */
		snprintf(cmd, sizeof(cmd), "cd %s && iasl %s.dsl", dir, t.t[i].sig);
		rc = run(cmd, &out);
		bad = iasl_complaint(out);
		if (rc != 0 || bad || !strstr(out, "Compilation successful")) {
			fprintf(stderr, "iasl %s.dsl (exit %d):\n%s\n", t.t[i].sig, rc, out);
			fail_msg("iasl %s.dsl: %.120s", t.t[i].sig, bad ? bad : "not successful");
		}
		free(out);
		checked++;
	}
	assert_int_equal(checked, t.n - 1);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsdp_and_every_checksum),
		cmocka_unit_test(test_fadt_hw_reduced_reset_and_dsdt),
		cmocka_unit_test(test_madt_one_lapic_per_vcpu),
		cmocka_unit_test(test_mcfg),
		cmocka_unit_test(test_dsdt_names),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_iasl_disassembles_every_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
