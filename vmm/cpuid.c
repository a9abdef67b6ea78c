#include "vmm/cpuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EAX, EBX, ECX, EDX };

const struct cpuid_feature cpuid_features[] = {
	{ "mce", 1, 0, EDX, 7 },       { "mca", 1, 0, EDX, 14 },
	{ "pcid", 1, 0, ECX, 17 },     { "x2apic", 1, 0, ECX, 21 },
	{ "tsc-deadline", 1, 0, ECX, 24 },
	{ "cx16", 1, 0, ECX, 13 },     { "xsave", 1, 0, ECX, 26 },
	{ "osxsave", 1, 0, ECX, 27 },  { "avx", 1, 0, ECX, 28 },
	{ "rdrand", 1, 0, ECX, 30 },   { "hypervisor", 1, 0, ECX, 31 },
	{ "fsgsbase", 7, 0, EBX, 0 },  { "avx2", 7, 0, EBX, 5 },
	{ "smep", 7, 0, EBX, 7 },      { "avx512f", 7, 0, EBX, 16 },
	{ "rdseed", 7, 0, EBX, 18 },   { "smap", 7, 0, EBX, 20 },
	{ "la57", 7, 0, ECX, 16 },     { "pdpe1gb", 0x80000001, 0, EDX, 26 },
	{ "rdtscp", 0x80000001, 0, EDX, 27 },
	/* Instructions KVM's emulator lacks, which Linux uses in ring 0 when CPUID offers them
	 * (the pvm-host preset; README "Linux guests"). */
	{ "pclmulqdq", 1, 0, ECX, 1 }, { "sse4_2", 1, 0, ECX, 20 },
	{ "movbe", 1, 0, ECX, 22 },    { "popcnt", 1, 0, ECX, 23 },
	{ "aes", 1, 0, ECX, 25 },      { "invpcid", 7, 0, EBX, 10 },
	{ "clwb", 7, 0, EBX, 24 },     { "pku", 7, 0, ECX, 3 },
	{ "rdpid", 7, 0, ECX, 22 },
	/* Fast string ops: with them Linux clears and copies pages with rep stosb/movsb, which
	 * the emulator runs a byte per step; without, rep stosq/movsq (8 bytes a step). */
	{ "erms", 7, 0, EBX, 9 },      { "fsrm", 7, 0, EDX, 4 },
};
const size_t cpuid_nr_features = sizeof(cpuid_features) / sizeof(cpuid_features[0]);

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != leaf)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != subleaf)
			continue;
		return e;
	}
	return NULL;
}

static uint32_t *reg_of(struct kvm_cpuid_entry2 *e, int reg)
{
	switch (reg) {
	case EAX: return &e->eax;
	case EBX: return &e->ebx;
	case ECX: return &e->ecx;
	default: return &e->edx;
	}
}

static const struct cpuid_feature *feature_named(const char *name, size_t len)
{
	for (size_t i = 0; i < cpuid_nr_features; i++)
		if (strlen(cpuid_features[i].name) == len &&
		    !strncmp(cpuid_features[i].name, name, len))
			return &cpuid_features[i];
	return NULL;
}

static int mask_walk(const char *mask, int depth, int (*fn)(const struct cpuid_feature *, void *),
		     void *ctx, char *err, size_t errlen)
{
	const char *p = mask;
	while (p && *p) {
		while (*p == ',' || *p == ' ')
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, ", ");
		if (len == 8 && !strncmp(p, "pvm-host", 8)) {
			/* a preset holds feature names only: no recursion past one level */
			if (depth == 0 &&
			    mask_walk(CPUID_PRESET_PVM_HOST, 1, fn, ctx, err, errlen))
				return -1;
		} else {
			const struct cpuid_feature *f = feature_named(p, len);
			if (!f) {
				char known[512] = "";
				for (size_t i = 0; i < cpuid_nr_features; i++) {
					strncat(known, cpuid_features[i].name,
						sizeof(known) - strlen(known) - 2);
					if (i + 1 < cpuid_nr_features)
						strncat(known, ",", sizeof(known) - strlen(known) - 1);
				}
				snprintf(err, errlen, "cpuid_mask: unknown feature '%.*s' (known: %s, "
					 "or the preset pvm-host)", (int)len, p, known);
				return -1;
			}
			if (fn(f, ctx))
				return -1;
		}
		p += len;
	}
	return 0;
}

int cpuid_mask_foreach(const char *mask, int (*fn)(const struct cpuid_feature *f, void *ctx),
		       void *ctx, char *err, size_t errlen)
{
	return mask_walk(mask, 0, fn, ctx, err, errlen);
}

static int hide_one(const struct cpuid_feature *f, void *ctx)
{
	struct kvm_cpuid2 *c = ctx;
	struct kvm_cpuid_entry2 *e = cpuid_find(c, f->leaf, f->subleaf);
	if (e)
		*reg_of(e, f->reg) &= ~(1u << f->bit);
	/* Without XSAVE the guest must not see the XSAVE state leaf either. */
	if (!strcmp(f->name, "xsave"))
		for (uint32_t j = 0; j < c->nent; j++)
			if (c->entries[j].function == 0xd)
				c->entries[j].eax = c->entries[j].ebx = c->entries[j].ecx =
					c->entries[j].edx = 0;
	return 0;
}

int cpuid_apply_mask(struct kvm_cpuid2 *c, const char *mask, char *err, size_t errlen)
{
	return cpuid_mask_foreach(mask, hide_one, c, err, errlen);
}

void cpuid_set_topology(struct kvm_cpuid2 *c, unsigned apic_id, unsigned ncpus)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 1, 0);
	if (e) {
		e->ebx = (e->ebx & 0x0000ffff) | ((apic_id & 0xff) << 24) | ((ncpus & 0xff) << 16);
		if (ncpus > 1)
			e->edx |= 1u << 28; /* HTT: EBX[23:16] is valid */
	}
	/* Leaf 0xB: one SMT level holding all vCPUs; EDX is the x2APIC ID. */
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *x = &c->entries[i];
		if (x->function != 0xb && x->function != 0x1f)
			continue;
		x->edx = apic_id;
		if (x->index == 0) {
			unsigned shift = 0;
			while ((1u << shift) < ncpus)
				shift++;
			x->eax = shift;
			x->ebx = ncpus;
			x->ecx = (1u << 8) | 0; /* level type SMT */
		} else {
			x->eax = x->ebx = 0;
			x->ecx = x->index; /* invalid level: ends the enumeration */
		}
	}
}

bool cpuid_advertise_mce_recovery(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *v = cpuid_find(c, 0, 0), *x = cpuid_find(c, 0x80000000, 0);
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 0x80000007, 0);
	if (!v || !e || !x || x->eax < 0x80000007)
		return false;
	bool amd = (v->ebx == 0x68747541 && v->edx == 0x69746e65 && v->ecx == 0x444d4163) ||
		   (v->ebx == 0x6f677948 && v->edx == 0x6e65476e && v->ecx == 0x656e6975);
	if (!amd)
		return false;
	e->ebx |= 1u << 1; /* SUCCOR (not SMCA: cvmm has no scalable MCA banks) */
	return true;
}

struct kvm_cpuid2 *cpuid_dup(const struct kvm_cpuid2 *c)
{
	size_t sz = sizeof(*c) + c->nent * sizeof(c->entries[0]);
	struct kvm_cpuid2 *d = malloc(sz);
	if (d)
		memcpy(d, c, sz);
	return d;
}
