// SPDX-License-Identifier: GPL-2.0
/*
 * Live migration through virtio_vfio_pci_rs, against the simulated admin
 * device: round trips, every state arc with its admin-command trace, reset
 * and close in every state, malformed streams, fault injection, streams
 * crossing with the upstream C driver, and concurrency.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/userfaultfd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "vfio_dev.h"
#include "sim.h"
#include "vfio_mig.h"
#include "virtio_rs_test.h"

enum {
	S_ERROR = VFIO_DEVICE_STATE_ERROR,
	S_STOP = VFIO_DEVICE_STATE_STOP,
	S_RUN = VFIO_DEVICE_STATE_RUNNING,
	S_SC = VFIO_DEVICE_STATE_STOP_COPY,
	S_RES = VFIO_DEVICE_STATE_RESUMING,
	S_RP2P = VFIO_DEVICE_STATE_RUNNING_P2P,
	S_PC = VFIO_DEVICE_STATE_PRE_COPY,
	S_PCP2P = VFIO_DEVICE_STATE_PRE_COPY_P2P,
};

static const char *const state_name[] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
	"PRE_COPY_P2P",
};

/*
 * Random streams in mig_malformed_streams (each costs a function reset,
 * about 0.13 s under TCG; the parser itself is fuzzed on the host).
 */
#ifndef RANDOM_STREAMS
#define RANDOM_STREAMS 250
#endif

/* Short names of the admin commands the driver sends (<linux/virtio_pci.h>). */
#define OP_CREATE VIRTIO_ADMIN_CMD_RESOURCE_OBJ_CREATE
#define OP_DESTROY VIRTIO_ADMIN_CMD_RESOURCE_OBJ_DESTROY
#define OP_META VIRTIO_ADMIN_CMD_DEV_PARTS_METADATA_GET
#define OP_GET VIRTIO_ADMIN_CMD_DEV_PARTS_GET
#define OP_SET VIRTIO_ADMIN_CMD_DEV_PARTS_SET
#define OP_MODE VIRTIO_ADMIN_CMD_DEV_MODE_SET

/*
 * An independent model of what should happen, written from the vfio uAPI
 * and the upstream driver's documented behaviour (not from our Rust code):
 * the next hop of vfio_mig_get_next_state() with STOP_COPY | P2P |
 * PRE_COPY, and the admin commands of each arc.
 */
static const int next_hop[8][8] = {
	/* cur \ new:   ERROR  STOP     RUN      SC       RES      RP2P     PC       PCP2P */
	[S_STOP] =  { -1, S_STOP, S_RP2P, S_SC, S_RES, S_RP2P, S_RP2P, S_RP2P },
	[S_RUN] =   { -1, S_RP2P, S_RUN, S_RP2P, S_RP2P, S_RP2P, S_PC, S_RP2P },
	[S_SC] =    { -1, S_STOP, S_STOP, S_SC, S_STOP, S_STOP, -1, -1 },
	[S_RES] =   { -1, S_STOP, S_STOP, S_STOP, S_RES, S_STOP, S_STOP, S_STOP },
	[S_RP2P] =  { -1, S_STOP, S_RUN, S_STOP, S_STOP, S_RP2P, S_RUN, S_PCP2P },
	[S_PC] =    { -1, S_RUN, S_RUN, S_PCP2P, S_RUN, S_RUN, S_PC, S_PCP2P },
	[S_PCP2P] = { -1, S_RP2P, S_RP2P, S_SC, S_RP2P, S_RP2P, S_PC, S_PCP2P },
};

/* Commands of arc cur -> next; *live = session objects alive. */
static int arc_cmds(int cur, int next, int *live, unsigned int *out)
{
	int n = 0;

	if ((cur == S_RUN && next == S_RP2P) || (cur == S_PC && next == S_PCP2P) ||
	    (cur == S_RP2P && next == S_RUN) || (cur == S_PCP2P && next == S_PC)) {
		out[n++] = OP_MODE;
	} else if ((cur == S_STOP && next == S_SC) || (cur == S_RUN && next == S_PC) ||
		   (cur == S_RP2P && next == S_PCP2P)) {
		out[n++] = OP_CREATE;
		out[n++] = OP_META;
		out[n++] = OP_GET;
		*live = 1;
	} else if (cur == S_PCP2P && next == S_SC) {
		out[n++] = OP_META;
		out[n++] = OP_GET;
	} else if (cur == S_STOP && next == S_RES) {
		out[n++] = OP_CREATE;
		*live = 1;
	} else if ((cur == S_SC && next == S_STOP) || (cur == S_RES && next == S_STOP) ||
		   (cur == S_PC && next == S_RUN) || (cur == S_PCP2P && next == S_RP2P)) {
		if (*live)
			out[n++] = OP_DESTROY;
		*live = 0;
	}
	return n;
}

static bool creates_file(int cur, int next)
{
	return (cur == S_STOP && next == S_SC) || (cur == S_RUN && next == S_PC) ||
	       (cur == S_RP2P && next == S_PCP2P) || (cur == S_STOP && next == S_RES);
}

/*
 * Expected outcome of requesting `to` from `from` (live: objects alive in
 * `from`): 0 or -EINVAL, the commands, and whether a file is returned.
 */
static int expect_request(int from, int to, int live, unsigned int *cmds, int *ncmds, bool *file)
{
	int cur = from;

	*ncmds = 0;
	*file = false;
	if (to < 0 || to > 7 || to == S_ERROR)
		return -EINVAL;
	while (cur != to) {
		int next = next_hop[cur][to];

		if (next < 0)
			return -EINVAL;
		*ncmds += arc_cmds(cur, next, &live, cmds + *ncmds);
		*file = creates_file(cur, next);
		cur = next;
	}
	return 0;
}

static bool state_has_session(int s)
{
	return s == S_SC || s == S_RES || s == S_PC || s == S_PCP2P;
}

/* Two VFs (VF1, VF2 = members 1 and 2), bound by each test. */
FIXTURE(vfpair)
{
	char pf[32], vf[2][32];
	struct vfio_dev d[2];
	bool open[2];
};

FIXTURE_SETUP(vfpair)
{
	int i;

	if (!module_loaded(SIM_MODULE))
		ASSERT_EQ(0, sim_load(NULL));
	ASSERT_EQ(0, sim_ctl("clear"));
	ASSERT_EQ(0, find_sriov_pf(self->pf, sizeof(self->pf)));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, pf_vf_bdf(self->pf, i, self->vf[i], sizeof(self->vf[i])));
		self->open[i] = false;
		unbind_and_clear(self->vf[i]);
	}
	/*
	 * No device-wide read budget: the models below count every command
	 * (mig_device_load_bound tests the budget with its defaults).
	 */
	ASSERT_EQ(0, rs_reload("device_read_burst=0"));
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
}

FIXTURE_TEARDOWN(vfpair)
{
	for (int i = 0; i < 2; i++) {
		if (self->open[i])
			vfio_close(&self->d[i]);
		EXPECT_EQ(0, unbind_and_clear(self->vf[i]));
	}
	EXPECT_EQ(0, sim_stat("objects")) TH_LOG("device objects left behind");
	EXPECT_EQ(0, sim_ctl("clear"));
}

static int pair_bind(FIXTURE_DATA(vfpair) *self, int i, const char *driver)
{
	int ret;

	ret = bind_driver_override(self->vf[i], driver);
	if (ret)
		return ret;
	ret = vfio_open_cdev(self->vf[i], &self->d[i]);
	if (ret)
		return ret;
	self->open[i] = true;
	return 0;
}

static int state_hash(int member, uint64_t *hash)
{
	return sim_vf_state(member, hash, NULL, NULL, NULL);
}

/* Save from src (STOP_COPY) into *buf, reading in chunks of rchunk. */
static ssize_t save_stop_copy(int src_fd, uint8_t **buf, size_t *len, size_t rchunk)
{
	ssize_t n;
	int fd, ret;

	ret = mig_set_state(src_fd, S_SC, &fd);
	if (ret)
		return ret;
	if (fd < 0)
		return -EBADF;
	*len = 0;
	n = mig_read_all(fd, buf, len, rchunk, 0);
	ret = mig_set_state(src_fd, S_RUN, NULL);
	close(fd);
	return n < 0 ? n : ret ? ret : n;
}

/* Load buf into dst (RESUMING), writing in chunks of wchunk, then RUNNING. */
static int load_stream(int dst_fd, const uint8_t *buf, size_t len, size_t wchunk)
{
	int fd, ret, ret2;

	ret = mig_set_state(dst_fd, S_RES, &fd);
	if (ret)
		return ret;
	if (fd < 0)
		return -EBADF;
	ret = mig_write_all(fd, buf, len, wchunk);
	ret2 = mig_set_state(dst_fd, S_RUN, NULL);
	close(fd);
	return ret ? ret : ret2;
}

/* Back to RUNNING by any means: a state request, else a reset. */
static int back_to_running(int dev_fd)
{
	if (mig_get_state(dev_fd) == S_RUN)
		return 0;
	if (mig_set_state(dev_fd, S_RUN, NULL) == 0)
		return 0;
	if (ioctl(dev_fd, VFIO_DEVICE_RESET))
		return -errno;
	return mig_get_state(dev_fd) == S_RUN ? 0 : -EIO;
}

/* One full VF1 -> VF2 migration with a state check. */
static void migrate_and_check(struct __test_metadata *_metadata, FIXTURE_DATA(vfpair) *self,
			      size_t rchunk, size_t wchunk)
{
	uint64_t src, dst;
	uint8_t *buf = NULL;
	size_t len = 0;

	ASSERT_GT(save_stop_copy(self->d[0].device_fd, &buf, &len, rchunk), 16);
	ASSERT_EQ(0, state_hash(1, &src));
	ASSERT_EQ(0, load_stream(self->d[1].device_fd, buf, len, wchunk));
	ASSERT_EQ(0, state_hash(2, &dst));
	EXPECT_EQ(src, dst) TH_LOG("chunks %zu/%zu: destination state differs", rchunk, wchunk);
	free(buf);
}

TEST_F_TIMEOUT(vfpair, mig_stop_copy_roundtrip, 120)
{
	static const size_t chunks[] = { 1, 7, 4096, 1 << 20 };
	uint64_t src, dst_default, dst, size;
	uint8_t *buf = NULL;
	size_t len = 0;
	int fd, stopped, i;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, state_hash(2, &dst_default));

	/* One migration in detail: the source stops, the data size is exact. */
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_STOP, NULL));
	ASSERT_EQ(0, mig_data_size(self->d[0].device_fd, &size));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_SC, &fd));
	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, sim_vf_state(1, &src, NULL, &stopped, NULL));
	EXPECT_TRUE(stopped);
	EXPECT_NE(src, dst_default) TH_LOG("VF defaults must differ");
	ASSERT_GT(mig_read_all(fd, &buf, &len, 4096, 0), 16);
	EXPECT_EQ(size, len) TH_LOG("MIG_DATA_SIZE counts the record header");
	/* Permanent end of stream. */
	EXPECT_EQ(0, read(fd, buf, 1));
	EXPECT_EQ(0, load_stream(self->d[1].device_fd, buf, len, 4096));
	ASSERT_EQ(0, sim_vf_state(2, &dst, NULL, &stopped, NULL));
	EXPECT_EQ(src, dst);
	EXPECT_FALSE(stopped);
	/* STOP_COPY -> RUNNING ends the session: the fd is dead. */
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_RUN, NULL));
	EXPECT_EQ(-1, read(fd, buf, 1));
	EXPECT_EQ(ENODEV, errno);
	close(fd);
	free(buf);

	/* Every chunk size, on both sides. */
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, sim_ctl("size 1 %d", 3000 + 1000 * i));
		migrate_and_check(_metadata, self, chunks[i], chunks[3 - i]);
		migrate_and_check(_metadata, self, chunks[i], chunks[i]);
	}
	ASSERT_EQ(0, sim_ctl("size 1 4096"));
	ASSERT_EQ(0, sim_ctl("size 2 4096"));
}

static void all_arcs(struct __test_metadata *_metadata, FIXTURE_DATA(vfpair) *self,
		     const char *driver)
{
	static const int targets[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 99 };
	unsigned int want[16], got[64];
	int from, t, checked = 0;

	ASSERT_EQ(0, pair_bind(self, 0, driver));
	for (from = S_STOP; from <= S_PCP2P; from++) {
		for (t = 0; t < (int)(sizeof(targets) / sizeof(targets[0])); t++) {
			int to = targets[t], fd0 = -1, fd1 = -1, ret, exp, nwant, ngot, i;
			int dev = self->d[0].device_fd;
			bool file;

			ASSERT_EQ(0, back_to_running(dev));
			ASSERT_EQ(0, mig_set_state(dev, from, &fd0)) TH_LOG("reach %s", state_name[from]);
			ASSERT_EQ(0, sim_ctl("clear"));
			exp = expect_request(from, to, state_has_session(from), want, &nwant, &file);
			ret = mig_set_state(dev, to, &fd1);
			EXPECT_EQ(exp, ret) TH_LOG("%s -> %d", state_name[from], to);
			EXPECT_EQ(ret ? from : to, mig_get_state(dev)) TH_LOG("%s -> %d", state_name[from], to);
			EXPECT_EQ(file, fd1 >= 0) TH_LOG("%s -> %d: data fd", state_name[from], to);
			ngot = sim_trace_ops(1, got, 64);
			EXPECT_EQ(nwant, ngot) TH_LOG("%s -> %d: command count", state_name[from], to);
			for (i = 0; i < nwant && i < ngot; i++) {
				EXPECT_EQ(want[i], got[i])
					TH_LOG("%s -> %d: command %d", state_name[from], to, i);
			}
			if (fd1 >= 0)
				close(fd1);
			if (fd0 >= 0)
				close(fd0);
			checked++;
		}
	}
	ASSERT_EQ(0, back_to_running(self->d[0].device_fd));
	TH_LOG("%s: %d requests checked", driver, checked);
}

/*
 * Tests run against each driver: ours, and upstream's C driver (there the
 * independent model is checked against upstream's behaviour).
 */
FIXTURE(drv)
{
	FIXTURE_DATA(vfpair) p;
};

FIXTURE_VARIANT(drv)
{
	const char *driver;
	bool ours;
};

FIXTURE_VARIANT_ADD(drv, rust)
{
	.driver = VIRTIO_RS_DRIVER,
	.ours = true,
};

FIXTURE_VARIANT_ADD(drv, upstream_c)
{
	.driver = VIRTIO_C_DRIVER,
	.ours = false,
};

FIXTURE_SETUP(drv)
{
	vfpair_setup(_metadata, &self->p, NULL);
}

FIXTURE_TEARDOWN(drv)
{
	vfpair_teardown(_metadata, &self->p, NULL);
}

TEST_F_TIMEOUT(drv, mig_all_arcs, 120)
{
	all_arcs(_metadata, &self->p, variant->driver);
}

TEST_F_TIMEOUT(vfpair, mig_reset_during_migration, 120)
{
	static const int states[] = { S_STOP, S_RP2P, S_SC, S_RES, S_PC, S_PCP2P };
	uint8_t byte = 0, hdr[16] = { 100 };
	int i, fd, stopped;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	for (i = 0; i < 6; i++) {
		int s = states[i], dev = self->d[s == S_RES].device_fd, member = 1 + (s == S_RES);

		ASSERT_EQ(0, mig_set_state(dev, s, &fd)) TH_LOG("%s", state_name[s]);
		if (s == S_RES)
			ASSERT_EQ(16, write(fd, hdr, 16));
		ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET)) TH_LOG("%s", state_name[s]);
		EXPECT_EQ(S_RUN, mig_get_state(dev)) TH_LOG("%s", state_name[s]);
		EXPECT_EQ(0, sim_stat("objects")) TH_LOG("%s", state_name[s]);
		ASSERT_EQ(0, sim_vf_state(member, NULL, NULL, &stopped, NULL));
		EXPECT_FALSE(stopped) TH_LOG("%s: the VF runs after the reset", state_name[s]);
		if (fd >= 0) {
			ssize_t r = s == S_RES ? write(fd, &byte, 1) : read(fd, &byte, 1);

			EXPECT_EQ(-1, r) TH_LOG("%s", state_name[s]);
			EXPECT_EQ(ENODEV, errno) TH_LOG("%s", state_name[s]);
			close(fd);
		}
		/* Requesting the state again starts from RUNNING. */
		EXPECT_EQ(0, mig_set_state(dev, s, &fd));
		if (fd >= 0)
			close(fd);
		ASSERT_EQ(0, back_to_running(dev));
	}
	migrate_and_check(_metadata, self, 4096, 4096);
}

TEST_F_TIMEOUT(vfpair, mig_close_and_unbind_with_open_fd, 120)
{
	uint8_t b[32] = { 0 };
	int sfd, rfd, pfd, i;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_SC, &sfd));
	ASSERT_EQ(10, read(sfd, b, 10));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RES, &rfd));
	ASSERT_EQ(20, write(rfd, b, 20));
	EXPECT_EQ(2, sim_stat("objects"));

	/* Close the devices: the sessions end under the state lock. */
	for (i = 0; i < 2; i++) {
		vfio_close(&self->d[i]);
		self->open[i] = false;
	}
	EXPECT_EQ(0, sim_stat("objects"));
	EXPECT_EQ(-1, read(sfd, b, 1));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-1, write(rfd, b, 1));
	EXPECT_EQ(ENODEV, errno);

	/* Unbind with the migration fds still open: the fds keep the device
	 * object alive and stay dead; the module cannot go away under them. */
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, unbind_and_clear(self->vf[i]));
	EXPECT_EQ(-1, read(sfd, b, 1));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-1, write(rfd, b, 1));
	EXPECT_EQ(ENODEV, errno);
	{
		struct vfio_precopy_info info = { .argsz = sizeof(info) };

		EXPECT_EQ(-1, ioctl(sfd, VFIO_MIG_GET_PRECOPY_INFO, &info));
		EXPECT_TRUE(errno == EINVAL || errno == ENODEV) TH_LOG("errno %d", errno);
	}
	EXPECT_NE(0, modprobe_remove(VIRTIO_RS_DRIVER)) TH_LOG("unloaded under an open fd");
	close(sfd);
	close(rfd);

	/* Everything works again afterwards. */
	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	migrate_and_check(_metadata, self, 4096, 4096);
	/* The pre-copy fd variant: close the device while pre-copy runs. */
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_PC, &pfd));
	vfio_close(&self->d[0]);
	self->open[0] = false;
	EXPECT_EQ(-1, read(pfd, b, 1));
	EXPECT_EQ(ENODEV, errno);
	close(pfd);
	EXPECT_EQ(0, sim_stat("objects"));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put_header(uint8_t *h, uint64_t size, uint32_t flags, uint32_t tag)
{
	memcpy(h, &size, 8);
	memcpy(h + 8, &flags, 4);
	memcpy(h + 12, &tag, 4);
}

/*
 * Resume `data` on VF2: the write result must be want_write, leaving
 * RESUMING must give want_stop. Afterwards the VF is RUNNING again (by a
 * reset when leaving RESUMING failed) and holds no object.
 */
static void resume_case(struct __test_metadata *_metadata, FIXTURE_DATA(vfpair) *self,
			const char *what, const uint8_t *data, size_t len, size_t chunk,
			int want_write, int want_stop)
{
	int dev = self->d[1].device_fd, fd, ret;

	ASSERT_EQ(0, mig_set_state(dev, S_RES, &fd)) TH_LOG("%s", what);
	ret = mig_write_all(fd, data, len, chunk);
	EXPECT_EQ(want_write, ret) TH_LOG("%s: write", what);
	ret = mig_set_state(dev, S_STOP, NULL);
	EXPECT_EQ(want_stop, ret) TH_LOG("%s: RESUMING -> STOP", what);
	if (ret) {
		EXPECT_EQ(S_RES, mig_get_state(dev)) TH_LOG("%s", what);
		ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
	}
	ASSERT_EQ(0, back_to_running(dev));
	close(fd);
	EXPECT_EQ(0, sim_stat("objects")) TH_LOG("%s", what);
}

TEST_F_TIMEOUT(vfpair, mig_malformed_streams, 300)
{
	uint8_t *good = NULL, *s, hdr[16];
	uint64_t src, dst;
	size_t glen = 0, i;
	int failures = 0, n;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	ASSERT_GT(save_stop_copy(self->d[0].device_fd, &good, &glen, 65536), 16);
	ASSERT_EQ(0, state_hash(1, &src));
	s = malloc(glen + 4096);
	ASSERT_NE(NULL, s);

	resume_case(_metadata, self, "truncated header", good, 10, 3, 0, -EINVAL);
	resume_case(_metadata, self, "truncated payload", good, 16 + 50, 7, 0, -EINVAL);
	put_header(hdr, 1ull << 32, 0, 0);
	resume_case(_metadata, self, "size 2^32", hdr, 16, 16, -ENOMEM, -ENOMEM);
	put_header(hdr, (1ull << 30) + 1, 0, 0);
	resume_case(_metadata, self, "size above the limit", hdr, 16, 16, -EFBIG, -EFBIG);
	put_header(hdr, 8, 0, 7);
	resume_case(_metadata, self, "unknown mandatory tag", hdr, 16, 16, -EOPNOTSUPP, -EOPNOTSUPP);

	/* Unknown optional record (skipped), then the real one. */
	put_header(s, 1000, 1, 7);
	memset(s + 16, 0xa5, 1000);
	memcpy(s + 1016, good, glen);
	resume_case(_metadata, self, "unknown optional tag", s, 1016 + glen, 333, 0, 0);
	ASSERT_EQ(0, state_hash(2, &dst));
	EXPECT_EQ(src, dst) TH_LOG("the optional record must be skipped");

	/* A zero-length device-data record loads nothing. */
	ASSERT_EQ(0, ioctl(self->d[1].device_fd, VFIO_DEVICE_RESET));
	put_header(s, 0, 0, 0);
	memcpy(s + 16, good, glen);
	resume_case(_metadata, self, "zero-length record", s, 16 + glen, 4096, 0, 0);
	ASSERT_EQ(0, state_hash(2, &dst));
	EXPECT_EQ(src, dst);

	/* Garbage device parts: the device rejects them, the error sticks. */
	put_header(s, 64, 0, 0);
	for (i = 0; i < 64; i++)
		s[16 + i] = (uint8_t)(i * 37 + 11);
	resume_case(_metadata, self, "garbage parts", s, 80, 80, -EINVAL, -EINVAL);

	/* Random streams: each must fail somewhere, none may hurt. */
	srand(42);
	for (n = 0; n < RANDOM_STREAMS; n++) {
		int dev = self->d[1].device_fd, fd, w, st;
		size_t len = 1 + rand() % 200;

		for (i = 0; i < len; i++)
			s[i] = rand();
		if (n % 2 == 0) {
			/* A plausible header of a small device-data record. */
			put_header(s, 1 + rand() % 300, rand() % 2, 0);
		}
		ASSERT_EQ(0, mig_set_state(dev, S_RES, &fd));
		w = mig_write_all(fd, s, len, 1 + rand() % 64);
		st = mig_set_state(dev, S_STOP, NULL);
		if (w || st) {
			failures++;
			if (st)
				ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
		}
		ASSERT_EQ(0, back_to_running(dev));
		close(fd);
	}
	TH_LOG("%d random streams, %d rejected", RANDOM_STREAMS, failures);
	EXPECT_EQ(RANDOM_STREAMS, failures) TH_LOG("a random stream was accepted");
	EXPECT_EQ(0, sim_stat("objects"));

	/* And the device still migrates. */
	migrate_and_check(_metadata, self, 4096, 4096);
	free(s);
	free(good);
}

/* The admin commands of the requests that send any, with their arcs. */
struct fault_case {
	int from, to;
	unsigned int cmds[8];
	int n;
};

/*
 * The state a request from -> to stops in when its command number `fail`
 * (0-based) fails: the end of the last arc completed before the arc that
 * sends that command.
 */
static int state_after_failure(int from, int to, int fail)
{
	int cur = from, live = state_has_session(from), n = 0;
	unsigned int cmds[8];

	while (cur != to) {
		int next = next_hop[cur][to];
		int k = arc_cmds(cur, next, &live, cmds);

		if (fail < n + k)
			return cur;
		n += k;
		cur = next;
	}
	return cur;
}

static bool device_runs(int s)
{
	return s == S_RUN || s == S_PC;
}

TEST_F_TIMEOUT(vfpair, mig_fault_injection, 300)
{
	static const struct fault_case cases[] = {
		{ S_RUN, S_SC, { OP_MODE, OP_CREATE, OP_META, OP_GET }, 4 },
		{ S_RUN, S_PC, { OP_CREATE, OP_META, OP_GET }, 3 },
		{ S_PC, S_SC, { OP_MODE, OP_META, OP_GET }, 3 },
		{ S_SC, S_RUN, { OP_DESTROY, OP_MODE }, 2 },
		{ S_RUN, S_RES, { OP_MODE, OP_CREATE }, 2 },
		{ S_RES, S_RUN, { OP_DESTROY, OP_MODE }, 2 },
		{ S_PC, S_RUN, { OP_DESTROY }, 1 },
		{ S_RP2P, S_PCP2P, { OP_CREATE, OP_META, OP_GET }, 3 },
		{ S_PCP2P, S_PC, { OP_MODE }, 1 },
		{ S_PCP2P, S_RP2P, { OP_DESTROY }, 1 },
	};
	int c, i, total = 0;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	for (c = 0; c < (int)(sizeof(cases) / sizeof(cases[0])); c++) {
		const struct fault_case *fc = &cases[c];

		for (i = 0; i < fc->n; i++) {
			int dev = self->d[0].device_fd, fd0 = -1, fd1 = -1, ret, nth = 0, j, reached;
			int stopped;
			unsigned int op = fc->cmds[i];
			const char *f = state_name[fc->from], *t = state_name[fc->to];

			for (j = 0; j <= i; j++)
				nth += fc->cmds[j] == op;
			ASSERT_EQ(0, back_to_running(dev));
			ASSERT_EQ(0, mig_set_state(dev, fc->from, &fd0));
			ASSERT_EQ(0, sim_ctl("fail %#x %d 22", op, nth));
			ret = mig_set_state(dev, fc->to, &fd1);
			/* Ending a session cannot fail: the driver retries the
			 * destroy, so the request goes through. */
			reached = op == OP_DESTROY ? fc->to : state_after_failure(fc->from, fc->to, i);
			if (op == OP_DESTROY) {
				EXPECT_EQ(0, ret) TH_LOG("%s -> %s, destroy fails", f, t);
			} else {
				EXPECT_EQ(-EINVAL, ret) TH_LOG("%s -> %s, command %d (%#x) fails", f, t, i, op);
				EXPECT_EQ(-1, fd1);
			}
			EXPECT_EQ(0, sim_stat("faults_pending"));
			/* The state is the last arc completed, and the device's
			 * mode agrees with it. */
			EXPECT_EQ(reached, mig_get_state(dev)) TH_LOG("%s -> %s, command %d", f, t, i);
			ASSERT_EQ(0, sim_vf_state(1, NULL, NULL, &stopped, NULL));
			EXPECT_EQ(!device_runs(reached), stopped)
				TH_LOG("%s -> %s, command %d: mode vs %s", f, t, i, state_name[reached]);
			EXPECT_EQ(state_has_session(reached) ? 1 : 0, sim_stat("objects"))
				TH_LOG("%s -> %s, command %d: objects in %s", f, t, i, state_name[reached]);
			/* The same request again succeeds. */
			if (ret) {
				ret = mig_set_state(dev, fc->to, &fd1);
				EXPECT_EQ(0, ret) TH_LOG("%s -> %s: retry after command %d failed", f, t, i);
				EXPECT_EQ(fc->to, mig_get_state(dev));
				ASSERT_EQ(0, sim_vf_state(1, NULL, NULL, &stopped, NULL));
				EXPECT_EQ(!device_runs(fc->to), stopped);
			}
			if (fd1 >= 0)
				close(fd1);
			/* The device can be reset; then nothing is left. */
			ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
			EXPECT_EQ(S_RUN, mig_get_state(dev));
			if (fd0 >= 0)
				close(fd0);
			EXPECT_EQ(0, sim_stat("objects")) TH_LOG("%s -> %s, command %d", f, t, i);
			total++;
		}
	}
	/* A device status that is no errno (the PF layer negates any 16-bit
	 * status): the driver reports EIO (upstream would hand -5000 to the
	 * vfio core as a file pointer). */
	ASSERT_EQ(0, sim_ctl("fail %#x 1 5000", OP_MODE));
	EXPECT_EQ(-EIO, mig_set_state(self->d[0].device_fd, S_STOP, NULL));
	EXPECT_EQ(S_RUN, mig_get_state(self->d[0].device_fd));
	total++;

	/* The context grows between METADATA_GET and DEV_PARTS_GET: the device
	 * answers ENOMEM (upstream fails the migration there); the driver asks
	 * for the size again and the migration succeeds with the grown state. */
	ASSERT_EQ(0, sim_ctl("clear"));
	ASSERT_EQ(0, sim_ctl("resize 1 20000"));
	migrate_and_check(_metadata, self, 65536, 65536);
	EXPECT_EQ(2, sim_trace_count(OP_META)) TH_LOG("size asked again after ENOMEM");
	EXPECT_EQ(0, sim_stat("faults_pending"));
	ASSERT_EQ(0, sim_ctl("size 1 4096"));
	ASSERT_EQ(0, sim_ctl("size 2 4096"));
	total++;

	/* MIG_DATA_SIZE without a session: create, size, destroy. (A reset
	 * forgets the size the migration above saw.) */
	for (i = 0; i < 2; i++) {
		uint64_t size;

		ASSERT_EQ(0, ioctl(self->d[0].device_fd, VFIO_DEVICE_RESET));
		ASSERT_EQ(0, sim_ctl("fail %#x 1 22", i ? OP_META : OP_CREATE));
		EXPECT_EQ(-EINVAL, mig_data_size(self->d[0].device_fd, &size));
		EXPECT_EQ(0, sim_stat("objects"));
		total++;
	}
	/* DEV_PARTS_SET fails while resuming: the write reports it, the error
	 * sticks, leaving RESUMING fails, a reset recovers. */
	{
		uint8_t *buf = NULL;
		size_t len = 0;
		int rfd, dev = self->d[1].device_fd;

		ASSERT_GT(save_stop_copy(self->d[0].device_fd, &buf, &len, 65536), 16);
		ASSERT_EQ(0, mig_set_state(dev, S_RES, &rfd));
		ASSERT_EQ(0, sim_ctl("fail %#x 1 22", OP_SET));
		EXPECT_EQ(-EINVAL, mig_write_all(rfd, buf, len, 4096));
		EXPECT_EQ(-EINVAL, mig_write_all(rfd, buf, 1, 1));
		EXPECT_EQ(-EINVAL, mig_set_state(dev, S_STOP, NULL));
		ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
		EXPECT_EQ(0, sim_stat("objects"));
		close(rfd);
		free(buf);
		total++;
	}
	TH_LOG("%d injected failures", total);
	migrate_and_check(_metadata, self, 65536, 65536);
}

static void cross(struct __test_metadata *_metadata, FIXTURE_DATA(vfpair) *self,
		  const char *src_drv, const char *dst_drv)
{
	uint64_t src, dst, dflt;
	uint8_t *buf = NULL;
	size_t len = 0;
	int fd, rfd;

	ASSERT_EQ(0, pair_bind(self, 0, src_drv));
	ASSERT_EQ(0, pair_bind(self, 1, dst_drv));
	ASSERT_EQ(0, state_hash(2, &dflt));
	/* With pre-copy, so the stream has several records. */
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_PC, &fd));
	ASSERT_GT(mig_read_all(fd, &buf, &len, 4096, 1), 16);
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_SC, NULL));
	ASSERT_GE(mig_read_all(fd, &buf, &len, 4096, 0), 0);
	ASSERT_EQ(0, state_hash(1, &src));
	EXPECT_NE(src, dflt);
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RES, &rfd));
	ASSERT_EQ(0, mig_write_all(rfd, buf, len, 1000));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RUN, NULL));
	ASSERT_EQ(0, state_hash(2, &dst));
	EXPECT_EQ(src, dst) TH_LOG("%s -> %s", src_drv, dst_drv);
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_RUN, NULL));
	close(rfd);
	close(fd);
	free(buf);
}

/* Streams crossing between the drivers, in both directions. */
FIXTURE(crossing)
{
	FIXTURE_DATA(vfpair) p;
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
	vfpair_setup(_metadata, &self->p, NULL);
}

FIXTURE_TEARDOWN(crossing)
{
	vfpair_teardown(_metadata, &self->p, NULL);
}

TEST_F(crossing, mig_cross)
{
	cross(_metadata, &self->p, variant->src, variant->dst);
}

/*
 * Concurrency, in rounds: in each round five threads run a few operations
 * at once (state requests with reads of the returned fds on VF1, a reader
 * sharing VF1's latest saving fd, resets and queries of both VFs, resume
 * sessions on VF2), each operation's result must be one its class allows;
 * between rounds, with everything quiet, the driver's state and the
 * device's mode and objects must agree, without any repair in between.
 */
#define CONC_THREADS 5
#define CONC_OPS 4

struct conc {
	FIXTURE_DATA(vfpair) *self;
	pthread_barrier_t start, done;
	pthread_mutex_t lock;
	volatile int stop;
	int shared_fd;		/* dup of VF1's latest saving fd, or -1 */
	unsigned int seed[CONC_THREADS];
	long ops[CONC_THREADS];
	char bad[CONC_THREADS][160];	/* first unexpected result */
};

#define CONC_BAD(c, i, ...)						\
	do {								\
		if (!(c)->bad[i][0])					\
			snprintf((c)->bad[i], sizeof((c)->bad[i]), __VA_ARGS__); \
	} while (0)

static void conc_share(struct conc *c, int fd)
{
	pthread_mutex_lock(&c->lock);
	if (c->shared_fd >= 0)
		close(c->shared_fd);
	c->shared_fd = fd >= 0 ? dup(fd) : -1;
	pthread_mutex_unlock(&c->lock);
}

/* A read from a saving fd: data, EOF, ENOMSG (pre-copy) or ENODEV (ended). */
static bool read_ok(ssize_t r, int err)
{
	return r >= 0 || err == ENOMSG || err == ENODEV;
}

static void conc_state_op(struct conc *c, int *fd)
{
	static const int targets[] = { S_SC, S_RUN, S_PC, S_PCP2P, S_STOP, S_RP2P };
	int to = targets[rand_r(&c->seed[0]) % 6], nfd = -1, ret;
	uint8_t b[512];
	ssize_t r;

	/* No reset or other request can interleave inside a request: every
	 * request succeeds, except the pre-copy states from STOP_COPY, which
	 * the uAPI does not reach (EINVAL). */
	ret = mig_set_state(c->self->d[0].device_fd, to, &nfd);
	if (ret && !(ret == -EINVAL && (to == S_PC || to == S_PCP2P)))
		CONC_BAD(c, 0, "request %s: %d", state_name[to], ret);
	if (nfd >= 0) {
		if (*fd >= 0)
			close(*fd);
		*fd = nfd;
		conc_share(c, nfd);
	}
	if (*fd >= 0) {
		r = read(*fd, b, sizeof(b));
		if (!read_ok(r, errno))
			CONC_BAD(c, 0, "read: %zd errno %d", r, errno);
	}
}

static void conc_reader_op(struct conc *c)
{
	uint64_t a, b;
	uint8_t buf[97];
	ssize_t r;
	int fd, ret;

	pthread_mutex_lock(&c->lock);
	fd = c->shared_fd >= 0 ? dup(c->shared_fd) : -1;
	pthread_mutex_unlock(&c->lock);
	if (fd < 0)
		return;
	r = read(fd, buf, sizeof(buf));
	if (!read_ok(r, errno))
		CONC_BAD(c, 1, "read: %zd errno %d", r, errno);
	/* Outside PRE_COPY: EINVAL; a session that ended: ENODEV. */
	ret = mig_precopy_info(fd, &a, &b);
	if (ret && ret != -EINVAL && ret != -ENODEV)
		CONC_BAD(c, 1, "precopy info: %d", ret);
	close(fd);
}

static void conc_reset_op(struct conc *c)
{
	int i = rand_r(&c->seed[2]) % 2;

	if (ioctl(c->self->d[i].device_fd, VFIO_DEVICE_RESET))
		CONC_BAD(c, 2, "reset VF%d: errno %d", i + 1, errno);
	usleep(1000 * (rand_r(&c->seed[2]) % 10));
}

static void conc_query_op(struct conc *c)
{
	int i = rand_r(&c->seed[3]) % 2, s;
	uint64_t v;

	s = mig_get_state(c->self->d[i].device_fd);
	if (s < S_STOP || s > S_PCP2P)
		CONC_BAD(c, 3, "GET_STATE VF%d: %d", i + 1, s);
	if (mig_data_size(c->self->d[i].device_fd, &v))
		CONC_BAD(c, 3, "MIG_DATA_SIZE VF%d failed", i + 1);
}

static void conc_resume_op(struct conc *c)
{
	int dev = c->self->d[1].device_fd, fd = -1, ret, i;
	uint8_t buf[64];
	ssize_t w;

	memset(buf, 0, sizeof(buf));
	put_header(buf, 4000, 0, 0);
	ret = mig_set_state(dev, S_RES, &fd);
	if (ret)
		CONC_BAD(c, 4, "request RESUMING: %d", ret);
	for (i = 0; fd >= 0 && i < 4; i++) {
		/* Accepted, or the session ended under a reset. */
		w = write(fd, buf, sizeof(buf));
		if (w != (ssize_t)sizeof(buf) && !(w < 0 && errno == ENODEV))
			CONC_BAD(c, 4, "write: %zd errno %d", w, errno);
	}
	/* The record is incomplete: leaving RESUMING fails (EINVAL), unless a
	 * reset ended the session first (then the state is RUNNING). */
	ret = mig_set_state(dev, S_RUN, NULL);
	if (ret && ret != -EINVAL)
		CONC_BAD(c, 4, "request RUNNING: %d", ret);
	if (ret && ioctl(dev, VFIO_DEVICE_RESET))
		CONC_BAD(c, 4, "reset: errno %d", errno);
	if (fd >= 0)
		close(fd);
}

struct conc_arg {
	struct conc *c;
	int id;
};

static void *conc_thread(void *p)
{
	struct conc_arg *a = p;
	struct conc *c = a->c;
	int fd = -1, i;

	for (;;) {
		pthread_barrier_wait(&c->start);
		if (c->stop)
			break;
		for (i = 0; i < CONC_OPS; i++) {
			switch (a->id) {
			case 0: conc_state_op(c, &fd); break;
			case 1: conc_reader_op(c); break;
			case 2: conc_reset_op(c); break;
			case 3: conc_query_op(c); break;
			case 4: conc_resume_op(c); break;
			}
			c->ops[a->id]++;
		}
		pthread_barrier_wait(&c->done);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

TEST_F_TIMEOUT(vfpair, mig_concurrency, 180)
{
	struct conc c = { .self = self, .shared_fd = -1 };
	struct conc_arg args[CONC_THREADS];
	pthread_t th[CONC_THREADS];
	double t0 = 0;
	int i, rounds = 0, bad = 0;
	struct timespec ts;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	pthread_barrier_init(&c.start, NULL, CONC_THREADS + 1);
	pthread_barrier_init(&c.done, NULL, CONC_THREADS + 1);
	pthread_mutex_init(&c.lock, NULL);
	for (i = 0; i < CONC_THREADS; i++) {
		c.seed[i] = 1234 + i;
		args[i] = (struct conc_arg){ &c, i };
		ASSERT_EQ(0, pthread_create(&th[i], NULL, conc_thread, &args[i]));
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = ts.tv_sec + ts.tv_nsec / 1e9;
	for (;;) {
		double t;
		int d;

		pthread_barrier_wait(&c.start);
		pthread_barrier_wait(&c.done);
		rounds++;
		/* Quiescent: state, device mode and objects must agree. */
		for (d = 0; d < 2; d++) {
			int s = mig_get_state(self->d[d].device_fd), stopped = -1;

			ASSERT_EQ(0, sim_vf_state(d + 1, NULL, NULL, &stopped, NULL));
			if (s < S_STOP || s > S_PCP2P || stopped != !device_runs(s)) {
				TH_LOG("round %d: VF%d state %d, device %s", rounds, d + 1, s,
				       stopped ? "stopped" : "running");
				bad++;
			}
		}
		{
			int s0 = mig_get_state(self->d[0].device_fd);
			int s1 = mig_get_state(self->d[1].device_fd);
			long want = state_has_session(s0) + state_has_session(s1);

			if (sim_stat("objects") != want) {
				TH_LOG("round %d: %ld objects, states %d/%d", rounds,
				       sim_stat("objects"), s0, s1);
				bad++;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t = ts.tv_sec + ts.tv_nsec / 1e9;
		if (bad || t - t0 > 8)
			break;
	}
	c.stop = 1;
	pthread_barrier_wait(&c.start);
	for (i = 0; i < CONC_THREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < CONC_THREADS; i++) {
		EXPECT_EQ(0, c.bad[i][0]) TH_LOG("thread %d: %s", i, c.bad[i]);
	}
	EXPECT_EQ(0, bad) TH_LOG("state and device disagreed");
	TH_LOG("%d rounds: state requests %ld, reader %ld, resets %ld, queries %ld, "
	       "resume sessions %ld", rounds, c.ops[0], c.ops[1], c.ops[2], c.ops[3], c.ops[4]);
	if (c.shared_fd >= 0)
		close(c.shared_fd);
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, back_to_running(self->d[i].device_fd));
	EXPECT_EQ(0, sim_stat("objects"));
	migrate_and_check(_metadata, self, 4096, 4096);
}

/* ---- A reset while a command holds the state mutex ---- */

struct reset_after {
	int dev_fd, ms, ret;
};

static void *reset_thread(void *p)
{
	struct reset_after *r = p;

	/* Wait until the delayed command is in flight, then reset. */
	for (int i = 0; i < 500 && sim_stat("delaying") < 1; i++)
		usleep(2000);
	usleep(r->ms * 1000);
	r->ret = ioctl(r->dev_fd, VFIO_DEVICE_RESET) ? -errno : 0;
	return NULL;
}

/*
 * Request `to` on dev while the first `op` command is delayed by delay_ms
 * in the simulator, with a VFIO_DEVICE_RESET arriving reset_ms after the
 * command started. Returns the request's result; *fd the returned fd.
 */
static int request_with_reset(int dev, int to, unsigned int op, int delay_ms, int reset_ms,
			      int *fd, int *reset_ret)
{
	struct reset_after r = { dev, reset_ms, -1 };
	pthread_t th;
	int ret;

	*fd = -1;
	if (sim_ctl("delay %#x 1 %d", op, delay_ms))
		return -EIO;
	if (pthread_create(&th, NULL, reset_thread, &r))
		return -EAGAIN;
	ret = mig_set_state(dev, to, fd);
	pthread_join(th, NULL);
	*reset_ret = r.ret;
	return ret;
}

/* A dead session's fd: ENODEV for its direction. */
static bool fd_dead(int fd, bool resuming)
{
	uint8_t b = 0;
	ssize_t r = resuming ? write(fd, &b, 1) : read(fd, &b, 1);

	return r == -1 && errno == ENODEV;
}

TEST_F_TIMEOUT(vfpair, mig_deferred_reset, 180)
{
	static const struct {
		int from, to;
		unsigned int op;
	} arcs[] = {
		{ S_RUN, S_RP2P, OP_MODE },	{ S_RP2P, S_RUN, OP_MODE },
		{ S_PC, S_PCP2P, OP_MODE },	{ S_PCP2P, S_PC, OP_MODE },
		{ S_STOP, S_SC, OP_CREATE },	{ S_RUN, S_PC, OP_CREATE },
		{ S_RP2P, S_PCP2P, OP_CREATE }, { S_PCP2P, S_SC, OP_META },
		{ S_STOP, S_RES, OP_CREATE },	{ S_SC, S_STOP, OP_DESTROY },
		{ S_RES, S_STOP, OP_DESTROY },	{ S_PC, S_RUN, OP_DESTROY },
		{ S_PCP2P, S_RP2P, OP_DESTROY },
	};
	int i;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	for (i = 0; i < (int)(sizeof(arcs) / sizeof(arcs[0])); i++) {
		int dev = self->d[0].device_fd, fd0 = -1, fd1 = -1, rr, ret, stopped;
		const char *f = state_name[arcs[i].from], *t = state_name[arcs[i].to];
		long deferred = drv_stat(self->vf[0], "resets_deferred");

		ASSERT_EQ(0, back_to_running(dev));
		ASSERT_EQ(0, mig_set_state(dev, arcs[i].from, &fd0)) TH_LOG("reach %s", f);
		ret = request_with_reset(dev, arcs[i].to, arcs[i].op, 600, 150, &fd1, &rr);
		EXPECT_EQ(0, rr) TH_LOG("%s -> %s: reset", f, t);
		/* The request completes; the reset is applied when it unlocks. */
		EXPECT_EQ(0, ret) TH_LOG("%s -> %s", f, t);
		EXPECT_EQ(deferred + 1, drv_stat(self->vf[0], "resets_deferred"))
			TH_LOG("%s -> %s: the reset was deferred to the mutex holder", f, t);
		EXPECT_EQ(S_RUN, mig_get_state(dev)) TH_LOG("%s -> %s", f, t);
		ASSERT_EQ(0, sim_vf_state(1, NULL, NULL, &stopped, NULL));
		EXPECT_FALSE(stopped) TH_LOG("%s -> %s: the device runs", f, t);
		EXPECT_EQ(0, sim_stat("objects")) TH_LOG("%s -> %s", f, t);
		if (fd0 >= 0)
			EXPECT_TRUE(fd_dead(fd0, arcs[i].from == S_RES)) TH_LOG("%s -> %s: old fd", f, t);
		if (fd1 >= 0)
			EXPECT_TRUE(fd_dead(fd1, arcs[i].to == S_RES)) TH_LOG("%s -> %s: new fd", f, t);
		if (fd0 >= 0)
			close(fd0);
		if (fd1 >= 0)
			close(fd1);
	}
	EXPECT_EQ(0, drv_stat(self->vf[0], "objects_leaked"));
	migrate_and_check(_metadata, self, 4096, 4096);
}

/*
 * The reset lands while DEV_MODE_SET(stopped) is in flight and the stop
 * reaches the device after it: the driver says RUNNING, so the device must
 * run, without any other request in between.
 */
static void stop_in_flight(struct __test_metadata *_metadata, FIXTURE_DATA(vfpair) *self,
			   const char *driver, bool check)
{
	int dev, fd, rr, ret, state, stopped;

	ASSERT_EQ(0, pair_bind(self, 0, driver));
	dev = self->d[0].device_fd;
	ret = request_with_reset(dev, S_STOP, OP_MODE, 300, 50, &fd, &rr);
	ASSERT_EQ(0, rr);
	ASSERT_EQ(0, ret);
	state = mig_get_state(dev);
	ASSERT_EQ(0, sim_vf_state(1, NULL, NULL, &stopped, NULL));
	TH_LOG("%s: GET_STATE %s, the device is %s", driver, state >= 0 ? state_name[state] : "?",
	       stopped ? "stopped" : "running");
	if (check) {
		EXPECT_EQ(S_RUN, state);
		EXPECT_FALSE(stopped) TH_LOG("the driver says RUNNING: the device must run");
		EXPECT_EQ(1, drv_stat(self->vf[0], "runs_after_reset"));
	}
	/* Either way, a reset from here leaves a running device. */
	ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
	ASSERT_EQ(0, sim_vf_state(1, NULL, NULL, &stopped, NULL));
	EXPECT_FALSE(stopped);
}

/* Checked for ours; logged for upstream's (it leaves the device stopped). */
TEST_F(drv, mig_reset_with_stop_in_flight)
{
	stop_in_flight(_metadata, &self->p, variant->driver, variant->ours);
}

/* ---- Slow readers and writers (a buffer that stays faulted) ---- */

struct uffd_area {
	int uffd;
	uint8_t *mem;
	size_t len;
};

static int uffd_area_new(struct uffd_area *a, size_t pages)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };

	a->len = pages * getpagesize();
	a->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (a->uffd < 0)
		return -errno;
	if (ioctl(a->uffd, UFFDIO_API, &api))
		return -errno;
	a->mem = mmap(NULL, a->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a->mem == MAP_FAILED)
		return -errno;
	reg.range.start = (unsigned long)a->mem;
	reg.range.len = a->len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	return ioctl(a->uffd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

/* Wait up to ms for a page fault in the area: 0 once one is pending. */
static int uffd_wait_fault(struct uffd_area *a, int ms)
{
	struct pollfd p = { .fd = a->uffd, .events = POLLIN };
	struct uffd_msg msg;

	if (poll(&p, 1, ms) != 1)
		return -ETIMEDOUT;
	if (read(a->uffd, &msg, sizeof(msg)) != sizeof(msg))
		return -errno;
	return msg.event == UFFD_EVENT_PAGEFAULT ? 0 : -EIO;
}

/* Resolve every fault: fill the whole area from src. */
static int uffd_fill(struct uffd_area *a, const void *src)
{
	struct uffdio_copy cp = {
		.dst = (unsigned long)a->mem, .src = (unsigned long)src, .len = a->len,
	};

	return ioctl(a->uffd, UFFDIO_COPY, &cp) ? -errno : 0;
}

static void uffd_area_free(struct uffd_area *a)
{
	munmap(a->mem, a->len);
	close(a->uffd);
}

struct io_arg {
	int fd;
	void *buf;
	size_t len;
	bool write;
	ssize_t ret;
	int err;
};

static void *io_thread(void *p)
{
	struct io_arg *a = p;

	a->ret = a->write ? write(a->fd, a->buf, a->len) : read(a->fd, a->buf, a->len);
	a->err = errno;
	return NULL;
}

#define TIMED_LT1(stmt, what)						\
	do {								\
		double __t = now_s();					\
		stmt;							\
		EXPECT_LT(now_s() - __t, 1.0) TH_LOG("%s took %.2f s", what, now_s() - __t); \
	} while (0)

TEST_F_TIMEOUT(vfpair, mig_slow_reader_blocks_nothing, 120)
{
	struct uffd_area a;
	struct io_arg io;
	uint64_t size, src, dst;
	uint8_t *buf, *zero;
	size_t len;
	pthread_t th;
	int dev, fd, ret;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	dev = self->d[0].device_fd;
	ret = uffd_area_new(&a, 2);
	if (ret)
		SKIP(return, "userfaultfd: %s", strerror(-ret));
	ASSERT_EQ(0, mig_set_state(dev, S_PC, &fd));
	io = (struct io_arg){ .fd = fd, .buf = a.mem, .len = a.len };
	ASSERT_EQ(0, pthread_create(&th, NULL, io_thread, &io));
	ASSERT_EQ(0, uffd_wait_fault(&a, 10000)) TH_LOG("the reader faults");
	/* The reader sleeps inside its copy to userspace. */
	TIMED_LT1(EXPECT_EQ(0, mig_set_state(dev, S_SC, NULL)), "PRE_COPY -> STOP_COPY");
	TIMED_LT1(EXPECT_EQ(S_SC, mig_get_state(dev)), "GET_STATE");
	TIMED_LT1(EXPECT_EQ(0, mig_data_size(dev, &size)), "MIG_DATA_SIZE");
	zero = calloc(1, a.len);
	ASSERT_NE(NULL, zero);
	ASSERT_EQ(0, uffd_fill(&a, zero));
	pthread_join(th, NULL);
	ASSERT_GT(io.ret, 16) TH_LOG("errno %d", io.err);
	len = io.ret;
	buf = malloc(len);
	ASSERT_NE(NULL, buf);
	memcpy(buf, a.mem, len);
	/* The stream is complete: the rest, then EOF; it loads. */
	ASSERT_GE(mig_read_all(fd, &buf, &len, 4096, 0), 0);
	ASSERT_EQ(0, state_hash(1, &src));
	ASSERT_EQ(0, load_stream(self->d[1].device_fd, buf, len, 4096));
	ASSERT_EQ(0, state_hash(2, &dst));
	EXPECT_EQ(src, dst);
	ASSERT_EQ(0, mig_set_state(dev, S_RUN, NULL));
	close(fd);
	free(zero);
	free(buf);
	uffd_area_free(&a);
}

TEST_F_TIMEOUT(vfpair, mig_slow_writer_blocks_nothing, 180)
{
	static const size_t starts[] = { 100, 0 };	/* inside a record, at a boundary */
	uint64_t size, src, dst;
	uint8_t *buf = NULL, *rest;
	size_t len = 0;
	int dev, k;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	dev = self->d[1].device_fd;
	ASSERT_GT(save_stop_copy(self->d[0].device_fd, &buf, &len, 65536), 100);
	ASSERT_EQ(0, state_hash(1, &src));
	for (k = 0; k < 2; k++) {
		size_t at = starts[k];
		struct uffd_area a;
		struct io_arg io;
		pthread_t th;
		int rfd, ret;

		ret = uffd_area_new(&a, 2);
		if (ret)
			SKIP(return, "userfaultfd: %s", strerror(-ret));
		ASSERT_LE(len - at, a.len);
		ASSERT_EQ(0, mig_set_state(dev, S_RES, &rfd));
		if (at)
			ASSERT_EQ((ssize_t)at, write(rfd, buf, at));
		io = (struct io_arg){ .fd = rfd, .buf = a.mem, .len = len - at, .write = true };
		ASSERT_EQ(0, pthread_create(&th, NULL, io_thread, &io));
		ASSERT_EQ(0, uffd_wait_fault(&a, 10000)) TH_LOG("the writer faults");
		/* The writer sleeps inside its copy from userspace. */
		TIMED_LT1(EXPECT_EQ(S_RES, mig_get_state(dev)), "GET_STATE");
		TIMED_LT1(EXPECT_EQ(0, mig_data_size(dev, &size)), "MIG_DATA_SIZE");
		/* A write is in progress: leaving RESUMING fails, whether the data
		 * so far ends inside a record or not. */
		TIMED_LT1(EXPECT_EQ(-EBUSY, mig_set_state(dev, S_STOP, NULL)), "RESUMING -> STOP");
		EXPECT_EQ(S_RES, mig_get_state(dev));
		rest = calloc(1, a.len);
		ASSERT_NE(NULL, rest);
		memcpy(rest, buf + at, len - at);
		ASSERT_EQ(0, uffd_fill(&a, rest));
		pthread_join(th, NULL);
		EXPECT_EQ((ssize_t)(len - at), io.ret) TH_LOG("errno %d", io.err);
		EXPECT_EQ(0, mig_set_state(dev, S_RUN, NULL));
		ASSERT_EQ(0, state_hash(2, &dst));
		EXPECT_EQ(src, dst) TH_LOG("write from offset %zu", at);
		ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
		close(rfd);
		free(rest);
		uffd_area_free(&a);
	}
	free(buf);
}

/* A reader stuck in its copy blocks neither a reset nor closing the device. */
TEST_F_TIMEOUT(vfpair, mig_slow_reader_reset_and_close, 120)
{
	struct uffd_area a;
	struct io_arg io;
	uint8_t *zero, b;
	pthread_t th;
	int fd, ret;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ret = uffd_area_new(&a, 2);
	if (ret)
		SKIP(return, "userfaultfd: %s", strerror(-ret));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_PC, &fd));
	io = (struct io_arg){ .fd = fd, .buf = a.mem, .len = a.len };
	ASSERT_EQ(0, pthread_create(&th, NULL, io_thread, &io));
	ASSERT_EQ(0, uffd_wait_fault(&a, 10000)) TH_LOG("the reader faults");
	TIMED_LT1(EXPECT_EQ(0, ioctl(self->d[0].device_fd, VFIO_DEVICE_RESET)), "reset");
	EXPECT_EQ(S_RUN, mig_get_state(self->d[0].device_fd));
	EXPECT_EQ(0, sim_stat("objects"));
	TIMED_LT1(vfio_close(&self->d[0]), "closing the device");
	self->open[0] = false;
	zero = calloc(1, a.len);
	ASSERT_NE(NULL, zero);
	ASSERT_EQ(0, uffd_fill(&a, zero));
	pthread_join(th, NULL);
	/* The copy under way completes or fails; then the session is gone. */
	EXPECT_TRUE(io.ret > 0 || io.err == ENODEV || io.err == EFAULT)
		TH_LOG("read: %zd errno %d", io.ret, io.err);
	EXPECT_EQ(-1, read(fd, &b, 1));
	EXPECT_EQ(ENODEV, errno);
	close(fd);
	free(zero);
	uffd_area_free(&a);
}

/*
 * A reader spinning on a pre-copy fd while the source moves on: it ends
 * with EOF only after the final record (STOP_COPY), and with ENODEV, never
 * EOF, when a reset ends the session.
 */
struct drain_arg {
	int fd;
	uint8_t *buf;
	size_t len;
	ssize_t last;
	int err;
};

static void *drain_thread(void *p)
{
	struct drain_arg *d = p;
	uint8_t tmp[4096];

	for (;;) {
		ssize_t r = read(d->fd, tmp, sizeof(tmp));

		if (r > 0) {
			uint8_t *n = realloc(d->buf, d->len + r);

			if (!n) {
				d->last = -1;
				d->err = ENOMEM;
				return NULL;
			}
			d->buf = n;
			memcpy(d->buf + d->len, tmp, r);
			d->len += r;
		} else if (r == 0 || errno != ENOMSG) {
			d->last = r;
			d->err = r ? errno : 0;
			return NULL;
		}
	}
}

TEST_F_TIMEOUT(vfpair, mig_eof_only_when_complete, 240)
{
	int round, dev;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	dev = self->d[0].device_fd;
	srand(7);
	for (round = 0; round < 40; round++) {
		struct drain_arg d = { .last = 1 };
		bool reset = round % 4 >= 2, stop_copy = round % 4 == 3;
		uint64_t src, dst;
		pthread_t th;

		if (stop_copy) {
			/* A complete session: EOF only after all its bytes. */
			ASSERT_EQ(0, mig_set_state(dev, S_SC, &d.fd));
			ASSERT_EQ(0, pthread_create(&th, NULL, drain_thread, &d));
			usleep(rand() % 5000);
			ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
			pthread_join(th, NULL);
			if (d.last == 0) {
				EXPECT_EQ(16 + 4096, d.len) TH_LOG("round %d: EOF before the end", round);
			} else {
				EXPECT_EQ(ENODEV, d.err) TH_LOG("round %d", round);
			}
			close(d.fd);
			free(d.buf);
			continue;
		}
		ASSERT_EQ(0, mig_set_state(dev, S_PC, &d.fd));
		ASSERT_EQ(0, pthread_create(&th, NULL, drain_thread, &d));
		usleep(rand() % 20000);
		if (reset) {
			ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
		} else {
			ASSERT_EQ(0, mig_set_state(dev, S_SC, NULL));
		}
		pthread_join(th, NULL);
		if (reset) {
			EXPECT_EQ(-1, d.last) TH_LOG("round %d: EOF after a reset", round);
			EXPECT_EQ(ENODEV, d.err) TH_LOG("round %d", round);
		} else {
			/* The initial record, then the final one: nothing lost. */
			EXPECT_EQ(0, d.last) TH_LOG("round %d: errno %d", round, d.err);
			EXPECT_EQ(2 * (16 + 4096), d.len) TH_LOG("round %d: EOF too early", round);
			ASSERT_EQ(0, state_hash(1, &src));
			ASSERT_EQ(0, load_stream(self->d[1].device_fd, d.buf, d.len, 4096));
			ASSERT_EQ(0, state_hash(2, &dst));
			EXPECT_EQ(src, dst) TH_LOG("round %d", round);
		}
		ASSERT_EQ(0, mig_set_state(dev, S_RUN, NULL));
		close(d.fd);
		free(d.buf);
	}
}

/* ---- What design.rst claims ---- */

/* A copy that faults half-way returns the bytes moved before the fault. */
TEST_F_TIMEOUT(vfpair, mig_fault_mid_buffer_returns_progress, 120)
{
	long pg = getpagesize();
	uint8_t *m, *buf = NULL;
	uint64_t src, dst;
	size_t len = 0;
	ssize_t n;
	int fd, rfd;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, mprotect(m + pg, pg, PROT_NONE));

	/* Read into a buffer whose second page is not accessible. */
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_SC, &fd));
	EXPECT_EQ(-1, read(fd, m + pg, 10));
	EXPECT_EQ(EFAULT, errno) TH_LOG("nothing could be copied");
	n = read(fd, m + pg - 100, 1000);
	EXPECT_GT(n, 0);
	EXPECT_LE(n, 100);
	ASSERT_GT(n, 0);
	buf = malloc(n);
	ASSERT_NE(NULL, buf);
	memcpy(buf, m + pg - 100, n);
	len = n;
	/* Nothing was lost: the stream goes on right after. */
	ASSERT_GE(mig_read_all(fd, &buf, &len, 4096, 0), 0);
	ASSERT_EQ(0, state_hash(1, &src));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_RUN, NULL));
	close(fd);

	/* Write from a buffer whose second page is not accessible. */
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RES, &rfd));
	memcpy(m + pg - 100, buf, 100);
	n = write(rfd, m + pg - 100, 1000);
	EXPECT_GT(n, 0);
	EXPECT_LE(n, 100);
	ASSERT_GT(n, 0);
	ASSERT_EQ(0, mig_write_all(rfd, buf + n, len - n, 4096));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RUN, NULL));
	ASSERT_EQ(0, state_hash(2, &dst));
	EXPECT_EQ(src, dst);
	close(rfd);
	free(buf);
	munmap(m, 2 * pg);
}

/* Two writers on one resume fd: each write is applied whole, in some order. */
TEST_F_TIMEOUT(vfpair, mig_concurrent_writers, 180)
{
	uint8_t *s[2] = { NULL, NULL };
	size_t l[2] = { 0, 0 };
	uint64_t h[2], dst;
	int i, k, dev;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	dev = self->d[1].device_fd;
	for (k = 0; k < 2; k++) {
		ASSERT_EQ(0, sim_ctl("size 1 %d", 4096 + 3000 * k));
		ASSERT_GT(save_stop_copy(self->d[0].device_fd, &s[k], &l[k], 65536), 16);
		ASSERT_EQ(0, state_hash(1, &h[k]));
	}
	ASSERT_NE(h[0], h[1]);
	for (i = 0; i < 40; i++) {
		struct io_arg io[2];
		pthread_t th[2];
		int rfd;

		ASSERT_EQ(0, mig_set_state(dev, S_RES, &rfd));
		for (k = 0; k < 2; k++) {
			io[k] = (struct io_arg){ .fd = rfd, .buf = s[k], .len = l[k], .write = true };
			ASSERT_EQ(0, pthread_create(&th[k], NULL, io_thread, &io[k]));
		}
		for (k = 0; k < 2; k++) {
			pthread_join(th[k], NULL);
			EXPECT_EQ((ssize_t)l[k], io[k].ret) TH_LOG("round %d writer %d: errno %d",
								  i, k, io[k].err);
		}
		ASSERT_EQ(0, mig_set_state(dev, S_RUN, NULL)) TH_LOG("round %d", i);
		ASSERT_EQ(0, state_hash(2, &dst));
		EXPECT_TRUE(dst == h[0] || dst == h[1]) TH_LOG("round %d: a mixed state", i);
		close(rfd);
	}
	EXPECT_EQ(0, sim_ctl("size 1 4096"));
	EXPECT_EQ(0, sim_ctl("size 2 4096"));
	free(s[0]);
	free(s[1]);
}

/* A pre-copy fd of an older session: ENODEV, and no command is sent. */
TEST_F(vfpair, mig_stale_precopy_fd)
{
	uint64_t a, b;
	unsigned int ops[8];
	uint8_t byte;
	int dev, old, cur;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	dev = self->d[0].device_fd;
	ASSERT_EQ(0, mig_set_state(dev, S_PC, &old));
	ASSERT_EQ(0, mig_set_state(dev, S_RUN, NULL));
	ASSERT_EQ(0, mig_set_state(dev, S_PC, &cur));
	usleep(1100 * 1000);	/* a query would be allowed now */
	ASSERT_EQ(0, sim_ctl("clear"));
	EXPECT_EQ(-ENODEV, mig_precopy_info(old, &a, &b));
	EXPECT_EQ(-1, read(old, &byte, 1));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(0, sim_trace_ops(1, ops, 8)) TH_LOG("the stale fd sent a command");
	EXPECT_EQ(0, mig_precopy_info(cur, &a, &b));
	ASSERT_EQ(0, mig_set_state(dev, S_RUN, NULL));
	close(old);
	close(cur);
}

/* The debugfs counters belong to the binding, not to the device object. */
TEST_F(vfpair, mig_debugfs_follows_the_binding)
{
	char path[128];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/debug/" VIRTIO_RS_DRIVER "-%s/stats",
		 self->vf[0]);
	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	EXPECT_EQ(0, stat(path, &st));
	/* A migration fd keeps the object alive past close and unbind. */
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_SC, &fd));
	vfio_close(&self->d[0]);
	self->open[0] = false;
	ASSERT_EQ(0, unbind_and_clear(self->vf[0]));
	EXPECT_NE(0, stat(path, &st)) TH_LOG("the directory goes with the binding");
	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	EXPECT_EQ(0, stat(path, &st)) TH_LOG("the new binding has its counters");
	close(fd);
	EXPECT_EQ(0, stat(path, &st)) TH_LOG("and keeps them when the old object goes");
	EXPECT_EQ(0, drv_stat(self->vf[0], "saving_sessions"));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_SC, &fd));
	EXPECT_EQ(1, drv_stat(self->vf[0], "saving_sessions"));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_RUN, NULL));
	close(fd);
}

/* ---- One tenant's load on the PF's admin queue ---- */

/* Close and unbind both VFs, reload our module with params, bind again. */
static int rebind_with(FIXTURE_DATA(vfpair) *self, const char *params)
{
	int i, ret;

	for (i = 0; i < 2; i++) {
		if (self->open[i])
			vfio_close(&self->d[i]);
		self->open[i] = false;
		unbind_and_clear(self->vf[i]);
	}
	ret = rs_reload(params);
	for (i = 0; !ret && i < 2; i++)
		ret = pair_bind(self, i, VIRTIO_RS_DRIVER);
	return ret;
}

TEST_F_TIMEOUT(vfpair, mig_device_load_bound, 300)
{
	uint64_t size, first = 0, src, dst, initial, dirty;
	uint8_t *buf = NULL;
	size_t len = 0;
	long reads, cmds;
	double t0, el;
	int dev, fd, i;

	/* The defaults: 8 reads back to back, then one per 1000 ms. */
	ASSERT_EQ(0, rebind_with(self, ""));
	dev = self->d[0].device_fd;

	ASSERT_EQ(0, sim_ctl("clear"));
	t0 = now_s();
	for (i = 0; i < 1000; i++) {
		ASSERT_EQ(0, mig_set_state(dev, S_PC, &fd));
		ASSERT_EQ(0, mig_set_state(dev, S_RUN, NULL));
		close(fd);
	}
	el = now_s() - t0;
	reads = sim_op_count(OP_GET);
	cmds = sim_op_count(OP_CREATE) + sim_op_count(OP_META) + sim_op_count(OP_GET) +
	       sim_op_count(OP_DESTROY);
	TH_LOG("1000 RUNNING <-> PRE_COPY cycles in %.1f s: %ld context reads, %ld commands",
	       el, reads, cmds);
	EXPECT_LE(reads, 8 + (long)el + 1);
	EXPECT_LE(cmds, 4 * (8 + (long)el + 1));
	EXPECT_EQ(1000 - reads, drv_stat(self->vf[0], "reads_skipped"));
	EXPECT_EQ(0, sim_stat("objects"));

	/* Spread over several intervals: the size is asked again at most
	 * once per interval (create, size, destroy). */
	ASSERT_EQ(0, sim_ctl("clear"));
	t0 = now_s();
	for (i = 0; i < 10000 || now_s() - t0 < 3; i++) {
		ASSERT_EQ(0, mig_data_size(dev, &size));
		if (!i)
			first = size;
		ASSERT_EQ(first, size);
	}
	el = now_s() - t0;
	cmds = sim_op_count(OP_CREATE) + sim_op_count(OP_META) + sim_op_count(OP_DESTROY);
	TH_LOG("%d MIG_DATA_SIZE in %.1f s: %ld commands", i, el, cmds);
	EXPECT_GE(cmds, 3) TH_LOG("the size is refreshed");
	EXPECT_LE(cmds, 3 * ((long)el + 1));
	EXPECT_EQ(16 + 4096, first);

	/* A migration right after, with the budget spent by the cycles: the
	 * pre-copy session may start without data; its first record, read when
	 * the budget allows, is its initial data. The final read waits at most
	 * one interval. */
	ASSERT_EQ(0, mig_set_state(dev, S_PC, &fd));
	ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	TH_LOG("PRE_COPY after the cycles: initial bytes %llu, dirty bytes %llu",
	       (unsigned long long)initial, (unsigned long long)dirty);
	if (initial == 0) {
		usleep(1100 * 1000);
		ASSERT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	}
	EXPECT_EQ(16 + 4096, initial) TH_LOG("the first record is the initial data");
	EXPECT_EQ(0, dirty);
	ASSERT_GE(mig_read_all(fd, &buf, &len, 4096, 1), 0);
	t0 = now_s();
	ASSERT_EQ(0, mig_set_state(dev, S_SC, NULL));
	el = now_s() - t0;
	TH_LOG("PRE_COPY -> STOP_COPY %.2f s", el);
	EXPECT_LT(el, 1.5);
	ASSERT_GT(mig_read_all(fd, &buf, &len, 4096, 0), 0);
	ASSERT_EQ(0, state_hash(1, &src));
	ASSERT_EQ(0, load_stream(self->d[1].device_fd, buf, len, 4096));
	ASSERT_EQ(0, state_hash(2, &dst));
	EXPECT_EQ(src, dst);
	ASSERT_EQ(0, mig_set_state(dev, S_RUN, NULL));
	close(fd);

	/* STOP <-> STOP_COPY: stop-copy reads wait for the budget (2 back to
	 * back, then one per 500 ms, much longer than a cycle) and are never
	 * refused; no single request waits beyond the interval. */
	ASSERT_EQ(0, rebind_with(self, "device_read_burst=2 precopy_interval_ms=500"));
	dev = self->d[0].device_fd;
	ASSERT_EQ(0, mig_set_state(dev, S_STOP, NULL));
	ASSERT_EQ(0, sim_ctl("clear"));
	t0 = now_s();
	for (i = 0; i < 6; i++) {
		double t1 = now_s();

		len = 0;
		ASSERT_EQ(0, mig_set_state(dev, S_SC, &fd));
		EXPECT_LT(now_s() - t1, 1.0) TH_LOG("cycle %d", i);
		EXPECT_EQ(16 + 4096, mig_read_all(fd, &buf, &len, 65536, 0));
		ASSERT_EQ(0, mig_set_state(dev, S_STOP, NULL));
		close(fd);
	}
	el = now_s() - t0;
	TH_LOG("6 STOP <-> STOP_COPY cycles in %.2f s, %ld reads waited", el,
	       drv_stat(self->vf[0], "read_waits"));
	EXPECT_EQ(6, sim_op_count(OP_GET));
	EXPECT_GE(drv_stat(self->vf[0], "read_waits"), 3);
	EXPECT_GE(el, 0.5 * (6 - 2) * 0.9);
	ASSERT_EQ(0, mig_set_state(dev, S_RUN, NULL));

	/* A long interval: a stop-copy read waits at most one second, whatever
	 * the interval (the wait holds the state mutex). Uncapped it would wait
	 * the 10 s interval; the bound leaves TCG's timers 2 s of slack (one
	 * run on a loaded host overslept a 1 s sleep by more than 0.5 s). */
	ASSERT_EQ(0, rebind_with(self, "device_read_burst=1 precopy_interval_ms=10000"));
	dev = self->d[0].device_fd;
	ASSERT_EQ(0, mig_set_state(dev, S_STOP, NULL));
	for (i = 0; i < 3; i++) {
		double t1 = now_s();

		len = 0;
		ASSERT_EQ(0, mig_set_state(dev, S_SC, &fd));
		EXPECT_LT(now_s() - t1, 3.0) TH_LOG("cycle %d waited past the cap", i);
		EXPECT_EQ(16 + 4096, mig_read_all(fd, &buf, &len, 65536, 0));
		ASSERT_EQ(0, mig_set_state(dev, S_STOP, NULL));
		close(fd);
	}
	EXPECT_GE(drv_stat(self->vf[0], "read_waits"), 2);
	ASSERT_EQ(0, mig_set_state(dev, S_RUN, NULL));
	free(buf);
}

/* ---- Memory userspace causes is charged to its cgroup ---- */

#ifndef MEMCG_RECORD_MIB
#define MEMCG_RECORD_MIB 128
#endif
#define CG_ROOT "/sys/fs/cgroup"
#define CG_TEST CG_ROOT "/virtio-rs-test"

static long cg_current(void)
{
	unsigned long v;

	return sysfs_read_ul(CG_TEST "/memory.current", &v) ? -1 : (long)v;
}

struct cg_sample {
	long current;
};

/* Once the simulator holds the DEV_PARTS_SET, sample the charge. */
static void *cg_sampler(void *p)
{
	struct cg_sample *c = p;

	for (int i = 0; i < 5000 && sim_stat("delaying") < 1; i++)
		usleep(2000);
	c->current = sim_stat("delaying") == 1 ? cg_current() : -1;
	return NULL;
}

TEST_F_TIMEOUT(vfpair, mig_tables_charged_to_memcg, 300)
{
	const size_t mib = 1 << 20, record = (size_t)MEMCG_RECORD_MIB << 20;
	size_t npages = (record + 8 + 4095) / 4096, i;
	long base, after, data, tables;
	struct cg_sample c = { -1 };
	char pid[32];
	uint8_t hdr[16], *chunk;
	cpu_set_t cpus;
	pthread_t th;
	int rfd, dev;

	mkdir(CG_ROOT, 0755);
	if (mount("none", CG_ROOT, "cgroup2", 0, NULL) && errno != EBUSY)
		SKIP(return, "cannot mount cgroup2: %s", strerror(errno));
	if (sysfs_write(CG_ROOT "/cgroup.subtree_control", "+memory"))
		SKIP(return, "no memory controller");
	ASSERT_TRUE(mkdir(CG_TEST, 0755) == 0 || errno == EEXIST);
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	dev = self->d[1].device_fd;
	/* One CPU: the per-CPU charge cache then errs by at most 64 pages. */
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpus), &cpus));
	snprintf(pid, sizeof(pid), "%d", getpid());
	ASSERT_EQ(0, sysfs_write(CG_TEST "/cgroup.procs", pid));
	chunk = malloc(mib);
	ASSERT_NE(NULL, chunk);
	memset(chunk, 0, mib);

	ASSERT_EQ(0, mig_set_state(dev, S_RES, &rfd));
	put_header(hdr, record, 0, 0);
	ASSERT_EQ(16, write(rfd, hdr, 16));
	base = cg_current();
	ASSERT_GE(base, 0);
	for (i = 0; i + 1 < MEMCG_RECORD_MIB; i++)
		ASSERT_EQ((ssize_t)mib, write(rfd, chunk, mib));
	/* The last write completes the record: DEV_PARTS_SET, held 3 s. */
	ASSERT_EQ(0, sim_ctl("delay %#x 1 3000", OP_SET));
	ASSERT_EQ(0, pthread_create(&th, NULL, cg_sampler, &c));
	/* Zeros are no valid device parts: the device rejects them. */
	EXPECT_EQ(-1, write(rfd, chunk, mib));
	EXPECT_EQ(EINVAL, errno) TH_LOG("the device, not the driver, refuses the record");
	pthread_join(th, NULL);
	/* The command's page array and table are gone; the data pages stay
	 * with the session. */
	after = cg_current();
	ASSERT_GE(c.current, 0) TH_LOG("no sample while the command was held");
	ASSERT_GE(after, 0);
	data = npages * 4096;
	tables = c.current - after;
	TH_LOG("%d MiB record: %ld KiB charged while loading (data pages %ld KiB), "
	       "%ld KiB released when the command ended (its page array: %zu KiB)",
	       MEMCG_RECORD_MIB, (c.current - base) >> 10, data >> 10, tables >> 10,
	       npages * 8 >> 10);
	/*
	 * The page array is npages * 8 bytes (kvmalloc rounds it up to a power
	 * of two), the table more unless the pages happen to be contiguous;
	 * the per-CPU charge cache keeps up to 64 pages (256 KiB) of what is
	 * freed. Without accounting, nothing is charged or released here.
	 */
	EXPECT_GE(tables, (long)(npages * 8));
	EXPECT_GE(c.current - base, data) TH_LOG("the data pages are charged");

	ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
	close(rfd);
	free(chunk);
	sysfs_write(CG_ROOT "/cgroup.procs", pid);
	rmdir(CG_TEST);
}

/* ---- How long one admin command's descriptor chain may be ---- */

/*
 * One admin command carries at most max_cmd_sg scatterlist entries of
 * device data (default 1021: with the command's header, request and
 * status, 1024 descriptors, QEMU's limit; a chain longer than its queue
 * takes stops a device's admin queue, and Linux then waits on it forever,
 * for every VF of the PF). The driver's pages come in runs of up to 2 MiB,
 * so 64 MiB of device parts fit in a few dozen entries; with max_cmd_sg=1
 * a command over the bound is refused with E2BIG before the device sees
 * it (unless all 64 MiB happen to be contiguous), and both VFs stay
 * usable: the saving VF runs again on request, the resuming one reports
 * the refused record when it leaves RESUMING and runs after a reset. A
 * 64 KiB context, one run of pages, is saved even with max_cmd_sg=1. The
 * simulated device counts the descriptors each command would need
 * (max_descs).
 */
TEST_F_TIMEOUT(vfpair, mig_cmd_sg_bound, 600)
{
	const long big = 64 << 20;
	uint64_t src, dst, before;
	uint8_t *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;
	long descs;
	ssize_t n;
	int fd, rfd, ret, stopped;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, sim_ctl("size 1 %ld", big));
	ASSERT_EQ(0, sim_ctl("clear"));

	/* The default bound: 64 MiB moves, each command within 1024. */
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_SC, &fd));
	ASSERT_EQ(big + 16, mig_read_all(fd, &buf, &len, 1 << 20, 0));
	ASSERT_EQ(0, state_hash(1, &src));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RES, &rfd));
	ASSERT_EQ(0, mig_write_all(rfd, buf, len, 1 << 20));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RUN, NULL));
	close(rfd);
	ASSERT_EQ(0, state_hash(2, &dst));
	EXPECT_EQ(src, dst);
	descs = sim_stat("max_descs");
	TH_LOG("64 MiB, max_cmd_sg=1021: the longest command needed %ld descriptors", descs);
	EXPECT_LE(descs, 1021 + 3);
	EXPECT_GT(descs, 0);
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_RUN, NULL));
	close(fd);

	/* One entry per command: saving and resuming are refused, cleanly. */
	ASSERT_EQ(0, rebind_with(self, "device_read_burst=0 max_cmd_sg=1"));
	ASSERT_EQ(0, sim_ctl("size 2 4096"));
	ASSERT_EQ(0, sim_ctl("clear"));
	ASSERT_EQ(0, state_hash(2, &before));
	ret = mig_set_state(self->d[0].device_fd, S_SC, &fd);
	if (!ret) {
		n = mig_read_all(fd, &buf2, &len2, 1 << 20, 0);
		ret = n < 0 ? (int)n : 0;
		close(fd);
	}
	TH_LOG("saving 64 MiB with max_cmd_sg=1: %s", ret ? strerror(-ret) : "fits (contiguous)");
	EXPECT_TRUE(ret == 0 || ret == -E2BIG) TH_LOG("got %d", ret);
	/* The VF is usable again: RUNNING, then a migration of its state. */
	/* Usable, no reset needed, and the device runs again too. */
	EXPECT_EQ(0, mig_set_state(self->d[0].device_fd, S_RUN, NULL));
	ASSERT_EQ(0, sim_vf_state(1, NULL, NULL, &stopped, NULL));
	EXPECT_FALSE(stopped);
	ASSERT_EQ(0, back_to_running(self->d[0].device_fd));

	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RES, &rfd));
	ret = mig_write_all(rfd, buf, len, 1 << 20);
	TH_LOG("resuming 64 MiB with max_cmd_sg=1: %s", ret ? strerror(-ret) : "fits (contiguous)");
	EXPECT_TRUE(ret == 0 || ret == -E2BIG) TH_LOG("got %d", ret);
	if (ret) {
		ASSERT_EQ(0, state_hash(2, &dst));
		EXPECT_EQ(before, dst) TH_LOG("a refused record sets nothing");
		/* As for any refused record: leaving RESUMING reports it, the
		 * VF stays in RESUMING (its device stopped, as the driver
		 * says), and a reset makes it run. */
		EXPECT_EQ(-E2BIG, mig_set_state(self->d[1].device_fd, S_RUN, NULL));
		EXPECT_EQ(S_RES, mig_get_state(self->d[1].device_fd));
		ASSERT_EQ(0, sim_vf_state(2, NULL, NULL, &stopped, NULL));
		EXPECT_TRUE(stopped);
		ASSERT_EQ(0, ioctl(self->d[1].device_fd, VFIO_DEVICE_RESET));
	} else {
		EXPECT_EQ(0, mig_set_state(self->d[1].device_fd, S_RUN, NULL));
	}
	close(rfd);
	EXPECT_EQ(S_RUN, mig_get_state(self->d[1].device_fd));
	ASSERT_EQ(0, sim_vf_state(2, NULL, NULL, &stopped, NULL));
	EXPECT_FALSE(stopped);
	descs = sim_stat("max_descs");
	TH_LOG("max_cmd_sg=1: the longest command sent needed %ld descriptors", descs);
	EXPECT_LE(descs, 1 + 3) TH_LOG("a command over the bound reached the device");

	/* The pages come in runs: 64 KiB of parts is one run of 16 pages, one
	 * entry, so it is saved even with max_cmd_sg=1 (16 pages allocated
	 * one by one would need up to 16); it is loaded with the default. */
	ASSERT_EQ(0, rebind_with(self, "device_read_burst=0 max_cmd_sg=1"));
	ASSERT_EQ(0, sim_ctl("size 1 65536"));
	ASSERT_EQ(0, sim_ctl("clear"));
	free(buf);
	buf = NULL;
	len = 0;
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_SC, &fd))
		TH_LOG("64 KiB of parts, max_cmd_sg=1: not one run of pages");
	ASSERT_EQ(65536 + 16, mig_read_all(fd, &buf, &len, 1 << 20, 0));
	ASSERT_EQ(0, state_hash(1, &src));
	EXPECT_LE(sim_stat("max_descs"), 1 + 3);
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_RUN, NULL));
	close(fd);
	ASSERT_EQ(0, rebind_with(self, "device_read_burst=0"));
	ASSERT_EQ(0, load_stream(self->d[1].device_fd, buf, len, 4096));
	ASSERT_EQ(0, state_hash(2, &dst));
	EXPECT_EQ(src, dst);
	free(buf);
	/* Back to the default sizes for later tests. */
	ASSERT_EQ(0, sim_ctl("size 1 4096"));
	ASSERT_EQ(0, sim_ctl("size 2 4096"));
	free(buf2);
}

/* ---- Trace events ---- */

#define TRACEFS "/sys/kernel/tracing"

/*
 * Enable the module's trace events through tracefs, migrate VF1 into VF2,
 * and find the expected events in order (other events may come between).
 */
TEST_F_TIMEOUT(vfpair, mig_trace_events, 120)
{
	static const char *const want[] = {
		"virtio_rs_state_request: %s RUNNING -> STOP_COPY",
		"virtio_rs_admin_cmd: %s MODE_SET 1 bytes",
		"virtio_rs_arc: %s RUNNING -> RUNNING_P2P",
		"virtio_rs_arc: %s RUNNING_P2P -> STOP",
		"virtio_rs_admin_cmd: %s OBJ_CREATE",
		"virtio_rs_admin_cmd: %s PARTS_METADATA_GET",
		"virtio_rs_admin_cmd: %s PARTS_GET 4096 bytes",
		"virtio_rs_record: %s record saved, 4096 bytes",
		"virtio_rs_session: %s saving session created",
		"virtio_rs_arc: %s STOP -> STOP_COPY",
		"virtio_rs_state_request: %s RUNNING -> STOP",
		"virtio_rs_state_request: %s STOP -> RESUMING",
		"virtio_rs_session: %s resuming session created",
		"virtio_rs_admin_cmd: %s PARTS_SET 4104 bytes",
		"virtio_rs_record: %s record loaded, 4096 bytes",
		"virtio_rs_state_request: %s RESUMING -> RUNNING",
		"virtio_rs_session: %s resuming session ended",
		"virtio_rs_state_request: %s STOP_COPY -> RUNNING",
		"virtio_rs_session: %s saving session ended",
	};
	/* Which VF each line is about: the source (0) or the destination (1). */
	static const int who[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0 };
	uint8_t *buf = NULL;
	size_t len = 0, tlen = 0;
	char *text = NULL, *at;
	int fd, rfd, i, tf;

	if (access(TRACEFS "/trace", F_OK))
		mount("nodev", TRACEFS, "tracefs", 0, NULL);
	if (access(TRACEFS "/events/virtio_vfio_pci_rs/enable", F_OK))
		SKIP(return, "no tracefs or no events of the module");
	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	/* Opened with O_TRUNC, the trace file clears the buffer. */
	tf = open(TRACEFS "/trace", O_WRONLY | O_TRUNC);
	ASSERT_GE(tf, 0);
	close(tf);
	ASSERT_EQ(0, sysfs_write(TRACEFS "/events/virtio_vfio_pci_rs/enable", "1"));

	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_SC, &fd));
	ASSERT_GT(mig_read_all(fd, &buf, &len, 65536, 0), 16);
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_STOP, NULL));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RES, &rfd));
	ASSERT_EQ(0, mig_write_all(rfd, buf, len, 65536));
	ASSERT_EQ(0, mig_set_state(self->d[1].device_fd, S_RUN, NULL));
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_RUN, NULL));

	ASSERT_EQ(0, sysfs_write(TRACEFS "/events/virtio_vfio_pci_rs/enable", "0"));
	tf = open(TRACEFS "/trace", O_RDONLY);
	ASSERT_GE(tf, 0);
	for (;;) {
		char chunk[4096];
		ssize_t n = read(tf, chunk, sizeof(chunk));

		if (n <= 0)
			break;
		text = realloc(text, tlen + n + 1);
		ASSERT_NE(NULL, text);
		memcpy(text + tlen, chunk, n);
		tlen += n;
		text[tlen] = '\0';
	}
	close(tf);
	ASSERT_NE(NULL, text);
	at = text;
	for (i = 0; i < (int)(sizeof(want) / sizeof(want[0])); i++) {
		char needle[160];
		char *hit;

		snprintf(needle, sizeof(needle), want[i], self->vf[who[i]]);
		hit = strstr(at, needle);
		EXPECT_NE(NULL, hit) TH_LOG("event %d not found in order: %s", i, needle);
		if (hit)
			at = hit + strlen(needle);
	}
	close(rfd);
	close(fd);
	free(buf);
	free(text);
}

TEST_HARNESS_MAIN
