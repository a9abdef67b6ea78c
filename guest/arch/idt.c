/* The IDT, shared by all CPUs and built once by the BSP before it releases the APs:
 * vectors 0-31 go to the crash reporter (or a hook). The syscall gate is not here: see
 * sys_trap and isr6 in traps.S. */
#include <stdint.h>

#include "arch/arch.h"

struct gate {
	uint16_t off0, sel;
	uint8_t ist, attr;
	uint16_t off1;
	uint32_t off2, zero;
};

extern const uint64_t isr_table[NR_EXCEPTIONS];

static struct gate idt[256] __attribute__((aligned(16)));
struct dtr idt_ptr = { sizeof(idt) - 1, (uint64_t)idt };

static void set_gate(unsigned vec, uint64_t fn, unsigned ist)
{
	struct gate *g = &idt[vec];

	g->off0 = fn & 0xffff;
	g->sel = SEL_KCODE;
	g->ist = ist;
	g->attr = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
	g->off1 = (fn >> 16) & 0xffff;
	g->off2 = fn >> 32;
	g->zero = 0;
}

void idt_init(void)
{
	for (unsigned v = 0; v < NR_EXCEPTIONS; v++)
		set_gate(v, isr_table[v], v == VEC_DF ? 1 : 0); /* #DF on IST1: survives a bad RSP */
}
