// SPDX-License-Identifier: GPL-2.0
/*
 * PRE_COPY through virtio_vfio_pci_rs: VFIO_MIG_GET_PRECOPY_INFO accounting,
 * the 128-read cap, the rate limit, pre-copy round trips while the device
 * state changes, and pre-copy streams crossing with the upstream C driver.
 */
#include <errno.h>
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

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

FIXTURE(pc)
{
	char pf[32], vf[2][32];
	struct vfio_dev d[2];
	bool open[2];
};

/* Unbind our VFs and reload our module with `params`. */
static int reload_rs(FIXTURE_DATA(pc) *self, const char *params)
{
	for (int i = 0; i < 2; i++)
		unbind_and_clear(self->vf[i]);
	return rs_reload(params);
}

FIXTURE_SETUP(pc)
{
	if (!module_loaded(SIM_MODULE))
		ASSERT_EQ(0, sim_load(NULL));
	ASSERT_EQ(0, sim_ctl("clear"));
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
	ASSERT_EQ(0, find_sriov_pf(self->pf, sizeof(self->pf)));
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, pf_vf_bdf(self->pf, i, self->vf[i], sizeof(self->vf[i])));
		self->open[i] = false;
	}
	/* Default parameters unless a test reloads. */
	ASSERT_EQ(0, reload_rs(self, ""));
}

FIXTURE_TEARDOWN(pc)
{
	for (int i = 0; i < 2; i++) {
		if (self->open[i])
			vfio_close(&self->d[i]);
		EXPECT_EQ(0, unbind_and_clear(self->vf[i]));
	}
	EXPECT_EQ(0, sim_stat("objects")) TH_LOG("device objects left behind");
	EXPECT_EQ(0, sim_ctl("rate 0"));
	EXPECT_EQ(0, sim_ctl("size 1 4096"));
	EXPECT_EQ(0, sim_ctl("size 2 4096"));
	EXPECT_EQ(0, sim_ctl("clear"));
}

static int pc_bind(FIXTURE_DATA(pc) *self, int i, const char *driver)
{
	int ret = bind_driver_override(self->vf[i], driver);

	if (!ret)
		ret = vfio_open_cdev(self->vf[i], &self->d[i]);
	if (!ret)
		self->open[i] = true;
	return ret;
}

static uint64_t vf_reads(int member)
{
	uint64_t reads = 0;

	sim_vf_state(member, NULL, NULL, NULL, &reads);
	return reads;
}

/* Read everything queued (until ENOMSG or EOF); bytes read or -errno. */
static ssize_t drain(int fd, uint8_t **buf, size_t *len, size_t chunk)
{
	size_t before = *len;
	ssize_t n = mig_read_all(fd, buf, len, chunk, 1);

	return n < 0 ? n : (ssize_t)(*len - before);
}

TEST_F_TIMEOUT(pc, precopy_info, 120)
{
	uint64_t initial, dirty, first;
	uint8_t *buf = NULL, b[16];
	size_t len = 0;
	int dev, fd, sfd;
	ssize_t n;

	ASSERT_EQ(0, pc_bind(self, 0, VIRTIO_RS_DRIVER));
	dev = self->d[0].device_fd;

	/* Outside the PRE_COPY states: EINVAL. */
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_STOP_COPY, &sfd));
	EXPECT_EQ(-EINVAL, mig_precopy_info(sfd, &initial, &dirty));
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(sfd);

	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	/* Phase 1: the initial record. */
	ASSERT_EQ(0, mig_precopy_info(fd, &first, &dirty));
	EXPECT_EQ(16 + 4096, first);
	EXPECT_EQ(0, dirty);
	ASSERT_EQ(7, read(fd, b, 7));
	ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(first - 7, initial) TH_LOG("initial_bytes follows the reads");
	EXPECT_EQ(0, dirty);
	n = drain(fd, &buf, &len, 1000);
	EXPECT_EQ((ssize_t)initial, n) TH_LOG("initial_bytes equals the bytes read");
	/* Drained inside the rate-limit window: nothing new, ENOMSG. */
	ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(0, initial);
	EXPECT_EQ(0, dirty);
	EXPECT_EQ(-1, read(fd, b, 1));
	EXPECT_EQ(ENOMSG, errno);

	/* Phase 2: a new window, a new full record as dirty bytes. */
	usleep(1100 * 1000);
	ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(0, initial);
	EXPECT_EQ(16 + 4096, dirty);
	n = drain(fd, &buf, &len, 4096);
	EXPECT_EQ((ssize_t)dirty, n) TH_LOG("dirty_bytes equals the bytes read");
	ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(0, initial + dirty);

	/* PRE_COPY_P2P, in a new window: the ioctl still queries the device. */
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	usleep(1100 * 1000);
	ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(0, initial);
	EXPECT_EQ(16 + 4096, dirty) TH_LOG("a new record in PRE_COPY_P2P");
	n = drain(fd, &buf, &len, 4096);
	EXPECT_EQ(16 + 4096, n);

	/* STOP_COPY: the final record, then EOF; the ioctl is EINVAL. */
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	EXPECT_EQ(-EINVAL, mig_precopy_info(fd, &initial, &dirty));
	n = mig_read_all(fd, &buf, &len, 4096, 0);
	EXPECT_EQ(16 + 4096, n);
	EXPECT_EQ(0, read(fd, b, 1));
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	free(buf);
}

TEST_F_TIMEOUT(pc, precopy_cap_128, 300)
{
	uint64_t initial, dirty, src, dst;
	uint8_t *buf = NULL;
	size_t len = 0;
	int dev, fd, rfd, rounds = 0, i;

	ASSERT_EQ(0, reload_rs(self, "precopy_interval_ms=0"));
	ASSERT_EQ(0, pc_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pc_bind(self, 1, VIRTIO_RS_DRIVER));
	dev = self->d[0].device_fd;
	ASSERT_EQ(0, sim_ctl("rate 64"));
	ASSERT_EQ(0, sim_ctl("clear"));
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	for (;;) {
		ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
		if (initial + dirty == 0)
			break;
		ASSERT_EQ((ssize_t)(initial + dirty), drain(fd, &buf, &len, 65536));
		ASSERT_LT(++rounds, 1000) TH_LOG("pre-copy never converges");
	}
	EXPECT_EQ(128, rounds);
	EXPECT_EQ(128, vf_reads(1)) TH_LOG("device-context reads in pre-copy");
	/* After the cap: still nothing new, whatever the caller does. */
	for (i = 0; i < 20; i++) {
		ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
		EXPECT_EQ(0, initial + dirty);
	}
	EXPECT_EQ(128, vf_reads(1));
	/* STOP_COPY still delivers the final state. */
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	ASSERT_GT(mig_read_all(fd, &buf, &len, 65536, 0), 16);
	EXPECT_EQ(129, vf_reads(1));
	ASSERT_EQ(0, sim_vf_state(1, &src, NULL, NULL, NULL));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	ASSERT_EQ(0, mig_write_all(rfd, buf, len, 1 << 20));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, sim_vf_state(2, &dst, NULL, NULL, NULL));
	EXPECT_EQ(src, dst);
	TH_LOG("%d pre-copy records, %zu stream bytes", rounds, len);
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(rfd);
	close(fd);
	free(buf);
}

TEST_F_TIMEOUT(pc, precopy_rate_limit, 120)
{
	uint64_t initial, dirty, reads;
	uint8_t *buf = NULL;
	size_t len = 0;
	double t0, elapsed;
	int dev, fd, i;

	ASSERT_EQ(0, pc_bind(self, 0, VIRTIO_RS_DRIVER));
	dev = self->d[0].device_fd;
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	ASSERT_GT(drain(fd, &buf, &len, 65536), 0);
	ASSERT_EQ(0, sim_ctl("clear"));
	t0 = now_s();
	for (i = 0; i < 50; i++) {
		ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
		ASSERT_GE(drain(fd, &buf, &len, 65536), 0);
	}
	elapsed = now_s() - t0;
	reads = vf_reads(1);
	TH_LOG("50 calls in %.3f s: %llu device queries", elapsed, (unsigned long long)reads);
	/* The window opened with the initial read; each later window allows
	 * one query. */
	EXPECT_LE(reads, (uint64_t)elapsed + 1);
	if (elapsed < 0.9)
		EXPECT_EQ(0, reads) TH_LOG("no query inside the first window");
	/* After an interval: exactly one more. */
	usleep(1100 * 1000);
	ASSERT_EQ(0, sim_ctl("clear"));
	for (i = 0; i < 10; i++) {
		ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
		ASSERT_GE(drain(fd, &buf, &len, 65536), 0);
	}
	EXPECT_EQ(1, vf_reads(1));
	ASSERT_EQ(0, mig_set_state(dev, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	free(buf);
}

/*
 * The QEMU-style pipeline: destination RESUMING, source PRE_COPY; every
 * pre-copy record goes to the destination as it is read (rounds windows of
 * at least 1.1 s), then PRE_COPY_P2P, STOP_COPY, the rest; destination
 * RUNNING. Returns 0; *pre / *stop are the bytes moved before and after the
 * source stopped.
 */
static int pipeline(int src, int dst, int rounds, long *pre, long *stop)
{
	uint64_t initial, dirty;
	uint8_t *buf = NULL;
	size_t len = 0, at;
	int sfd, dfd, ret;

	ret = mig_set_state(dst, VFIO_DEVICE_STATE_RESUMING, &dfd);
	if (ret)
		return ret;
	ret = mig_set_state(src, VFIO_DEVICE_STATE_PRE_COPY, &sfd);
	if (ret)
		return ret;
	for (int r = 0; r < rounds; r++) {
		if (r)
			usleep(1100 * 1000);
		ret = mig_precopy_info(sfd, &initial, &dirty);
		if (ret)
			return ret;
		at = len;
		if (mig_read_all(sfd, &buf, &len, 65536, 1) < 0)
			return -EIO;
		ret = mig_write_all(dfd, buf + at, len - at, 65536);
		if (ret)
			return ret;
	}
	*pre = len;
	ret = mig_set_state(src, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL);
	if (!ret)
		ret = mig_set_state(src, VFIO_DEVICE_STATE_STOP_COPY, NULL);
	if (ret)
		return ret;
	at = len;
	if (mig_read_all(sfd, &buf, &len, 1 << 20, 0) < 0)
		return -EIO;
	*stop = len - at;
	ret = mig_write_all(dfd, buf + at, len - at, 1 << 20);
	if (!ret)
		ret = mig_set_state(dst, VFIO_DEVICE_STATE_RUNNING, NULL);
	if (!ret)
		ret = mig_set_state(src, VFIO_DEVICE_STATE_RUNNING, NULL);
	close(sfd);
	close(dfd);
	free(buf);
	return ret;
}

TEST_F_TIMEOUT(pc, precopy_roundtrip, 120)
{
	uint64_t src, dst, sets;
	long pre, stop;

	ASSERT_EQ(0, pc_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pc_bind(self, 1, VIRTIO_RS_DRIVER));
	/* The source changes 512 state bytes per read while it runs. */
	ASSERT_EQ(0, sim_ctl("rate 512"));
	ASSERT_EQ(0, sim_ctl("clear"));
	ASSERT_EQ(0, pipeline(self->d[0].device_fd, self->d[1].device_fd, 3, &pre, &stop));
	ASSERT_EQ(0, sim_vf_state(1, &src, NULL, NULL, NULL));
	ASSERT_EQ(0, sim_vf_state(2, &dst, NULL, NULL, NULL));
	EXPECT_EQ(src, dst) TH_LOG("destination differs from the source's final state");
	{
		char line[256];
		FILE *f = fopen(SIM_DEBUGFS "/state", "r");

		sets = 0;
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long long s;
			int vf;

			if (sscanf(line, "vf %d %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s sets %llu",
				   &vf, &s) == 2 && vf == 2)
				sets = s;
		}
		if (f)
			fclose(f);
	}
	EXPECT_EQ(4, sets) TH_LOG("3 pre-copy records and the final one, each loaded");
	TH_LOG("bytes before the stop %ld, during STOP_COPY %ld", pre, stop);
}

static void cross(struct __test_metadata *_metadata, FIXTURE_DATA(pc) *self, const char *s,
		  const char *d)
{
	uint64_t src, dst;
	long pre, stop;

	ASSERT_EQ(0, pc_bind(self, 0, s));
	ASSERT_EQ(0, pc_bind(self, 1, d));
	ASSERT_EQ(0, sim_ctl("rate 256"));
	ASSERT_EQ(0, pipeline(self->d[0].device_fd, self->d[1].device_fd, 2, &pre, &stop));
	ASSERT_EQ(0, sim_vf_state(1, &src, NULL, NULL, NULL));
	ASSERT_EQ(0, sim_vf_state(2, &dst, NULL, NULL, NULL));
	EXPECT_EQ(src, dst) TH_LOG("%s -> %s", s, d);
	TH_LOG("%s -> %s: %ld bytes in pre-copy, %ld in STOP_COPY", s, d, pre, stop);
}

/* Pre-copy streams crossing between the drivers, in both directions. */
FIXTURE(crossing)
{
	FIXTURE_DATA(pc) p;
};

FIXTURE_VARIANT(crossing)
{
	const char *src, *dst;
};

FIXTURE_VARIANT_ADD(crossing, c_to_rust)
{
	.src = VIRTIO_C_DRIVER,
	.dst = VIRTIO_RS_DRIVER,
};

FIXTURE_VARIANT_ADD(crossing, rust_to_c)
{
	.src = VIRTIO_RS_DRIVER,
	.dst = VIRTIO_C_DRIVER,
};

FIXTURE_SETUP(crossing)
{
	pc_setup(_metadata, &self->p, NULL);
}

FIXTURE_TEARDOWN(crossing)
{
	pc_teardown(_metadata, &self->p, NULL);
}

TEST_F_TIMEOUT(crossing, precopy_cross, 120)
{
	cross(_metadata, &self->p, variant->src, variant->dst);
}

/* Bytes moved before the stop and during STOP_COPY, for two context sizes,
 * through both drivers. Reported, not judged. */
TEST_F_TIMEOUT(pc, precopy_sizes_report, 600)
{
	static const int sizes[] = { 64 << 10, 16 << 20 };
	const char *drv[] = { VIRTIO_RS_DRIVER, VIRTIO_C_DRIVER };

	for (int k = 0; k < 2; k++) {
		ASSERT_EQ(0, pc_bind(self, 0, drv[k]));
		ASSERT_EQ(0, pc_bind(self, 1, drv[k]));
		for (int i = 0; i < 2; i++) {
			uint64_t src, dst;
			long pre, stop;
			double t0;

			ASSERT_EQ(0, sim_ctl("size 1 %d", sizes[i]));
			t0 = now_s();
			ASSERT_EQ(0, pipeline(self->d[0].device_fd, self->d[1].device_fd, 1, &pre,
					      &stop));
			ASSERT_EQ(0, sim_vf_state(1, &src, NULL, NULL, NULL));
			ASSERT_EQ(0, sim_vf_state(2, &dst, NULL, NULL, NULL));
			EXPECT_EQ(src, dst);
			TH_LOG("%s, context %d bytes: %ld bytes before the stop, %ld during STOP_COPY, %.2f s",
			       drv[k], sizes[i], pre, stop, now_s() - t0);
		}
		for (int j = 0; j < 2; j++) {
			vfio_close(&self->d[j]);
			self->open[j] = false;
			ASSERT_EQ(0, unbind_and_clear(self->vf[j]));
		}
	}
}

TEST_HARNESS_MAIN
