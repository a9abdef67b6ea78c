/* config: file format, flags overriding the file, path resolution and final validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/config.h"

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)

/* err must contain every one of the NULL-terminated needles */
static void assert_err_has(const char *err, ...)
{
	va_list ap;
	const char *needle;

	va_start(ap, err);
	while ((needle = va_arg(ap, const char *))) {
		if (!strstr(err, needle))
			fail_msg("error \"%s\" lacks \"%s\"", err, needle);
	}
	va_end(ap);
	/* one line, no trailing newline: callers print it with their own prefix */
	assert_null(strchr(err, '\n'));
}

static int parse(struct vm_config *c, const char *text, char *err, size_t errlen)
{
	config_defaults(c);
	return config_parse_string(c, text, "t.conf", err, errlen);
}

/* A scratch directory holding files the tests write; removed at teardown. */
struct scratch {
	char dir[512];	/* small, so paths built from it provably fit their buffers */
	char kernel[PATH_MAX];
	struct vm_config c;
};

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int scratch_setup(void **state)
{
	struct scratch *s = test_calloc(1, sizeof(*s));
	char tmpl[] = "/tmp/cvmm-test-config-XXXXXX";
	char abs[PATH_MAX];

	assert_non_null(s);
	assert_non_null(mkdtemp(tmpl));
	/* realpath: /tmp may itself be a symlink, and the parser stores resolved directories */
	assert_non_null(realpath(tmpl, abs));
	assert_true(strlen(abs) < sizeof(s->dir));
	memcpy(s->dir, abs, strlen(abs) + 1);
	snprintf(s->kernel, sizeof(s->kernel), "%s/kernel.elf", s->dir);
	write_file(s->kernel, "ELF", 3);
	*state = s;
	return 0;
}

static int scratch_teardown(void **state)
{
	struct scratch *s = *state;
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	assert_int_equal(system(cmd), 0);
	test_free(s);
	return 0;
}

/* Create the plain [blk] / [pmem] device (config_set of a key creates it, as a section does). */
static void add_dev(struct vm_config *c, const char *kind)
{
	char err[256];
	assert_int_equal(config_set(c, kind, "readonly", "off", "test", err, sizeof(err)), 0);
}

static void test_defaults(void **state)
{
	struct vm_config c;

	(void)state;
	memset(&c, 0x5a, sizeof(c));
	config_defaults(&c);
	assert_int_equal(c.mem_size, 256 * MIB);
	assert_int_equal(c.cpus, 1);
	assert_string_equal(c.serial, "stdio");
	assert_int_equal(c.nblk, 0);
	assert_int_equal(c.npmem, 0);
	assert_string_equal(c.kernel, "");
	assert_string_equal(c.cmdline, "");
	assert_int_equal(c.timeout_s, 0);
}

/* Issue 14 defect 3: the console's byte budget is a [vm] key and a flag. */
/* flush = sync | ignore for [blk] and [pmem] (issue 15); anything else is refused by name,
 * and a write log without FLUSH points is refused at validation. */
static void test_flush_policy_key(void **state)
{
	struct scratch *s = *state;
	struct vm_config c;
	char err[512] = "";

	if (parse(&c, "[blk]\nflush = ignore\n[pmem]\nflush = ignore\n", err, sizeof(err)))
		fail_msg("%s", err);
	assert_true(c.blk[0].flush_ignore);
	assert_true(c.pmem[0].flush_ignore);
	assert_int_equal(parse(&c, "[blk]\nflush = sync\n", err, sizeof(err)), 0);
	assert_false(c.blk[0].flush_ignore);
	config_defaults(&c);
	assert_int_equal(parse(&c, "[blk]\n[pmem]\n", err, sizeof(err)), 0);
	assert_false(c.blk[0].flush_ignore || c.pmem[0].flush_ignore); /* syncing unless asked */
	assert_true(c.blk[0].direct); /* a new disk's default */
	config_defaults(&c);
	assert_int_equal(parse(&c, "[blk]\nflush = off\n", err, sizeof(err)), -1);
	assert_err_has(err, "flush policy 'off'", "sync or ignore", NULL);
	config_defaults(&c);
	snprintf(c.kernel, sizeof(c.kernel), "%s", s->kernel);
	add_dev(&c, "blk");
	snprintf(c.blk[0].path, sizeof(c.blk[0].path), "%s", s->kernel);
	snprintf(c.blk[0].write_log, sizeof(c.blk[0].write_log), "%s/w.log", s->dir);
	c.blk[0].flush_ignore = true;
	assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
	assert_err_has(err, "flush = ignore", "write_log", NULL);
}

static void test_serial_limit_key(void **state)
{
	struct vm_config c;
	char err[512] = "";

	(void)state;
	if (parse(&c, "[vm]\nserial_limit = 1M\n", err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(c.serial_limit, 1 * MIB);
	assert_int_equal(parse(&c, "[vm]\nserial_limit = lots\n", err, sizeof(err)), -1);
	assert_err_has(err, "'serial_limit'", NULL);
	config_defaults(&c);
	assert_int_equal(config_set(&c, "vm", "serial_limit", "0", "--serial-limit", err,
				    sizeof(err)), 0);
	assert_int_equal(c.serial_limit, 0);
	config_defaults(&c);
	assert_int_equal(c.serial_limit, 64 * MIB); /* bounded unless asked otherwise */
	assert_true(c.seccomp);                     /* the filter is on unless turned off */
	assert_int_equal(parse(&c, "[vm]\nseccomp = off\n", err, sizeof(err)), 0);
	assert_false(c.seccomp);
}

static void test_every_key(void **state)
{
	struct vm_config c;
	char err[512] = "";
	static const char text[] =
		"[vm]\n"
		"kernel = /boot/guest.elf\n"
		"initrd = /boot/initrd.cpio\n"
		"cmdline = console=ttyS0 quiet\n"
		"mem = 1G\n"
		"cpus = 4\n"
		"serial = /tmp/serial.log\n"
		"cpuid_mask = cx16,xsave\n"
		"stats_json = /tmp/stats.json\n"
		"control = /run/cvmm.sock\n"
		"timeout = 30\n"
		"[pmem]\n"
		"path = /var/pmem.img\n"
		"size = 64M\n"
		"granule = 2M\n"
		"populate = yes\n"
		"readonly = true\n"
		"[blk]\n"
		"path = /var/disk.img\n"
		"offset = 1M\n"
		"size = 8G\n"
		"readonly = on\n"
		"direct = off\n"
		"workers = 4\n"
		"write_log = /var/disk.log\n";

	(void)state;
	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	assert_string_equal(c.kernel, "/boot/guest.elf");
	assert_string_equal(c.initrd, "/boot/initrd.cpio");
	assert_string_equal(c.cmdline, "console=ttyS0 quiet");
	assert_int_equal(c.mem_size, GIB);
	assert_int_equal(c.cpus, 4);
	assert_string_equal(c.serial, "/tmp/serial.log");
	assert_string_equal(c.cpuid_mask, "cx16,xsave");
	assert_string_equal(c.stats_json, "/tmp/stats.json");
	assert_string_equal(c.control, "/run/cvmm.sock");
	assert_int_equal(c.timeout_s, 30);
	assert_int_equal(c.npmem, 1);
	assert_string_equal(c.pmem[0].path, "/var/pmem.img");
	assert_int_equal(c.pmem[0].size, 64 * MIB);
	assert_int_equal(c.pmem[0].granule, 2 * MIB);
	assert_true(c.pmem[0].populate);
	assert_true(c.pmem[0].readonly);
	assert_int_equal(c.nblk, 1);
	assert_string_equal(c.blk[0].path, "/var/disk.img");
	assert_int_equal(c.blk[0].offset, MIB);
	assert_int_equal(c.blk[0].size, 8 * GIB);
	assert_true(c.blk[0].readonly);
	assert_false(c.blk[0].direct);
	assert_int_equal(c.blk[0].workers, 4);
	assert_string_equal(c.blk[0].write_log, "/var/disk.log");
}

static void test_sections_set_present(void **state)
{
	struct vm_config c;
	char err[256] = "";

	(void)state;
	/* an empty [pmem] section asks for the device with defaults */
	assert_int_equal(parse(&c, "[pmem]\n", err, sizeof(err)), 0);
	assert_int_equal(c.npmem, 1);
	assert_int_equal(c.nblk, 0);
	assert_int_equal(parse(&c, "[vm]\ncpus = 2\n", err, sizeof(err)), 0);
	assert_int_equal(c.npmem, 0);
	assert_int_equal(c.nblk, 0);
	/* and so does a flag for one of their keys */
	config_defaults(&c);
	assert_int_equal(config_set(&c, "blk", "path", "d.img", "--blk", err, sizeof(err)), 0);
	assert_int_equal(c.nblk, 1);
	assert_int_equal(c.npmem, 0);
}

static void test_sizes_valid(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "4k", 4096 },
		{ "4K", 4096 },
		{ "4KiB", 4096 },
		{ "4kb", 4096 },
		{ "256M", 256 * MIB },
		{ "2MiB", 2 * MIB },
		{ "1G", GIB },
		{ "64GiB", 64 * GIB },
		{ "1T", 1024 * GIB },
		{ "512B", 512 },
		{ "0x1000", 0x1000 },
		{ "0XfFfF", 0xffff },
		{ "18446744073709551615", UINT64_MAX },
		{ "16777215T", 16777215ull << 40 },
		{ "0xffffffffffffffff", UINT64_MAX },
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 12345;
		if (config_parse_size(ok[i].s, &v) != 0)
			fail_msg("size '%s' refused", ok[i].s);
		if (v != ok[i].v)
			fail_msg("size '%s' = %llu, want %llu", ok[i].s, (unsigned long long)v,
				 (unsigned long long)ok[i].v);
	}
}

static void test_sizes_invalid(void **state)
{
	static const char *const bad[] = {
		"", "12Q", "-1", "+1", " 1", "1 ", "1 G", "1.5G", "G", "M", "iB", "1iB", "1Gi",
		"1GiBx", "1GG", "0x", "0x1g", "0x1M", "99999999999999999999G",
		"18446744073709551616", "16777216T", "17179869184G", "0x10000000000000000",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 777;
		if (config_parse_size(bad[i], &v) == 0)
			fail_msg("size '%s' accepted as %llu", bad[i], (unsigned long long)v);
		assert_int_equal(v, 777);	/* untouched on error */
	}
}

static void test_bools(void **state)
{
	static const char *const t[] = { "on", "yes", "true", "1", "ON", "Yes", "TRUE" };
	static const char *const f[] = { "off", "no", "false", "0", "OFF", "No", "False" };
	static const char *const bad[] = { "", "2", "y", "n", "enable", "onn", "of", "truee", " on" };
	bool b;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		b = false;
		assert_int_equal(config_parse_bool(t[i], &b), 0);
		assert_true(b);
	}
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		b = true;
		assert_int_equal(config_parse_bool(f[i], &b), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_bool(bad[i], &b) == 0)
			fail_msg("bool '%s' accepted", bad[i]);
	}
}

static void test_bad_values_in_file(void **state)
{
	struct vm_config c;
	char err[512];

	(void)state;
	assert_int_equal(parse(&c, "[vm]\n\nmem = 12Q\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:3", "'mem'", "'12Q'", NULL);
	assert_int_equal(parse(&c, "[vm]\nmem =\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "'mem'", NULL);
	assert_int_equal(parse(&c, "[pmem]\npopulate = maybe\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "'populate'", "'maybe'", NULL);
	assert_int_equal(parse(&c, "[vm]\ncpus = -1\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "'cpus'", "'-1'", NULL);
	assert_int_equal(parse(&c, "[vm]\ncpus = 4x\n", err, sizeof(err)), -1);
	assert_err_has(err, "'cpus'", NULL);
	assert_int_equal(parse(&c, "[vm]\ncpus = 99999999999\n", err, sizeof(err)), -1);
	assert_err_has(err, "'cpus'", NULL);
	assert_int_equal(parse(&c, "[vm]\ntimeout = 1.5\n", err, sizeof(err)), -1);
	assert_err_has(err, "'timeout'", NULL);
	assert_int_equal(parse(&c, "[vm]\ntimeout = 4294967296\n", err, sizeof(err)), -1);
	assert_err_has(err, "'timeout'", NULL);
	assert_int_equal(parse(&c, "[vm]\ntimeout = 4294967295\n", err, sizeof(err)), 0);
	assert_int_equal(c.timeout_s, 4294967295u);
}

static void test_comments_and_whitespace(void **state)
{
	struct vm_config c;
	char err[256] = "";
	static const char text[] =
		"# a comment\n"
		"; another\n"
		"\n"
		"   \t\n"
		"  [ vm ]   # section comment\n"
		"\tmem\t=\t512M\t\n"
		"  cpus=2 ;three is too many\n"
		"cpuid_mask = a#b  # only the spaced '#' starts a comment\n"
		"cmdline = # an empty value\n"
		"serial = /dev/null\r\n"
		"   # indented comment\n"
		"timeout = 7";	/* no final newline */

	(void)state;
	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	assert_int_equal(c.mem_size, 512 * MIB);
	assert_string_equal(c.cpuid_mask, "a#b");
	assert_string_equal(c.cmdline, "");
	assert_string_equal(c.serial, "/dev/null");	/* CR of a CRLF file trimmed */
	assert_int_equal(c.timeout_s, 7);
	assert_int_equal(c.cpus, 2);
	/* ';' glued to a value is part of it, so this is a bad number, not "2" */
	assert_int_equal(parse(&c, "[vm]\ncpus = 2;three\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "'2;three'", NULL);
}

static void test_quoted_values(void **state)
{
	struct vm_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&c,
			       "[vm]\n"
			       "cmdline = \"  console=ttyS0 # kept ; kept  \"   # dropped\n"
			       "cpuid_mask = \"say \\\"hi\\\" c:\\\\x \\n\"\n"
			       "kernel = \"/with space/k.elf\"\n",
			       err, sizeof(err)), 0);
	assert_string_equal(c.cmdline, "  console=ttyS0 # kept ; kept  ");
	assert_string_equal(c.cpuid_mask, "say \"hi\" c:\\x \\n");
	assert_string_equal(c.kernel, "/with space/k.elf");
	/* an empty quoted value */
	assert_int_equal(parse(&c, "[vm]\ncmdline = \"\"\n", err, sizeof(err)), 0);
	assert_string_equal(c.cmdline, "");
	/* quotes inside an unquoted value are literal */
	assert_int_equal(parse(&c, "[vm]\ncmdline = a=\"b c\"\n", err, sizeof(err)), 0);
	assert_string_equal(c.cmdline, "a=\"b c\"");

	assert_int_equal(parse(&c, "[vm]\ncmdline = \"unterminated\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "'cmdline'", "unterminated", NULL);
	assert_int_equal(parse(&c, "[vm]\ncmdline = \"a\" b\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "'cmdline'", NULL);
	/* sizes may be quoted too: quoting is syntax, not type */
	assert_int_equal(parse(&c, "[vm]\nmem = \"2G\"\n", err, sizeof(err)), 0);
	assert_int_equal(c.mem_size, 2 * GIB);
}

static void test_syntax_errors(void **state)
{
	struct vm_config c;
	char err[512];

	(void)state;
	assert_int_equal(parse(&c, "[vm]\nmem = 1G\nfoo = 1\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:3", "unknown key 'foo' in [vm]", NULL);
	/* a key valid in one section is unknown in another */
	assert_int_equal(parse(&c, "[blk]\npopulate = on\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "'populate'", "[blk]", NULL);
	assert_int_equal(parse(&c, "[vm]\n[net]\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "unknown section [net]", NULL);
	assert_int_equal(parse(&c, "[vm\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:1", NULL);
	assert_int_equal(parse(&c, "[vm] x\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:1", NULL);
	assert_int_equal(parse(&c, "[vm]\n\n\nkernel /boot/k # no equals\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:4", "kernel /boot/k", NULL);
	assert_null(strstr(err, "no equals"));
	assert_int_equal(parse(&c, "[vm]\n = 5\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "key", NULL);
	assert_int_equal(parse(&c, "mem = 1G\n", err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:1", "'mem'", "section", NULL);
	/* a tiny err buffer is truncated, never overrun (ASan watches) */
	assert_int_equal(parse(&c, "[vm]\nfoo = 1\n", err, 4), -1);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(parse(&c, "[vm]\nfoo = 1\n", NULL, 0), -1);
}

static void test_duplicates_last_wins(void **state)
{
	struct vm_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&c, "[vm]\nmem = 1G\ncpus = 2\n[blk]\npath = a\n[vm]\nmem = 2G\n"
			       "[blk]\npath = b\n", err, sizeof(err)), 0);
	assert_int_equal(c.mem_size, 2 * GIB);
	assert_int_equal(c.cpus, 2);
	assert_string_equal(c.blk[0].path, "b");
}

static void test_overlong_values(void **state)
{
	struct vm_config c;
	char err[512] = "";
	size_t n = 64 + CONFIG_PATH_MAX + 16;
	char *text = test_malloc(n + CONFIG_CMDLINE_MAX);
	char *big = test_malloc(CONFIG_PATH_MAX + 1);

	(void)state;
	/* the longest cmdline that fits, then one byte more */
	memset(big, 'x', CONFIG_CMDLINE_MAX - 1);
	big[CONFIG_CMDLINE_MAX - 1] = '\0';
	snprintf(text, n + CONFIG_CMDLINE_MAX, "[vm]\ncmdline = %s\n", big);
	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	assert_int_equal(strlen(c.cmdline), CONFIG_CMDLINE_MAX - 1);
	snprintf(text, n + CONFIG_CMDLINE_MAX, "[vm]\ncmdline = %sy\n", big);
	assert_int_equal(parse(&c, text, err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "'cmdline'", "too long", NULL);

	memset(big, 'p', CONFIG_PATH_MAX);
	big[0] = '/';
	big[CONFIG_PATH_MAX] = '\0';
	snprintf(text, n + CONFIG_CMDLINE_MAX, "[blk]\npath = %s\n", big);
	assert_int_equal(parse(&c, text, err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:2", "'path'", "too long", NULL);
	big[CONFIG_PATH_MAX - 1] = '\0';
	snprintf(text, n + CONFIG_CMDLINE_MAX, "[blk]\npath = %s\n", big);
	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	assert_int_equal(strlen(c.blk[0].path), CONFIG_PATH_MAX - 1);

	memset(big, 'c', 300);
	big[300] = '\0';
	config_defaults(&c);
	assert_int_equal(config_set(&c, "vm", "cpuid_mask", big, "--cpuid-mask", err, sizeof(err)),
			 -1);
	assert_err_has(err, "--cpuid-mask", "'cpuid_mask'", "too long", NULL);
	test_free(big);
	test_free(text);
}

static void test_flags_override_file(void **state)
{
	struct scratch *s = *state;
	struct vm_config *c = &s->c;
	char path[PATH_MAX + 16], want[PATH_MAX + 32], err[512] = "";
	static const char text[] = "[vm]\nmem = 1G\ncpus = 2\nkernel = k.elf\n[blk]\ndirect = on\n";

	snprintf(path, sizeof(path), "%s/vm.conf", s->dir);
	write_file(path, text, strlen(text));
	config_defaults(c);
	assert_int_equal(config_parse_file(c, path, err, sizeof(err)), 0);
	assert_int_equal(c->mem_size, GIB);
	assert_int_equal(config_set(c, "vm", "mem", "2G", "--mem", err, sizeof(err)), 0);
	assert_int_equal(config_set(c, "blk", "direct", "off", "--blk-direct", err, sizeof(err)),
			 0);
	assert_int_equal(c->mem_size, 2 * GIB);
	assert_int_equal(c->cpus, 2);	/* untouched by flags */
	assert_false(c->blk[0].direct);
	/* from the file, relative to the file's directory; from a flag, relative to the cwd */
	snprintf(want, sizeof(want), "%s/k.elf", s->dir);
	assert_string_equal(c->kernel, want);
	assert_int_equal(config_set(c, "vm", "kernel", "other.elf", "--kernel", err, sizeof(err)),
			 0);
	assert_string_equal(c->kernel, "other.elf");
	/* a bad flag names the flag, the key and the value */
	assert_int_equal(config_set(c, "vm", "mem", "lots", "--mem", err, sizeof(err)), -1);
	assert_err_has(err, "--mem", "'mem'", "'lots'", NULL);
	assert_int_equal(c->mem_size, 2 * GIB);
	assert_int_equal(config_set(c, "vm", "bogus", "1", "--bogus", err, sizeof(err)), -1);
	assert_err_has(err, "--bogus", "unknown key 'bogus' in [vm]", NULL);
	assert_int_equal(config_set(c, "nic", "path", "1", "--nic", err, sizeof(err)), -1);
	assert_err_has(err, "--nic", "[nic]", NULL);
}

static void test_relative_paths(void **state)
{
	struct scratch *s = *state;
	struct vm_config *c = &s->c;
	char sub[PATH_MAX], path[PATH_MAX + 16], want[PATH_MAX + 64], err[512] = "";
	char cwd[PATH_MAX];
	static const char text[] =
		"[vm]\n"
		"kernel = ../guest.elf\n"
		"serial = serial.log\n"
		"stats_json = out/stats.json\n"
		"control = /abs/ctl.sock\n"
		"[pmem]\npath = pmem.img\n"
		"[blk]\npath = ./disk.img\n";

	snprintf(sub, sizeof(sub), "%s/configs", s->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(path, sizeof(path), "%s/vm.conf", sub);
	write_file(path, text, strlen(text));
	config_defaults(c);
	assert_int_equal(config_parse_file(c, path, err, sizeof(err)), 0);
	assert_string_equal(c->base_dir, sub);
	snprintf(want, sizeof(want), "%s/../guest.elf", sub);
	assert_string_equal(c->kernel, want);
	snprintf(want, sizeof(want), "%s/serial.log", sub);
	assert_string_equal(c->serial, want);
	snprintf(want, sizeof(want), "%s/out/stats.json", sub);
	assert_string_equal(c->stats_json, want);
	assert_string_equal(c->control, "/abs/ctl.sock");
	snprintf(want, sizeof(want), "%s/pmem.img", sub);
	assert_string_equal(c->pmem[0].path, want);
	snprintf(want, sizeof(want), "%s/./disk.img", sub);
	assert_string_equal(c->blk[0].path, want);

	/* "stdio" is a keyword, not a file next to the config */
	config_defaults(c);
	write_file(path, "[vm]\nserial = stdio\n", strlen("[vm]\nserial = stdio\n"));
	assert_int_equal(config_parse_file(c, path, err, sizeof(err)), 0);
	assert_string_equal(c->serial, "stdio");

	/* a config given by a relative path still stores an absolute base */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(s->dir), 0);
	config_defaults(c);
	write_file(path, "[vm]\nkernel = k\n", strlen("[vm]\nkernel = k\n"));
	assert_int_equal(config_parse_file(c, "configs/vm.conf", err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/k", sub);
	assert_int_equal(chdir(cwd), 0);
	assert_string_equal(c->kernel, want);
}

static void test_parse_file_errors(void **state)
{
	struct scratch *s = *state;
	char path[PATH_MAX + 16], err[512] = "";
	static const char nul[] = "[vm]\ncpus = 2\nmem = 1G\0junk\n";

	config_defaults(&s->c);
	assert_int_equal(config_parse_file(&s->c, "/nonexistent/cvmm.conf", err, sizeof(err)), -1);
	assert_err_has(err, "/nonexistent/cvmm.conf", "No such file or directory", NULL);
	assert_int_equal(config_parse_file(&s->c, s->dir, err, sizeof(err)), -1);
	assert_err_has(err, s->dir, NULL);

	/* the file name, not "string", is in messages */
	snprintf(path, sizeof(path), "%s/bad.conf", s->dir);
	write_file(path, "[vm]\n# fine\nwhat = 1\n", strlen("[vm]\n# fine\nwhat = 1\n"));
	assert_int_equal(config_parse_file(&s->c, path, err, sizeof(err)), -1);
	assert_err_has(err, path, ":3", "'what'", NULL);

	/* a NUL byte must not silently cut a line short */
	write_file(path, nul, sizeof(nul) - 1);
	assert_int_equal(config_parse_file(&s->c, path, err, sizeof(err)), -1);
	assert_err_has(err, ":3", "NUL", NULL);
}

static void test_validate(void **state)
{
	struct scratch *s = *state;
	struct vm_config *c = &s->c;
	char err[512] = "";

	config_defaults(c);
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "kernel", NULL);

	snprintf(c->kernel, sizeof(c->kernel), "%s", s->kernel);
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);

	snprintf(c->kernel, sizeof(c->kernel), "%s/missing.elf", s->dir);
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "kernel '", "/missing.elf': No such file or directory", NULL);
	snprintf(c->kernel, sizeof(c->kernel), "%s", s->dir);
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "kernel '", s->dir, NULL);
	/* a FIFO must be refused, not block validation forever */
	snprintf(c->kernel, sizeof(c->kernel), "%s/fifo", s->dir);
	assert_int_equal(mkfifo(c->kernel, 0600), 0);
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "/fifo'", "not a regular file", NULL);
	snprintf(c->kernel, sizeof(c->kernel), "%s", s->kernel);

	/* mem: the boundaries are accepted, one step past them is not */
	c->mem_size = 16 * MIB;
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);
	c->mem_size = 64 * GIB;
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);
	c->mem_size = 16 * MIB - 4096;
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "mem", "16 MiB", NULL);
	c->mem_size = 64 * GIB + 4096;
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "mem", "64 GiB", NULL);
	c->mem_size = 32 * MIB + 512;
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "mem", "4 KiB", NULL);
	c->mem_size = 256 * MIB;

	c->cpus = 0;
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "cpus", "0", NULL);
	c->cpus = CONFIG_MAX_CPUS + 1;
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "cpus", "65", NULL);
	c->cpus = CONFIG_MAX_CPUS;
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);

	/* pmem: path required; the file itself may not exist yet */
	add_dev(c, "pmem");
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "pmem", "path", NULL);
	snprintf(c->pmem[0].path, sizeof(c->pmem[0].path), "%s/not-yet.img", s->dir);
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);
	c->pmem[0].size = 3 * MIB;
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "pmem size", "2 MiB", NULL);
	c->pmem[0].size = 4 * MIB;
	c->pmem[0].granule = 3 * 1024;
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "granule", "3072", NULL);
	c->pmem[0].granule = 12 * 1024;	/* in range, not a power of two */
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "granule", "12288", NULL);
	c->pmem[0].granule = 2048;	/* a power of two, too small */
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "granule", NULL);
	c->pmem[0].granule = 4 * MIB;	/* too big */
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "granule", NULL);
	c->pmem[0].granule = 4096;
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);
	c->pmem[0].granule = 2 * MIB;
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);

	add_dev(c, "blk");
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "blk", "path", NULL);
	snprintf(c->blk[0].path, sizeof(c->blk[0].path), "disk.img");
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);
	/* workers: 0 = the device's default, up to 64 */
	c->blk[0].workers = CONFIG_MAX_BLK_WORKERS;
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);
	c->blk[0].workers = CONFIG_MAX_BLK_WORKERS + 1;
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "blk workers", "65", NULL);
	c->blk[0].workers = 0;
	/* write_log: a new file beside a writable disk */
	snprintf(c->blk[0].write_log, sizeof(c->blk[0].write_log), "disk.log");
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);
	snprintf(c->blk[0].write_log, sizeof(c->blk[0].write_log), "disk.img");
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "blk write_log", "disk.img", NULL);
	snprintf(c->blk[0].write_log, sizeof(c->blk[0].write_log), "logs/");
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "blk write_log", "directory", NULL);
	snprintf(c->blk[0].write_log, sizeof(c->blk[0].write_log), "disk.log");
	c->blk[0].readonly = true;
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "blk write_log", "read-only", NULL);
	c->blk[0].readonly = false;
	/* not on the pmem file: the window's stores would be missing from the log */
	add_dev(c, "pmem");
	snprintf(c->pmem[0].path, sizeof(c->pmem[0].path), "disk.img");
	assert_int_equal(config_validate(c, err, sizeof(err)), -1);
	assert_err_has(err, "blk write_log", "pmem", NULL);
	snprintf(c->pmem[0].path, sizeof(c->pmem[0].path), "pmem.img");
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);
	c->blk[0].write_log[0] = 0;
}

/* Issue 15 item 1: several named devices, in the order they first appear; a plain section is
 * the device of that kind's own name; names are shared by both kinds. */
static void test_named_devices(void **state)
{
	struct vm_config c;
	char err[512] = "";

	(void)state;
	if (parse(&c, "[blk \"scratch\"]\npath = s.img\n"
		      "[pmem]\npath = p.img\n"
		      "[blk]\npath = d.img\nreadonly = on\n"
		      "[pmem \"log\"]\npath = l.img\nsize = 4M\n"
		      "[blk \"scratch\"]\nworkers = 2\n"       /* continues the first one */
		      "[ blk  \"t-2_x\" ]\npath = t.img\n", err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(c.nblk, 3);
	assert_int_equal(c.npmem, 2);
	assert_string_equal(c.blk[0].name, "scratch");
	assert_string_equal(c.blk[0].path, "s.img");
	assert_int_equal(c.blk[0].workers, 2);
	assert_true(c.blk[0].direct);
	assert_string_equal(c.blk[1].name, "blk");
	assert_true(c.blk[1].readonly);
	assert_string_equal(c.blk[2].name, "t-2_x");
	assert_string_equal(c.pmem[0].name, "pmem");
	assert_string_equal(c.pmem[1].name, "log");
	assert_int_equal(c.pmem[1].size, 4 * MIB);
	/* a flag-style key sets the plain device; the named API the named one */
	assert_int_equal(config_set(&c, "blk", "workers", "3", "--x", err, sizeof(err)), 0);
	assert_int_equal(c.blk[1].workers, 3);
	assert_int_equal(config_set_dev(&c, "pmem", "log", "granule", "64k", "--y", err,
					sizeof(err)), 0);
	assert_int_equal(c.pmem[1].granule, 64 * 1024);

	/* refused, each with the line and what is wrong */
	assert_int_equal(parse(&c, "[blk \"a\"]\n[pmem \"a\"]\n", err, sizeof(err)), -1);
	assert_err_has(err, ":2", "\"a\"", "taken", NULL);
	assert_int_equal(parse(&c, "[blk \"pmem\"]\n[pmem]\n", err, sizeof(err)), -1);
	assert_err_has(err, ":2", "\"pmem\"", "taken", NULL);
	assert_int_equal(parse(&c, "[blk \"a b\"]\n", err, sizeof(err)), -1);
	assert_err_has(err, ":1", "bad device name", NULL);
	assert_int_equal(parse(&c, "[blk \"\"]\n", err, sizeof(err)), -1);
	assert_err_has(err, "bad device name", NULL);
	assert_int_equal(parse(&c, "[blk \"0123456789012345678901234567890123\"]\n", err,
			       sizeof(err)), -1);
	assert_err_has(err, "bad device name", NULL);
	assert_int_equal(parse(&c, "[blk \"x]\n", err, sizeof(err)), -1);
	assert_err_has(err, ":1", "malformed", NULL);
	assert_int_equal(parse(&c, "[vm \"x\"]\n", err, sizeof(err)), -1);
	assert_err_has(err, "unknown section", NULL);
	assert_int_equal(parse(&c, "[blk \"x\" y]\n", err, sizeof(err)), -1);
	assert_err_has(err, "malformed", NULL);
	char many[1024] = "";
	for (int i = 0; i <= CONFIG_MAX_BLK; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "[blk \"d%d\"]\n", i);
	assert_int_equal(parse(&c, many, err, sizeof(err)), -1);
	assert_err_has(err, "at most 8 blk devices", NULL);
	many[0] = 0;
	for (int i = 0; i <= CONFIG_MAX_PMEM; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "[pmem \"p%d\"]\n", i);
	assert_int_equal(parse(&c, many, err, sizeof(err)), -1);
	assert_err_has(err, "at most 4 pmem devices", NULL);
}

/* fault = RULE lines are kept per device, in order, with where they came from. */
static void test_fault_lines(void **state)
{
	struct vm_config c;
	char err[512] = "";

	(void)state;
	if (parse(&c, "[blk \"s\"]\nfault = op=write effect=ioerr\n"
		      "fault = op=read when=once effect=unsupp   # comment\n"
		      "[pmem]\nfault = op=flush effect=ioerr\n", err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(c.blk[0].faults.n, 2);
	assert_string_equal(c.blk[0].faults.text[0], "op=write effect=ioerr");
	assert_string_equal(c.blk[0].faults.text[1], "op=read when=once effect=unsupp");
	assert_string_equal(c.blk[0].faults.where[1], "t.conf:3");
	assert_int_equal(c.pmem[0].faults.n, 1);
	/* a rule that does not parse is refused at validation, with its file:line */
	assert_int_equal(parse(&c, "[vm]\nkernel = /bin/sh\n[blk]\npath = d.img\n"
			       "fault = op=write effect=ioerr\nfault = op=write when=soon effect=ioerr\n",
			       err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
	assert_err_has(err, "t.conf:6", "fault rule for blk", "soon", NULL);
	assert_int_equal(parse(&c, "[blk]\nfault =\n", err, sizeof(err)), -1);
	assert_err_has(err, "fault rule empty", NULL);
	char many[2048] = "[blk]\n";
	for (int i = 0; i <= CONFIG_MAX_FAULTS; i++)
		strcat(many, "fault = op=read effect=ioerr\n");
	assert_int_equal(parse(&c, many, err, sizeof(err)), -1);
	assert_err_has(err, "more than 16 fault rules", NULL);
}

/* Validation names the device, and checks write logs across devices. */
static void test_validate_named(void **state)
{
	struct scratch *s = *state;
	struct vm_config c;
	char err[512] = "";

	if (parse(&c, "[blk \"scratch\"]\n", err, sizeof(err)))
		fail_msg("%s", err);
	snprintf(c.kernel, sizeof(c.kernel), "%s", s->kernel);
	assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
	assert_err_has(err, "blk \"scratch\" path", "[blk \"scratch\"] path = FILE", NULL);
	assert_int_equal(parse(&c, "[blk \"a\"]\npath = a.img\nwrite_log = l\n"
			       "[blk \"b\"]\npath = b.img\nwrite_log = l\n", err, sizeof(err)), 0);
	snprintf(c.kernel, sizeof(c.kernel), "%s", s->kernel);
	assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
	assert_err_has(err, "blk \"a\" write_log", "another device", NULL);
	assert_int_equal(parse(&c, "[blk \"a\"]\npath = a.img\nwrite_log = b.img\n"
			       "[blk \"b\"]\npath = b.img\n", err, sizeof(err)), 0);
	snprintf(c.kernel, sizeof(c.kernel), "%s", s->kernel);
	assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
	assert_err_has(err, "write_log 'b.img'", "disk image", NULL);
	assert_int_equal(parse(&c, "[pmem \"x\"]\npath = p.img\nsize = 3M\n", err,
			       sizeof(err)), 0);
	snprintf(c.kernel, sizeof(c.kernel), "%s", s->kernel);
	assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
	assert_err_has(err, "pmem \"x\" size", "2 MiB", NULL);
}

/* [pmem] write_log (issue 16): the file's log covers every view, so a disk on that file logs
 * through it; one log per file; a log needs a writable, syncing device. */
static void test_pmem_write_log(void **state)
{
	struct scratch *s = *state;
	struct vm_config c;
	char err[512] = "";
	const struct { const char *text, *want1, *want2; } bad[] = {
		{ "[pmem]\npath = p.img\nwrite_log = p.log\nreadonly = on\n", "pmem write_log", "read-only" },
		{ "[pmem]\npath = p.img\nwrite_log = p.log\nflush = ignore\n", "flush = ignore", "write_log" },
		{ "[pmem]\npath = p.img\nwrite_log = p.img\n", "pmem write_log 'p.img'", "pmem image" },
		{ "[pmem \"x\"]\npath = p.img\nwrite_log = a.log\n[pmem \"y\"]\npath = p.img\n"
		  "write_log = b.log\n", "pmem \"y\" write_log", "one log per file" },
		{ "[pmem]\npath = p.img\n[blk]\npath = p.img\nwrite_log = d.log\n", "blk write_log",
		  "set write_log in that [pmem] section" },
		{ "[pmem]\npath = p.img\nwrite_log = l\n[blk]\npath = d.img\nwrite_log = l\n",
		  "write_log 'l'", "another device" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(&c, bad[i].text, err, sizeof(err)))
			fail_msg("%s: %s", bad[i].text, err);
		snprintf(c.kernel, sizeof(c.kernel), "%s", s->kernel);
		assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
		assert_err_has(err, bad[i].want1, bad[i].want2, NULL);
	}
	/* fine: the window's file logged, the disk on it without a log of its own */
	assert_int_equal(parse(&c, "[pmem]\npath = p.img\nwrite_log = p.log\n[blk]\npath = p.img\n",
			       err, sizeof(err)), 0);
	snprintf(c.kernel, sizeof(c.kernel), "%s", s->kernel);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(c.pmem[0].write_log, "p.log");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_sections_set_present),
		cmocka_unit_test(test_sizes_valid),
		cmocka_unit_test(test_sizes_invalid),
		cmocka_unit_test(test_bools),
		cmocka_unit_test(test_bad_values_in_file),
		cmocka_unit_test(test_comments_and_whitespace),
		cmocka_unit_test(test_quoted_values),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_duplicates_last_wins),
		cmocka_unit_test(test_overlong_values),
		cmocka_unit_test_setup_teardown(test_flags_override_file, scratch_setup,
						scratch_teardown),
		cmocka_unit_test_setup_teardown(test_relative_paths, scratch_setup,
						scratch_teardown),
		cmocka_unit_test_setup_teardown(test_parse_file_errors, scratch_setup,
						scratch_teardown),
		cmocka_unit_test_setup_teardown(test_flush_policy_key, scratch_setup, scratch_teardown),
		cmocka_unit_test_setup_teardown(test_validate, scratch_setup, scratch_teardown),
		cmocka_unit_test(test_serial_limit_key),
		cmocka_unit_test(test_named_devices),
		cmocka_unit_test(test_fault_lines),
		cmocka_unit_test_setup_teardown(test_validate_named, scratch_setup,
						scratch_teardown),
		cmocka_unit_test_setup_teardown(test_pmem_write_log, scratch_setup,
						scratch_teardown),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
