/* cvmm command line: `cvmm run [options]`, `cvmm --help`, `cvmm --version`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/signals.h"
#include "vmm/vm.h"

static const char usage[] =
"usage: cvmm run [--config FILE] [--kernel FILE] [--initrd FILE] [--cmdline STR] [--mem SIZE]\n"
"                [--cpus N] [--serial stdio|FILE] [--serial-limit SIZE] [--cpuid-mask LIST]\n"
"                [--timeout SECONDS] [--stats-json FILE] [--control PATH] [--no-seccomp]\n"
"       cvmm --help | --version\n"
"\n"
"Boot a guest on KVM. Settings come from --config (a file of `key = value` lines in [vm],\n"
"[pmem] and [blk] sections, see README.md) and then from flags, which override the file.\n"
"Several devices: [blk \"NAME\"] and [pmem \"NAME\"] sections (disks on PCI first, then\n"
"windows, in the order the sections first appear). Storage testing (README: \"Testing a\n"
"storage stack\"): `fault = RULE` lines in a device section, `write_log = FILE` in any\n"
"device section, [vm] power_cut / power_cut_state.\n"
"\n"
"  --config FILE       read settings from FILE; relative paths in it are relative to FILE\n"
"  --kernel FILE       guest kernel: an ELF64 x86-64 executable, entered at e_entry in\n"
"                      64-bit mode with a PVH hvm_start_info; or a Linux bzImage or\n"
"                      vmlinux, entered at its 64-bit entry with boot_params\n"
"                      (config: [vm] kernel)\n"
"  --initrd FILE       initial ramdisk for a Linux kernel ([vm] initrd)\n"
"  --cmdline STR       guest command line ([vm] cmdline)\n"
"  --mem SIZE          guest RAM, e.g. 256M, 1G (default 256M) ([vm] mem)\n"
"  --cpus N            vCPUs, 1..64 (default 1) ([vm] cpus)\n"
"  --serial DEST       COM1 output: stdio (default) or a file path, created 0600; a\n"
"                      symbolic link there is refused ([vm] serial)\n"
"  --serial-limit SIZE bytes of guest console output written (stdio or file) before a\n"
"                      line saying it was cut; default 64M, 0 = no limit ([vm] serial_limit)\n"
"  --cpuid-mask LIST   comma-separated CPUID features to hide, or the preset pvm-host\n"
"                      ([vm] cpuid_mask)\n"
"  --timeout SECONDS   stop the guest after SECONDS and exit 124 ([vm] timeout)\n"
"  --stats-json FILE   write run statistics as JSON at exit; created 0600 at start, a\n"
"                      symbolic link there is refused ([vm] stats_json)\n"
"  --control PATH      serve JSON-line requests on a UNIX socket at PATH while the guest\n"
"                      runs (stats, flush, invalidate, host-read, host-write, truncate,\n"
"                      fault-add/list/remove, mark, power-cut; client: build/cvmmctl;\n"
"                      protocol: vmm/control.h) ([vm] control)\n"
"  --no-seccomp        run without the seccomp filter; by default every cvmm thread is\n"
"                      held to an allow-list of system calls once the VM runs, and a call\n"
"                      outside it stops the VM with status 125 ([vm] seccomp = off)\n"
"\n"
"Exit status: the value the guest wrote to the debug-exit port 0xf4 (the bundled guest:\n"
"0 all tests passed, 1 a test failed, 2 crash or bad command line); 124 timeout;\n"
"125 the guest stopped abnormally (triple fault, KVM error, a system call the seccomp\n"
"filter does not allow); 123 a power cut (files left as a crash state); 126 a setup\n"
"error (bad config, missing file, no /dev/kvm); 64 bad usage; 128+N signal N.\n"
"At exit cvmm prints one summary line on stderr: why it stopped, run time, time to the\n"
"guest's first output and VM exits by kind.\n";

enum { OPT_CONFIG = 256, OPT_INITRD, OPT_CMDLINE, OPT_CPUID_MASK, OPT_TIMEOUT, OPT_STATS_JSON,
       OPT_CONTROL, OPT_SERIAL_LIMIT, OPT_NO_SECCOMP };

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "kernel", required_argument, NULL, 'k' },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "mem", required_argument, NULL, 'm' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "serial", required_argument, NULL, 's' },
	{ "serial-limit", required_argument, NULL, OPT_SERIAL_LIMIT },
	{ "cpuid-mask", required_argument, NULL, OPT_CPUID_MASK },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "stats-json", required_argument, NULL, OPT_STATS_JSON },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char *flag_key(int opt)
{
	switch (opt) {
	case 'k': return "kernel";
	case OPT_INITRD: return "initrd";
	case OPT_CMDLINE: return "cmdline";
	case 'm': return "mem";
	case 'c': return "cpus";
	case 's': return "serial";
	case OPT_SERIAL_LIMIT: return "serial_limit";
	case OPT_CPUID_MASK: return "cpuid_mask";
	case OPT_TIMEOUT: return "timeout";
	case OPT_STATS_JSON: return "stats_json";
	case OPT_CONTROL: return "control";
	case OPT_NO_SECCOMP: return "seccomp";
	default: return NULL;
	}
}

/* SIGINT, SIGTERM...: the normal stop path, so the exit-time writeback runs (vmm/signals.h). */
static void on_term_signal(void *ctx, int sig)
{
	vm_request_stop(ctx, 128 + sig, "%s: stopping the VM (dirty pmem data is written back)",
			strsignal(sig));
}

static int cmd_run(int argc, char **argv)
{
	/* static: the process runs one command; the config (paths up to PATH_MAX) is too large
	 * for the stack it would share with getopt. Nothing else refers to it. */
	static struct vm_config cfg;
	char err[512] = "";
	config_defaults(&cfg);

	/* Pass 1: the config file, so that flags (pass 2) override it wherever they stand. */
	int opt;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		if (opt == OPT_CONFIG && config_parse_file(&cfg, optarg, err, sizeof(err))) {
			fprintf(stderr, "cvmm: %s\n", err);
			return 126;
		}
	}
	opterr = 1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		if (opt == '?' || opt == ':') {
			fprintf(stderr, "cvmm: see 'cvmm --help'\n");
			return 64;
		}
		const char *key = flag_key(opt);
		if (!key)
			continue;
		char where[64];
		snprintf(where, sizeof(where), "--%s", long_opts[0].name);
		for (const struct option *o = long_opts; o->name; o++)
			if (o->val == opt)
				snprintf(where, sizeof(where), "--%s", o->name);
		const char *value = opt == OPT_NO_SECCOMP ? "off" : optarg; /* flags without a value */
		if (config_set(&cfg, "vm", key, value, where, err, sizeof(err))) {
			fprintf(stderr, "cvmm: %s\n", err);
			return 126;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cvmm: unexpected argument '%s' (see 'cvmm --help')\n", argv[optind]);
		return 64;
	}
	if (!cfg.kernel[0]) {
		fprintf(stderr, "cvmm: no kernel: give --kernel FILE or --config FILE with [vm] kernel "
				"(see 'cvmm --help')\n");
		return 64;
	}
	if (config_validate(&cfg, err, sizeof(err))) {
		fprintf(stderr, "cvmm: %s\n", err);
		return 126;
	}

	/* Before any thread exists: SIGPIPE ignored, termination signals stop the VM cleanly. */
	if (signals_start())
		return 126;
	/* static for the same reason; tests build their own struct vm instances. */
	static struct vm vm;
	if (vm_create(&vm, &cfg, err, sizeof(err))) {
		fprintf(stderr, "cvmm: %s\n", err);
		vm_destroy(&vm);
		return 126;
	}
	signals_on_term(on_term_signal, &vm);
	int status = vm_run(&vm);
	vm_print_summary(&vm);
	vm_destroy(&vm);
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 64;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("cvmm %s\n", CVMM_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	fprintf(stderr, "cvmm: unknown command '%s' (see 'cvmm --help')\n", argv[1]);
	return 64;
}
