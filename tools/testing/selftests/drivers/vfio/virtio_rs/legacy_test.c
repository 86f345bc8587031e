// SPDX-License-Identifier: GPL-2.0
/*
 * Legacy (transitional) I/O of virtio-net VFs: the virtual I/O BAR0 and the
 * config-space virtualisation of virtio_vfio_pci_rs against upstream's
 * virtio_vfio_pci, with the simulated PF offering the legacy admin commands
 * (virtio_rs_sim legacy_io=1).
 *
 * - legacy_differential: one scripted sequence of accesses (config space,
 *   region info, a legacy virtio-net driver's probe and queue setup through
 *   BAR0, MSI-X on and off, notifications, ISR) on VF1 bound to upstream,
 *   then to ours; every access and every admin command the PF saw must be
 *   the same, except for named upstream bugs we fix.
 * - legacy.*: bad input on each driver (bounds, count 0, partial fields,
 *   QUEUE_NOTIFY sizes, the IO enable bit, shadowed config fields),
 *   concurrent accesses with a device reset, closing the device while an
 *   access is in the device.
 * - legacy_migration: legacy registers set on VF1 and read on VF2 after a
 *   STOP_COPY migration, for every pair of drivers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "vfio_dev.h"
#include "sim.h"
#include "vfio_mig.h"
#include "virtio_rs_test.h"

/* The virtual BAR0 of a transitional virtio-net VF: 24 + 8 bytes. */
#define LBAR0_SIZE 32
#define VF1_MEMBER 1

/* Legacy status bits (VIRTIO_CONFIG_S_*). */
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4

enum { R_CFG, R_BAR0, R_NOTIFY };
static const char *const reg_name[] = { "cfg", "bar0", "notify-bar" };

static void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *errname(int err)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ EINVAL, "EINVAL" }, { EIO, "EIO" }, { EFAULT, "EFAULT" },
		{ ENODEV, "ENODEV" }, { EBADF, "EBADF" }, { ENOENT, "ENOENT" },
		{ ENOTTY, "ENOTTY" }, { EOPNOTSUPP, "EOPNOTSUPP" }, { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" }, { ENXIO, "ENXIO" }, { EPERM, "EPERM" },
		{ ERANGE, "ERANGE" }, { ENOSPC, "ENOSPC" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].err == err)
			return names[i].name;
	return NULL;
}

/*
 * An open VF, with what a test needs to reach its regions: config space,
 * the virtual BAR0, and the real BAR that LEGACY_NOTIFY_INFO points into
 * (the common-config device_feature_select register, computed from the
 * VF's virtio PCI capability as the simulated device does).
 */
struct ldev {
	int fd;
	uint64_t cfg_off, cfg_size;
	uint64_t bar0_off, bar0_size;
	uint32_t bar0_flags;
	int notify_bar;
	uint64_t notify_bar_off, notify_off;
	int irq_fd;
	/* The access log of the differential test. */
	bool record;
	char *log;
	size_t len, cap;
	int accesses;
};

static void log_line(struct ldev *l, const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	size_t n;

	if (!l->record)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (l->len + n + 2 > l->cap) {
		char *tmp = realloc(l->log, (l->len + n + 2) * 2);

		if (!tmp)
			return;
		l->log = tmp;
		l->cap = (l->len + n + 2) * 2;
	}
	memcpy(l->log + l->len, line, n);
	l->len += n;
	l->log[l->len++] = '\n';
	l->log[l->len] = '\0';
	l->accesses++;
}

static void hex(char *out, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

static void ret_text(char *out, size_t len, ssize_t ret, int err)
{
	const char *name = ret < 0 ? errname(err) : NULL;

	if (ret >= 0)
		snprintf(out, len, "%zd", ret);
	else if (name)
		snprintf(out, len, "-%s", name);
	else
		snprintf(out, len, "-errno%d", err);
}

static uint64_t reg_base(struct ldev *l, int reg)
{
	if (reg == R_CFG)
		return l->cfg_off;
	if (reg == R_BAR0)
		return l->bar0_off;
	return l->notify_bar_off;
}

/* One read or write; recorded. Returns the syscall's result or -errno. */
static ssize_t xfer(struct ldev *l, int reg, bool wr, uint64_t off, size_t len,
		    const void *wdata, void *rdata)
{
	char h[2 * 512 + 1] = "", r[32];
	uint8_t buf[512];
	ssize_t ret;
	int err = 0;

	if (len > sizeof(buf))
		return -EINVAL;
	if (wr) {
		memcpy(buf, wdata, len);
		ret = pwrite(l->fd, buf, len, reg_base(l, reg) + off);
	} else {
		memset(buf, 0xee, len);
		ret = pread(l->fd, buf, len, reg_base(l, reg) + off);
	}
	if (ret < 0)
		err = errno;
	ret_text(r, sizeof(r), ret, err);
	if (wr) {
		hex(h, buf, len);
		log_line(l, "%s wr off 0x%03llx len %zu val %s -> %s", reg_name[reg],
			 (unsigned long long)off, len, h, r);
	} else {
		if (ret > 0)
			hex(h, buf, ret);
		log_line(l, "%s rd off 0x%03llx len %zu -> %s%s%s", reg_name[reg],
			 (unsigned long long)off, len, r, ret > 0 ? " data " : "", h);
		if (ret > 0 && rdata)
			memcpy(rdata, buf, ret);
	}
	return ret < 0 ? -err : ret;
}

/* Read len (<= 4) bytes as a little-endian value, or -errno. */
static int64_t rd(struct ldev *l, int reg, uint64_t off, size_t len)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;
	ssize_t ret;
	size_t i;

	ret = xfer(l, reg, false, off, len, NULL, b);
	if (ret < 0)
		return ret;
	if (ret != (ssize_t)len)
		return -ERANGE;
	for (i = 0; i < len && i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

/* Write len (<= 8) bytes of val, little-endian. count or -errno. */
static ssize_t wr(struct ldev *l, int reg, uint64_t off, size_t len, uint64_t val)
{
	uint8_t b[8];
	size_t i;

	for (i = 0; i < sizeof(b); i++)
		b[i] = val >> (8 * i);
	return xfer(l, reg, true, off, len, b, NULL);
}

static int cfg_u16(struct ldev *l, unsigned int off)
{
	return rd(l, R_CFG, off, 2);
}

/* COMMAND with the IO enable bit set or cleared (the shadow upstream keeps). */
static int set_io(struct ldev *l, bool on)
{
	int64_t cmd = rd(l, R_CFG, PCI_COMMAND, 2);

	if (cmd < 0)
		return cmd;
	cmd = on ? cmd | PCI_COMMAND_IO : cmd & ~PCI_COMMAND_IO;
	return wr(l, R_CFG, PCI_COMMAND, 2, cmd) == 2 ? 0 : -EIO;
}

/* VFIO_DEVICE_SET_IRQS for MSI-X: one vector with an eventfd, or none. */
static int msix(struct ldev *l, bool on)
{
	struct {
		struct vfio_irq_set s;
		int32_t fd;
	} set = { 0 };
	int ret;

	set.s.argsz = sizeof(set);
	set.s.index = VFIO_PCI_MSIX_IRQ_INDEX;
	if (on) {
		if (l->irq_fd < 0)
			l->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		set.s.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
		set.s.count = 1;
		set.fd = l->irq_fd;
	} else {
		set.s.argsz = sizeof(set.s);
		set.s.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	}
	ret = ioctl(l->fd, VFIO_DEVICE_SET_IRQS, &set) ? -errno : 0;
	log_line(l, "irq msix %s -> %d", on ? "enable 1" : "disable", ret);
	return ret;
}

/* Find the common-config capability: BAR and offset of the notify register. */
static int find_common_cfg(struct ldev *l)
{
	uint8_t cfg[256];
	int pos, guard = 0;

	if (pread(l->fd, cfg, sizeof(cfg), l->cfg_off) != sizeof(cfg))
		return -EIO;
	if (!(cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST))
		return -ENOENT;
	for (pos = cfg[PCI_CAPABILITY_LIST] & ~3; pos && pos < 0xfc && guard++ < 48;
	     pos = cfg[pos + 1] & ~3) {
		if (cfg[pos] != PCI_CAP_ID_VNDR || cfg[pos + 3] != VIRTIO_PCI_CAP_COMMON_CFG)
			continue;
		l->notify_bar = cfg[pos + 4];
		/* device_feature_select is the first field of the common config. */
		l->notify_off = cfg[pos + 8] | cfg[pos + 9] << 8 | cfg[pos + 10] << 16 |
				(uint32_t)cfg[pos + 11] << 24;
		return 0;
	}
	return -ENOENT;
}

static int ldev_init(struct ldev *l, int fd)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	int ret;

	memset(l, 0, sizeof(*l));
	l->fd = fd;
	l->irq_fd = -1;
	ri.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	l->cfg_off = ri.offset;
	l->cfg_size = ri.size;
	memset(&ri, 0, sizeof(ri));
	ri.argsz = sizeof(ri);
	ri.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	l->bar0_off = ri.offset;
	l->bar0_size = ri.size;
	l->bar0_flags = ri.flags;
	ret = find_common_cfg(l);
	if (ret)
		return ret;
	memset(&ri, 0, sizeof(ri));
	ri.argsz = sizeof(ri);
	ri.index = l->notify_bar;
	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	l->notify_bar_off = ri.offset;
	return 0;
}

static void ldev_fini(struct ldev *l)
{
	if (l->irq_fd >= 0)
		close(l->irq_fd);
	free(l->log);
	l->log = NULL;
	l->irq_fd = -1;
}

/* Whether the driver's probe took the transitional path: a 32-byte BAR0. */
static bool transitional(const struct ldev *l)
{
	return l->bar0_size == LBAR0_SIZE &&
	       l->bar0_flags == (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
}

/*
 * The environment of every test: VF1 and VF2 unbound, their bindings saved;
 * the simulated PF reloaded with legacy_io=1 (restored to its defaults
 * afterwards, or unloaded if it was not loaded); a kernel log watch.
 */
struct lenv {
	char pf[32], vf[2][32];
	struct dev_binding saved[2];
	bool sim_was_loaded, ready;
	struct kmsg_watch kmsg;
	struct vfio_dev d[2];
	bool open[2];
};

static const char *lenv_unready(void)
{
	char out[256];

	if (run_cmd("modinfo -F parm " SIM_MODULE " | grep -q '^legacy_io'", out, sizeof(out)))
		return "the simulated PF has no legacy_io parameter (sim-legacy not merged?)";
	if (!module_loaded(VIRTIO_C_DRIVER) && modprobe(VIRTIO_C_DRIVER))
		return "upstream " VIRTIO_C_DRIVER " module not available";
	if (!module_loaded(VIRTIO_RS_DRIVER) && modprobe(VIRTIO_RS_DRIVER))
		return VIRTIO_RS_DRIVER " module not available";
	return NULL;
}

static void lenv_restore(struct __test_metadata *_metadata, struct lenv *e)
{
	char bug[256];
	int i;

	for (i = 0; i < 2; i++) {
		if (e->open[i])
			vfio_close(&e->d[i]);
		e->open[i] = false;
		EXPECT_EQ(0, unbind_and_clear(e->vf[i]));
	}
	EXPECT_EQ(0, sim_unload());
	if (e->sim_was_loaded)
		EXPECT_EQ(0, sim_load(NULL));
	for (i = 0; i < 2; i++)
		EXPECT_EQ(0, dev_binding_restore(e->vf[i], &e->saved[i]))
			TH_LOG("restore the binding of %s", e->vf[i]);
	EXPECT_EQ(0, kmsg_watch_collect(&e->kmsg));
	EXPECT_EQ(0, kmsg_bug_lines(&e->kmsg, bug, sizeof(bug))) TH_LOG("%s", bug);
	kmsg_watch_stop(&e->kmsg);
	e->ready = false;
}

/*
 * Setup; SKIPs (before changing anything) when something is missing. The
 * harness skips the teardown when the setup fails, so a failure after the
 * first change restores everything itself.
 */
static void lenv_setup(struct __test_metadata *_metadata, struct lenv *e)
{
	const char *why;
	int i, ret;

	memset(e, 0, sizeof(*e));
	e->kmsg.fd = -1;
	ASSERT_EQ(0, find_sriov_pf(e->pf, sizeof(e->pf)));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, pf_vf_bdf(e->pf, i, e->vf[i], sizeof(e->vf[i])));
		ASSERT_EQ(0, dev_binding_save(e->vf[i], &e->saved[i]));
	}
	why = lenv_unready();
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, kmsg_watch_start(&e->kmsg));
	e->sim_was_loaded = module_loaded(SIM_MODULE);
	e->ready = true;
	for (i = 0; i < 2; i++) {
		ret = unbind_and_clear(e->vf[i]);
		if (ret)
			break;
	}
	if (!ret && e->sim_was_loaded)
		ret = sim_unload();
	if (!ret)
		ret = sim_load("legacy_io=1");
	if (!ret)
		ret = sim_ctl("clear");
	if (ret) {
		lenv_restore(_metadata, e);
		ASSERT_EQ(0, ret) TH_LOG("reload the simulated PF with legacy_io=1");
	}
}

static void lenv_teardown(struct __test_metadata *_metadata, struct lenv *e)
{
	if (e->ready)
		lenv_restore(_metadata, e);
}

/* Bind VF i to driver and open it through its cdev. */
static int lenv_open(struct lenv *e, int i, const char *driver, struct ldev *l)
{
	int ret;

	if (e->open[i]) {
		vfio_close(&e->d[i]);
		e->open[i] = false;
	}
	ret = bind_driver_override(e->vf[i], driver);
	if (ret)
		return ret;
	ret = vfio_open_cdev(e->vf[i], &e->d[i]);
	if (ret)
		return ret;
	e->open[i] = true;
	return ldev_init(l, e->d[i].device_fd);
}

static void lenv_close(struct lenv *e, int i, struct ldev *l)
{
	if (l)
		ldev_fini(l);
	if (e->open[i])
		vfio_close(&e->d[i]);
	e->open[i] = false;
}

/* ---------------------------------------------------------------------- */
/* 1. The differential run. */

/*
 * The scripted sequence. Everything is recorded in l->log; nothing is
 * asserted here (the two runs are compared afterwards), except that the
 * script can go on.
 */
static void diff_script(struct ldev *l, bool perturb)
{
	static const struct { unsigned int off, len; } cfg_small[] = {
		{ PCI_VENDOR_ID, 4 }, { PCI_DEVICE_ID, 2 }, { PCI_DEVICE_ID, 1 },
		{ PCI_DEVICE_ID + 1, 1 }, { PCI_COMMAND, 2 }, { PCI_COMMAND, 1 },
		{ PCI_COMMAND, 4 }, { PCI_REVISION_ID, 1 }, { PCI_REVISION_ID, 4 },
		{ PCI_BASE_ADDRESS_0, 4 }, { PCI_BASE_ADDRESS_0, 2 },
		{ PCI_BASE_ADDRESS_0 + 1, 1 }, { PCI_BASE_ADDRESS_0 + 2, 2 },
		{ PCI_BASE_ADDRESS_1, 4 }, { PCI_SUBSYSTEM_VENDOR_ID, 4 },
		{ PCI_SUBSYSTEM_VENDOR_ID, 2 }, { PCI_SUBSYSTEM_ID, 2 },
		{ PCI_SUBSYSTEM_ID + 1, 1 }, { PCI_CLASS_PROG, 4 },
	};
	struct vfio_device_info di = { .argsz = sizeof(di) };
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_MSIX_IRQ_INDEX };
	uint8_t cfg[256];
	int64_t host, v;
	unsigned int i, q, dcfg;
	int ret;

	ret = ioctl(l->fd, VFIO_DEVICE_GET_INFO, &di) ? -errno : 0;
	log_line(l, "device info -> %d flags 0x%x regions %u irqs %u", ret, di.flags,
		 di.num_regions, di.num_irqs);
	for (i = 0; i < VFIO_PCI_NUM_REGIONS; i++) {
		struct vfio_region_info ri = { .argsz = sizeof(ri), .index = i };

		ret = ioctl(l->fd, VFIO_DEVICE_GET_REGION_INFO, &ri) ? -errno : 0;
		log_line(l, "region %u info -> %d size 0x%llx flags 0x%x offset 0x%llx", i, ret,
			 (unsigned long long)ri.size, ri.flags, (unsigned long long)ri.offset);
	}
	ret = ioctl(l->fd, VFIO_DEVICE_GET_IRQ_INFO, &ii) ? -errno : 0;
	log_line(l, "irq msix info -> %d count %u flags 0x%x", ret, ii.count, ii.flags);

	/* Config space: whole, then the registers the driver overrides. */
	xfer(l, R_CFG, false, 0, sizeof(cfg), NULL, cfg);
	for (i = 0; i < sizeof(cfg_small) / sizeof(cfg_small[0]); i++)
		rd(l, R_CFG, cfg_small[i].off, cfg_small[i].len);
	xfer(l, R_CFG, false, l->cfg_size - 2, 4, NULL, NULL);	/* crosses the end */
	xfer(l, R_CFG, false, 0, 0, NULL, NULL);

	/*
	 * The notify register is a real device register that a function reset
	 * does not clear (QEMU keeps device_feature_select): start each run
	 * from 0, written directly.
	 */
	wr(l, R_NOTIFY, l->notify_off, 4, 0);

	/* BAR0 before COMMAND.IO: -EIO. */
	rd(l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4);
	wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, 0);
	rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 2);

	/* Config writes: COMMAND.IO, BAR0 sizing and address, shadowed ids. */
	set_io(l, true);
	rd(l, R_CFG, PCI_COMMAND, 2);
	rd(l, R_CFG, PCI_COMMAND, 1);
	wr(l, R_CFG, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	rd(l, R_CFG, PCI_BASE_ADDRESS_0, 4);
	wr(l, R_CFG, PCI_BASE_ADDRESS_0, 4, 0xc000);
	rd(l, R_CFG, PCI_BASE_ADDRESS_0, 4);
	wr(l, R_CFG, PCI_BASE_ADDRESS_0, 2, 0x1237);
	rd(l, R_CFG, PCI_BASE_ADDRESS_0, 4);
	wr(l, R_CFG, PCI_BASE_ADDRESS_0 + 2, 1, 0xab);
	rd(l, R_CFG, PCI_BASE_ADDRESS_0, 4);
	wr(l, R_CFG, PCI_BASE_ADDRESS_0, 4, 0xc000);
	wr(l, R_CFG, PCI_DEVICE_ID, 2, 0xabcd);
	rd(l, R_CFG, PCI_VENDOR_ID, 4);
	wr(l, R_CFG, PCI_REVISION_ID, 1, 0x55);
	rd(l, R_CFG, PCI_REVISION_ID, 1);
	wr(l, R_CFG, PCI_SUBSYSTEM_VENDOR_ID, 4, 0x12345678);
	rd(l, R_CFG, PCI_SUBSYSTEM_VENDOR_ID, 4);
	wr(l, R_CFG, PCI_COMMAND, 0, 0);
	xfer(l, R_CFG, false, 0, sizeof(cfg), NULL, cfg);

	/* BAR0 bounds and sizes (before the device is touched). */
	xfer(l, R_BAR0, false, 0, 0, NULL, NULL);
	wr(l, R_BAR0, 0, 0, 0);
	rd(l, R_BAR0, LBAR0_SIZE, 1);
	rd(l, R_BAR0, LBAR0_SIZE - 2, 4);
	rd(l, R_BAR0, LBAR0_SIZE - 1, 2);
	wr(l, R_BAR0, LBAR0_SIZE - 4, 8, 0);
	rd(l, R_BAR0, 0x100, 4);
	rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 1);
	rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 4);
	wr(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 1, 0);
	wr(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 4, 0);

	/* A legacy virtio-net driver's probe: reset, ACK, DRIVER, features. */
	wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, 0);
	rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1);
	wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, ST_ACK);
	wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, ST_ACK | ST_DRIVER);
	rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1);
	host = rd(l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4);
	/* MAC, STATUS, CTRL_VQ, MRG_RXBUF: whichever the device offers. */
	wr(l, R_BAR0, VIRTIO_PCI_GUEST_FEATURES, 4,
	   host < 0 ? 0x20 : host & ((1 << 5) | (1 << 15) | (1 << 16) | (1 << 17)));
	rd(l, R_BAR0, VIRTIO_PCI_GUEST_FEATURES, 4);
	for (q = 0; q < 3; q++) {
		wr(l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2, q);
		rd(l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2);
		rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NUM, 2);
		rd(l, R_BAR0, VIRTIO_PCI_QUEUE_PFN, 4);
		wr(l, R_BAR0, VIRTIO_PCI_QUEUE_PFN, 4, 0x12340 + 0x10 * q + (perturb && q == 2));
		rd(l, R_BAR0, VIRTIO_PCI_QUEUE_PFN, 4);
	}

	/* Device config without MSI-X: at 20. */
	dcfg = VIRTIO_PCI_CONFIG_OFF(false);
	for (i = 0; i < 6; i++)
		rd(l, R_BAR0, dcfg + i, 1);
	rd(l, R_BAR0, dcfg, 4);
	rd(l, R_BAR0, dcfg + 4, 2);
	rd(l, R_BAR0, dcfg + 6, 2);
	rd(l, R_BAR0, dcfg + 8, 2);
	rd(l, R_BAR0, 28, 4);

	/* Partial and straddling fields: the device decides. */
	rd(l, R_BAR0, 1, 2);
	rd(l, R_BAR0, 0, 1);
	rd(l, R_BAR0, 0, 2);
	rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NUM, 4);
	rd(l, R_BAR0, 13, 2);
	wr(l, R_BAR0, 13, 2, 0);
	rd(l, R_BAR0, VIRTIO_PCI_STATUS, 2);
	wr(l, R_BAR0, VIRTIO_PCI_GUEST_FEATURES + 2, 2, 0);

	/* With MSI-X: vectors at 20/22, device config at 24. */
	msix(l, true);
	wr(l, R_BAR0, VIRTIO_MSI_CONFIG_VECTOR, 2, 0);
	rd(l, R_BAR0, VIRTIO_MSI_CONFIG_VECTOR, 2);
	for (q = 0; q < 3; q++) {
		wr(l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2, q);
		rd(l, R_BAR0, VIRTIO_MSI_QUEUE_VECTOR, 2);
		wr(l, R_BAR0, VIRTIO_MSI_QUEUE_VECTOR, 2, q + 1);
		rd(l, R_BAR0, VIRTIO_MSI_QUEUE_VECTOR, 2);
	}
	wr(l, R_BAR0, VIRTIO_MSI_CONFIG_VECTOR, 2, 0xffff);
	rd(l, R_BAR0, VIRTIO_MSI_CONFIG_VECTOR, 2);
	dcfg = VIRTIO_PCI_CONFIG_OFF(true);
	for (i = 0; i < 6; i++)
		rd(l, R_BAR0, dcfg + i, 1);
	rd(l, R_BAR0, dcfg, 4);
	rd(l, R_BAR0, dcfg + 4, 2);
	rd(l, R_BAR0, dcfg + 6, 2);
	rd(l, R_BAR0, 28, 4);
	wr(l, R_BAR0, dcfg + 5, 1, 0x5a);
	rd(l, R_BAR0, dcfg + 5, 1);
	xfer(l, R_CFG, false, 0, sizeof(cfg), NULL, cfg);

	/* DRIVER_OK, then notifications: read back through BAR0 and BAR 4. */
	v = rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1);
	wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, (v < 0 ? 0 : v) | ST_DRIVER_OK);
	rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1);
	rd(l, R_NOTIFY, l->notify_off, 4);
	for (q = 0; q < 3; q++) {
		wr(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 2, q);
		rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 2);
		rd(l, R_NOTIFY, l->notify_off, 4);
	}
	wr(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 2, 0xbeef);
	rd(l, R_NOTIFY, l->notify_off, 4);

	/* ISR, set by the device. */
	rd(l, R_BAR0, VIRTIO_PCI_ISR, 1);
	ret = sim_ctl("isr %d 3", VF1_MEMBER);
	log_line(l, "ctl isr %d 3 -> %d", VF1_MEMBER, ret);
	rd(l, R_BAR0, VIRTIO_PCI_ISR, 1);
	rd(l, R_BAR0, VIRTIO_PCI_ISR, 1);

	/* MSI-X off again: device config back at 20. */
	msix(l, false);
	rd(l, R_BAR0, VIRTIO_MSI_CONFIG_VECTOR, 2);
	wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, 0);
	rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1);
	set_io(l, false);
	rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1);

	/*
	 * A function reset: upstream's reset_done clears the shadow COMMAND,
	 * so BAR0 is off until COMMAND.IO is written again, while config space
	 * goes on showing IO from vfio's virtual COMMAND.
	 */
	set_io(l, true);
	ret = ioctl(l->fd, VFIO_DEVICE_RESET) ? -errno : 0;
	log_line(l, "device reset -> %d", ret);
	rd(l, R_CFG, PCI_COMMAND, 2);
	rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1);
	rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 2);
	set_io(l, true);
	rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1);
	rd(l, R_BAR0, VIRTIO_PCI_QUEUE_PFN, 4);
	rd(l, R_CFG, PCI_BASE_ADDRESS_0, 4);
}

/*
 * Differences we make on purpose: an upstream bug we fix. Matched exactly:
 * the same access, upstream returning the requested count, ours a smaller,
 * non-negative one (the core read's).
 */
static const char *allowed_difference(const char *up, const char *rs)
{
	const char *ua = strstr(up, " -> "), *ra = strstr(rs, " -> ");
	unsigned int off;
	long len, uret, rret;

	if (!ua || !ra || ua - up != ra - rs || strncmp(up, rs, ua - up))
		return NULL;
	/* §11.18: the config read returns count even when the core read was short. */
	if (sscanf(up, "cfg rd off 0x%x len %ld -> %ld", &off, &len, &uret) == 3 &&
	    sscanf(ra, " -> %ld", &rret) == 1 && uret == len && rret >= 0 && rret < len)
		return "upstream bug 11.18: config read returns count, not the core read's count";
	return NULL;
}

static void dump_log(const char *what, const char *log)
{
	while (*log) {
		size_t n = strcspn(log, "\n");

		note("%s: %.*s", what, (int)n, log);
		log += n + (log[n] == '\n');
	}
}

/* Compare two logs line by line; print the differences; return their count. */
static int compare_logs(const char *what, const char *up, const char *rs, int *compared)
{
	int diffs = 0;

	*compared = 0;
	while (*up || *rs) {
		size_t ul = strcspn(up, "\n"), rl = strcspn(rs, "\n");
		char a[1200], b[1200];
		const char *bug;

		snprintf(a, sizeof(a), "%.*s", (int)ul, up);
		snprintf(b, sizeof(b), "%.*s", (int)rl, rs);
		(*compared)++;
		if (strcmp(a, b)) {
			bug = allowed_difference(a, b);
			if (bug) {
				note("legacy differential: %s %d: allowed difference (%s)", what,
				     *compared, bug);
			} else {
				diffs++;
				note("legacy differential: %s %d differs", what, *compared);
			}
			note("  upstream: %s", *up ? a : "(missing)");
			note("  ours:     %s", *rs ? b : "(missing)");
		}
		up += ul + (up[ul] == '\n');
		rs += rl + (rs[rl] == '\n');
	}
	return diffs;
}

FIXTURE(lsim)
{
	struct lenv e;
};

FIXTURE_SETUP(lsim)
{
	lenv_setup(_metadata, &self->e);
}

FIXTURE_TEARDOWN(lsim)
{
	lenv_teardown(_metadata, &self->e);
}

/*
 * A device that reports a bad notify address (ours only: upstream's driver
 * adds the offset to its BAR mapping unchecked and would do the MMIO there).
 * Past the end of its BAR: the probe succeeds, the open fails with EINVAL
 * and says why; the last two bytes of the BAR are fine; a BAR the VF does
 * not have: the probe fails.
 */
TEST_F(lsim, legacy_bad_notify_address)
{
	struct lenv *e = &self->e;
	struct vfio_region_info bar4;
	struct vfio_dev d;
	char drv[64];
	int ret;

	/* The size of the BAR the simulated PF points at (BAR 4). */
	ASSERT_EQ(0, bind_driver_override(e->vf[0], VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, vfio_open_cdev(e->vf[0], &d));
	ASSERT_EQ(0, vfio_region(&d, VFIO_PCI_BAR4_REGION_INDEX, &bar4));
	vfio_close(&d);
	ASSERT_LT(2, bar4.size);

	ASSERT_EQ(0, sim_ctl("notify_at 4 0x%llx", (unsigned long long)bar4.size - 1));
	ASSERT_EQ(0, kmsg_watch_collect(&e->kmsg));
	ASSERT_EQ(0, bind_driver_override(e->vf[0], VIRTIO_RS_DRIVER));
	ret = vfio_open_cdev(e->vf[0], &d);
	vfio_close(&d);
	EXPECT_EQ(-EINVAL, ret);
	ASSERT_EQ(0, kmsg_watch_collect(&e->kmsg));
	EXPECT_TRUE(kmsg_find(&e->kmsg, "not usable"));

	ASSERT_EQ(0, sim_ctl("notify_at 4 0x%llx", (unsigned long long)bar4.size - 2));
	ASSERT_EQ(0, bind_driver_override(e->vf[0], VIRTIO_RS_DRIVER));
	ret = vfio_open_cdev(e->vf[0], &d);
	vfio_close(&d);
	EXPECT_EQ(0, ret);

	ASSERT_EQ(0, sim_ctl("notify_at 0 0"));
	ASSERT_EQ(0, kmsg_watch_collect(&e->kmsg));
	EXPECT_NE(0, bind_driver_override(e->vf[0], VIRTIO_RS_DRIVER));
	ret = dev_driver(e->vf[0], drv, sizeof(drv));
	EXPECT_FALSE(ret == 0 && !strcmp(drv, VIRTIO_RS_DRIVER)) TH_LOG("bound despite BAR 0");
	ASSERT_EQ(0, kmsg_watch_collect(&e->kmsg));
	EXPECT_TRUE(kmsg_find(&e->kmsg, "which the VF does not have"));
	EXPECT_EQ(0, sim_ctl("notify_at auto"));
}

/* One run of the script on VF1 bound to driver: the accesses and commands. */
static int diff_run(struct __test_metadata *_metadata, struct lenv *e, const char *driver,
		    bool perturb, char **acc, int *nacc, char **cmds, int *ncmds)
{
	struct ldev l;
	int ret;

	*acc = *cmds = NULL;
	ret = lenv_open(e, 0, driver, &l);
	if (ret) {
		TH_LOG("%s: open VF1: %s", driver, strerror(-ret));
		return ret;
	}
	if (!transitional(&l)) {
		ldev_fini(&l);
		lenv_close(e, 0, NULL);
		return -EOPNOTSUPP;
	}
	ret = sim_ctl("clear");
	if (ret)
		return ret;
	l.record = true;
	diff_script(&l, perturb);
	*acc = l.log;
	*nacc = l.accesses;
	l.log = NULL;
	ldev_fini(&l);
	lenv_close(e, 0, NULL);
	ret = sim_trace_lines(VF1_MEMBER, cmds);
	if (ret < 0)
		return ret;
	*ncmds = ret;
	return 0;
}

/*
 * The second driver is ours; LEGACY_DIFF_SECOND=<driver> names another
 * (virtio_vfio_pci: upstream against itself, which must give no
 * difference), and LEGACY_DIFF_PERTURB=1 makes the second run write one
 * QUEUE_PFN value off by one (the comparison must then fail: a check of
 * the test). LEGACY_DIFF_DUMP=1 also prints upstream's run.
 */
TEST_F_TIMEOUT(lsim, legacy_differential, 60)
{
	const char *second = getenv("LEGACY_DIFF_SECOND");
	const char *perturb = getenv("LEGACY_DIFF_PERTURB");
	char *acc[2], *cmds[2];
	int nacc[2], ncmds[2], ret, d1, d2, n1, n2;

	if (!second || !*second)
		second = VIRTIO_RS_DRIVER;
	ret = diff_run(_metadata, &self->e, VIRTIO_C_DRIVER, false, &acc[0], &nacc[0],
		       &cmds[0], &ncmds[0]);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "upstream " VIRTIO_C_DRIVER " did not take the transitional path "
		     "(the simulated PF offers no legacy commands?)");
	ASSERT_EQ(0, ret);
	ASSERT_GT(ncmds[0], 20) TH_LOG("the script reached the device through upstream");
	ASSERT_LT(ncmds[0], 500) TH_LOG("the sim's trace keeps 512 commands");
	ret = diff_run(_metadata, &self->e, second, perturb && *perturb == '1', &acc[1],
		       &nacc[1], &cmds[1], &ncmds[1]);
	if (ret == -EOPNOTSUPP) {
		free(acc[0]);
		free(cmds[0]);
		SKIP(return, "%s did not take the transitional path (BAR0 region is not 32 "
		     "bytes): no legacy I/O in our driver yet", second);
	}
	ASSERT_EQ(0, ret);
	if (getenv("LEGACY_DIFF_DUMP")) {
		dump_log("upstream access", acc[0]);
		dump_log("upstream command", cmds[0]);
	}
	d1 = compare_logs("access", acc[0], acc[1], &n1);
	d2 = compare_logs("command", cmds[0], cmds[1], &n2);
	note("legacy differential (%s vs %s)", VIRTIO_C_DRIVER, second);
	note("legacy differential: accesses compared %d, commands compared %d, differences %d",
	     n1, n2, d1 + d2);
	EXPECT_EQ(nacc[0], nacc[1]);
	EXPECT_EQ(ncmds[0], ncmds[1]);
	EXPECT_EQ(0, d1 + d2);
	free(acc[0]);
	free(acc[1]);
	free(cmds[0]);
	free(cmds[1]);
}

/* ---------------------------------------------------------------------- */
/* 2. Bad input, concurrency, reset and close, on each driver. */

FIXTURE(legacy)
{
	struct lenv e;
	struct ldev l;
};

FIXTURE_VARIANT(legacy)
{
	const char *driver;
};

FIXTURE_VARIANT_ADD(legacy, upstream)
{
	.driver = VIRTIO_C_DRIVER,
};

FIXTURE_VARIANT_ADD(legacy, ours)
{
	.driver = VIRTIO_RS_DRIVER,
};

FIXTURE_SETUP(legacy)
{
	int ret;

	self->l.irq_fd = -1;
	lenv_setup(_metadata, &self->e);
	if (!self->e.ready)
		return;
	ret = lenv_open(&self->e, 0, variant->driver, &self->l);
	if (ret) {
		/* No teardown after a failed setup. */
		lenv_restore(_metadata, &self->e);
		ASSERT_EQ(0, ret) TH_LOG("open VF1 with %s: %s", variant->driver,
					 strerror(-ret));
	}
}

FIXTURE_TEARDOWN(legacy)
{
	ldev_fini(&self->l);
	lenv_teardown(_metadata, &self->e);
}

#define SKIP_UNLESS_TRANSITIONAL() do { \
	if (!transitional(&self->l)) \
		SKIP(return, "%s did not take the transitional path (BAR0 region size %llu, " \
		     "flags 0x%x)%s", variant->driver, \
		     (unsigned long long)self->l.bar0_size, self->l.bar0_flags, \
		     strcmp(variant->driver, VIRTIO_C_DRIVER) ? \
		     ": no legacy I/O in our driver yet" : ": no legacy commands in the sim?"); \
} while (0)

TEST_F(legacy, legacy_bad_input)
{
	struct ldev *l = &self->l;
	uint8_t b[8];

	SKIP_UNLESS_TRANSITIONAL();

	/* No IO decoding yet (the open's reset cleared the shadow): -EIO. */
	EXPECT_EQ(-EIO, rd(l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4));
	EXPECT_EQ(-EIO, wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, 0));
	EXPECT_EQ(-EIO, rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 2));
	EXPECT_EQ(-EIO, rd(l, R_BAR0, LBAR0_SIZE, 4)) TH_LOG("IO is checked before bounds");
	EXPECT_EQ(0, cfg_u16(l, PCI_COMMAND) & PCI_COMMAND_IO);
	ASSERT_EQ(0, set_io(l, true));
	EXPECT_EQ(PCI_COMMAND_IO, cfg_u16(l, PCI_COMMAND) & PCI_COMMAND_IO);
	EXPECT_LE(0, rd(l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4));

	/* Bounds: pos + count > 32 is -EINVAL; count 0 is 0. */
	EXPECT_EQ(-EINVAL, rd(l, R_BAR0, LBAR0_SIZE, 1));
	EXPECT_EQ(-EINVAL, rd(l, R_BAR0, LBAR0_SIZE - 2, 4));
	EXPECT_EQ(-EINVAL, rd(l, R_BAR0, LBAR0_SIZE - 1, 2));
	EXPECT_EQ(-EINVAL, wr(l, R_BAR0, LBAR0_SIZE - 4, 8, 0));
	EXPECT_EQ(-EINVAL, rd(l, R_BAR0, 0x1000, 4));
	EXPECT_EQ(0, pread(l->fd, b, 0, l->bar0_off));
	EXPECT_EQ(0, pwrite(l->fd, b, 0, l->bar0_off + VIRTIO_PCI_STATUS));
	EXPECT_EQ(0, pread(l->fd, b, 0, l->bar0_off + 0x1000));

	/* QUEUE_NOTIFY only as 16 bits. */
	EXPECT_EQ(-EINVAL, rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 1));
	EXPECT_EQ(-EINVAL, rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 4));
	EXPECT_EQ(-EINVAL, wr(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 1, 0));
	EXPECT_EQ(-EINVAL, wr(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 4, 0));
	EXPECT_EQ(2, wr(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 2, 1));
	EXPECT_EQ(1, rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 2));
	EXPECT_EQ(1, rd(l, R_NOTIFY, l->notify_off, 2)) TH_LOG("notify register at BAR%d+0x%llx",
		  l->notify_bar, (unsigned long long)l->notify_off);

	/* A partial field goes to the device, which rejects it. */
	EXPECT_EQ(-EINVAL, rd(l, R_BAR0, 1, 2));
	EXPECT_EQ(-EINVAL, wr(l, R_BAR0, 1, 2, 0));

	/* The shadowed config-space fields. */
	EXPECT_EQ(0x1000, cfg_u16(l, PCI_DEVICE_ID));
	EXPECT_EQ(0x10, rd(l, R_CFG, PCI_DEVICE_ID + 1, 1));
	EXPECT_EQ(2, wr(l, R_CFG, PCI_DEVICE_ID, 2, 0xabcd));
	EXPECT_EQ(0x10001af4, rd(l, R_CFG, PCI_VENDOR_ID, 4));
	EXPECT_EQ(0, rd(l, R_CFG, PCI_REVISION_ID, 1));
	EXPECT_EQ(1, wr(l, R_CFG, PCI_REVISION_ID, 1, 0x55));
	EXPECT_EQ(0, rd(l, R_CFG, PCI_REVISION_ID, 1));
	EXPECT_EQ(0x1af4, cfg_u16(l, PCI_SUBSYSTEM_VENDOR_ID));
	EXPECT_EQ(1, cfg_u16(l, PCI_SUBSYSTEM_ID));
	EXPECT_EQ(4, wr(l, R_CFG, PCI_SUBSYSTEM_VENDOR_ID, 4, 0x12345678));
	EXPECT_EQ(0x00011af4, rd(l, R_CFG, PCI_SUBSYSTEM_VENDOR_ID, 4));
	/* BAR0: an I/O BAR of 32 bytes, address bits as written. */
	EXPECT_EQ(4, wr(l, R_CFG, PCI_BASE_ADDRESS_0, 4, 0xffffffff));
	EXPECT_EQ(0xffffffe1, rd(l, R_CFG, PCI_BASE_ADDRESS_0, 4));
	EXPECT_EQ(4, wr(l, R_CFG, PCI_BASE_ADDRESS_0, 4, 0xc01f));
	EXPECT_EQ(0xc001, rd(l, R_CFG, PCI_BASE_ADDRESS_0, 4));
	EXPECT_EQ(0xc0, rd(l, R_CFG, PCI_BASE_ADDRESS_0 + 1, 1));
	EXPECT_EQ(2, wr(l, R_CFG, PCI_BASE_ADDRESS_0 + 2, 2, 0x1234));
	EXPECT_EQ(0x1234c001, rd(l, R_CFG, PCI_BASE_ADDRESS_0, 4));

	/* IO off again: -EIO, and COMMAND no longer shows it. */
	ASSERT_EQ(0, set_io(l, false));
	EXPECT_EQ(0, cfg_u16(l, PCI_COMMAND) & PCI_COMMAND_IO);
	EXPECT_EQ(-EIO, rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1));
	EXPECT_EQ(-EIO, wr(l, R_BAR0, VIRTIO_PCI_QUEUE_NOTIFY, 2, 0));
}

struct worker {
	pthread_t t;
	struct ldev *l;
	int id;
	atomic_int *stop;
	uint32_t host, mac_lo;
	long ok, eio, other, bad;
	int other_err;
	char bad_what[96];
};

/*
 * One thread of legacy accesses: QUEUE_SEL writes (thread 0 writes 0 and 1,
 * thread 1 writes 1 and 2) and reads, which must return one of 0..2; reads
 * of HOST_FEATURES and of the first MAC bytes, which must not change.
 */
static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	unsigned int i = 0;

	while (!atomic_load(w->stop)) {
		int64_t r;

		switch (i++ % 4) {
		case 0:
			r = wr(w->l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2, w->id + (i / 4) % 2);
			break;
		case 1:
			r = rd(w->l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2);
			if (r > 2 && !w->bad++)
				snprintf(w->bad_what, sizeof(w->bad_what), "QUEUE_SEL %lld",
					 (long long)r);
			break;
		case 2:
			r = rd(w->l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4);
			if (r >= 0 && r != w->host && !w->bad++)
				snprintf(w->bad_what, sizeof(w->bad_what),
					 "HOST_FEATURES 0x%llx, not 0x%x", (long long)r, w->host);
			break;
		default:
			r = rd(w->l, R_BAR0, VIRTIO_PCI_CONFIG_OFF(false), 4);
			if (r >= 0 && r != w->mac_lo && !w->bad++)
				snprintf(w->bad_what, sizeof(w->bad_what), "MAC 0x%llx, not 0x%x",
					 (long long)r, w->mac_lo);
			break;
		}
		if (r >= 0)
			w->ok++;
		else if (r == -EIO)
			w->eio++;
		else if (!w->other++)
			w->other_err = -r;
	}
	return NULL;
}

static void run_workers(struct __test_metadata *_metadata, struct ldev *l, bool with_reset)
{
	struct worker w[2];
	atomic_int stop = 0;
	int64_t host, mac;
	double t0;
	int i;

	host = rd(l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4);
	mac = rd(l, R_BAR0, VIRTIO_PCI_CONFIG_OFF(false), 4);
	ASSERT_LE(0, host);
	ASSERT_LE(0, mac);
	for (i = 0; i < 2; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].l = l;
		w[i].id = i;
		w[i].stop = &stop;
		w[i].host = host;
		w[i].mac_lo = mac;
		ASSERT_EQ(0, pthread_create(&w[i].t, NULL, worker_fn, &w[i]));
	}
	t0 = now();
	if (with_reset) {
		usleep(700 * 1000);
		EXPECT_EQ(0, ioctl(l->fd, VFIO_DEVICE_RESET)) TH_LOG("%s", strerror(errno));
		/*
		 * upstream's reset_done cleared the shadow COMMAND: no I/O until
		 * COMMAND.IO is written again (config space still shows the bit
		 * from vfio's virtual COMMAND: legacy_differential compares that).
		 */
		EXPECT_EQ(-EIO, rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1));
		usleep(200 * 1000);
		EXPECT_EQ(0, set_io(l, true));
		EXPECT_LE(0, rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1));
		usleep(700 * 1000);
	} else {
		usleep(1500 * 1000);
	}
	atomic_store(&stop, 1);
	for (i = 0; i < 2; i++)
		pthread_join(w[i].t, NULL);
	for (i = 0; i < 2; i++) {
		note("thread %d%s: %ld ok, %ld EIO, %ld other, %ld bad values in %.1f s", i,
		     with_reset ? " (reset)" : "", w[i].ok, w[i].eio, w[i].other, w[i].bad,
		     now() - t0);
		EXPECT_GT(w[i].ok, 10);
		EXPECT_EQ(0, w[i].other) TH_LOG("thread %d: %s", i, strerror(w[i].other_err));
		EXPECT_EQ(0, w[i].bad) TH_LOG("thread %d: %s", i, w[i].bad_what);
		if (!with_reset)
			EXPECT_EQ(0, w[i].eio);
	}
	EXPECT_LE(0, rd(l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2));
}

TEST_F_TIMEOUT(legacy, legacy_concurrent_reset, 60)
{
	SKIP_UNLESS_TRANSITIONAL();
	ASSERT_EQ(0, set_io(&self->l, true));
	run_workers(_metadata, &self->l, false);
	run_workers(_metadata, &self->l, true);
}

struct closer {
	struct ldev *l;
	int64_t first, second;
};

static void *closer_fn(void *arg)
{
	struct closer *c = arg;

	c->first = rd(c->l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4);
	c->second = rd(c->l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4);
	return NULL;
}

/* Close the device (and the iommufd) while a thread's BAR0 read is in the device. */
TEST_F_TIMEOUT(legacy, legacy_close_during_access, 60)
{
	struct closer c = { .l = &self->l };
	struct ldev l2;
	pthread_t t;
	double t0;
	int ret;

	SKIP_UNLESS_TRANSITIONAL();
	ASSERT_EQ(0, set_io(&self->l, true));
	ASSERT_EQ(0, sim_ctl("delay %d 1 400", VIRTIO_ADMIN_CMD_LEGACY_COMMON_CFG_READ));
	ASSERT_EQ(0, pthread_create(&t, NULL, closer_fn, &c));
	for (t0 = now(); sim_stat("delaying") < 1 && now() - t0 < 5;)
		usleep(1000);
	EXPECT_EQ(1, sim_stat("delaying")) TH_LOG("the read never reached the device");
	vfio_close(&self->e.d[0]);
	self->e.open[0] = false;
	pthread_join(t, NULL);
	EXPECT_LE(0, c.first) TH_LOG("the read in flight: %s", strerror(-c.first));
	EXPECT_EQ(-EBADF, c.second);

	/* The device works again after a new open. */
	ldev_fini(&self->l);
	ret = vfio_open_cdev(self->e.vf[0], &self->e.d[0]);
	ASSERT_EQ(0, ret) TH_LOG("reopen: %s", strerror(-ret));
	self->e.open[0] = true;
	ASSERT_EQ(0, ldev_init(&l2, self->e.d[0].device_fd));
	self->l = l2;
	EXPECT_EQ(-EIO, rd(&self->l, R_BAR0, VIRTIO_PCI_STATUS, 1));
	ASSERT_EQ(0, set_io(&self->l, true));
	EXPECT_EQ(c.first, rd(&self->l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4));
}

/* ---------------------------------------------------------------------- */
/* 3. Migration of legacy registers. */

enum {
	M_GUEST_FEATURES, M_STATUS, M_QUEUE_SEL, M_MSIX_CONFIG,
	M_PFN0, M_PFN1, M_PFN2, M_NUM0, M_NUM1, M_NUM2, M_VEC0, M_VEC1, M_VEC2,
	M_MAC, M_ISR, M_COUNT,
};

static const struct {
	const char *name;
	bool migrates;	/* what the simulated device maps onto device parts */
} mreg[M_COUNT] = {
	[M_GUEST_FEATURES] = { "guest features", true },
	[M_STATUS] = { "device status", true },
	[M_QUEUE_SEL] = { "queue select", true },
	[M_MSIX_CONFIG] = { "msix config vector", true },
	[M_PFN0] = { "queue 0 pfn", true },
	[M_PFN1] = { "queue 1 pfn", true },
	[M_PFN2] = { "queue 2 pfn", true },
	[M_NUM0] = { "queue 0 size", true },
	[M_NUM1] = { "queue 1 size", true },
	[M_NUM2] = { "queue 2 size", true },
	[M_VEC0] = { "queue 0 vector", true },
	[M_VEC1] = { "queue 1 vector", true },
	[M_VEC2] = { "queue 2 vector", true },
	[M_MAC] = { "mac", true },
	[M_ISR] = { "isr", false },
};

/* Read every register (MSI-X on: device config at 24). */
static int read_regs(struct ldev *l, int64_t *v)
{
	int64_t mac_lo, mac_hi;
	int q;

	/* ISR and QUEUE_SEL first: the others need QUEUE_SEL. */
	v[M_ISR] = rd(l, R_BAR0, VIRTIO_PCI_ISR, 1);
	v[M_QUEUE_SEL] = rd(l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2);
	v[M_GUEST_FEATURES] = rd(l, R_BAR0, VIRTIO_PCI_GUEST_FEATURES, 4);
	v[M_STATUS] = rd(l, R_BAR0, VIRTIO_PCI_STATUS, 1);
	v[M_MSIX_CONFIG] = rd(l, R_BAR0, VIRTIO_MSI_CONFIG_VECTOR, 2);
	mac_lo = rd(l, R_BAR0, VIRTIO_PCI_CONFIG_OFF(true), 4);
	mac_hi = rd(l, R_BAR0, VIRTIO_PCI_CONFIG_OFF(true) + 4, 2);
	v[M_MAC] = mac_lo < 0 ? mac_lo : mac_hi < 0 ? mac_hi : mac_lo | mac_hi << 32;
	for (q = 0; q < 3; q++) {
		if (wr(l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2, q) != 2)
			return -EIO;
		v[M_PFN0 + q] = rd(l, R_BAR0, VIRTIO_PCI_QUEUE_PFN, 4);
		v[M_NUM0 + q] = rd(l, R_BAR0, VIRTIO_PCI_QUEUE_NUM, 2);
		v[M_VEC0 + q] = rd(l, R_BAR0, VIRTIO_MSI_QUEUE_VECTOR, 2);
	}
	/* Put QUEUE_SEL back. */
	if (v[M_QUEUE_SEL] >= 0 && wr(l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2, v[M_QUEUE_SEL]) != 2)
		return -EIO;
	return 0;
}

/* Set the legacy registers of the source to values unlike the defaults. */
static int set_regs(struct ldev *l)
{
	static const uint8_t mac[6] = { 0x02, 0x1e, 0x9a, 0x7c, 0x55, 0xd1 };
	int64_t host;
	int q, i;

	if (wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, 0) != 1 ||
	    wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, ST_ACK | ST_DRIVER) != 1)
		return -EIO;
	host = rd(l, R_BAR0, VIRTIO_PCI_HOST_FEATURES, 4);
	if (host < 0)
		return host;
	if (wr(l, R_BAR0, VIRTIO_PCI_GUEST_FEATURES, 4, host & ((1 << 5) | (1 << 16))) != 4)
		return -EIO;
	for (q = 0; q < 3; q++) {
		if (wr(l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2, q) != 2 ||
		    wr(l, R_BAR0, VIRTIO_PCI_QUEUE_PFN, 4, 0x5a000 + 0x10 * q) != 4 ||
		    wr(l, R_BAR0, VIRTIO_MSI_QUEUE_VECTOR, 2, 3 + q) != 2)
			return -EIO;
	}
	if (wr(l, R_BAR0, VIRTIO_MSI_CONFIG_VECTOR, 2, 7) != 2)
		return -EIO;
	for (i = 0; i < 6; i++)
		if (wr(l, R_BAR0, VIRTIO_PCI_CONFIG_OFF(true) + i, 1, mac[i]) != 1)
			return -EIO;
	if (wr(l, R_BAR0, VIRTIO_PCI_STATUS, 1, ST_ACK | ST_DRIVER | ST_DRIVER_OK) != 1 ||
	    wr(l, R_BAR0, VIRTIO_PCI_QUEUE_SEL, 2, 1) != 2)
		return -EIO;
	return sim_ctl("isr %d 3", VF1_MEMBER);
}

static int migrate(int src, int dst)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ret;

	ret = mig_set_state(src, VFIO_DEVICE_STATE_STOP_COPY, &fd);
	if (ret)
		return ret;
	n = mig_read_all(fd, &buf, &len, 65536, 0);
	close(fd);
	ret = mig_set_state(src, VFIO_DEVICE_STATE_RUNNING, NULL);
	if (n < 0 || ret) {
		free(buf);
		return n < 0 ? n : ret;
	}
	ret = mig_set_state(dst, VFIO_DEVICE_STATE_RESUMING, &fd);
	if (!ret) {
		ret = mig_write_all(fd, buf, len, 65536);
		close(fd);
		if (!ret)
			ret = mig_set_state(dst, VFIO_DEVICE_STATE_RUNNING, NULL);
	}
	free(buf);
	return ret;
}

static const char *const pair_name[4] = { "up->up", "ours->ours", "up->ours", "ours->up" };

/*
 * One migration VF1 (src driver) -> VF2 (dst driver). -EOPNOTSUPP when a
 * driver did not take the transitional path.
 */
static int mig_pair(struct __test_metadata *_metadata, struct lenv *e, const char *src,
		    const char *dst, int64_t *set, int64_t *before, int64_t *after)
{
	struct ldev l[2];
	int ret = 0, i;

	l[0].irq_fd = l[1].irq_fd = -1;
	l[0].log = l[1].log = NULL;
	for (i = 0; i < 2; i++) {
		ret = lenv_open(e, i, i ? dst : src, &l[i]);
		if (ret) {
			TH_LOG("open VF%d with %s: %s", i + 1, i ? dst : src, strerror(-ret));
			goto out;
		}
	}
	if (!transitional(&l[0]) || !transitional(&l[1])) {
		ret = -EOPNOTSUPP;
		goto out;
	}
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY,
			  mig_flags(e->d[i].device_fd))
			TH_LOG("migration on the transitional VF%d (%s)", i + 1, i ? dst : src);
		ret = set_io(&l[i], true);
		if (!ret)
			ret = msix(&l[i], true);
		if (ret)
			goto out;
	}
	ret = read_regs(&l[1], before);
	if (!ret)
		ret = set_regs(&l[0]);
	if (!ret)
		ret = read_regs(&l[0], set);
	if (!ret)
		ret = sim_ctl("isr %d 3", VF1_MEMBER);	/* read_regs read it */
	if (!ret)
		ret = migrate(e->d[0].device_fd, e->d[1].device_fd);
	if (!ret)
		ret = read_regs(&l[1], after);
out:
	for (i = 0; i < 2; i++)
		lenv_close(e, i, &l[i]);
	return ret;
}

TEST_F_TIMEOUT(lsim, legacy_migration, 120)
{
	static const char *const drv[2] = { VIRTIO_C_DRIVER, VIRTIO_RS_DRIVER };
	static const int pairs[4][2] = { { 0, 0 }, { 1, 1 }, { 0, 1 }, { 1, 0 } };
	int64_t set[4][M_COUNT], before[4][M_COUNT], after[4][M_COUNT];
	bool done[4] = { false }, survived[4][M_COUNT];
	char line[256];
	int p, r, ret, ndone = 0;

	for (p = 0; p < 4; p++) {
		ret = mig_pair(_metadata, &self->e, drv[pairs[p][0]], drv[pairs[p][1]], set[p],
			       before[p], after[p]);
		if (ret == -EOPNOTSUPP && p == 0)
			SKIP(return, "upstream " VIRTIO_C_DRIVER " did not take the transitional "
			     "path (the simulated PF offers no legacy commands?)");
		if (ret == -EOPNOTSUPP) {
			note("%s: skipped, " VIRTIO_RS_DRIVER " did not take the transitional path",
			     pair_name[p]);
			continue;
		}
		ASSERT_EQ(0, ret) TH_LOG("%s: %s", pair_name[p], strerror(-ret));
		done[p] = true;
		ndone++;
		for (r = 0; r < M_COUNT; r++)
			survived[p][r] = set[p][r] >= 0 && after[p][r] == set[p][r];
	}

	note("legacy migration VF1 -> VF2: register, value set on VF1 (VF2 before), survived per "
	     "driver pair, expected");
	note("%-20s %-22s %-7s %-10s %-9s %-9s %s", "register", "set (dst before)", pair_name[0],
	     pair_name[1], pair_name[2], pair_name[3], "expected");
	for (r = 0; r < M_COUNT; r++) {
		char val[64];
		int n;

		snprintf(val, sizeof(val), "0x%llx (0x%llx)", (long long)set[0][r],
			 (long long)before[0][r]);
		n = snprintf(line, sizeof(line), "%-20s %-22s", mreg[r].name, val);
		for (p = 0; p < 4; p++)
			n += snprintf(line + n, sizeof(line) - n, " %-*s", p == 1 ? 10 : p ? 9 : 7,
				      !done[p] ? "skip" : survived[p][r] ? "yes" : "no");
		snprintf(line + n, sizeof(line) - n, " %s%s", mreg[r].migrates ? "yes" : "no",
			 before[0][r] == set[0][r] ? " (dst default equal)" : "");
		note("%s", line);
	}
	for (p = 0; p < 4; p++) {
		if (!done[p])
			continue;
		for (r = 0; r < M_COUNT; r++) {
			EXPECT_LE(0, set[p][r]) TH_LOG("%s: %s unreadable on VF1", pair_name[p],
						       mreg[r].name);
			EXPECT_LE(0, after[p][r]) TH_LOG("%s: %s unreadable on VF2",
							 pair_name[p], mreg[r].name);
			EXPECT_EQ(mreg[r].migrates, survived[p][r])
				TH_LOG("%s: %s: set 0x%llx, after 0x%llx", pair_name[p],
				       mreg[r].name, (long long)set[p][r],
				       (long long)after[p][r]);
			EXPECT_EQ(survived[0][r], survived[p][r])
				TH_LOG("%s differs from up->up for %s", pair_name[p], mreg[r].name);
		}
	}
	note("legacy migration: %d of 4 driver pairs run", ndone);
}

TEST_HARNESS_MAIN
