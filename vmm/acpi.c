/* ACPI tables and a small AML emitter. See acpi.h; table layouts follow the ACPI 6.0
 * specification (section 5.2 for the tables, 6.4 for resource descriptors, 20 for AML). */
#include "vmm/acpi.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/irq.h"

#define OEM_ID       "CVMM  "
#define CREATOR_ID   "CVMM"

static void w8(uint8_t *p, uint8_t v) { p[0] = v; }
static void w16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void w32(uint8_t *p, uint32_t v) { w16(p, (uint16_t)v); w16(p + 2, (uint16_t)(v >> 16)); }
static void w64(uint8_t *p, uint64_t v) { w32(p, (uint32_t)v); w32(p + 4, (uint32_t)(v >> 32)); }

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;
	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

uint32_t acpi_eisaid(const char *id)
{
	/* Three letters of 5 bits each, then four hex digits; stored big-endian. */
	uint32_t v = 0;
	for (int i = 0; i < 3; i++)
		v = (v << 5) | (uint32_t)((id[i] - 0x40) & 0x1f);
	for (int i = 3; i < 7; i++) {
		char c = id[i];
		uint32_t d = (c >= '0' && c <= '9') ? (uint32_t)(c - '0')
			   : (c >= 'A' && c <= 'F') ? (uint32_t)(c - 'A' + 10)
			   : (uint32_t)(c - 'a' + 10);
		v = (v << 4) | (d & 0xf);
	}
	v <<= 1; /* bit 31 is reserved 0: the 15 letter bits sit at 30..16 */
	v >>= 1;
	return __builtin_bswap32(v);
}

/* ---- the AML emitter -------------------------------------------------------------------- */

struct aml {
	uint8_t *b;
	size_t len, cap;
	bool oom;
};

static void aml_free(struct aml *a)
{
	free(a->b);
	*a = (struct aml){ 0 };
}

static void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->oom)
		return;
	if (a->len + n > a->cap) {
		size_t cap = a->cap ? a->cap : 256;
		while (cap < a->len + n)
			cap *= 2;
		uint8_t *nb = realloc(a->b, cap);
		if (!nb) {
			a->oom = true;
			return;
		}
		a->b = nb;
		a->cap = cap;
	}
	memcpy(a->b + a->len, p, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t v) { aml_bytes(a, &v, 1); }

static void aml_append(struct aml *a, struct aml *src)
{
	if (src->oom)
		a->oom = true;
	aml_bytes(a, src->b, src->len);
	aml_free(src);
}

/* PkgLength (20.2.4): counts itself and what follows. */
static void aml_pkglen(struct aml *a, size_t body)
{
	size_t v;
	if (body + 1 <= 0x3f) {
		aml_byte(a, (uint8_t)(body + 1));
		return;
	}
	if (body + 2 <= 0xfff) {
		v = body + 2;
		aml_byte(a, (uint8_t)(0x40 | (v & 0xf)));
		aml_byte(a, (uint8_t)(v >> 4));
		return;
	}
	if (body + 3 <= 0xfffff) {
		v = body + 3;
		aml_byte(a, (uint8_t)(0x80 | (v & 0xf)));
		aml_byte(a, (uint8_t)(v >> 4));
		aml_byte(a, (uint8_t)(v >> 12));
		return;
	}
	v = body + 4;
	aml_byte(a, (uint8_t)(0xc0 | (v & 0xf)));
	aml_byte(a, (uint8_t)(v >> 4));
	aml_byte(a, (uint8_t)(v >> 12));
	aml_byte(a, (uint8_t)(v >> 20));
}

/* NameString (20.2.2): "\_SB.PCI0", "_HID"; segments shorter than 4 are padded with '_'. */
static void aml_name(struct aml *a, const char *path)
{
	if (*path == '\\') {
		aml_byte(a, '\\');
		path++;
	}
	int nseg = 1;
	for (const char *p = path; *p; p++)
		nseg += *p == '.';
	if (nseg == 2)
		aml_byte(a, 0x2e); /* DualNamePrefix */
	else if (nseg > 2) {
		aml_byte(a, 0x2f); /* MultiNamePrefix */
		aml_byte(a, (uint8_t)nseg);
	}
	while (*path) {
		char seg[4] = { '_', '_', '_', '_' };
		int i = 0;
		while (*path && *path != '.') {
			if (i < 4)
				seg[i++] = *path;
			path++;
		}
		aml_bytes(a, seg, 4);
		if (*path == '.')
			path++;
	}
}

static void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[8];
	if (v == 0) {
		aml_byte(a, 0x00); /* ZeroOp */
	} else if (v == 1) {
		aml_byte(a, 0x01); /* OneOp */
	} else if (v <= 0xff) {
		aml_byte(a, 0x0a);
		aml_byte(a, (uint8_t)v);
	} else if (v <= 0xffff) {
		aml_byte(a, 0x0b);
		w16(b, (uint16_t)v);
		aml_bytes(a, b, 2);
	} else if (v <= 0xffffffffu) {
		aml_byte(a, 0x0c);
		w32(b, (uint32_t)v);
		aml_bytes(a, b, 4);
	} else {
		aml_byte(a, 0x0e);
		w64(b, v);
		aml_bytes(a, b, 8);
	}
}

/* Name (NAME, integer) */
static void aml_name_int(struct aml *a, const char *name, uint64_t v)
{
	aml_byte(a, 0x08); /* NameOp */
	aml_name(a, name);
	aml_int(a, v);
}

/* Name (NAME, EisaId ("PNP0A03")) */
static void aml_name_eisaid(struct aml *a, const char *name, const char *id)
{
	uint8_t b[4];
	aml_byte(a, 0x08);
	aml_name(a, name);
	aml_byte(a, 0x0c); /* DWordPrefix */
	w32(b, acpi_eisaid(id));
	aml_bytes(a, b, 4);
}

/* Name (NAME, Buffer () { bytes }) : a ResourceTemplate when bytes are descriptors + EndTag. */
static void aml_name_buffer(struct aml *a, const char *name, struct aml *bytes)
{
	struct aml body = { 0 };
	aml_int(&body, bytes->len);
	aml_append(&body, bytes);
	aml_byte(a, 0x08);
	aml_name(a, name);
	aml_byte(a, 0x11); /* BufferOp */
	aml_pkglen(a, body.len);
	aml_append(a, &body);
}

/* Name (NAME, Package () { ints }) */
static void aml_name_package(struct aml *a, const char *name, const uint64_t *v, int n)
{
	struct aml body = { 0 };
	aml_byte(&body, (uint8_t)n);
	for (int i = 0; i < n; i++)
		aml_int(&body, v[i]);
	aml_byte(a, 0x08);
	aml_name(a, name);
	aml_byte(a, 0x12); /* PackageOp */
	aml_pkglen(a, body.len);
	aml_append(a, &body);
}

/* Scope (NAME) { body } and Device (NAME) { body } */
static void aml_scope(struct aml *a, const char *name, struct aml *body)
{
	struct aml inner = { 0 };
	aml_name(&inner, name);
	aml_append(&inner, body);
	aml_byte(a, 0x10); /* ScopeOp */
	aml_pkglen(a, inner.len);
	aml_append(a, &inner);
}

static void aml_device(struct aml *a, const char *name, struct aml *body)
{
	struct aml inner = { 0 };
	aml_name(&inner, name);
	aml_append(&inner, body);
	aml_byte(a, 0x5b); /* ExtOpPrefix */
	aml_byte(a, 0x82); /* DeviceOp */
	aml_pkglen(a, inner.len);
	aml_append(a, &inner);
}

/* ---- resource descriptors (6.4) ---------------------------------------------------------- */

#define RES_PRODUCER_FIXED 0x0c /* producer, positive decode, MinFixed, MaxFixed */

static void res_io(struct aml *r, uint16_t base, uint8_t align, uint8_t len)
{
	uint8_t d[8] = { 0x47, 0x01 /* Decode16 */ };
	w16(d + 2, base);
	w16(d + 4, base);
	d[6] = align;
	d[7] = len;
	aml_bytes(r, d, sizeof(d));
}

static void res_irq(struct aml *r, unsigned irq)
{
	uint8_t d[3] = { 0x22 };
	w16(d + 1, (uint16_t)(1u << irq));
	aml_bytes(r, d, sizeof(d));
}

static void res_mem32_fixed(struct aml *r, uint32_t base, uint32_t len)
{
	uint8_t d[12] = { 0x86, 9, 0, 0x01 /* ReadWrite */ };
	w32(d + 4, base);
	w32(d + 8, len);
	aml_bytes(r, d, sizeof(d));
}

/* Word address space: bus numbers (type 2) or I/O (type 1). */
static void res_word(struct aml *r, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	uint8_t d[16] = { 0x88, 13, 0, type, RES_PRODUCER_FIXED, tflags };
	w16(d + 6, 0);                             /* granularity */
	w16(d + 8, min);
	w16(d + 10, max);
	w16(d + 12, 0);                            /* translation */
	w16(d + 14, (uint16_t)(max - min + 1));    /* length */
	aml_bytes(r, d, sizeof(d));
}

static void res_dword_mem(struct aml *r, uint32_t min, uint32_t max)
{
	uint8_t d[26] = { 0x87, 23, 0, 0 /* memory */, RES_PRODUCER_FIXED,
			  0x01 /* ReadWrite, NonCacheable */ };
	w32(d + 6, 0);
	w32(d + 10, min);
	w32(d + 14, max);
	w32(d + 18, 0);
	w32(d + 22, max - min + 1);
	aml_bytes(r, d, sizeof(d));
}

static void res_qword_mem(struct aml *r, uint64_t min, uint64_t max)
{
	uint8_t d[46] = { 0x8a, 43, 0, 0, RES_PRODUCER_FIXED,
			  0x03 /* ReadWrite, Cacheable */ };
	w64(d + 6, 0);
	w64(d + 14, min);
	w64(d + 22, max);
	w64(d + 30, 0);
	w64(d + 38, max - min + 1);
	aml_bytes(r, d, sizeof(d));
}

static void res_end(struct aml *r)
{
	uint8_t d[2] = { 0x79, 0x00 };
	aml_bytes(r, d, sizeof(d));
}

static void build_dsdt_body(struct aml *out, const struct acpi_params *p)
{
	struct aml sb = { 0 }, dev, crs;

	/* \_SB.PCI0: the host bridge. */
	dev = (struct aml){ 0 };
	crs = (struct aml){ 0 };
	aml_name_eisaid(&dev, "_HID", "PNP0A08");
	aml_name_eisaid(&dev, "_CID", "PNP0A03");
	aml_name_int(&dev, "_SEG", 0);
	aml_name_int(&dev, "_BBN", 0);
	aml_name_int(&dev, "_UID", 0);
	res_word(&crs, 2, 0, 0, (uint16_t)p->ecam_bus_end);   /* WordBusNumber */
	res_io(&crs, 0x0cf8, 1, 8);                            /* config mechanism #1 */
	res_word(&crs, 1, 0x03, 0x0000, 0x0cf7);                /* WordIO, EntireRange */
	res_word(&crs, 1, 0x03, 0x0d00, 0xffff);
	res_dword_mem(&crs, (uint32_t)p->mmio32_base, (uint32_t)(p->mmio32_end - 1));
	if (p->mmio64_end > p->mmio64_base)
		res_qword_mem(&crs, p->mmio64_base, p->mmio64_end - 1);
	res_end(&crs);
	aml_name_buffer(&dev, "_CRS", &crs);
	aml_device(&sb, "PCI0", &dev);

	/* \_SB.COM1: the 8250 at 0x3F8, ISA IRQ 4. */
	dev = (struct aml){ 0 };
	crs = (struct aml){ 0 };
	aml_name_eisaid(&dev, "_HID", "PNP0501");
	aml_name_int(&dev, "_UID", 1);
	res_io(&crs, 0x03f8, 0x08, 8);
	res_irq(&crs, IRQ_COM1);
	res_end(&crs);
	aml_name_buffer(&dev, "_CRS", &crs);
	aml_device(&sb, "COM1", &dev);

	/* \_SB.MRES: motherboard resources, so the OS keeps off them (and trusts the MCFG). */
	dev = (struct aml){ 0 };
	crs = (struct aml){ 0 };
	aml_name_eisaid(&dev, "_HID", "PNP0C02");
	aml_name_int(&dev, "_UID", 2);
	res_mem32_fixed(&crs, (uint32_t)p->ecam_base, (uint32_t)((p->ecam_bus_end + 1) << 20));
	res_io(&crs, ACPI_PORT_CTL, 1, 2);
	res_end(&crs);
	aml_name_buffer(&dev, "_CRS", &crs);
	aml_device(&sb, "MRES", &dev);

	aml_scope(out, "\\_SB", &sb);

	/* \_S5: SLP_TYPa, SLP_TYPb for power off through the sleep control register. */
	uint64_t s5[2] = { ACPI_S5_TYP, ACPI_S5_TYP };
	aml_name_package(out, "\\_S5", s5, 2);
}

/* ---- tables ------------------------------------------------------------------------------ */

struct builder {
	uint8_t *buf;
	size_t cap, used;
	uint64_t gpa;
	struct acpi_tables *out;
	bool full;
};

/* Reserve len bytes, 16-byte aligned; returns the offset or SIZE_MAX. */
static size_t alloc_table(struct builder *b, size_t len, const char *sig)
{
	size_t off = (b->used + 15) & ~(size_t)15;
	if (off > b->cap || len > b->cap - off || b->out->n >= ACPI_MAX_TABLES) {
		b->full = true;
		return SIZE_MAX;
	}
	memset(b->buf + off, 0, len);
	b->used = off + len;
	struct acpi_table_loc *t = &b->out->t[b->out->n++];
	memcpy(t->sig, sig, 4);
	t->sig[4] = 0;
	t->off = (uint32_t)off;
	t->len = (uint32_t)len;
	return off;
}

static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	w32(t + 4, len);
	w8(t + 8, rev);
	memcpy(t + 10, OEM_ID, 6);
	memcpy(t + 16, "CVMM", 4);
	memcpy(t + 20, sig, 4);           /* OEM table ID: "CVMM" + signature */
	w32(t + 24, 1);                   /* OEM revision */
	memcpy(t + 28, CREATOR_ID, 4);
	w32(t + 32, 1);                   /* creator revision */
}

static void finish(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = (uint8_t)(0 - acpi_checksum(t, len));
}

/* Generic Address Structure: an 8-bit System I/O register. */
static void gas_io8(uint8_t *g, uint16_t port)
{
	g[0] = 1;   /* SystemIO */
	g[1] = 8;   /* bit width */
	g[2] = 0;   /* bit offset */
	g[3] = 1;   /* byte access */
	w64(g + 4, port);
}

#define FADT_LEN 276
#define FADT_WBINVD          (1u << 0)
#define FADT_PWR_BUTTON      (1u << 4)
#define FADT_SLP_BUTTON      (1u << 5)
#define FADT_RESET_REG_SUP   (1u << 10)
#define FADT_HW_REDUCED_ACPI (1u << 20)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

int acpi_build(uint8_t *buf, size_t cap, uint64_t gpa, const struct acpi_params *p,
	       struct acpi_tables *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (p->ncpus < 1 || p->ncpus > 255 || p->ecam_bus_end > 255 ||
	    p->mmio32_end <= p->mmio32_base || p->mmio32_end > 0x100000000ULL ||
	    p->mmio64_end < p->mmio64_base) {
		snprintf(err, errlen, "acpi: bad parameters (cpus %u, buses 0..%u)", p->ncpus,
			 p->ecam_bus_end);
		return -1;
	}
	if (gpa + cap > 0x100000000ULL) {
		snprintf(err, errlen, "acpi: tables must sit below 4 GiB");
		return -1;
	}
	struct builder b = { .buf = buf, .cap = cap, .gpa = gpa, .out = out };
	out->gpa = gpa;

	/* DSDT AML first: its size decides the layout. */
	struct aml dsdt_body = { 0 };
	build_dsdt_body(&dsdt_body, p);
	if (dsdt_body.oom) {
		aml_free(&dsdt_body);
		snprintf(err, errlen, "acpi: out of memory");
		return -1;
	}

	uint32_t madt_len = 44 + 8 * p->ncpus + 12 + 10 + 6;
	uint32_t mcfg_len = 44 + 16;
	uint32_t dsdt_len = 36 + (uint32_t)dsdt_body.len;
	size_t rsdp = alloc_table(&b, 36, "RSDP");
	size_t xsdt = alloc_table(&b, 36 + 3 * 8, "XSDT");
	size_t rsdt = alloc_table(&b, 36 + 3 * 4, "RSDT");
	size_t fadt = alloc_table(&b, FADT_LEN, "FACP");
	size_t madt = alloc_table(&b, madt_len, "APIC");
	size_t mcfg = alloc_table(&b, mcfg_len, "MCFG");
	size_t dsdt = alloc_table(&b, dsdt_len, "DSDT");
	if (b.full) {
		aml_free(&dsdt_body);
		snprintf(err, errlen, "acpi: %zu bytes are not enough for the tables", cap);
		return -1;
	}
#define GPA(off) ((uint32_t)(gpa + (off)))

	/* DSDT */
	uint8_t *t = buf + dsdt;
	header(t, "DSDT", dsdt_len, 2);   /* revision 2: 64-bit integers */
	memcpy(t + 36, dsdt_body.b, dsdt_body.len);
	aml_free(&dsdt_body);
	finish(t, dsdt_len);

	/* FADT */
	t = buf + fadt;
	header(t, "FACP", FADT_LEN, 6);
	w32(t + 36, 0);                          /* FIRMWARE_CTRL: no FACS (hardware-reduced) */
	w32(t + 40, 0);                          /* DSDT: X_DSDT below is used */
	w8(t + 45, 0);                           /* Preferred_PM_Profile: unspecified */
	w16(t + 96, 0x0fff);                     /* P_LVL2_LAT: C2 not supported */
	w16(t + 98, 0x0fff);                     /* P_LVL3_LAT: C3 not supported */
	w16(t + 109, IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT); /* no 8042 either */
	w32(t + 112, FADT_WBINVD | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_RESET_REG_SUP |
		     FADT_HW_REDUCED_ACPI);
	gas_io8(t + 116, ACPI_PORT_CTL);         /* RESET_REG */
	w8(t + 128, ACPI_RESET_VALUE);
	w8(t + 131, 0);                          /* FADT minor version: ACPI 6.0 */
	w64(t + 140, GPA(dsdt));                 /* X_DSDT */
	gas_io8(t + 244, ACPI_PORT_CTL);         /* SLEEP_CONTROL_REG */
	gas_io8(t + 256, ACPI_PORT_STS);         /* SLEEP_STATUS_REG */
	memcpy(t + 268, "CVMMKVM ", 8);          /* hypervisor vendor identity */
	finish(t, FADT_LEN);

	/* MADT */
	t = buf + madt;
	header(t, "APIC", madt_len, 4);
	w32(t + 36, ACPI_LAPIC_GPA);
	w32(t + 40, 1);                          /* PCAT_COMPAT: the 8259s exist (masked) */
	uint8_t *e = t + 44;
	for (unsigned i = 0; i < p->ncpus; i++, e += 8) {
		e[0] = 0;                        /* Processor Local APIC */
		e[1] = 8;
		e[2] = (uint8_t)i;               /* ACPI processor UID */
		e[3] = (uint8_t)i;               /* APIC ID = vCPU index (cpuid.c, vcpu.c) */
		w32(e + 4, 1);                   /* enabled */
	}
	e[0] = 1;                                /* I/O APIC */
	e[1] = 12;
	e[2] = 0;                                /* IOAPIC ID: KVM's resets to 0 */
	e[3] = 0;
	w32(e + 4, ACPI_IOAPIC_GPA);
	w32(e + 8, 0);                           /* GSI base */
	e += 12;
	e[0] = 2;                                /* Interrupt Source Override */
	e[1] = 10;
	e[2] = 0;                                /* ISA */
	e[3] = 0;                                /* IRQ 0 ... */
	w32(e + 4, IRQ_TIMER_GSI);               /* ... is GSI 2 */
	w16(e + 8, 0);                           /* conforms to the bus: edge, active high */
	e += 10;
	e[0] = 4;                                /* Local APIC NMI */
	e[1] = 6;
	e[2] = 0xff;                             /* all processors */
	w16(e + 3, 0);
	e[5] = 1;                                /* LINT1 */
	finish(t, madt_len);

	/* MCFG */
	t = buf + mcfg;
	header(t, "MCFG", mcfg_len, 1);
	e = t + 44;
	w64(e, p->ecam_base);
	w16(e + 8, 0);                           /* segment */
	e[10] = 0;                               /* start bus */
	e[11] = (uint8_t)p->ecam_bus_end;
	finish(t, mcfg_len);

	/* XSDT and RSDT: FADT, MADT, MCFG */
	size_t tables[3] = { fadt, madt, mcfg };
	t = buf + xsdt;
	header(t, "XSDT", 36 + 3 * 8, 1);
	for (int i = 0; i < 3; i++)
		w64(t + 36 + 8 * i, GPA(tables[i]));
	finish(t, 36 + 3 * 8);
	t = buf + rsdt;
	header(t, "RSDT", 36 + 3 * 4, 1);
	for (int i = 0; i < 3; i++)
		w32(t + 36 + 4 * i, GPA(tables[i]));
	finish(t, 36 + 3 * 4);

	/* RSDP (5.2.5.3): checksum over the first 20 bytes, extended checksum over all 36. */
	t = buf + rsdp;
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + 9, OEM_ID, 6);
	t[15] = 2;                               /* revision: ACPI 2.0+ */
	w32(t + 16, GPA(rsdt));
	w32(t + 20, 36);
	w64(t + 24, GPA(xsdt));
	t[8] = (uint8_t)(0 - acpi_checksum(t, 20));
	t[32] = (uint8_t)(0 - acpi_checksum(t, 36));
#undef GPA

	out->used = b.used;
	out->rsdp = gpa + rsdp;
	return 0;
}
