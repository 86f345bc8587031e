// SPDX-License-Identifier: GPL-2.0
/*
 * The simulated PF admin device (virtio_rs_sim), validated with the
 * upstream C driver virtio_vfio_pci: code nobody here wrote must migrate
 * device state through it, and the device must enforce the spec's rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "vfio_dev.h"
#include "sim.h"
#include "vfio_mig.h"
#include "virtio_rs_test.h"

#define MIG_FLAGS_ALL (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY)

static void ensure_sim(struct __test_metadata *_metadata)
{
	if (!module_loaded(SIM_MODULE))
		ASSERT_EQ(0, sim_load(NULL));
}

FIXTURE(c_pair)
{
	char pf[32], vf[2][32];
	struct vfio_dev d[2];
};

FIXTURE_SETUP(c_pair)
{
	int i, ret;

	ensure_sim(_metadata);
	ASSERT_EQ(0, sim_ctl("clear"));
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
	ASSERT_EQ(0, find_sriov_pf(self->pf, sizeof(self->pf)));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, pf_vf_bdf(self->pf, i, self->vf[i], sizeof(self->vf[i])));
		ASSERT_EQ(0, bind_driver_override(self->vf[i], VIRTIO_C_DRIVER));
		ret = vfio_open_cdev(self->vf[i], &self->d[i]);
		ASSERT_EQ(0, ret) TH_LOG("open %s: %s", self->vf[i], strerror(-ret));
	}
}

FIXTURE_TEARDOWN(c_pair)
{
	for (int i = 0; i < 2; i++) {
		vfio_close(&self->d[i]);
		EXPECT_EQ(0, unbind_and_clear(self->vf[i]));
	}
	EXPECT_EQ(0, sim_stat("objects")) TH_LOG("device objects left behind");
}

TEST_F(c_pair, sim_c_driver_migration_flags)
{
	EXPECT_EQ(MIG_FLAGS_ALL, mig_flags(self->d[0].device_fd));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, mig_get_state(self->d[0].device_fd));
}

TEST_F(c_pair, sim_c_driver_stop_copy_roundtrip)
{
	uint64_t src_hash, dst_before, dst_after;
	size_t len = 0;
	uint8_t *buf = NULL;
	int fd, stopped;

	ASSERT_EQ(0, sim_vf_state(2, &dst_before, NULL, NULL, NULL));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	ASSERT_GE(fd, 0);
	ASSERT_GT(mig_read_all(fd, &buf, &len, 4096, 0), 16);
	ASSERT_EQ(0, sim_vf_state(1, &src_hash, NULL, &stopped, NULL));
	EXPECT_TRUE(stopped);
	EXPECT_NE(src_hash, dst_before) TH_LOG("VF defaults must differ");

	{
		int rfd;

		ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RESUMING, &rfd));
		ASSERT_GE(rfd, 0);
		ASSERT_EQ(0, mig_write_all(rfd, buf, len, 1000));
		ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
		close(rfd);
	}
	ASSERT_EQ(0, sim_vf_state(2, &dst_after, NULL, &stopped, NULL));
	EXPECT_FALSE(stopped);
	EXPECT_EQ(src_hash, dst_after) TH_LOG("destination state differs from source");
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	free(buf);
}

TEST_F_TIMEOUT(c_pair, sim_c_driver_precopy_roundtrip, 120)
{
	uint64_t initial, dirty, src_hash, dst_after, reads;
	size_t len = 0, before;
	uint8_t *buf = NULL;
	int fd, rfd;

	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_GT(initial, 16);
	ASSERT_GE(mig_read_all(fd, &buf, &len, 7, 1), 0);
	EXPECT_EQ(initial, len);
	/* Drained: temporary end of stream. */
	EXPECT_EQ(-1, read(fd, buf, 1));
	EXPECT_EQ(ENOMSG, errno);
	/* A new rate-limit window: the driver reads the device again. */
	usleep(1200 * 1000);
	ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(0, initial);
	EXPECT_GT(dirty, 0);
	before = len;
	ASSERT_GE(mig_read_all(fd, &buf, &len, 4096, 1), 0);
	EXPECT_GT(len, before);
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	ASSERT_GE(mig_read_all(fd, &buf, &len, 65536, 0), 0);
	ASSERT_EQ(0, sim_vf_state(1, &src_hash, NULL, NULL, &reads));
	EXPECT_GE(reads, 3) TH_LOG("initial, pre-copy and final reads");

	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	ASSERT_EQ(0, mig_write_all(rfd, buf, len, 333));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(rfd);
	ASSERT_EQ(0, sim_vf_state(2, &dst_after, NULL, NULL, NULL));
	EXPECT_EQ(src_hash, dst_after);
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	free(buf);
}

/* Object limit exhaustion through the driver: the PF layer refuses cleanly. */
TEST(sim_object_limit)
{
	char pf[32], vf[3][32];
	struct vfio_dev d[3];
	int fd[3], i, ret;

	ASSERT_EQ(0, find_sriov_pf(pf, sizeof(pf)));
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pf_vf_bdf(pf, i, vf[i], sizeof(vf[i])));
	if (module_loaded(SIM_MODULE))
		ASSERT_EQ(0, sim_unload());
	ASSERT_EQ(0, sim_load("get_limit=2 set_limit=3"));
	EXPECT_EQ(2, sim_stat("limit"));
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, bind_driver_override(vf[i], VIRTIO_C_DRIVER));
		ASSERT_EQ(0, vfio_open_cdev(vf[i], &d[i]));
	}
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, mig_set_state(d[i].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd[i]));
	}
	ret = mig_set_state(d[2].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd[2]);
	EXPECT_NE(0, ret) TH_LOG("a third object beyond the limit of 2");
	EXPECT_EQ(2, sim_stat("objects"));
	/* The failed device is still usable: back to RUNNING, then migrate. */
	EXPECT_EQ(0, mig_set_state(d[2].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, mig_set_state(d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd[0]);
	EXPECT_EQ(0, mig_set_state(d[2].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd[2]));
	EXPECT_EQ(0, mig_set_state(d[2].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(0, mig_set_state(d[1].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd[1]);
	if (fd[2] >= 0)
		close(fd[2]);
	EXPECT_EQ(0, sim_stat("objects"));
	for (i = 0; i < 3; i++) {
		vfio_close(&d[i]);
		EXPECT_EQ(0, unbind_and_clear(vf[i]));
	}
	ASSERT_EQ(0, sim_unload());
	ASSERT_EQ(0, sim_load(NULL));
}

/* Raw commands straight to the device, as a driver could send them. */
struct raw_reply {
	uint16_t status, qualifier;
	uint32_t written;
	uint8_t result[64];
};

static int raw(uint32_t cap, uint16_t opcode, uint16_t group, uint64_t member,
	       const void *data, size_t len, struct raw_reply *r)
{
	uint8_t cmd[4 + 24 + 256] = { 0 };
	int fd, n;

	if (len > 256)
		return -EINVAL;
	memcpy(cmd, &cap, 4);
	memcpy(cmd + 4, &opcode, 2);
	memcpy(cmd + 6, &group, 2);
	memcpy(cmd + 20, &member, 8);
	memcpy(cmd + 28, data, len);
	fd = open(SIM_DEBUGFS "/raw", O_RDWR);
	if (fd < 0)
		return -errno;
	if (write(fd, cmd, 28 + len) != (ssize_t)(28 + len)) {
		close(fd);
		return -errno;
	}
	memset(r, 0, sizeof(*r));
	n = pread(fd, r, sizeof(*r), 0);
	close(fd);
	return n >= 8 ? 0 : -EIO;
}

#define ST_OK 0
#define ST_EBUSY 16
#define ST_EINVAL 22
#define Q_INVALID_GROUP 4
#define Q_INVALID_MEMBER 5

/* One valid DEVICE_STATUS part. */
static const uint8_t status_part[17] = {
	0x03, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x0f
};

static void obj_hdr(uint8_t *b, uint32_t id)
{
	memset(b, 0, 8);
	memcpy(b + 4, &id, 4);
}

TEST(sim_spec_checks)
{
	uint8_t create[24] = { 0 }, hdr[16] = { 0 }, set[8 + 64] = { 0 };
	struct raw_reply r;
	uint32_t id = 200;
	uint8_t stop = 1, run = 0;

	ensure_sim(_metadata);
	/* VF 3 runs and has no driver: create a SET object directly. */
	obj_hdr(create, id);
	create[16] = 1;	/* SET */
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_CREATE, 1, 3, create, sizeof(create), &r));
	ASSERT_EQ(ST_OK, r.status);
	/* The same id again is refused. */
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_CREATE, 1, 3, create, sizeof(create), &r));
	EXPECT_NE(ST_OK, r.status);

	/* SET while running fails, without side effects. */
	obj_hdr(set, id);
	memcpy(set + 8, status_part, sizeof(status_part));
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_DEV_PARTS_SET, 1, 3, set, 8 + 17, &r));
	EXPECT_EQ(ST_EBUSY, r.status);
	/* Stop the device: the same SET succeeds. */
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_DEV_MODE_SET, 1, 3, &stop, 1, &r));
	ASSERT_EQ(ST_OK, r.status);
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_DEV_PARTS_SET, 1, 3, set, 8 + 17, &r));
	EXPECT_EQ(ST_OK, r.status);
	/* Malformed parts (truncated value) are rejected. */
	set[8 + 12] = 5;
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_DEV_PARTS_SET, 1, 3, set, 8 + 17, &r));
	EXPECT_EQ(ST_EINVAL, r.status);
	/* Undefined mode bits are rejected. */
	stop = 2;
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_DEV_MODE_SET, 1, 3, &stop, 1, &r));
	EXPECT_EQ(ST_EINVAL, r.status);
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_DEV_MODE_SET, 1, 3, &run, 1, &r));
	EXPECT_EQ(ST_OK, r.status);
	/* A GET command on a SET object: wrong object type. */
	obj_hdr(hdr, id);
	hdr[8] = 0;	/* SIZE */
	ASSERT_EQ(0, raw(8, VIRTIO_ADMIN_CMD_DEV_PARTS_METADATA_GET, 1, 3, hdr, 16, &r));
	EXPECT_EQ(ST_EINVAL, r.status);
	/* Another member's object id. */
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_DESTROY, 1, 2, hdr, 8, &r));
	EXPECT_EQ(ST_EINVAL, r.status);
	/* Object type other than device parts. */
	create[0] = 1;
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_CREATE, 1, 3, create, sizeof(create), &r));
	EXPECT_EQ(ST_EINVAL, r.status);
	/* Bad member and bad group. */
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_DESTROY, 1, 0, hdr, 8, &r));
	EXPECT_EQ(Q_INVALID_MEMBER, r.qualifier);
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_DESTROY, 1, 99, hdr, 8, &r));
	EXPECT_EQ(Q_INVALID_MEMBER, r.qualifier);
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_DESTROY, 0, 3, hdr, 8, &r));
	EXPECT_EQ(Q_INVALID_GROUP, r.qualifier);
	/* Destroy it; destroying again fails. */
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_DESTROY, 1, 3, hdr, 8, &r));
	EXPECT_EQ(ST_OK, r.status);
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_DESTROY, 1, 3, hdr, 8, &r));
	EXPECT_EQ(ST_EINVAL, r.status);
	/* An id beyond the negotiated limit. */
	obj_hdr(create, 255);
	create[0] = 0;
	ASSERT_EQ(0, raw(0, VIRTIO_ADMIN_CMD_RESOURCE_OBJ_CREATE, 1, 3, create, sizeof(create), &r));
	EXPECT_EQ(ST_EINVAL, r.status);
	EXPECT_EQ(0, sim_stat("objects"));
}

/*
 * Legacy interface (transitional VFs): with legacy_io=1 the device offers
 * opcodes 2..6, and its legacy registers are a view onto the VF's device
 * parts. VF 3 has no driver; its state is restored at the end.
 */
#define LEGACY_CMDS 0x7cULL
#define LEG_VF 3
#define Q_INVALID_OPCODE 2
#define Q_INVALID_FIELD 3
#define ST_ENOMEM 12
/* Low 32 bits of the simulated VFs' device features (device.rs). */
#define SIM_HOST_FEATURES 0x78020u

static uint64_t list_query(void)
{
	struct raw_reply r;
	uint64_t bitmap = 0;

	if (raw(8, VIRTIO_ADMIN_CMD_LIST_QUERY, 1, 0, NULL, 0, &r) || r.status != ST_OK)
		return 0;
	memcpy(&bitmap, r.result, 8);
	return bitmap;
}

/* A legacy write of len register bytes at off; returns the status. */
static int leg_write(int common, uint8_t off, const void *regs, size_t len,
		     struct raw_reply *r)
{
	uint8_t data[8 + 32] = { off };

	memcpy(data + 8, regs, len);
	if (raw(0, common ? VIRTIO_ADMIN_CMD_LEGACY_COMMON_CFG_WRITE :
		VIRTIO_ADMIN_CMD_LEGACY_DEV_CFG_WRITE, 1, LEG_VF, data, 8 + len, r))
		return -1;
	return r->status;
}

/* A legacy read of len bytes at off into out; returns the status. */
static int leg_read(int common, uint8_t off, void *out, size_t len, struct raw_reply *r)
{
	if (raw(len, common ? VIRTIO_ADMIN_CMD_LEGACY_COMMON_CFG_READ :
		VIRTIO_ADMIN_CMD_LEGACY_DEV_CFG_READ, 1, LEG_VF, &off, 1, r))
		return -1;
	if (r->status == ST_OK && r->written == len)
		memcpy(out, r->result, len);
	return r->status;
}

static uint32_t cread(uint8_t off, size_t len)
{
	struct raw_reply r;
	uint32_t v = 0xdeadbeef;

	if (leg_read(1, off, &v, len, &r) != ST_OK)
		return 0xdeadbeef;
	return len == 4 ? v : len == 2 ? (v & 0xffff) : (v & 0xff);
}

static int cwrite(uint8_t off, uint32_t v, size_t len)
{
	struct raw_reply r;

	return leg_write(1, off, &v, len, &r);
}

/* The VQ_CFG value of queue q of VF vf, from the `dump` file. */
static int dump_vq_cfg(int vf, uint16_t q, uint8_t vq[32])
{
	static uint8_t buf[1 << 16];
	size_t n, pos = 0;
	FILE *f;

	if (sim_ctl("dump %d", vf))
		return -EIO;
	f = fopen(SIM_DEBUGFS "/dump", "r");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	while (pos + 16 <= n) {
		uint16_t type, idx;
		uint32_t len;

		memcpy(&type, buf + pos, 2);
		memcpy(&idx, buf + pos + 4, 2);
		memcpy(&len, buf + pos + 12, 4);
		if (type == 0x104 && idx == q && len == 32 && pos + 16 + 32 <= n) {
			memcpy(vq, buf + pos + 16, 32);
			return 0;
		}
		pos += 16 + len;
	}
	return -ENOENT;
}

static int sim_vf_valid(int vf)
{
	char line[256], want[32];
	int valid = 0;
	FILE *f;

	f = fopen(SIM_DEBUGFS "/state", "r");
	if (!f)
		return 0;
	snprintf(want, sizeof(want), "vf %d ", vf);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, want, strlen(want)))
			valid = strstr(line, " valid true") != NULL;
	fclose(f);
	return valid;
}

/* Whether a trace line contains needle. */
static int trace_has(const char *needle)
{
	char line[256];
	int found = 0;
	FILE *f;

	f = fopen(SIM_DEBUGFS "/trace", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			found = 1;
	fclose(f);
	return found;
}

static void load_sim(struct __test_metadata *_metadata, const char *params)
{
	if (module_loaded(SIM_MODULE))
		ASSERT_EQ(0, sim_unload());
	ASSERT_EQ(0, sim_load(params));
}

TEST(sim_legacy_off_by_default)
{
	struct raw_reply r;
	uint8_t off = 0;

	load_sim(_metadata, NULL);
	EXPECT_EQ(0, list_query() & LEGACY_CMDS);
	EXPECT_NE(0, list_query());
	ASSERT_EQ(0, raw(4, VIRTIO_ADMIN_CMD_LEGACY_COMMON_CFG_READ, 1, LEG_VF, &off, 1, &r));
	EXPECT_EQ(ST_EINVAL, r.status);
	EXPECT_EQ(Q_INVALID_OPCODE, r.qualifier);
}

TEST(sim_legacy_registers)
{
	uint8_t vq[32], mac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 }, cfg[8];
	uint64_t h0, h1, desc, drv, dev;
	struct raw_reply r;
	uint16_t v16;
	uint8_t b;

	load_sim(_metadata, "legacy_io=1");
	EXPECT_EQ(LEGACY_CMDS, list_query() & LEGACY_CMDS);
	ASSERT_EQ(0, sim_ctl("clear"));

	/* HOST_FEATURES: the device features' low half, read-only. */
	EXPECT_EQ(SIM_HOST_FEATURES, cread(0, 4));
	EXPECT_EQ(ST_EINVAL, leg_write(1, 0, "\0\0\0\0", 4, &r));
	EXPECT_EQ(Q_INVALID_FIELD, r.qualifier);

	/* GUEST_FEATURES: what is written, masked by the device features. */
	ASSERT_EQ(0, sim_vf_state(LEG_VF, &h0, NULL, NULL, NULL));
	EXPECT_EQ(ST_OK, cwrite(4, 0xffffffff, 4));
	EXPECT_EQ(SIM_HOST_FEATURES, cread(4, 4));
	EXPECT_TRUE(trace_has(" off 4 len 4 data ffffffff"));
	EXPECT_TRUE(trace_has(" off 4 len 4 data 20800700"));
	ASSERT_EQ(0, sim_vf_state(LEG_VF, &h1, NULL, NULL, NULL));
	EXPECT_NE(h0, h1) TH_LOG("a legacy write is device state");
	EXPECT_TRUE(sim_vf_valid(LEG_VF));
	EXPECT_EQ(ST_OK, cwrite(4, 0x20, 4));
	EXPECT_EQ(0x20, cread(4, 4));

	/* QUEUE_SEL, QUEUE_NUM, QUEUE_PFN: the legacy ring layout. */
	EXPECT_EQ(ST_OK, cwrite(14, 1, 2));
	EXPECT_EQ(1, cread(14, 2));
	EXPECT_EQ(256, cread(12, 2));
	EXPECT_EQ(ST_EINVAL, cwrite(12, 8, 2));
	EXPECT_EQ(ST_OK, cwrite(8, 0x12345, 4));
	EXPECT_EQ(0x12345, cread(8, 4));
	ASSERT_EQ(0, dump_vq_cfg(LEG_VF, 1, vq));
	memcpy(&desc, vq + 8, 8);
	memcpy(&drv, vq + 16, 8);
	memcpy(&dev, vq + 24, 8);
	EXPECT_EQ(0x12345000ULL, desc);
	EXPECT_EQ(desc + 16 * 256, drv);
	EXPECT_EQ(desc + 8192, dev);
	EXPECT_EQ(1, vq[4]);
	EXPECT_TRUE(sim_vf_valid(LEG_VF));
	/* A queue that does not exist: size 0, writes ignored. */
	EXPECT_EQ(ST_OK, cwrite(14, 7, 2));
	EXPECT_EQ(0, cread(12, 2));
	EXPECT_EQ(0, cread(8, 4));
	EXPECT_EQ(ST_OK, cwrite(8, 0x999, 4));
	EXPECT_EQ(0xffff, cread(22, 2));
	EXPECT_EQ(ST_OK, cwrite(14, 1, 2));

	/* The MSI-X vectors, one at a time and together. */
	EXPECT_EQ(ST_OK, cwrite(20, 2, 2));
	EXPECT_EQ(2, cread(20, 2));
	EXPECT_EQ(ST_OK, cwrite(22, 5, 2));
	EXPECT_EQ(5, cread(22, 2));
	EXPECT_EQ(ST_OK, cwrite(20, 0x00090008, 4));
	EXPECT_EQ(0x00090008, cread(20, 4));
	ASSERT_EQ(0, dump_vq_cfg(LEG_VF, 1, vq));
	memcpy(&v16, vq + 2, 2);
	EXPECT_EQ(9, v16);

	/* STATUS. */
	EXPECT_EQ(ST_OK, cwrite(18, 0x07, 1));
	EXPECT_EQ(0x07, cread(18, 1));

	/* Read-only, partial, QUEUE_NOTIFY and out-of-range accesses fail with
	 * no effect. */
	ASSERT_EQ(0, sim_vf_state(LEG_VF, &h0, NULL, NULL, NULL));
	EXPECT_EQ(ST_EINVAL, cwrite(19, 1, 1));		/* ISR */
	EXPECT_EQ(ST_EINVAL, cwrite(18, 0x0007, 2));	/* STATUS + ISR */
	EXPECT_EQ(ST_EINVAL, cwrite(16, 0, 2));		/* QUEUE_NOTIFY */
	EXPECT_EQ(ST_EINVAL, leg_read(1, 16, &v16, 2, &r));
	EXPECT_EQ(ST_EINVAL, cwrite(4, 0, 2));		/* half a field */
	EXPECT_EQ(ST_EINVAL, cwrite(6, 0, 2));
	EXPECT_EQ(ST_EINVAL, leg_read(1, 1, &v16, 2, &r));
	EXPECT_EQ(ST_EINVAL, leg_read(1, 0, &v16, 2, &r));
	EXPECT_EQ(Q_INVALID_FIELD, r.qualifier);
	EXPECT_EQ(ST_EINVAL, leg_read(1, 22, cfg, 4, &r));	/* past 24 */
	EXPECT_EQ(ST_EINVAL, leg_read(1, 24, cfg, 1, &r));
	EXPECT_EQ(ST_EINVAL, leg_read(1, 0, cfg, 0, &r));	/* no bytes */
	EXPECT_EQ(ST_EINVAL, leg_read(0, 8, cfg, 1, &r));
	EXPECT_EQ(ST_EINVAL, leg_read(0, 7, cfg, 2, &r));
	EXPECT_EQ(ST_EINVAL, leg_write(0, 6, mac, 2, &r));	/* net status */
	EXPECT_EQ(ST_EINVAL, leg_write(0, 4, mac, 3, &r));
	EXPECT_EQ(ST_EINVAL, cwrite(0, 0, 0));
	/* Several whole fields: fine to read. */
	EXPECT_EQ(ST_OK, leg_read(1, 0, cfg, 8, &r));
	ASSERT_EQ(0, sim_vf_state(LEG_VF, &h1, NULL, NULL, NULL));
	EXPECT_EQ(h0, h1) TH_LOG("a failed access changed the state");

	/* Device configuration: the MAC (the MAC-address part), link up. */
	EXPECT_EQ(ST_OK, leg_write(0, 0, mac, 6, &r));
	b = 0x66;
	EXPECT_EQ(ST_OK, leg_write(0, 5, &b, 1, &r));
	mac[5] = 0x66;
	ASSERT_EQ(ST_OK, leg_read(0, 0, cfg, 8, &r));
	EXPECT_EQ(0, memcmp(cfg, mac, 6));
	EXPECT_EQ(1, cfg[6]);
	EXPECT_EQ(0, cfg[7]);
	ASSERT_EQ(ST_OK, leg_read(0, 3, cfg, 2, &r));
	EXPECT_EQ(0x33, cfg[0]);
	EXPECT_EQ(0x44, cfg[1]);
	EXPECT_TRUE(trace_has(" off 3 len 2 data 3344"));
	EXPECT_TRUE(sim_vf_valid(LEG_VF));

	/* ISR: read-to-clear. */
	ASSERT_EQ(0, sim_ctl("isr %d 3", LEG_VF));
	EXPECT_EQ(3, cread(19, 1));
	EXPECT_EQ(0, cread(19, 1));

	/* STATUS 0 resets what the legacy interface sees. */
	ASSERT_EQ(0, sim_ctl("isr %d 1", LEG_VF));
	EXPECT_EQ(ST_OK, cwrite(18, 0, 1));
	EXPECT_EQ(0, cread(18, 1));
	EXPECT_EQ(0, cread(4, 4));
	EXPECT_EQ(0, cread(14, 2));
	EXPECT_EQ(0xffff, cread(20, 2));
	EXPECT_EQ(0, cread(19, 1));
	EXPECT_EQ(ST_OK, cwrite(14, 1, 2));
	EXPECT_EQ(0, cread(8, 4));
	EXPECT_EQ(0xffff, cread(22, 2));
	EXPECT_EQ(256, cread(12, 2));
	ASSERT_EQ(0, dump_vq_cfg(LEG_VF, 0, vq));
	memcpy(&desc, vq + 8, 8);
	EXPECT_EQ(0, desc);
	EXPECT_EQ(0, vq[4]);
	EXPECT_TRUE(sim_vf_valid(LEG_VF));

	/* Legacy commands are counted like the others. */
	EXPECT_GT(sim_op_count(VIRTIO_ADMIN_CMD_LEGACY_COMMON_CFG_WRITE), 0);
	EXPECT_GT(sim_op_count(VIRTIO_ADMIN_CMD_LEGACY_DEV_CFG_READ), 0);

	/* Back to the defaults of VF 3, and the default device. */
	ASSERT_EQ(0, sim_ctl("size %d 4096", LEG_VF));
	load_sim(_metadata, NULL);
}

TEST(sim_legacy_notify_info)
{
	struct raw_reply r;
	uint64_t off;

	load_sim(_metadata, "legacy_io=1");
	ASSERT_EQ(0, raw(64, VIRTIO_ADMIN_CMD_LEGACY_NOTIFY_INFO, 1, LEG_VF, NULL, 0, &r));
	ASSERT_EQ(ST_OK, r.status);
	EXPECT_EQ(64, r.written);
	EXPECT_EQ(2, r.result[0]) TH_LOG("flags: member device");
	EXPECT_EQ(4, r.result[1]) TH_LOG("QEMU's modern BAR");
	memcpy(&off, r.result + 8, 8);
	TH_LOG("notify address: BAR %u offset %#llx", r.result[1], (unsigned long long)off);
	EXPECT_EQ(0, r.result[16]) TH_LOG("then the end of the list");
	/* A result buffer too small for 4 entries. */
	ASSERT_EQ(0, raw(32, VIRTIO_ADMIN_CMD_LEGACY_NOTIFY_INFO, 1, LEG_VF, NULL, 0, &r));
	EXPECT_EQ(ST_ENOMEM, r.status);
	/* A member that is not an enabled VF. */
	ASSERT_EQ(0, raw(64, VIRTIO_ADMIN_CMD_LEGACY_NOTIFY_INFO, 1, 99, NULL, 0, &r));
	EXPECT_EQ(Q_INVALID_MEMBER, r.qualifier);
	load_sim(_metadata, NULL);
}

/*
 * The upstream driver takes its transitional path on a transitional VF:
 * probe asks for the notify address once, and its virtual BAR0 is served
 * by the legacy commands; QUEUE_NOTIFY reaches the notify address.
 */
TEST(sim_legacy_upstream_driver)
{
	struct vfio_region_info bar0 = { .argsz = sizeof(bar0), .index = 0 };
	struct vfio_region_info bar4 = { .argsz = sizeof(bar4), .index = 4 };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg),
					.index = VFIO_PCI_CONFIG_REGION_INDEX };
	char pf[32], vf[32], bug[256] = "";
	struct kmsg_watch w;
	struct vfio_dev d;
	uint16_t cmd, notify = 0x2a5, qnum;
	uint32_t feat = 0, dfsel = 0;

	ASSERT_EQ(0, find_sriov_pf(pf, sizeof(pf)));
	ASSERT_EQ(0, pf_vf_bdf(pf, 0, vf, sizeof(vf)));
	load_sim(_metadata, "legacy_io=1");
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
	ASSERT_EQ(0, sim_ctl("clear"));
	ASSERT_EQ(0, kmsg_watch_start(&w));
	ASSERT_EQ(0, bind_driver_override(vf, VIRTIO_C_DRIVER));
	EXPECT_EQ(1, sim_trace_count(VIRTIO_ADMIN_CMD_LEGACY_NOTIFY_INFO));
	ASSERT_EQ(0, vfio_open_cdev(vf, &d));
	ASSERT_EQ(0, ioctl(d.device_fd, VFIO_DEVICE_GET_REGION_INFO, &bar0));
	EXPECT_EQ(32, bar0.size) TH_LOG("the virtual legacy BAR0");
	ASSERT_EQ(0, ioctl(d.device_fd, VFIO_DEVICE_GET_REGION_INFO, &cfg));
	ASSERT_EQ(0, ioctl(d.device_fd, VFIO_DEVICE_GET_REGION_INFO, &bar4));
	/* I/O and memory decoding on, as a guest driver would. */
	ASSERT_EQ(2, pread(d.device_fd, &cmd, 2, cfg.offset + 4));
	cmd |= 3;
	ASSERT_EQ(2, pwrite(d.device_fd, &cmd, 2, cfg.offset + 4));
	ASSERT_EQ(4, pread(d.device_fd, &feat, 4, bar0.offset + 0));
	EXPECT_EQ(SIM_HOST_FEATURES, feat);
	ASSERT_EQ(2, pread(d.device_fd, &qnum, 2, bar0.offset + 12));
	EXPECT_EQ(256, qnum);
	EXPECT_TRUE(trace_has("op 0x3 member 1 status 0 written 4 off 0 len 4 data 20800700"));
	/* QUEUE_NOTIFY: a 16-bit MMIO write at the notify address, which on
	 * the simulated device is device_feature_select, readable through BAR4. */
	ASSERT_EQ(2, pwrite(d.device_fd, &notify, 2, bar0.offset + 16));
	ASSERT_EQ(4, pread(d.device_fd, &dfsel, 4, bar4.offset + 0));
	EXPECT_EQ(notify, dfsel);
	vfio_close(&d);
	EXPECT_EQ(0, unbind_and_clear(vf));
	ASSERT_EQ(0, kmsg_watch_collect(&w));
	EXPECT_EQ(0, kmsg_bug_lines(&w, bug, sizeof(bug))) TH_LOG("%s", bug);
	EXPECT_FALSE(kmsg_find(&w, "Failed to execute command"));
	EXPECT_FALSE(kmsg_find(&w, "failed with error"));
	kmsg_watch_stop(&w);
	load_sim(_metadata, NULL);
}

/* Unload with a VF bound and idle: safe; commands then fail with an errno. */
TEST(sim_unload_while_bound)
{
	char pf[32], vf[32];
	struct vfio_dev d;
	int fd;

	ensure_sim(_metadata);
	ASSERT_EQ(0, find_sriov_pf(pf, sizeof(pf)));
	ASSERT_EQ(0, pf_vf_bdf(pf, 0, vf, sizeof(vf)));
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
	ASSERT_EQ(0, bind_driver_override(vf, VIRTIO_C_DRIVER));
	ASSERT_EQ(0, vfio_open_cdev(vf, &d));
	ASSERT_EQ(0, sim_unload());
	EXPECT_NE(0, mig_set_state(d.device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	EXPECT_EQ(0, ioctl(d.device_fd, VFIO_DEVICE_RESET));
	ASSERT_EQ(0, sim_load(NULL));
	/* The backend is back: the same device migrates again. */
	EXPECT_EQ(0, mig_set_state(d.device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(0, mig_set_state(d.device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	EXPECT_EQ(0, mig_set_state(d.device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	if (fd >= 0)
		close(fd);
	vfio_close(&d);
	EXPECT_EQ(0, unbind_and_clear(vf));
	EXPECT_EQ(0, sim_stat("objects"));
}

/* A function reset of the VF returns its device parts to the defaults. */
TEST_F(c_pair, sim_vf_reset_restores_defaults)
{
	uint64_t dst_default, dst_loaded, dst_reset;
	size_t len = 0;
	uint8_t *buf = NULL;
	int fd, rfd, stopped;

	ASSERT_EQ(0, sim_vf_state(2, &dst_default, NULL, NULL, NULL));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	ASSERT_GT(mig_read_all(fd, &buf, &len, 65536, 0), 16);
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	ASSERT_EQ(0, mig_write_all(rfd, buf, len, 65536));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, sim_vf_state(2, &dst_loaded, NULL, NULL, NULL));
	EXPECT_NE(dst_default, dst_loaded);
	/* Stop it, then FLR: defaults and running again. */
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, ioctl(self->d[1].device_fd, VFIO_DEVICE_RESET));
	ASSERT_EQ(0, sim_vf_state(2, &dst_reset, NULL, &stopped, NULL));
	EXPECT_EQ(dst_default, dst_reset);
	EXPECT_FALSE(stopped);
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, mig_get_state(self->d[1].device_fd));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(rfd);
	close(fd);
	free(buf);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Each fault injection of the control file does what it says. */
TEST_F(c_pair, sim_fault_injection)
{
	size_t len = 0;
	uint8_t *buf = NULL;
	double t0;
	int fd, rfd, ret;

	/* fail: the 1st next PARTS_GET answers EINVAL; the driver reports it. */
	ASSERT_EQ(0, sim_ctl("fail %#x 1 22", VIRTIO_ADMIN_CMD_DEV_PARTS_GET));
	ret = mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd);
	EXPECT_EQ(-EINVAL, ret);
	EXPECT_EQ(0, sim_stat("objects"));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(0, sim_stat("faults_pending"));

	/* delay: MODE_SET takes at least the delay. */
	ASSERT_EQ(0, sim_ctl("delay %#x 1 300", VIRTIO_ADMIN_CMD_DEV_MODE_SET));
	t0 = now_s();
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_STOP, NULL));
	EXPECT_GE(now_s() - t0, 0.3);
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));

	/* resize: the state grows between METADATA_GET and PARTS_GET, past the
	 * buffer sized from METADATA_GET: the device answers ENOMEM. */
	ASSERT_EQ(0, sim_ctl("resize 1 20000"));
	ret = mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd);
	EXPECT_EQ(-ENOMEM, ret);
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));

	/* short: PARTS_GET returns 100 bytes; the record carries truncated
	 * parts, which the destination device rejects on DEV_PARTS_SET. */
	ASSERT_EQ(0, sim_ctl("short %#x 1 100", VIRTIO_ADMIN_CMD_DEV_PARTS_GET));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	ASSERT_EQ(116, mig_read_all(fd, &buf, &len, 4096, 0));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	EXPECT_EQ(-EINVAL, mig_write_all(rfd, buf, len, 4096));
	EXPECT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_GT(sim_trace_count(VIRTIO_ADMIN_CMD_DEV_PARTS_GET), 0);
	close(rfd);
	close(fd);
	free(buf);
}

/* The largest state: 64 MiB through the C driver, and the admin commands a
 * real queue without indirect descriptors could not take are counted. */
TEST_F_TIMEOUT(c_pair, sim_large_state_64m, 600)
{
	uint64_t src_hash, dst_hash, size;
	size_t len = 0;
	uint8_t *buf = NULL;
	int fd, rfd;

	ASSERT_EQ(0, sim_ctl("size 1 %d", 64 << 20));
	ASSERT_EQ(0, sim_ctl("clear"));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	ASSERT_EQ((64 << 20) + 16, mig_read_all(fd, &buf, &len, 1 << 20, 0));
	ASSERT_EQ(0, sim_vf_state(1, &src_hash, &size, NULL, NULL));
	EXPECT_EQ(64 << 20, size);
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	ASSERT_EQ(0, mig_write_all(rfd, buf, len, 1 << 20));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, sim_vf_state(2, &dst_hash, &size, NULL, NULL));
	EXPECT_EQ(src_hash, dst_hash);
	EXPECT_EQ(64 << 20, size);
	/* How many entries the lists had depends on how contiguous the
	 * driver's pages were; report it, and check the counting itself with
	 * a queue of 3 descriptors, which any command with data and a result
	 * list of more than one entry exceeds. */
	TH_LOG("commands over 256 descriptors: %ld", sim_stat("over_vq_size"));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	ASSERT_EQ(0, sim_ctl("vq_size 3"));
	ASSERT_EQ(0, sim_ctl("clear"));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	EXPECT_GT(sim_stat("over_vq_size"), 0);
	ASSERT_EQ(0, sim_ctl("vq_size 256"));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(rfd);
	close(fd);
	free(buf);
	/* Back to the default size for later tests. */
	ASSERT_EQ(0, sim_ctl("size 1 4096"));
	ASSERT_EQ(0, sim_ctl("size 2 4096"));
}

TEST_HARNESS_MAIN
