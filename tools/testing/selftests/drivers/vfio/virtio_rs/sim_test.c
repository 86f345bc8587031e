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
