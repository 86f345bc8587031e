// SPDX-License-Identifier: GPL-2.0
/*
 * Migration over a real admin virtqueue: the test VM on the patched QEMU
 * (tools/qemu) with the PF's admin queue on (tools/vm/run --admin-vq), no
 * simulator loaded, so every admin command of both drivers goes through
 * Linux's virtio_pci admin virtqueue to the QEMU device, whose device
 * parts are the VF's real virtio-net state.
 *
 * The state check: VF1 is programmed through its BAR the way a virtio
 * driver would (reset, features, FEATURES_OK, queue sizes, vectors, ring
 * addresses, queue enables, the config vector, a queue selector; no
 * DRIVER_OK, so the device never touches the made-up rings), VF1 is
 * migrated into VF2, and VF2's registers must then read what VF1's did —
 * MAC included, which QEMU gives every VF differently. A function reset of
 * VF2 must bring its defaults back. For each driver pair, with the number
 * of admin commands per migration counted from our driver's trace events.
 *
 * Without the admin queue (no patched QEMU, or the simulator loaded) the
 * tests SKIP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <linux/virtio_pci.h>

#include "kselftest_harness.h"
#include "sim.h"
#include "vfio_dev.h"
#include "vfio_mig.h"
#include "virtio_rs_test.h"

#define VIRTIO_F_ADMIN_VQ 41
#define NQ 3
#define TRACE "/sys/kernel/tracing"

enum {
	S_STOP = VFIO_DEVICE_STATE_STOP,
	S_RUN = VFIO_DEVICE_STATE_RUNNING,
	S_SC = VFIO_DEVICE_STATE_STOP_COPY,
	S_RES = VFIO_DEVICE_STATE_RESUMING,
};

/* A VF opened through VFIO: where its common and device config are. */
struct vf {
	char bdf[32];
	struct vfio_dev d;
	bool open;
	uint64_t cfg_off;	/* config space region */
	uint64_t common;	/* file offset of the common config */
	uint64_t devcfg;	/* file offset of the device config */
};

/* What a driver sees of a VF: the registers the device parts carry. */
struct vf_regs {
	uint32_t drv_features[2];
	uint16_t msix_config, queue_select, num_queues;
	uint8_t status;
	struct {
		uint16_t size, vector, enable;
		uint64_t desc, driver, device;
	} q[NQ];
	uint8_t mac[6];
};

static int rd(struct vf *v, uint64_t off, void *buf, size_t len)
{
	return pread(v->d.device_fd, buf, len, off) == (ssize_t)len ? 0 : -EIO;
}

static int wr(struct vf *v, uint64_t off, const void *buf, size_t len)
{
	return pwrite(v->d.device_fd, buf, len, off) == (ssize_t)len ? 0 : -EIO;
}

static uint32_t rd32(struct vf *v, unsigned int reg)
{
	uint32_t x = ~0u;

	rd(v, v->common + reg, &x, 4);
	return x;
}

static uint16_t rd16(struct vf *v, unsigned int reg)
{
	uint16_t x = 0xffff;

	rd(v, v->common + reg, &x, 2);
	return x;
}

static uint8_t rd8(struct vf *v, unsigned int reg)
{
	uint8_t x = 0xff;

	rd(v, v->common + reg, &x, 1);
	return x;
}

static int wr32(struct vf *v, unsigned int reg, uint32_t x)
{
	return wr(v, v->common + reg, &x, 4);
}

static int wr16(struct vf *v, unsigned int reg, uint16_t x)
{
	return wr(v, v->common + reg, &x, 2);
}

static int wr8(struct vf *v, unsigned int reg, uint8_t x)
{
	return wr(v, v->common + reg, &x, 1);
}

static int wr64(struct vf *v, unsigned int reg, uint64_t x)
{
	return wr32(v, reg, (uint32_t)x) ?: wr32(v, reg + 4, (uint32_t)(x >> 32));
}

static uint64_t rd64(struct vf *v, unsigned int reg)
{
	return rd32(v, reg) | (uint64_t)rd32(v, reg + 4) << 32;
}

/* Open a bound VF and find its virtio structures (capabilities). */
static int vf_open(struct vf *v)
{
	struct vfio_region_info cfgr, bar;
	uint8_t cfg[256];
	int pos, guard = 0, ret;

	v->common = v->devcfg = 0;
	ret = vfio_open_cdev(v->bdf, &v->d);
	if (ret)
		return ret;
	v->open = true;
	ret = vfio_region(&v->d, VFIO_PCI_CONFIG_REGION_INDEX, &cfgr);
	if (ret)
		return ret;
	v->cfg_off = cfgr.offset;
	if (rd(v, v->cfg_off, cfg, sizeof(cfg)))
		return -EIO;
	for (pos = cfg[PCI_CAPABILITY_LIST] & ~3; pos && pos < 0xf0 && guard++ < 48;
	     pos = cfg[pos + 1] & ~3) {
		uint32_t off;

		if (cfg[pos] != PCI_CAP_ID_VNDR)
			continue;
		if (cfg[pos + 3] != VIRTIO_PCI_CAP_COMMON_CFG &&
		    cfg[pos + 3] != VIRTIO_PCI_CAP_DEVICE_CFG)
			continue;
		ret = vfio_region(&v->d, cfg[pos + 4], &bar);
		if (ret)
			return ret;
		off = cfg[pos + 8] | cfg[pos + 9] << 8 | cfg[pos + 10] << 16 |
		      (uint32_t)cfg[pos + 11] << 24;
		if (cfg[pos + 3] == VIRTIO_PCI_CAP_COMMON_CFG)
			v->common = bar.offset + off;
		else
			v->devcfg = bar.offset + off;
	}
	return v->common && v->devcfg ? 0 : -ENOENT;
}

static void vf_close(struct vf *v)
{
	if (v->open)
		vfio_close(&v->d);
	v->open = false;
}

static void read_regs(struct vf *v, struct vf_regs *r)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < 2; i++) {
		wr32(v, VIRTIO_PCI_COMMON_GFSELECT, i);
		r->drv_features[i] = rd32(v, VIRTIO_PCI_COMMON_GF);
	}
	r->msix_config = rd16(v, VIRTIO_PCI_COMMON_MSIX);
	r->num_queues = rd16(v, VIRTIO_PCI_COMMON_NUMQ);
	r->status = rd8(v, VIRTIO_PCI_COMMON_STATUS);
	/* The selector last read is the one that was there. */
	r->queue_select = rd16(v, VIRTIO_PCI_COMMON_Q_SELECT);
	for (int q = 0; q < NQ; q++) {
		wr16(v, VIRTIO_PCI_COMMON_Q_SELECT, q);
		r->q[q].size = rd16(v, VIRTIO_PCI_COMMON_Q_SIZE);
		r->q[q].vector = rd16(v, VIRTIO_PCI_COMMON_Q_MSIX);
		r->q[q].enable = rd16(v, VIRTIO_PCI_COMMON_Q_ENABLE);
		r->q[q].desc = rd64(v, VIRTIO_PCI_COMMON_Q_DESCLO);
		r->q[q].driver = rd64(v, VIRTIO_PCI_COMMON_Q_AVAILLO);
		r->q[q].device = rd64(v, VIRTIO_PCI_COMMON_Q_USEDLO);
	}
	wr16(v, VIRTIO_PCI_COMMON_Q_SELECT, r->queue_select);
	rd(v, v->devcfg, r->mac, 6);
}

/*
 * Program a VF as a driver would, up to (not including) DRIVER_OK. The
 * values are chosen per VF (salt) so that defaults cannot pass for them.
 */
static int program(struct vf *v, unsigned int salt)
{
	uint64_t dev, want;
	int ret = 0;

	wr8(v, VIRTIO_PCI_COMMON_STATUS, 0);
	if (rd8(v, VIRTIO_PCI_COMMON_STATUS) != 0)
		return -EIO;
	wr8(v, VIRTIO_PCI_COMMON_STATUS, 1);
	wr8(v, VIRTIO_PCI_COMMON_STATUS, 3);
	wr32(v, VIRTIO_PCI_COMMON_DFSELECT, 0);
	dev = rd32(v, VIRTIO_PCI_COMMON_DF);
	wr32(v, VIRTIO_PCI_COMMON_DFSELECT, 1);
	dev |= (uint64_t)rd32(v, VIRTIO_PCI_COMMON_DF) << 32;
	/*
	 * VERSION_1, MAC, STATUS, CTRL_VQ, CTRL_RX: what the parts must carry;
	 * ACCESS_PLATFORM, which a device that offers it requires.
	 */
	want = dev & (1ull << 32 | 1ull << 33 | 1ull << 5 | 1ull << 16 | 1ull << 17 | 1ull << 18);
	if (!(want & 1ull << 32))
		return -ENOTSUP;
	wr32(v, VIRTIO_PCI_COMMON_GFSELECT, 0);
	wr32(v, VIRTIO_PCI_COMMON_GF, (uint32_t)want);
	wr32(v, VIRTIO_PCI_COMMON_GFSELECT, 1);
	wr32(v, VIRTIO_PCI_COMMON_GF, (uint32_t)(want >> 32));
	wr8(v, VIRTIO_PCI_COMMON_STATUS, 0x0b);
	if (rd8(v, VIRTIO_PCI_COMMON_STATUS) != 0x0b)
		return -EIO;
	ret |= wr16(v, VIRTIO_PCI_COMMON_MSIX, 0);
	for (int q = 0; q < NQ; q++) {
		uint64_t base = 0x10000000ull * (salt + 1) + 0x100000ull * q;

		ret |= wr16(v, VIRTIO_PCI_COMMON_Q_SELECT, q);
		ret |= wr16(v, VIRTIO_PCI_COMMON_Q_SIZE, q == 2 ? 64 : 128 >> salt);
		ret |= wr16(v, VIRTIO_PCI_COMMON_Q_MSIX, (q + salt) % 3 + 1);
		ret |= wr64(v, VIRTIO_PCI_COMMON_Q_DESCLO, base);
		ret |= wr64(v, VIRTIO_PCI_COMMON_Q_AVAILLO, base + 0x4000);
		ret |= wr64(v, VIRTIO_PCI_COMMON_Q_USEDLO, base + 0x8000);
		ret |= wr16(v, VIRTIO_PCI_COMMON_Q_ENABLE, 1);
	}
	ret |= wr16(v, VIRTIO_PCI_COMMON_Q_SELECT, 1);
	return ret ? -EIO : 0;
}

static void show_regs(struct __test_metadata *_metadata, const char *who, const struct vf_regs *r)
{
	TH_LOG("%s: status %#x features %#x:%08x msix %u sel %u mac %02x:%02x:%02x:%02x:%02x:%02x",
	       who, r->status, r->drv_features[1], r->drv_features[0], r->msix_config,
	       r->queue_select, r->mac[0], r->mac[1], r->mac[2], r->mac[3], r->mac[4], r->mac[5]);
	for (int q = 0; q < NQ; q++)
		TH_LOG("%s: q%d size %u vec %u en %u desc %#llx drv %#llx dev %#llx", who, q,
		       r->q[q].size, r->q[q].vector, r->q[q].enable,
		       (unsigned long long)r->q[q].desc, (unsigned long long)r->q[q].driver,
		       (unsigned long long)r->q[q].device);
}

/* Whether the PF negotiated the admin virtqueue (and no simulator is in). */
static bool admin_vq_in_use(const char *pf, char *why, size_t len)
{
	char path[128], feat[128];
	int n;

	if (module_loaded(SIM_MODULE)) {
		snprintf(why, len, "the simulator is loaded (boot with tools/vm/run --admin-vq)");
		return false;
	}
	for (n = 0; n < 64; n++) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/virtio%d/features", pf, n);
		if (!sysfs_read(path, feat, sizeof(feat)))
			break;
	}
	if (n == 64) {
		snprintf(why, len, "no virtio device on PF %s", pf);
		return false;
	}
	if (strlen(feat) <= VIRTIO_F_ADMIN_VQ || feat[VIRTIO_F_ADMIN_VQ] != '1') {
		snprintf(why, len, "the PF has no admin virtqueue (needs the patched QEMU, tools/vm/run --admin-vq)");
		return false;
	}
	return true;
}

#define EVENT TRACE "/events/virtio_vfio_pci_rs/virtio_rs_admin_cmd/enable"

/* Trace events of our driver's admin commands: cleared, on. */
static int trace_start(void)
{
	int fd;

	if (access(TRACE "/trace", F_OK))
		mount("nodev", TRACE, "tracefs", 0, NULL);
	/* Opened with O_TRUNC, the trace file clears the buffer. */
	fd = open(TRACE "/trace", O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -errno;
	close(fd);
	return sysfs_write(EVENT, "1");
}

/* Count the traced commands of bdf; list them by name into buf. */
static int trace_count(const char *bdf, char *buf, size_t len)
{
	static const char *const names[] = {
		"PARTS_METADATA_GET", "PARTS_GET", "PARTS_SET", "MODE_SET",
		"OBJ_CREATE", "OBJ_DESTROY",
	};
	int counts[6] = { 0 }, total = 0, off = 0;
	char line[512], me[64];
	FILE *f;

	sysfs_write(EVENT, "0");
	f = fopen(TRACE "/trace", "r");
	if (!f)
		return -errno;
	snprintf(me, sizeof(me), "virtio_rs_admin_cmd: %s ", bdf);
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, me);

		if (!p)
			continue;
		total++;
		p += strlen(me);
		for (int i = 0; i < 6; i++)
			if (!strncmp(p, names[i], strlen(names[i])) && p[strlen(names[i])] == ' ')
				counts[i]++;
	}
	fclose(f);
	buf[0] = 0;
	for (int i = 0; i < 6 && off < (int)len; i++)
		if (counts[i])
			off += snprintf(buf + off, len - off, "%s%s %d", off ? ", " : "", names[i],
					counts[i]);
	return total;
}

/*
 * Unbind the two VFs (their bdf set), bind them to the source's and the
 * destination's driver and open them. NULL, or what failed.
 */
static const char *vf_pair_open(struct vf vf[2], const char *src, const char *dst)
{
	for (int i = 0; i < 2; i++)
		unbind_and_clear(vf[i].bdf);
	if (!module_loaded(VIRTIO_RS_DRIVER) && modprobe(VIRTIO_RS_DRIVER))
		return "modprobe " VIRTIO_RS_DRIVER;
	if (!module_loaded(VIRTIO_C_DRIVER) && modprobe(VIRTIO_C_DRIVER))
		return "modprobe " VIRTIO_C_DRIVER;
	if (bind_driver_override(vf[0].bdf, src) || bind_driver_override(vf[1].bdf, dst))
		return "binding the drivers";
	for (int i = 0; i < 2; i++)
		if (vf_open(&vf[i]))
			return vf[i].bdf;
	return NULL;
}

static void vf_pair_close(struct vf vf[2])
{
	for (int i = 0; i < 2; i++) {
		vf_close(&vf[i]);
		if (vf[i].bdf[0])
			unbind_and_clear(vf[i].bdf);
	}
}

FIXTURE(avq)
{
	char pf[32];
	struct vf vf[2];
};

FIXTURE_VARIANT(avq)
{
	const char *src, *dst;
};

FIXTURE_VARIANT_ADD(avq, ours_to_ours)
{
	.src = VIRTIO_RS_DRIVER, .dst = VIRTIO_RS_DRIVER,
};

FIXTURE_VARIANT_ADD(avq, upstream_to_ours)
{
	.src = VIRTIO_C_DRIVER, .dst = VIRTIO_RS_DRIVER,
};

FIXTURE_VARIANT_ADD(avq, ours_to_upstream)
{
	.src = VIRTIO_RS_DRIVER, .dst = VIRTIO_C_DRIVER,
};

FIXTURE_VARIANT_ADD(avq, upstream_to_upstream)
{
	.src = VIRTIO_C_DRIVER, .dst = VIRTIO_C_DRIVER,
};

FIXTURE_SETUP(avq)
{
	const char *err;
	char why[160];

	memset(self->vf, 0, sizeof(self->vf));
	ASSERT_EQ(0, find_sriov_pf(self->pf, sizeof(self->pf)));
	if (!admin_vq_in_use(self->pf, why, sizeof(why)))
		SKIP(return, "%s", why);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, pf_vf_bdf(self->pf, i, self->vf[i].bdf, sizeof(self->vf[i].bdf)));
	err = vf_pair_open(self->vf, variant->src, variant->dst);
	ASSERT_TRUE(!err) TH_LOG("%s", err);
}

FIXTURE_TEARDOWN(avq)
{
	vf_pair_close(self->vf);
}

/* Both drivers see a migratable VF over the real queue. */
TEST_F(avq, avq_migration_offered)
{
	for (int i = 0; i < 2; i++) {
		int64_t f = mig_flags(self->vf[i].d.device_fd);

		ASSERT_GE(f, 0);
		EXPECT_TRUE(f & VFIO_MIGRATION_STOP_COPY);
		EXPECT_TRUE(f & VFIO_MIGRATION_P2P);
		EXPECT_TRUE(f & VFIO_MIGRATION_PRE_COPY);
	}
}

TEST_F_TIMEOUT(avq, avq_real_state_migrates, 120)
{
	struct vf_regs src, dst_default, dst, after_reset;
	struct vf *a = &self->vf[0], *b = &self->vf[1];
	char cmds[256];
	uint8_t *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ncmd;

	read_regs(b, &dst_default);
	ASSERT_EQ(0, program(a, 0));
	read_regs(a, &src);
	show_regs(_metadata, "VF1 programmed", &src);
	/* Programming took: the values a migration must carry differ from VF2's. */
	ASSERT_EQ(0x0b, src.status);
	ASSERT_EQ(1, src.queue_select);
	ASSERT_EQ(1, src.q[0].enable);
	ASSERT_NE(0, memcmp(src.mac, dst_default.mac, 6)) TH_LOG("VF MACs must differ");

	ASSERT_EQ(0, trace_start());
	/* Source: STOP_COPY, read the whole stream. */
	ASSERT_EQ(0, mig_set_state(a->d.device_fd, S_SC, &fd));
	ASSERT_GE(fd, 0);
	n = mig_read_all(fd, &buf, &len, 4096, 0);
	close(fd);
	ASSERT_GT(n, 16);
	ASSERT_EQ(0, mig_set_state(a->d.device_fd, S_RUN, NULL));
	/* Destination: RESUMING, write it, RUNNING. */
	ASSERT_EQ(0, mig_set_state(b->d.device_fd, S_RES, &fd));
	ASSERT_GE(fd, 0);
	EXPECT_EQ(0, mig_write_all(fd, buf, len, 4096));
	close(fd);
	ASSERT_EQ(0, mig_set_state(b->d.device_fd, S_RUN, NULL));
	ncmd = trace_count(a->bdf, cmds, sizeof(cmds));
	if (!strcmp(variant->src, VIRTIO_RS_DRIVER))
		ksft_print_msg("avq: source %s: %d admin commands (%s), stream %zu bytes\n",
			       variant->src, ncmd, cmds, len);
	ncmd = trace_count(b->bdf, cmds, sizeof(cmds));
	if (!strcmp(variant->dst, VIRTIO_RS_DRIVER))
		ksft_print_msg("avq: destination %s: %d admin commands (%s)\n", variant->dst,
			       ncmd, cmds);
	free(buf);

	read_regs(b, &dst);
	show_regs(_metadata, "VF2 after", &dst);
	EXPECT_EQ(src.status, dst.status);
	EXPECT_EQ(src.drv_features[0], dst.drv_features[0]);
	EXPECT_EQ(src.drv_features[1], dst.drv_features[1]);
	EXPECT_EQ(src.msix_config, dst.msix_config);
	EXPECT_EQ(src.queue_select, dst.queue_select);
	for (int q = 0; q < NQ; q++) {
		EXPECT_EQ(src.q[q].size, dst.q[q].size) TH_LOG("queue %d", q);
		EXPECT_EQ(src.q[q].vector, dst.q[q].vector) TH_LOG("queue %d", q);
		EXPECT_EQ(src.q[q].enable, dst.q[q].enable) TH_LOG("queue %d", q);
		EXPECT_EQ(src.q[q].desc, dst.q[q].desc) TH_LOG("queue %d", q);
		EXPECT_EQ(src.q[q].driver, dst.q[q].driver) TH_LOG("queue %d", q);
		EXPECT_EQ(src.q[q].device, dst.q[q].device) TH_LOG("queue %d", q);
	}
	EXPECT_EQ(0, memcmp(src.mac, dst.mac, 6)) TH_LOG("the MAC did not move");

	/* The source keeps its state when it runs on. */
	read_regs(a, &dst);
	EXPECT_EQ(0, memcmp(&src, &dst, sizeof(src))) TH_LOG("the source changed");

	/* A function reset brings VF2's defaults back. */
	ASSERT_EQ(0, ioctl(b->d.device_fd, VFIO_DEVICE_RESET));
	read_regs(b, &after_reset);
	EXPECT_EQ(0, after_reset.status);
	EXPECT_EQ(0, memcmp(after_reset.mac, dst_default.mac, 6)) TH_LOG("MAC not reset");
	EXPECT_EQ(S_RUN, mig_get_state(b->d.device_fd));
}

/*
 * Large device parts over the real queue: a source VF given a test pad
 * (the patched QEMU's x-parts-pad=N, an OPTIONAL part of type 0x5ff and N
 * bytes, last in its parts) migrates into another VF. The pad must arrive
 * in the stream intact (every byte is a function of its offset), and the
 * destination must take the parts (QEMU ignores the pad at SET) and read
 * what the source did. Which VFs: AVQ_BIG_SRC and AVQ_BIG_DST (VF numbers,
 * default 3 and 4); AVQ_BIG_PAD, when set, is the pad size the source must
 * have. A source without a pad skips (a VM not booted with one).
 */
#define PAD_TYPE 0x5ff

static unsigned int env_uint(const char *name, unsigned int def)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : def;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Find the pad part in a stream (records of a 16-byte header and a
 * payload of device parts). Returns its value length, -1 if none, -2 if
 * the stream or the pad is malformed (*bad: offset of the first bad
 * byte inside the pad).
 */
static long stream_pad(const uint8_t *s, size_t len, long *bad)
{
	size_t pos = 0;
	long found = -1;

	*bad = -1;
	while (pos < len) {
		uint64_t rsize;
		size_t end, p;

		if (len - pos < 16)
			return -2;
		rsize = s[pos] | (uint64_t)s[pos + 1] << 8 | (uint64_t)s[pos + 2] << 16 |
			(uint64_t)s[pos + 3] << 24 | (uint64_t)s[pos + 4] << 32 |
			(uint64_t)s[pos + 5] << 40 | (uint64_t)s[pos + 6] << 48 |
			(uint64_t)s[pos + 7] << 56;
		pos += 16;
		if (rsize > len - pos)
			return -2;
		end = pos + rsize;
		for (p = pos; p < end;) {
			uint16_t type;
			uint32_t vlen;

			if (end - p < 16)
				return -2;
			type = s[p] | s[p + 1] << 8;
			vlen = s[p + 12] | s[p + 13] << 8 | s[p + 14] << 16 |
			       (uint32_t)s[p + 15] << 24;
			if (vlen > end - p - 16)
				return -2;
			if (type == PAD_TYPE) {
				const uint8_t *v = s + p + 16;

				found = vlen;
				for (uint32_t i = 0; i < vlen; i++) {
					if (v[i] != (uint8_t)(i + (i >> 12) * 13)) {
						*bad = i;
						return -2;
					}
				}
			}
			p += 16 + vlen;
		}
		pos = end;
	}
	return found;
}

FIXTURE(avq_big)
{
	char pf[32];
	struct vf vf[2];
};

FIXTURE_VARIANT(avq_big)
{
	const char *src, *dst;
};

FIXTURE_VARIANT_ADD(avq_big, ours_to_ours)
{
	.src = VIRTIO_RS_DRIVER, .dst = VIRTIO_RS_DRIVER,
};

FIXTURE_VARIANT_ADD(avq_big, upstream_to_upstream)
{
	.src = VIRTIO_C_DRIVER, .dst = VIRTIO_C_DRIVER,
};

FIXTURE_VARIANT_ADD(avq_big, ours_to_upstream)
{
	.src = VIRTIO_RS_DRIVER, .dst = VIRTIO_C_DRIVER,
};

FIXTURE_VARIANT_ADD(avq_big, upstream_to_ours)
{
	.src = VIRTIO_C_DRIVER, .dst = VIRTIO_RS_DRIVER,
};

FIXTURE_SETUP(avq_big)
{
	int idx[2] = { env_uint("AVQ_BIG_SRC", 3) - 1, env_uint("AVQ_BIG_DST", 4) - 1 };
	const char *err;
	char why[160];

	memset(self->vf, 0, sizeof(self->vf));
	ASSERT_EQ(0, find_sriov_pf(self->pf, sizeof(self->pf)));
	if (!admin_vq_in_use(self->pf, why, sizeof(why)))
		SKIP(return, "%s", why);
	for (int i = 0; i < 2; i++)
		if (pf_vf_bdf(self->pf, idx[i], self->vf[i].bdf, sizeof(self->vf[i].bdf)))
			SKIP(return, "no VF %d", idx[i] + 1);
	err = vf_pair_open(self->vf, variant->src, variant->dst);
	ASSERT_TRUE(!err) TH_LOG("%s", err);
}

FIXTURE_TEARDOWN(avq_big)
{
	vf_pair_close(self->vf);
}

TEST_F_TIMEOUT(avq_big, avq_big_context_migrates, 600)
{
	struct vf_regs src, dst;
	struct vf *a = &self->vf[0], *b = &self->vf[1];
	unsigned int want = env_uint("AVQ_BIG_PAD", 0);
	double t0, t1, t2, t3, t4, t5;
	uint8_t *buf = NULL;
	size_t len = 0;
	long pad, bad;
	ssize_t n;
	int fd;

	ASSERT_EQ(0, program(a, 0));
	read_regs(a, &src);
	ksft_print_msg("avq_big: %s (%s) -> %s (%s)\n", a->bdf, variant->src, b->bdf,
		       variant->dst);
	t0 = now_s();
	ASSERT_EQ(0, mig_set_state(a->d.device_fd, S_SC, &fd));
	ASSERT_GE(fd, 0);
	t1 = now_s();
	n = mig_read_all(fd, &buf, &len, 1 << 20, 0);
	t2 = now_s();
	close(fd);
	ASSERT_GT(n, 16) TH_LOG("read: %zd", n);
	ASSERT_EQ(0, mig_set_state(a->d.device_fd, S_RUN, NULL));
	pad = stream_pad(buf, len, &bad);
	ksft_print_msg("avq_big: stream %zu bytes, pad %ld; STOP_COPY %.3f s, read %.3f s\n",
		       len, pad, t1 - t0, t2 - t1);
	ASSERT_NE(-2, pad) TH_LOG("malformed stream or pad (pad byte %ld)", bad);
	/* A VM booted with a pad (AVQ_BIG_PAD set) must carry it. */
	if (want)
		ASSERT_EQ(want, pad);
	if (pad < 0) {
		free(buf);
		SKIP(return, "VF %s has no pad part (boot with x-parts-pad)", a->bdf);
	}

	t3 = now_s();
	ASSERT_EQ(0, mig_set_state(b->d.device_fd, S_RES, &fd));
	ASSERT_GE(fd, 0);
	EXPECT_EQ(0, mig_write_all(fd, buf, len, 1 << 20));
	t4 = now_s();
	close(fd);
	ASSERT_EQ(0, mig_set_state(b->d.device_fd, S_RUN, NULL));
	t5 = now_s();
	ksft_print_msg("avq_big: RESUMING+write %.3f s, RUNNING %.3f s\n", t4 - t3, t5 - t4);
	free(buf);

	read_regs(b, &dst);
	EXPECT_EQ(src.status, dst.status);
	EXPECT_EQ(src.drv_features[0], dst.drv_features[0]);
	EXPECT_EQ(src.queue_select, dst.queue_select);
	for (int q = 0; q < NQ; q++) {
		EXPECT_EQ(src.q[q].size, dst.q[q].size) TH_LOG("queue %d", q);
		EXPECT_EQ(src.q[q].desc, dst.q[q].desc) TH_LOG("queue %d", q);
	}
	EXPECT_EQ(0, memcmp(src.mac, dst.mac, 6)) TH_LOG("the MAC did not move");
	ASSERT_EQ(0, ioctl(b->d.device_fd, VFIO_DEVICE_RESET));
	ASSERT_EQ(0, ioctl(a->d.device_fd, VFIO_DEVICE_RESET));
}

TEST_HARNESS_MAIN
