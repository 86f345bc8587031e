// SPDX-License-Identifier: GPL-2.0
/*
 * Live migration through virtio_vfio_pci_rs, against the simulated admin
 * device: round trips, every state arc with its admin-command trace, reset
 * and close in every state, malformed streams, fault injection, streams
 * crossing with the upstream C driver, and concurrency.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "vfio_dev.h"
#include "vfio_mig.h"
#include "virtio_rs_test.h"

#define MIG_FLAGS_ALL (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY)

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

/* Random streams in mig_malformed_streams (each costs a function reset). */
#ifndef RANDOM_STREAMS
#define RANDOM_STREAMS 1000
#endif

#define OP_CREATE 0xa
#define OP_DESTROY 0xd
#define OP_META 0xe
#define OP_GET 0xf
#define OP_SET 0x10
#define OP_MODE 0x11

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
	if (!module_loaded(VIRTIO_RS_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_RS_DRIVER));
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
	ASSERT_EQ(0, find_sriov_pf(self->pf, sizeof(self->pf)));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, pf_vf_bdf(self->pf, i, self->vf[i], sizeof(self->vf[i])));
		self->open[i] = false;
	}
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

TEST_F(vfpair, mig_flags_and_initial_state)
{
	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	EXPECT_EQ(MIG_FLAGS_ALL, mig_flags(self->d[0].device_fd));
	EXPECT_EQ(S_RUN, mig_get_state(self->d[0].device_fd));
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
			for (i = 0; i < nwant && i < ngot; i++)
				EXPECT_EQ(want[i], got[i]) TH_LOG("%s -> %d: command %d", state_name[from], to, i);
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

TEST_F_TIMEOUT(vfpair, mig_all_arcs, 120)
{
	all_arcs(_metadata, self, VIRTIO_RS_DRIVER);
}

/* The same model against the upstream C driver: the oracle is upstream's. */
TEST_F_TIMEOUT(vfpair, mig_all_arcs_upstream_c, 120)
{
	all_arcs(_metadata, self, VIRTIO_C_DRIVER);
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
			int dev = self->d[0].device_fd, fd0 = -1, fd1 = -1, ret, nth = 0, j;
			unsigned int op = fc->cmds[i];

			for (j = 0; j <= i; j++)
				nth += fc->cmds[j] == op;
			ASSERT_EQ(0, back_to_running(dev));
			ASSERT_EQ(0, mig_set_state(dev, fc->from, &fd0));
			ASSERT_EQ(0, sim_ctl("fail %#x %d 22", op, nth));
			ret = mig_set_state(dev, fc->to, &fd1);
			if (op == OP_DESTROY) {
				/* Ending a session cannot fail; the driver retries
				 * the destroy, so no object is left. */
				EXPECT_EQ(0, ret) TH_LOG("%s -> %s, destroy fails",
							 state_name[fc->from], state_name[fc->to]);
			} else {
				EXPECT_EQ(-EINVAL, ret) TH_LOG("%s -> %s, command %d (%#x) fails",
							       state_name[fc->from], state_name[fc->to], i, op);
				EXPECT_EQ(-1, fd1);
			}
			EXPECT_EQ(0, sim_stat("faults_pending"));
			if (fd1 >= 0)
				close(fd1);
			/* The device can be reset; then nothing is left. */
			ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_RESET));
			EXPECT_EQ(S_RUN, mig_get_state(dev));
			if (fd0 >= 0)
				close(fd0);
			EXPECT_EQ(0, sim_stat("objects")) TH_LOG("%s -> %s, command %d",
								 state_name[fc->from], state_name[fc->to], i);
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

	/* MIG_DATA_SIZE without a session: create, size, destroy. */
	for (i = 0; i < 2; i++) {
		uint64_t size;

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

TEST_F(vfpair, mig_cross_c_to_rust)
{
	cross(_metadata, self, VIRTIO_C_DRIVER, VIRTIO_RS_DRIVER);
}

TEST_F(vfpair, mig_cross_rust_to_c)
{
	cross(_metadata, self, VIRTIO_RS_DRIVER, VIRTIO_C_DRIVER);
}

struct conc {
	FIXTURE_DATA(vfpair) *self;
	volatile int stop;
	int shared_fd;
	long ops[6];
};

static void *t_state(void *arg)
{
	static const int seq[] = { S_SC, S_RUN, S_PC, S_PCP2P, S_SC, S_STOP, S_RES, S_RUN };
	struct conc *c = arg;
	int i = 0, fd;

	while (!c->stop) {
		if (mig_set_state(c->self->d[0].device_fd, seq[i++ % 8], &fd) == 0 && fd >= 0) {
			uint8_t b[512];

			(void)read(fd, b, sizeof(b));
			close(fd);
		}
		c->ops[0]++;
	}
	return NULL;
}

static void *t_reset(void *arg)
{
	struct conc *c = arg;

	while (!c->stop) {
		(void)ioctl(c->self->d[0].device_fd, VFIO_DEVICE_RESET);
		c->ops[1]++;
		usleep(20000);
	}
	return NULL;
}

static void *t_query(void *arg)
{
	struct conc *c = arg;
	uint64_t v;

	while (!c->stop) {
		(void)mig_get_state(c->self->d[0].device_fd);
		(void)mig_data_size(c->self->d[0].device_fd, &v);
		c->ops[2]++;
	}
	return NULL;
}

static void *t_reader(void *arg)
{
	struct conc *c = arg;
	uint64_t a, b;
	uint8_t buf[97];

	while (!c->stop) {
		(void)read(c->shared_fd, buf, sizeof(buf));
		(void)mig_precopy_info(c->shared_fd, &a, &b);
		c->ops[3]++;
	}
	return NULL;
}

static void *t_writer(void *arg)
{
	struct conc *c = arg;
	uint8_t buf[64];

	memset(buf, 0, sizeof(buf));
	put_header(buf, 4000, 0, 0);
	while (!c->stop) {
		int fd;

		if (mig_set_state(c->self->d[1].device_fd, S_RES, &fd) == 0 && fd >= 0) {
			for (int i = 0; i < 20; i++)
				(void)write(fd, buf, sizeof(buf));
			close(fd);
		}
		(void)mig_set_state(c->self->d[1].device_fd, S_RUN, NULL);
		(void)ioctl(c->self->d[1].device_fd, VFIO_DEVICE_RESET);
		c->ops[4]++;
	}
	return NULL;
}

TEST_F_TIMEOUT(vfpair, mig_concurrency, 120)
{
	void *(*fns[])(void *) = { t_state, t_reset, t_query, t_reader, t_reader, t_writer };
	pthread_t th[6];
	struct conc c = { .self = self };
	int i, pfd;

	ASSERT_EQ(0, pair_bind(self, 0, VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, pair_bind(self, 1, VIRTIO_RS_DRIVER));
	/* A pre-copy session whose fd two readers share. */
	ASSERT_EQ(0, mig_set_state(self->d[0].device_fd, S_PC, &pfd));
	c.shared_fd = pfd;
	for (i = 0; i < 6; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, fns[i], &c));
	sleep(4);
	c.stop = 1;
	for (i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	TH_LOG("state changes %ld, resets %ld, queries %ld, reads %ld, resume sessions %ld",
	       c.ops[0], c.ops[1], c.ops[2], c.ops[3], c.ops[4]);
	close(pfd);
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, back_to_running(self->d[i].device_fd));
	EXPECT_EQ(0, sim_stat("objects"));
	migrate_and_check(_metadata, self, 4096, 4096);
}

TEST_HARNESS_MAIN
