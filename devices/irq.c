/* PC interrupt wiring: GSI routes for the PIC and IOAPIC pins, IRQ lines, the PIT. See irq.h. */
#include "devices/irq.h"

#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>

static void route(struct kvm_irq_routing_entry *e, uint32_t gsi, uint32_t chip, uint32_t pin)
{
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

unsigned irq_default_routes(struct kvm_irq_routing_entry *e, unsigned max)
{
	unsigned k = 0;
	for (uint32_t gsi = 0; gsi < IRQ_IOAPIC_PINS; gsi++) {
		if (gsi == IRQ_TIMER_GSI)
			continue; /* IOAPIC pin 2 is reached from GSI 0; PIC pin 2 is the cascade */
		if (gsi < 16 && k < max)
			route(&e[k++], gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
			      gsi % 8);
		if (k < max)
			route(&e[k++], gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? IRQ_TIMER_GSI : gsi);
	}
	return k;
}

int irq_routes_set_default(int vm_fd)
{
	struct kvm_irq_routing *r =
		calloc(1, sizeof(*r) + IRQ_DEFAULT_ROUTES * sizeof(r->entries[0]));
	if (!r)
		return -1;
	r->nr = irq_default_routes(r->entries, IRQ_DEFAULT_ROUTES);
	int rc = ioctl(vm_fd, KVM_SET_GSI_ROUTING, r);
	free(r);
	return rc;
}

int irq_line(int vm_fd, unsigned gsi, bool level)
{
	if (vm_fd < 0)
		return 0;
	struct kvm_irq_level l = { .irq = gsi, .level = level ? 1 : 0 };
	return ioctl(vm_fd, KVM_IRQ_LINE, &l);
}

int irq_create_pit(int vm_fd)
{
	struct kvm_pit_config pc = { .flags = KVM_PIT_SPEAKER_DUMMY };
	return ioctl(vm_fd, KVM_CREATE_PIT2, &pc);
}
