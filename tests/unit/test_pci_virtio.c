/* The virtio-pci transport: capabilities, feature negotiation and the device-status state
 * machine, queue setup checks, request processing on the I/O thread (notify through the
 * BAR: without KVM there is no ioeventfd, so it takes the MMIO path), MSI-X and ISR
 * interrupts, DEVICE_NEEDS_RESET on a broken ring, and reset waiting for the request in
 * flight. The "driver" here is the test, poking the BAR through the MMIO bus. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio_pci.h"
#include "lib/kvm_compat.h"
#include "vmm/vm.h"

/* The machine's PCI layout (vmm/machine.c passes the same). */
static const struct pci_layout test_pci_layout = {
	.ecam = GPA_ECAM, .mmio = GPA_PCI_MMIO, .mmio_end = GPA_PCI_MMIO_END,
};

#define RAM_SIZE  (1u << 20)
#define QMAX      16
#define DESC_GPA  0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA  0x3000
#define BUF_GPA   0x10000

struct fakedev {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int handled, bad, resets;
	int inside;             /* handlers running now */
	bool block, in_handler;
	uint64_t features;
	uint8_t config[8];
};

struct fx {
	struct bus pio, mmio;
	struct pci_host h;
	uint8_t *ram;
	struct guest_mem mem;
	struct virtio_pci vp;
	struct fakedev dev;
	struct ratelimit rl;
	uint16_t avail;
	uint64_t bar;
};

static uint64_t fd_features(void *d)
{
	(void)d;
	return (1ULL << 0) | (1ULL << 3);
}

static int fd_set_features(void *d, uint64_t f)
{
	((struct fakedev *)d)->features = f;
	return 0;
}

static void fd_cfg_read(void *d, uint32_t off, void *data, unsigned size)
{
	memcpy(data, ((struct fakedev *)d)->config + off, size);
}

static void fd_cfg_write(void *d, uint32_t off, const void *data, unsigned size)
{
	memcpy(((struct fakedev *)d)->config + off, data, size);
}

static uint32_t fd_handle(void *d, unsigned q, struct vq_req *r)
{
	struct fakedev *f = d;
	(void)q;
	pthread_mutex_lock(&f->lock);
	f->in_handler = true;
	f->inside++;
	pthread_cond_broadcast(&f->cond);
	while (f->block)
		pthread_cond_wait(&f->cond, &f->lock);
	f->in_handler = false;
	f->inside--;
	f->handled++;
	if (r->error)
		f->bad++;
	pthread_mutex_unlock(&f->lock);
	return r->error ? 0 : (uint32_t)r->in_len;
}

static void fd_reset(void *d)
{
	((struct fakedev *)d)->resets++;
}

static const struct virtio_dev_ops fake_ops = {
	.device_id = 42, .pci_class = 0xff0000, .num_queues = 2, .queue_size_max = QMAX,
	.max_chain = QMAX, .config_size = 8, .features = fd_features,
	.set_features = fd_set_features, .config_read = fd_cfg_read, .config_write = fd_cfg_write,
	.handle = fd_handle, .reset = fd_reset,
};

static unsigned fd_workers(void *d)
{
	(void)d;
	return 4;
}

/* The same device with requests run by the queue executor (devices/vq_exec.h). */
static const struct virtio_dev_ops fake_ops_workers = {
	.device_id = 42, .pci_class = 0xff0000, .num_queues = 2, .queue_size_max = QMAX,
	.max_chain = QMAX, .config_size = 8, .features = fd_features,
	.set_features = fd_set_features, .config_read = fd_cfg_read, .config_write = fd_cfg_write,
	.handle = fd_handle, .reset = fd_reset, .workers = fd_workers,
};

static int setup_ops(void **state, const struct virtio_dev_ops *ops);
static int setup(void **state)
{
	return setup_ops(state, &fake_ops);
}
static int setup_workers(void **state)
{
	return setup_ops(state, &fake_ops_workers);
}

static int setup_ops(void **state, const struct virtio_dev_ops *ops)
{
	struct fx *x = calloc(1, sizeof(*x));
	char err[160];
	bus_init(&x->pio, "pio");
	bus_init(&x->mmio, "mmio");
	assert_int_equal(pci_host_init(&x->h, &x->pio, &x->mmio, -1, &test_pci_layout, err, sizeof(err)), 0);
	x->ram = calloc(1, RAM_SIZE);
	assert_int_equal(guest_mem_add(&x->mem, 0, RAM_SIZE, x->ram), 0);
	pthread_mutex_init(&x->dev.lock, NULL);
	pthread_cond_init(&x->dev.cond, NULL);
	memcpy(x->dev.config, "cfgbytes", 8);
	ratelimit_init(&x->rl, "virtio-test", 100);
	assert_int_equal(virtio_pci_init(&x->vp, &x->h, &(struct virtq_dma){ .mem = &x->mem }, ops, &x->dev, "virtio-test",
					 &x->rl, err, sizeof(err)), 0);
	x->bar = x->vp.pdev.bar[0].mapped_at;
	assert_true(x->vp.pdev.bar[0].mapped);
	*state = x;
	return 0;
}

/* Make the fake device's handler wait (on) or let it go (off). */
static void set_block(struct fx *x, bool on)
{
	pthread_mutex_lock(&x->dev.lock);
	x->dev.block = on;
	pthread_cond_broadcast(&x->dev.cond);
	pthread_mutex_unlock(&x->dev.lock);
}

static int teardown(void **state)
{
	struct fx *x = *state;
	/* a test that failed with the device blocked: let the requests finish, or the destroy
	 * (which joins the threads running them) would wait forever */
	set_block(x, false);
	virtio_pci_destroy(&x->vp);
	pci_host_destroy(&x->h);
	ratelimit_destroy(&x->rl);
	free(x->ram);
	free(x);
	return 0;
}

static uint32_t cr(struct fx *x, unsigned off, unsigned size)
{
	uint64_t v = 0;
	assert_true(bus_read(&x->mmio, x->bar + off, &v, size));
	return (uint32_t)v;
}

static void cw(struct fx *x, unsigned off, unsigned size, uint64_t v)
{
	assert_true(bus_write(&x->mmio, x->bar + off, &v, size));
}

static uint32_t cfg_rd(struct fx *x, unsigned off, unsigned size)
{
	return pci_cfg_read(&x->vp.pdev, off, size);
}

static uint8_t status(struct fx *x)
{
	return (uint8_t)cr(x, VPCI_STATUS, 1);
}

/* The driver's side of 3.1.1 up to FEATURES_OK. */
static void negotiate(struct fx *x, uint64_t feat)
{
	cw(x, VPCI_STATUS, 1, 0);
	cw(x, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	cw(x, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	cw(x, VPCI_GFSELECT, 4, 0);
	cw(x, VPCI_GF, 4, (uint32_t)feat);
	cw(x, VPCI_GFSELECT, 4, 1);
	cw(x, VPCI_GF, 4, (uint32_t)(feat >> 32));
	cw(x, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK);
}

static const uint64_t GOOD = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 3);

static void setup_queue(struct fx *x, unsigned q, uint16_t size)
{
	cw(x, VPCI_Q_SELECT, 2, q);
	cw(x, VPCI_Q_SIZE, 2, size);
	cw(x, VPCI_Q_DESC, 4, DESC_GPA);
	cw(x, VPCI_Q_DESC + 4, 4, 0);
	cw(x, VPCI_Q_DRIVER, 8, AVAIL_GPA);
	cw(x, VPCI_Q_DEVICE, 4, USED_GPA);
	cw(x, VPCI_Q_DEVICE + 4, 4, 0);
	cw(x, VPCI_Q_ENABLE, 2, 1);
}

static void driver_ok(struct fx *x)
{
	cw(x, VPCI_STATUS, 1, status(x) | VIRTIO_STATUS_DRIVER_OK);
}

static void bring_up(struct fx *x)
{
	negotiate(x, GOOD);
	setup_queue(x, 0, QMAX);
	driver_ok(x);
	assert_int_equal(status(x), 0x0f);
}

/* Post one request (16 readable bytes, 8 writable) on queue 0 and notify. */
static void post(struct fx *x, uint16_t head)
{
	struct virtq_desc *d = (struct virtq_desc *)(x->ram + DESC_GPA);
	d[head] = (struct virtq_desc){ BUF_GPA, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(head + 1) % QMAX };
	d[(head + 1) % QMAX] = (struct virtq_desc){ BUF_GPA + 64, 8, VIRTQ_DESC_F_WRITE, 0 };
	struct virtq_avail *a = (struct virtq_avail *)(x->ram + AVAIL_GPA);
	a->ring[x->avail % QMAX] = head;
	__atomic_store_n(&a->idx, ++x->avail, __ATOMIC_RELEASE);
	cw(x, VPCI_NOTIFY_OFF + 0, 2, 0);
}

static uint16_t used_idx(struct fx *x)
{
	return __atomic_load_n(&((struct virtq_used *)(x->ram + USED_GPA))->idx, __ATOMIC_ACQUIRE);
}

/* Wait up to 2 s for cond(x); returns whether it came true. */
static bool wait_for(struct fx *x, bool (*cond)(struct fx *), int ms)
{
	for (int i = 0; i < ms; i++) {
		if (cond(x))
			return true;
		usleep(1000);
	}
	return cond(x);
}

static bool one_used(struct fx *x) { return used_idx(x) >= 1; }
static bool needs_reset(struct fx *x) { return status(x) & VIRTIO_STATUS_DEVICE_NEEDS_RESET; }

static bool fd_fired(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, ms) != 1)
		return false;
	uint64_t n;
	return read(fd, &n, sizeof(n)) == sizeof(n) && n > 0;
}

/* ---- tests ---- */

static void test_identity_and_caps(void **state)
{
	struct fx *x = *state;
	assert_int_equal(cfg_rd(x, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(cfg_rd(x, PCI_DEVICE_ID, 2), 0x1040 + 42);
	assert_int_equal(cfg_rd(x, PCI_REVISION_ID, 1), 1);
	assert_true(cfg_rd(x, PCI_SUBSYS_ID, 2) >= 0x40);
	assert_int_equal(cfg_rd(x, PCI_INT_PIN, 1), 0);
	/* BAR0: 64-bit memory, 32 KiB */
	assert_int_equal(cfg_rd(x, PCI_BAR0, 4) & 0xf, PCI_BAR_MEM_64);
	int seen[6] = { 0 };
	for (unsigned p = cfg_rd(x, PCI_CAP_PTR, 1); p; p = cfg_rd(x, p + 1, 1)) {
		unsigned id = cfg_rd(x, p, 1);
		if (id == PCI_CAP_ID_MSIX) {
			assert_int_equal(cfg_rd(x, p + 2, 2) & 0x7ff, 2); /* 2 queues + config */
			assert_int_equal(cfg_rd(x, p + 4, 4), VPCI_MSIX_TABLE | VPCI_BAR);
			assert_int_equal(cfg_rd(x, p + 8, 4), VPCI_MSIX_PBA | VPCI_BAR);
			continue;
		}
		assert_int_equal(id, PCI_CAP_ID_VNDR);
		unsigned type = cfg_rd(x, p + 3, 1), len = cfg_rd(x, p + 2, 1);
		assert_true(type >= 1 && type <= 5);
		seen[type]++;
		assert_int_equal(cfg_rd(x, p + 4, 1), VPCI_BAR);
		uint32_t off = cfg_rd(x, p + 8, 4), length = cfg_rd(x, p + 12, 4);
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			assert_int_equal(off, VPCI_COMMON_OFF);
			assert_int_equal(length, 0x3c);
			assert_int_equal(len, 16);
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			assert_int_equal(off, VPCI_NOTIFY_OFF);
			assert_int_equal(length, 8);
			assert_int_equal(len, 20);
			assert_int_equal(cfg_rd(x, p + 16, 4), 4); /* notify_off_multiplier */
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			assert_int_equal(off, VPCI_ISR_OFF);
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			assert_int_equal(off, VPCI_DEVICE_OFF);
			assert_int_equal(length, 8);
			break;
		case VIRTIO_PCI_CAP_PCI_CFG:
			assert_int_equal(len, 20);
			break;
		}
		assert_true(off + length <= VPCI_BAR_SIZE);
	}
	for (int t = 1; t <= 5; t++)
		assert_int_equal(seen[t], 1);
}

static void test_features_and_status(void **state)
{
	struct fx *x = *state;
	assert_int_equal(status(x), 0);
	cw(x, VPCI_DFSELECT, 4, 0);
	uint32_t lo = cr(x, VPCI_DF, 4);
	cw(x, VPCI_DFSELECT, 4, 1);
	uint32_t hi = cr(x, VPCI_DF, 4);
	cw(x, VPCI_DFSELECT, 4, 2);
	assert_int_equal(cr(x, VPCI_DF, 4), 0);
	assert_int_equal(lo, (1u << 0) | (1u << 3) | (1u << VIRTIO_F_INDIRECT_DESC) |
			     (1u << VIRTIO_F_EVENT_IDX));
	assert_int_equal(hi, 1); /* VERSION_1; no ACCESS_PLATFORM, no RING_PACKED */
	/* without VERSION_1: FEATURES_OK is refused (3.1.1 step 6: the driver re-reads it) */
	negotiate(x, 1ULL << 3);
	assert_int_equal(status(x), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	/* a feature that was not offered: refused */
	negotiate(x, GOOD | (1ULL << 40));
	assert_false(status(x) & VIRTIO_STATUS_FEATURES_OK);
	negotiate(x, GOOD | (1ULL << 1));
	assert_false(status(x) & VIRTIO_STATUS_FEATURES_OK);
	/* good */
	negotiate(x, GOOD);
	assert_int_equal(status(x), 0x0b);
	assert_int_equal(x->dev.features, GOOD);
	/* features are frozen now */
	cw(x, VPCI_GFSELECT, 4, 0);
	cw(x, VPCI_GF, 4, 0);
	assert_int_equal(cr(x, VPCI_GF, 4), (uint32_t)GOOD);
	/* clearing bits is refused whole */
	cw(x, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(status(x), 0x0b);
	driver_ok(x);
	assert_int_equal(status(x), 0x0f);
	/* FAILED may be added */
	cw(x, VPCI_STATUS, 1, 0x8f);
	assert_int_equal(status(x), 0x8f);
	/* reset */
	int resets = x->dev.resets;
	cw(x, VPCI_STATUS, 1, 0);
	assert_int_equal(status(x), 0);
	assert_int_equal(x->dev.resets, resets + 1);
	cw(x, VPCI_GFSELECT, 4, 1);
	assert_int_equal(cr(x, VPCI_GF, 4), 0);
}

static void test_status_order(void **state)
{
	struct fx *x = *state;
	/* FEATURES_OK without ACKNOWLEDGE | DRIVER */
	cw(x, VPCI_GFSELECT, 4, 1);
	cw(x, VPCI_GF, 4, 1);
	cw(x, VPCI_STATUS, 1, VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(status(x), 0);
	/* DRIVER_OK without FEATURES_OK */
	cw(x, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(status(x), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	/* the driver cannot set NEEDS_RESET */
	cw(x, VPCI_STATUS, 1, 0x43);
	assert_int_equal(status(x), 0x03);
	/* wrong access widths are ignored */
	cw(x, VPCI_STATUS, 2, 0);
	assert_int_equal(status(x), 0x03);
	cw(x, VPCI_Q_SELECT, 4, 1);
	assert_int_equal(cr(x, VPCI_Q_SELECT, 2), 0);
}

static void test_queue_registers(void **state)
{
	struct fx *x = *state;
	assert_int_equal(cr(x, VPCI_NUM_QUEUES, 2), 2);
	cw(x, VPCI_Q_SELECT, 2, 1);
	assert_int_equal(cr(x, VPCI_Q_SIZE, 2), QMAX);
	assert_int_equal(cr(x, VPCI_Q_NOFF, 2), 1);
	assert_int_equal(cr(x, VPCI_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cw(x, VPCI_Q_MSIX, 2, 2);
	assert_int_equal(cr(x, VPCI_Q_MSIX, 2), 2);
	cw(x, VPCI_Q_MSIX, 2, 3); /* only vectors 0..2 exist */
	assert_int_equal(cr(x, VPCI_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cw(x, VPCI_MSIX_CONFIG, 2, 100);
	assert_int_equal(cr(x, VPCI_MSIX_CONFIG, 2), VIRTIO_MSI_NO_VECTOR);
	cw(x, VPCI_Q_DESC, 4, 0x12345000);
	cw(x, VPCI_Q_DESC + 4, 4, 0x9);
	assert_int_equal(cr(x, VPCI_Q_DESC, 4), 0x12345000);
	assert_int_equal(cr(x, VPCI_Q_DESC + 4, 4), 0x9);
	cw(x, VPCI_Q_DRIVER, 8, 0x1122334455667788ULL);
	uint64_t v = 0;
	bus_read(&x->mmio, x->bar + VPCI_Q_DRIVER, &v, 8);
	assert_int_equal(v, 0x1122334455667788ULL);
	/* a queue that does not exist: size 0, writes go nowhere */
	cw(x, VPCI_Q_SELECT, 2, 7);
	assert_int_equal(cr(x, VPCI_Q_SIZE, 2), 0);
	cw(x, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(cr(x, VPCI_Q_ENABLE, 2), 0);
	/* device config through the BAR */
	assert_int_equal(cr(x, VPCI_DEVICE_OFF + 4, 4), 0x73657479); /* "ytes" */
	assert_int_equal(cr(x, VPCI_DEVICE_OFF + 8, 4), 0);         /* past it: 0 */
	/* queue_reset is not offered: reads 0 */
	assert_int_equal(cr(x, VPCI_Q_RESET, 2), 0);
}

static void test_queue_enable_checks(void **state)
{
	struct fx *x = *state;
	/* before FEATURES_OK: refused, no reset needed */
	setup_queue(x, 0, QMAX);
	assert_int_equal(cr(x, VPCI_Q_ENABLE, 2), 0);
	assert_false(needs_reset(x));
	/* a size that is not a power of two */
	negotiate(x, GOOD);
	setup_queue(x, 0, 12);
	assert_int_equal(cr(x, VPCI_Q_ENABLE, 2), 0);
	assert_true(needs_reset(x));
	/* reset clears it; a size above the maximum */
	negotiate(x, GOOD);
	assert_false(needs_reset(x));
	setup_queue(x, 0, 2 * QMAX);
	assert_int_equal(cr(x, VPCI_Q_ENABLE, 2), 0);
	assert_true(needs_reset(x));
	/* rings outside RAM */
	negotiate(x, GOOD);
	cw(x, VPCI_Q_SELECT, 2, 0);
	cw(x, VPCI_Q_SIZE, 2, QMAX);
	cw(x, VPCI_Q_DESC, 8, RAM_SIZE - 16);
	cw(x, VPCI_Q_DRIVER, 8, AVAIL_GPA);
	cw(x, VPCI_Q_DEVICE, 8, USED_GPA);
	cw(x, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(cr(x, VPCI_Q_ENABLE, 2), 0);
	assert_true(needs_reset(x));
	/* a good queue; then its registers are frozen */
	negotiate(x, GOOD);
	setup_queue(x, 0, 8);
	assert_int_equal(cr(x, VPCI_Q_ENABLE, 2), 1);
	assert_false(needs_reset(x));
	cw(x, VPCI_Q_SIZE, 2, 4);
	cw(x, VPCI_Q_DESC, 8, 0x5000);
	assert_int_equal(cr(x, VPCI_Q_SIZE, 2), 8);
	assert_int_equal(cr(x, VPCI_Q_DESC, 4), DESC_GPA);
	/* writing 0 to queue_enable is not a way to disable it */
	cw(x, VPCI_Q_ENABLE, 2, 0);
	assert_int_equal(cr(x, VPCI_Q_ENABLE, 2), 1);
	/* reset: back to defaults */
	cw(x, VPCI_STATUS, 1, 0);
	assert_int_equal(cr(x, VPCI_Q_ENABLE, 2), 0);
	assert_int_equal(cr(x, VPCI_Q_SIZE, 2), QMAX);
	assert_int_equal(cr(x, VPCI_Q_DESC, 4), 0);
}

static void test_requests_processed(void **state)
{
	struct fx *x = *state;
	negotiate(x, GOOD);
	setup_queue(x, 0, QMAX);
	/* before DRIVER_OK nothing is consumed, notify or not */
	post(x, 0);
	usleep(50000);
	assert_int_equal(used_idx(x), 0);
	assert_int_equal(x->dev.handled, 0);
	driver_ok(x);
	assert_true(wait_for(x, one_used, 2000));
	struct virtq_used *u = (struct virtq_used *)(x->ram + USED_GPA);
	assert_int_equal(u->ring[0].id, 0);
	assert_int_equal(u->ring[0].len, 8);
	/* more, through the notify register (the ioeventfd path needs KVM) */
	for (uint16_t i = 1; i <= 5; i++)
		post(x, (uint16_t)(2 * i));
	for (int i = 0; i < 2000 && used_idx(x) < 6; i++)
		usleep(1000);
	assert_int_equal(used_idx(x), 6);
	assert_int_equal(x->dev.handled, 6);
	assert_true(x->vp.queues[0].kicks_by_exit >= 6);
	/* notify of a queue that does not exist, and a misaligned notify: ignored */
	cw(x, VPCI_NOTIFY_OFF + 2, 2, 0);
	uint16_t z = 0;
	assert_true(bus_write(&x->mmio, x->bar + VPCI_NOTIFY_OFF + 4 * 5, &z, 2));
}

static void test_msix_and_isr(void **state)
{
	struct fx *x = *state;
	bring_up(x);
	/* MSI-X off: completions set ISR bit 0, read-to-clear */
	post(x, 0);
	assert_true(wait_for(x, one_used, 2000));
	usleep(2000);
	assert_int_equal(cr(x, VPCI_ISR_OFF, 1), 1);
	assert_int_equal(cr(x, VPCI_ISR_OFF, 1), 0);
	/* MSI-X on, queue 0 on vector 0 unmasked */
	uint8_t cap = x->vp.msix.cap;
	pci_cfg_write(&x->vp.pdev, cap + 2, 2, PCI_MSIX_CTRL_ENABLE);
	cw(x, VPCI_MSIX_TABLE + 0, 4, 0xfee00000);
	cw(x, VPCI_MSIX_TABLE + 8, 4, 0x41);
	cw(x, VPCI_MSIX_TABLE + 12, 4, 0);
	cw(x, VPCI_Q_SELECT, 2, 0);
	cw(x, VPCI_Q_MSIX, 2, 0);
	assert_int_equal(cr(x, VPCI_Q_MSIX, 2), 0);
	post(x, 2);
	assert_true(fd_fired(x->vp.msix.irqfd[0], 2000));
	assert_int_equal(cr(x, VPCI_ISR_OFF, 1), 0);
	assert_int_equal(cr(x, VPCI_MSIX_TABLE + 8, 4), 0x41);
	/* masked: the vector goes pending in the PBA */
	cw(x, VPCI_MSIX_TABLE + 12, 4, 1);
	post(x, 4);
	for (int i = 0; i < 2000 && !(cr(x, VPCI_MSIX_PBA, 4) & 1); i++)
		usleep(1000);
	assert_int_equal(cr(x, VPCI_MSIX_PBA, 4), 1);
	assert_false(fd_fired(x->vp.msix.irqfd[0], 0));
	cw(x, VPCI_MSIX_TABLE + 12, 4, 0);
	assert_true(fd_fired(x->vp.msix.irqfd[0], 0));
	assert_int_equal(cr(x, VPCI_MSIX_PBA, 4), 0);
}

static void test_broken_ring_needs_reset(void **state)
{
	struct fx *x = *state;
	uint8_t cap = x->vp.msix.cap;
	pci_cfg_write(&x->vp.pdev, cap + 2, 2, PCI_MSIX_CTRL_ENABLE);
	cw(x, VPCI_MSIX_TABLE + 16 * 2 + 12, 4, 0); /* vector 2 unmasked */
	bring_up(x);
	cw(x, VPCI_MSIX_CONFIG, 2, 2);
	/* the driver's avail idx jumps by more than the queue size */
	struct virtq_avail *a = (struct virtq_avail *)(x->ram + AVAIL_GPA);
	__atomic_store_n(&a->idx, QMAX + 3, __ATOMIC_RELEASE);
	cw(x, VPCI_NOTIFY_OFF, 2, 0);
	assert_true(wait_for(x, needs_reset, 2000));
	assert_int_equal(status(x), 0x4f);
	assert_true(fd_fired(x->vp.msix.irqfd[2], 2000)); /* configuration change interrupt */
	assert_int_equal(x->dev.handled, 0);
	/* the queue stays stopped until reset */
	__atomic_store_n(&a->idx, 1, __ATOMIC_RELEASE);
	cw(x, VPCI_NOTIFY_OFF, 2, 0);
	usleep(20000);
	assert_int_equal(x->dev.handled, 0);
	/* after a reset the driver starts over and it works */
	cw(x, VPCI_STATUS, 1, 0);
	assert_int_equal(status(x), 0);
	memset(x->ram + AVAIL_GPA, 0, 0x2000);
	x->avail = 0;
	bring_up(x);
	post(x, 0);
	assert_true(wait_for(x, one_used, 2000));
	assert_int_equal(x->dev.handled, 1);
}

static void test_bad_chain_does_not_break(void **state)
{
	struct fx *x = *state;
	bring_up(x);
	struct virtq_desc *d = (struct virtq_desc *)(x->ram + DESC_GPA);
	d[5] = (struct virtq_desc){ BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 5 }; /* a loop */
	struct virtq_avail *a = (struct virtq_avail *)(x->ram + AVAIL_GPA);
	a->ring[0] = 5;
	__atomic_store_n(&a->idx, ++x->avail, __ATOMIC_RELEASE);
	cw(x, VPCI_NOTIFY_OFF, 2, 0);
	assert_true(wait_for(x, one_used, 2000));
	assert_int_equal(x->dev.bad, 1);
	assert_false(needs_reset(x));
	post(x, 0);
	for (int i = 0; i < 2000 && used_idx(x) < 2; i++)
		usleep(1000);
	assert_int_equal(used_idx(x), 2);
}

struct resetter {
	struct fx *x;
	int done;
};

static void *do_reset(void *arg)
{
	struct resetter *r = arg;
	cw(r->x, VPCI_STATUS, 1, 0);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A vCPU writes device_status 0 while the device is blocked in requests: the write must not
 * return before they finish. Checks that it still waits after 100 ms, then unblocks. */
static void reset_while_blocked(struct fx *x)
{
	struct resetter r = { .x = x };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, do_reset, &r), 0);
	usleep(100000);
	assert_int_equal(__atomic_load_n(&r.done, __ATOMIC_ACQUIRE), 0); /* still waiting */
	set_block(x, false);
	pthread_join(t, NULL);
	assert_int_equal(r.done, 1);
}

static void test_reset_waits_for_inflight(void **state)
{
	struct fx *x = *state;
	bring_up(x);
	set_block(x, true);
	post(x, 0);
	post(x, 2);
	pthread_mutex_lock(&x->dev.lock);
	while (!x->dev.in_handler)
		pthread_cond_wait(&x->dev.cond, &x->dev.lock);
	pthread_mutex_unlock(&x->dev.lock);
	/* a vCPU resets while the first request is in the device */
	reset_while_blocked(x);
	assert_int_equal(status(x), 0);
	/* the request in flight completed; the second was not started (stop is honoured
	 * between requests) */
	assert_int_equal(x->dev.handled, 1);
	assert_int_equal(used_idx(x), 1);
	/* and nothing more happens after the reset, even if notified */
	cw(x, VPCI_NOTIFY_OFF, 2, 0);
	usleep(20000);
	assert_int_equal(x->dev.handled, 1);
}

/* With workers, requests run at once, and a reset waits for every one of them. */
static void test_reset_waits_for_all_workers(void **state)
{
	struct fx *x = *state;
	bring_up(x);
	set_block(x, true);
	post(x, 0);
	post(x, 2);
	post(x, 4);
	pthread_mutex_lock(&x->dev.lock);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	while (x->dev.inside < 3)
		if (pthread_cond_timedwait(&x->dev.cond, &x->dev.lock, &dl))
			break;
	int inside = x->dev.inside;
	pthread_mutex_unlock(&x->dev.lock);
	assert_int_equal(inside, 3); /* three requests in the device at the same time */
	reset_while_blocked(x);
	assert_int_equal(status(x), 0);
	assert_int_equal(x->dev.handled, 3);
	assert_int_equal(used_idx(x), 3); /* all three completed before the reset answered */
	cw(x, VPCI_NOTIFY_OFF, 2, 0);
	usleep(20000);
	assert_int_equal(x->dev.handled, 3);
}

static void test_pci_cfg_window(void **state)
{
	struct fx *x = *state;
	unsigned p = x->vp.pci_cfg_cap;
	assert_int_equal(cfg_rd(x, p + 3, 1), VIRTIO_PCI_CAP_PCI_CFG);
	/* read device_feature (select 1) through config space: 4.1.4.9 */
	cw(x, VPCI_DFSELECT, 4, 1);
	pci_cfg_write(&x->vp.pdev, p + 4, 1, VPCI_BAR);
	pci_cfg_write(&x->vp.pdev, p + 8, 4, VPCI_DF);
	pci_cfg_write(&x->vp.pdev, p + 12, 4, 4);
	assert_int_equal(cfg_rd(x, p + 16, 4), cr(x, VPCI_DF, 4));
	/* write device_status = ACKNOWLEDGE through it (1-byte length) */
	pci_cfg_write(&x->vp.pdev, p + 8, 4, VPCI_STATUS);
	pci_cfg_write(&x->vp.pdev, p + 12, 4, 1);
	pci_cfg_write(&x->vp.pdev, p + 16, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(status(x), VIRTIO_STATUS_ACKNOWLEDGE);
	/* bad windows do nothing: length 3, misaligned, past the BAR, another BAR */
	pci_cfg_write(&x->vp.pdev, p + 12, 4, 3);
	pci_cfg_write(&x->vp.pdev, p + 16, 1, 0);
	pci_cfg_write(&x->vp.pdev, p + 12, 4, 2);
	pci_cfg_write(&x->vp.pdev, p + 8, 4, VPCI_STATUS + 1);
	pci_cfg_write(&x->vp.pdev, p + 16, 2, 0);
	pci_cfg_write(&x->vp.pdev, p + 8, 4, VPCI_BAR_SIZE - 2);
	pci_cfg_write(&x->vp.pdev, p + 12, 4, 4);
	pci_cfg_write(&x->vp.pdev, p + 16, 4, 0);
	pci_cfg_write(&x->vp.pdev, p + 4, 1, 2);
	pci_cfg_write(&x->vp.pdev, p + 8, 4, VPCI_STATUS);
	pci_cfg_write(&x->vp.pdev, p + 12, 4, 1);
	pci_cfg_write(&x->vp.pdev, p + 16, 1, 0);
	assert_int_equal(status(x), VIRTIO_STATUS_ACKNOWLEDGE);
}

static void test_bar_move_keeps_notify(void **state)
{
	struct fx *x = *state;
	bring_up(x);
	uint64_t old = x->bar, to = 0xe0000000ULL;
	pci_cfg_write(&x->vp.pdev, PCI_COMMAND, 2, 0);
	pci_cfg_write(&x->vp.pdev, PCI_BAR0, 4, (uint32_t)to);
	pci_cfg_write(&x->vp.pdev, PCI_BAR0 + 4, 4, 0);
	pci_cfg_write(&x->vp.pdev, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
	uint32_t v;
	assert_false(bus_read(&x->mmio, old + VPCI_STATUS, &v, 1));
	x->bar = to;
	assert_int_equal(status(x), 0x0f);
	post(x, 0);
	assert_true(wait_for(x, one_used, 2000));
}

/* With a real KVM VM (skipped without /dev/kvm): the notify ioeventfds are assigned at the
 * BAR and follow it when it moves (KVM refuses to deassign one that is not there, so a
 * silent success proves the bookkeeping), and MSI-X vectors get irqfds and GSI routes that
 * KVM accepts (KVM_SET_GSI_ROUTING with the irqchip's default routes kept). */
static void test_kvm_ioeventfd_irqfd(void **state)
{
	(void)state;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0 || ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		if (kvm >= 0)
			close(kvm);
		skip();
	}
	int vmfd = ioctl(kvm, KVM_CREATE_VM, 0);
	assert_true(vmfd >= 0);
	assert_int_equal(ioctl(vmfd, KVM_CREATE_IRQCHIP, 0), 0);
	struct fx *x = calloc(1, sizeof(*x));
	char err[160];
	bus_init(&x->pio, "pio");
	bus_init(&x->mmio, "mmio");
	assert_int_equal(pci_host_init(&x->h, &x->pio, &x->mmio, vmfd, &test_pci_layout, err, sizeof(err)), 0);
	x->ram = calloc(1, RAM_SIZE);
	assert_int_equal(guest_mem_add(&x->mem, 0, RAM_SIZE, x->ram), 0);
	pthread_mutex_init(&x->dev.lock, NULL);
	pthread_cond_init(&x->dev.cond, NULL);
	ratelimit_init(&x->rl, "virtio-test", 100);
	assert_int_equal(virtio_pci_init(&x->vp, &x->h, &(struct virtq_dma){ .mem = &x->mem }, &fake_ops, &x->dev, "virtio-test",
					 &x->rl, err, sizeof(err)), 0);
	x->bar = x->vp.pdev.bar[0].mapped_at;
	for (unsigned i = 0; i < 2; i++) {
		assert_true(x->vp.queues[i].ioeventfd);
		assert_int_equal(x->vp.queues[i].ioeventfd_addr, x->bar + VPCI_NOTIFY_OFF + 4 * i);
	}
	/* move the BAR twice, and switch decoding off and on */
	pci_cfg_write(&x->vp.pdev, PCI_BAR0, 4, 0xe0000000);
	assert_int_equal(x->vp.queues[1].ioeventfd_addr, 0xe0000000ULL + VPCI_NOTIFY_OFF + 4);
	pci_cfg_write(&x->vp.pdev, PCI_COMMAND, 2, 0);
	assert_false(x->vp.queues[0].ioeventfd);
	pci_cfg_write(&x->vp.pdev, PCI_COMMAND, 2, PCI_CMD_MEM);
	assert_true(x->vp.queues[0].ioeventfd);
	pci_cfg_write(&x->vp.pdev, PCI_BAR0, 4, (uint32_t)x->bar);
	assert_int_equal(x->vp.queues[0].ioeventfd_addr, x->bar + VPCI_NOTIFY_OFF);
	/* MSI-X: program and fire vector 1; the route goes to KVM on first delivery */
	pci_cfg_write(&x->vp.pdev, x->vp.msix.cap + 2, 2, PCI_MSIX_CTRL_ENABLE);
	cw(x, VPCI_MSIX_TABLE + 16 + 0, 4, 0xfee00000);
	cw(x, VPCI_MSIX_TABLE + 16 + 8, 4, 0x41);
	cw(x, VPCI_MSIX_TABLE + 16 + 12, 4, 0);
	pci_msix_signal(&x->vp.msix, 1);
	assert_false(x->vp.msix.route_stale[1]);
	assert_true(x->h.route[1].set);
	assert_int_equal(x->h.route[1].data, 0x41);
	/* a new message: one more routing update */
	cw(x, VPCI_MSIX_TABLE + 16 + 8, 4, 0x42);
	pci_msix_signal(&x->vp.msix, 1);
	assert_int_equal(x->h.route[1].data, 0x42);
	assert_int_equal(x->rl.total, 0);   /* no ioeventfd complaint */
	assert_int_equal(x->h.rl.total, 0); /* no routing complaint */
	virtio_pci_destroy(&x->vp);
	pci_host_destroy(&x->h);
	ratelimit_destroy(&x->rl);
	free(x->ram);
	free(x);
	close(vmfd);
	close(kvm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_and_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features_and_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_enable_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requests_processed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_and_isr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_ring_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_chain_does_not_break, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_waits_for_inflight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_waits_for_all_workers, setup_workers,
						teardown),
		cmocka_unit_test_setup_teardown(test_requests_processed, setup_workers, teardown),
		cmocka_unit_test_setup_teardown(test_pci_cfg_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_move_keeps_notify, setup, teardown),
		cmocka_unit_test(test_kvm_ioeventfd_irqfd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
