// SPDX-License-Identifier: GPL-2.0-only
/*
 * Conformance of a VFIO migration driver to the migration uAPI described in
 * include/uapi/linux/vfio.h: the feature flags, the state machine and its
 * combination arcs, the data transfer FDs, VFIO_MIG_GET_PRECOPY_INFO,
 * VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, loading a saved state into a second
 * device, and VFIO_DEVICE_RESET in every state.
 *
 * It needs nothing but one or two migratable devices of the same type bound
 * to their VFIO variant driver, passed like to the other vfio selftests:
 *
 *   vfio_migration_test [harness options] BDF [BDF2]
 *
 * With one device, the state is saved from and loaded back into it. The
 * test only uses the device through VFIO: it never touches the device's
 * registers, and a state it reaches is left again (closing the device fd
 * ends every migration session and resets the device). Each test is bounded
 * by the harness timeout: 30 s, 120 s for those that save and load the
 * device state many times.
 *
 * A driver with a known bug that makes a check fail reports XFAIL for that
 * check (known_bugs[] names the bug); a check whose bug would crash the
 * kernel is not run for that driver.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/ioctl.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <libvfio.h>

#include "kselftest_harness.h"

static char **device_bdfs;
static int nr_devices;

#define STATE_INVALID 0xffffffffU

static const char *const state_names[] = {
	[VFIO_DEVICE_STATE_ERROR] = "ERROR",
	[VFIO_DEVICE_STATE_STOP] = "STOP",
	[VFIO_DEVICE_STATE_RUNNING] = "RUNNING",
	[VFIO_DEVICE_STATE_STOP_COPY] = "STOP_COPY",
	[VFIO_DEVICE_STATE_RESUMING] = "RESUMING",
	[VFIO_DEVICE_STATE_RUNNING_P2P] = "RUNNING_P2P",
	[VFIO_DEVICE_STATE_PRE_COPY] = "PRE_COPY",
	[VFIO_DEVICE_STATE_PRE_COPY_P2P] = "PRE_COPY_P2P",
};

static const char *state_name(u32 state)
{
	return state < ARRAY_SIZE(state_names) ? state_names[state] : "(invalid)";
}

/*
 * Bugs of released drivers that make a check of this test fail, on the
 * device that saves (@on_dst false) or the one that loads. @not_run:
 * running the check would crash the kernel or disable lockdep, so it is
 * reported without being run. @may_hide: whether the bug shows depends on
 * the device, so a pass is not proof that the bug is gone (no XPASS).
 */
struct known_bug {
	const char *driver;
	const char *check;
	const char *bug;
	bool on_dst;
	bool not_run;
	bool may_hide;
};

#define VIRTIO_RESET_LOCKDEP							\
	"virtio_vfio_pci: a reset with a live session takes migf->lock under vdev->memory_lock, " \
	"while read()/write() fault user memory under migf->lock (lockdep: circular dependency " \
	"with a fault on a VFIO BAR mapping) (not run)"

static const struct known_bug known_bugs[] = {
	{ "virtio_vfio_pci", "truncated_stream",
	  "virtio_vfio_pci: RESUMING->STOP does not validate the stream, a partial record is accepted",
	  true },
	/*
	 * Hidden when the device's DEV_PARTS_METADATA_GET SIZE is an upper
	 * bound at least 16 bytes above what DEV_PARTS_GET returns.
	 */
	{ "virtio_vfio_pci", "data_size_covers_stream",
	  "virtio_vfio_pci: MIG_DATA_SIZE omits the 16-byte record header of the stream",
	  false, false, true },
	{ "virtio_vfio_pci", "precopy_info_outputs",
	  "virtio_vfio_pci: VFIO_MIG_GET_PRECOPY_INFO returns the caller's value in the field it does not compute" },
	{ "virtio_vfio_pci", "resuming_fd_after_session",
	  "virtio_vfio_pci: write() after the resuming session ended dereferences a freed buffer (not run)",
	  true, true },
	{ "virtio_vfio_pci", "reset_from_STOP_COPY", VIRTIO_RESET_LOCKDEP, false, true },
	{ "virtio_vfio_pci", "reset_from_RESUMING", VIRTIO_RESET_LOCKDEP, true, true },
	{ "virtio_vfio_pci", "reset_from_PRE_COPY", VIRTIO_RESET_LOCKDEP, false, true },
	{ "virtio_vfio_pci", "reset_from_PRE_COPY_P2P", VIRTIO_RESET_LOCKDEP, false, true },
};

/* ---- the uAPI, one call each: 0 or -errno ---- */

static int device_feature(int fd, u32 flags, void *data, size_t size)
{
	union {
		struct vfio_device_feature feature;
		u64 data[(sizeof(struct vfio_device_feature) + 64) / sizeof(u64)];
	} buf;
	struct vfio_device_feature *feature = &buf.feature;

	VFIO_ASSERT_LE(size, 64);
	memset(&buf, 0, sizeof(buf));
	feature->argsz = sizeof(*feature) + size;
	feature->flags = flags;
	if (data)
		memcpy(feature->data, data, size);
	if (ioctl(fd, VFIO_DEVICE_FEATURE, feature))
		return -errno;
	if (data)
		memcpy(data, feature->data, size);
	return 0;
}

static int mig_flags(struct vfio_pci_device *device, u64 *flags)
{
	struct vfio_device_feature_migration mig = {};
	int ret;

	ret = device_feature(device->fd, VFIO_DEVICE_FEATURE_GET |
			     VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof(mig));
	*flags = mig.flags;
	return ret;
}

static int set_state(struct vfio_pci_device *device, u32 state, int *data_fd)
{
	struct vfio_device_feature_mig_state mig = { .device_state = state,
						     .data_fd = -1 };
	int ret;

	ret = device_feature(device->fd, VFIO_DEVICE_FEATURE_SET |
			     VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &mig, sizeof(mig));
	if (data_fd)
		*data_fd = ret ? -1 : mig.data_fd;
	else if (!ret && mig.data_fd >= 0)
		close(mig.data_fd);
	return ret;
}

static int get_state(struct vfio_pci_device *device)
{
	struct vfio_device_feature_mig_state mig = {};
	int ret;

	ret = device_feature(device->fd, VFIO_DEVICE_FEATURE_GET |
			     VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &mig, sizeof(mig));
	return ret ? ret : (int)mig.device_state;
}

static int data_size(struct vfio_pci_device *device, u64 *size)
{
	struct vfio_device_feature_mig_data_size mig = {};
	int ret;

	ret = device_feature(device->fd, VFIO_DEVICE_FEATURE_GET |
			     VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &mig, sizeof(mig));
	*size = mig.stop_copy_length;
	return ret;
}

static int precopy_info(int data_fd, struct vfio_precopy_info *info)
{
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	return ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, info) ? -errno : 0;
}

static int device_reset(struct vfio_pci_device *device)
{
	int retries = 50, ret;

	do {
		ret = __vfio_pci_device_reset(device);
		if (ret == -EAGAIN)
			usleep(20000);
	} while (ret == -EAGAIN && retries-- > 0);
	return ret;
}

/*
 * Read a saving fd in chunks that cycle through @chunks until EOF (or, with
 * @until_enomsg, until ENOMSG), appending to *buf. Returns the number of
 * bytes read or -errno of the failing read; *bad is set when a read returned
 * more than asked, *enomsg when the reads ended with ENOMSG rather than EOF.
 */
static ssize_t read_stream(int fd, u8 **buf, size_t *len, const size_t *chunks,
			   int nr_chunks, bool until_enomsg, bool *bad, bool *enomsg)
{
	size_t total = 0;
	int i = 0;

	if (enomsg)
		*enomsg = false;
	for (;;) {
		size_t chunk = chunks[i++ % nr_chunks];
		ssize_t n;

		*buf = realloc(*buf, *len + chunk);
		VFIO_ASSERT_NOT_NULL(*buf);
		n = read(fd, *buf + *len, chunk);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOMSG && until_enomsg) {
				if (enomsg)
					*enomsg = true;
				return total;
			}
			return -errno;
		}
		if (n > (ssize_t)chunk)
			*bad = true;
		if (n == 0)
			return total;
		*len += n;
		total += n;
		if (total > (1UL << 34))
			return -EFBIG;
	}
}

static int write_stream(int fd, const u8 *buf, size_t len, size_t first, size_t chunk)
{
	size_t off = 0;

	while (off < len) {
		size_t n = off < first ? 1 : chunk;
		ssize_t w;

		if (n > len - off)
			n = len - off;
		w = write(fd, buf + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0 || w > (ssize_t)n)
			return -EIO;
		off += w;
	}
	return 0;
}

static const size_t plain_chunks[] = { 4096 };
static const size_t odd_chunks[] = { 1, 3, 16, 17, 4095, 4096, 65536, 7 };

/* ---- the migration state machine of the uAPI, as a model ---- */

static u64 state_needs(u32 state)
{
	switch (state) {
	case VFIO_DEVICE_STATE_RUNNING_P2P:
		return VFIO_MIGRATION_P2P;
	case VFIO_DEVICE_STATE_PRE_COPY:
		return VFIO_MIGRATION_PRE_COPY;
	case VFIO_DEVICE_STATE_PRE_COPY_P2P:
		return VFIO_MIGRATION_PRE_COPY | VFIO_MIGRATION_P2P;
	default:
		return VFIO_MIGRATION_STOP_COPY;
	}
}

static bool state_supported(u64 flags, u32 state)
{
	if (state == VFIO_DEVICE_STATE_ERROR || state >= VFIO_DEVICE_STATE_NR)
		return false;
	return (flags & state_needs(state)) == state_needs(state);
}

/*
 * The next arc towards @to from @from on a device supporting every state,
 * following the path rules of the uAPI (shortest path, no saving-group
 * state inside a path); ERROR where the uAPI forbids the request.
 */
#define S_(x) VFIO_DEVICE_STATE_##x
static const u8 next_hop[VFIO_DEVICE_STATE_NR][VFIO_DEVICE_STATE_NR] = {
	[S_(STOP)] = {
		[S_(STOP)] = S_(STOP), [S_(RUNNING)] = S_(RUNNING_P2P),
		[S_(STOP_COPY)] = S_(STOP_COPY), [S_(RESUMING)] = S_(RESUMING),
		[S_(RUNNING_P2P)] = S_(RUNNING_P2P), [S_(PRE_COPY)] = S_(RUNNING_P2P),
		[S_(PRE_COPY_P2P)] = S_(RUNNING_P2P),
	},
	[S_(RUNNING)] = {
		[S_(STOP)] = S_(RUNNING_P2P), [S_(RUNNING)] = S_(RUNNING),
		[S_(STOP_COPY)] = S_(RUNNING_P2P), [S_(RESUMING)] = S_(RUNNING_P2P),
		[S_(RUNNING_P2P)] = S_(RUNNING_P2P), [S_(PRE_COPY)] = S_(PRE_COPY),
		[S_(PRE_COPY_P2P)] = S_(RUNNING_P2P),
	},
	[S_(STOP_COPY)] = {
		[S_(STOP)] = S_(STOP), [S_(RUNNING)] = S_(STOP),
		[S_(STOP_COPY)] = S_(STOP_COPY), [S_(RESUMING)] = S_(STOP),
		[S_(RUNNING_P2P)] = S_(STOP), [S_(PRE_COPY)] = S_(ERROR),
		[S_(PRE_COPY_P2P)] = S_(ERROR),
	},
	[S_(RESUMING)] = {
		[S_(STOP)] = S_(STOP), [S_(RUNNING)] = S_(STOP),
		[S_(STOP_COPY)] = S_(STOP), [S_(RESUMING)] = S_(RESUMING),
		[S_(RUNNING_P2P)] = S_(STOP), [S_(PRE_COPY)] = S_(STOP),
		[S_(PRE_COPY_P2P)] = S_(STOP),
	},
	[S_(RUNNING_P2P)] = {
		[S_(STOP)] = S_(STOP), [S_(RUNNING)] = S_(RUNNING),
		[S_(STOP_COPY)] = S_(STOP), [S_(RESUMING)] = S_(STOP),
		[S_(RUNNING_P2P)] = S_(RUNNING_P2P), [S_(PRE_COPY)] = S_(RUNNING),
		[S_(PRE_COPY_P2P)] = S_(PRE_COPY_P2P),
	},
	[S_(PRE_COPY)] = {
		[S_(STOP)] = S_(RUNNING), [S_(RUNNING)] = S_(RUNNING),
		[S_(STOP_COPY)] = S_(PRE_COPY_P2P), [S_(RESUMING)] = S_(RUNNING),
		[S_(RUNNING_P2P)] = S_(RUNNING), [S_(PRE_COPY)] = S_(PRE_COPY),
		[S_(PRE_COPY_P2P)] = S_(PRE_COPY_P2P),
	},
	[S_(PRE_COPY_P2P)] = {
		[S_(STOP)] = S_(RUNNING_P2P), [S_(RUNNING)] = S_(RUNNING_P2P),
		[S_(STOP_COPY)] = S_(STOP_COPY), [S_(RESUMING)] = S_(RUNNING_P2P),
		[S_(RUNNING_P2P)] = S_(RUNNING_P2P), [S_(PRE_COPY)] = S_(PRE_COPY),
		[S_(PRE_COPY_P2P)] = S_(PRE_COPY_P2P),
	},
};

/* The arcs that start a data transfer session and return a data fd. */
static bool arc_opens_session(u32 from, u32 to)
{
	return (from == S_(STOP) && to == S_(STOP_COPY)) ||
	       (from == S_(STOP) && to == S_(RESUMING)) ||
	       (from == S_(RUNNING) && to == S_(PRE_COPY)) ||
	       (from == S_(RUNNING_P2P) && to == S_(PRE_COPY_P2P));
}

static bool in_saving_group(u32 state)
{
	return state == S_(STOP_COPY) || state == S_(PRE_COPY) ||
	       state == S_(PRE_COPY_P2P);
}

static bool has_session(u32 state)
{
	return in_saving_group(state) || state == S_(RESUMING);
}

/*
 * What SET_STATE(@to) from @from must do on a device with @flags: returns 0
 * or -EINVAL, the state the device is in afterwards in *end and whether a
 * data fd is returned in *fd.
 */
static int expect_request(u64 flags, u32 from, u32 to, u32 *end, bool *fd)
{
	u32 cur = from, next = from;

	*end = from;
	*fd = false;
	if (!state_supported(flags, to))
		return -EINVAL;
	while (cur != to) {
		next = next_hop[cur][to];
		/* Unsupported optional states are skipped over. */
		while (next != S_(ERROR) && !state_supported(flags, next))
			next = next_hop[next][to];
		if (next == S_(ERROR))
			return -EINVAL;
		*fd = arc_opens_session(cur, next);
		cur = next;
		*end = cur;
	}
	return 0;
}

/* ---- the fixture ---- */

struct mig_devices {
	struct iommu *iommu;
	struct vfio_pci_device *src;
	struct vfio_pci_device *dst;	/* == src with one device */
	u64 flags;
	char src_driver[64];
	char dst_driver[64];
};

FIXTURE(migration) {
	struct mig_devices m;
};

FIXTURE_VARIANT(migration) {
	const char *iommu_mode;
};

/* The two ways to open a device: group + container, and iommufd cdev. */
FIXTURE_VARIANT_ADD(migration, vfio_type1v2_iommu) {
	.iommu_mode = "vfio_type1v2_iommu",
};

FIXTURE_VARIANT_ADD(migration, iommufd) {
	.iommu_mode = "iommufd",
};

static void driver_of(const char *bdf, char *name, size_t size)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	snprintf_assert(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		snprintf(name, size, "(none)");
		return;
	}
	link[n] = '\0';
	snprintf(name, size, "%s", strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
}

FIXTURE_SETUP(migration)
{
	u64 dst_flags;
	int ret;

	driver_of(device_bdfs[0], self->m.src_driver, sizeof(self->m.src_driver));
	driver_of(device_bdfs[nr_devices > 1], self->m.dst_driver, sizeof(self->m.dst_driver));
	self->m.iommu = iommu_init(variant->iommu_mode);
	self->m.src = vfio_pci_device_init(device_bdfs[0], self->m.iommu);
	self->m.dst = self->m.src;
	if (nr_devices > 1)
		self->m.dst = vfio_pci_device_init(device_bdfs[1], self->m.iommu);

	ret = mig_flags(self->m.src, &self->m.flags);
	if (ret == -ENOTTY)
		SKIP(return, "%s (%s): no migration support (VFIO_DEVICE_FEATURE_MIGRATION: ENOTTY)",
		     device_bdfs[0], self->m.src_driver);
	ASSERT_EQ(0, ret);
	if (self->m.dst != self->m.src) {
		ASSERT_EQ(0, mig_flags(self->m.dst, &dst_flags));
		ASSERT_EQ(self->m.flags, dst_flags) TH_LOG("the two devices differ in migration flags");
	}
}

FIXTURE_TEARDOWN(migration)
{
	if (self->m.dst && self->m.dst != self->m.src)
		vfio_pci_device_cleanup(self->m.dst);
	if (self->m.src)
		vfio_pci_device_cleanup(self->m.src);
	iommu_cleanup(self->m.iommu);
}

static const struct known_bug *known_bug(const struct mig_devices *m, const char *check)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(known_bugs); i++) {
		if (strcmp(known_bugs[i].check, check))
			continue;
		if (!strcmp(known_bugs[i].driver,
			    known_bugs[i].on_dst ? m->dst_driver : m->src_driver))
			return &known_bugs[i];
	}
	return NULL;
}

/*
 * A check that a known driver bug makes fail: true (the test ends as XFAIL,
 * naming the bug) when @ok is false and @bug is set.
 */
static bool known_failure(struct __test_metadata *_metadata, bool ok,
			  const struct known_bug *bug)
{
	if (ok || !bug)
		return false;
	snprintf(_metadata->results->reason, sizeof(_metadata->results->reason),
		 "%s", bug->bug);
	_metadata->exit_code = KSFT_XFAIL;
	return true;
}

/*
 * The check passed although @bug says it fails: XPASS, the list is stale,
 * unless the bug can hide on some devices (then a PASS, with a note).
 */
static void known_bug_not_seen(struct __test_metadata *_metadata, const struct known_bug *bug)
{
	if (!bug)
		return;
	if (bug->may_hide) {
		TH_LOG("known bug not seen on this device: %s", bug->bug);
		return;
	}
	snprintf(_metadata->results->reason, sizeof(_metadata->results->reason),
		 "known bug not seen: %s", bug->bug);
	_metadata->exit_code = KSFT_XPASS;
}

/* A check that would crash the kernel with this driver: XFAIL, not run. */
static bool not_run(struct __test_metadata *_metadata, const struct known_bug *bug)
{
	return bug && bug->not_run && known_failure(_metadata, false, bug);
}

/* Back to RUNNING, by SET_STATE or, if that fails, by a reset. */
static int back_to_running(struct vfio_pci_device *device)
{
	if (get_state(device) == S_(RUNNING))
		return 0;
	if (set_state(device, S_(RUNNING), NULL) && device_reset(device))
		return -EIO;
	return get_state(device) == S_(RUNNING) ? 0 : -EIO;
}

/* A session has ended: its fd gives ENODEV. Only saving fds are read. */
static bool saving_fd_dead(int fd)
{
	u8 byte;

	return read(fd, &byte, 1) == -1 && errno == ENODEV;
}

static bool resuming_fd_dead(int fd)
{
	u8 byte = 0;

	return write(fd, &byte, 1) == -1 && errno == ENODEV;
}

/* Save the full state of @device through STOP_COPY into *buf. */
static ssize_t save_state(struct vfio_pci_device *device, u8 **buf, size_t *len,
			  const size_t *chunks, int nr_chunks)
{
	bool bad = false;
	ssize_t n;
	int fd;

	*len = 0;
	if (set_state(device, S_(STOP_COPY), &fd))
		return -EIO;
	n = read_stream(fd, buf, len, chunks, nr_chunks, false, &bad, NULL);
	close(fd);
	if (set_state(device, S_(RUNNING), NULL))
		return -EIO;
	return bad ? -EOVERFLOW : n;
}

/*
 * Load @len bytes into @device: RUNNING -> RESUMING, write, -> STOP. Returns
 * 0, the -errno of the write, or -EPROTO when RESUMING -> STOP failed.
 */
static int load_state(struct vfio_pci_device *device, const u8 *buf, size_t len,
		      size_t first, size_t chunk)
{
	int fd, ret;

	ret = set_state(device, S_(RESUMING), &fd);
	if (ret)
		return ret;
	if (fd < 0)
		return -EBADF;
	ret = write_stream(fd, buf, len, first, chunk);
	if (!ret && set_state(device, S_(STOP), NULL))
		ret = -EPROTO;
	close(fd);
	return ret;
}

/* ---- feature flags and states ---- */

TEST_F(migration, flags)
{
	u64 known = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY;

	TH_LOG("%s (%s): migration flags 0x%llx", device_bdfs[0], self->m.src_driver,
	       (unsigned long long)self->m.flags);
	ASSERT_TRUE(self->m.flags & VFIO_MIGRATION_STOP_COPY)
		TH_LOG("VFIO_MIGRATION_STOP_COPY is mandatory");
	ASSERT_EQ(0, self->m.flags & ~known) TH_LOG("flags the uAPI does not define");
	/* The feature is GET only; MIG_DEVICE_STATE is GET and SET. */
	ASSERT_EQ(0, device_feature(self->m.src->fd, VFIO_DEVICE_FEATURE_PROBE |
				    VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
				    NULL, 0));
	ASSERT_NE(0, device_feature(self->m.src->fd, VFIO_DEVICE_FEATURE_PROBE |
				    VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIGRATION,
				    NULL, 0));
	ASSERT_EQ(0, device_feature(self->m.src->fd, VFIO_DEVICE_FEATURE_PROBE |
				    VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET |
				    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0));
}

TEST_F(migration, initial_state_running)
{
	ASSERT_EQ(S_(RUNNING), get_state(self->m.src));
	ASSERT_EQ(S_(RUNNING), get_state(self->m.dst));
}

TEST_F_TIMEOUT(migration, states_reachable, 120)
{
	u32 s;

	for (s = S_(STOP); s < VFIO_DEVICE_STATE_NR; s++) {
		int fd = -1, ret;

		ret = set_state(self->m.src, s, &fd);
		if (!state_supported(self->m.flags, s)) {
			ASSERT_EQ(-EINVAL, ret) TH_LOG("%s is not offered", state_name(s));
			ASSERT_EQ(S_(RUNNING), get_state(self->m.src));
			continue;
		}
		ASSERT_EQ(0, ret) TH_LOG("RUNNING -> %s", state_name(s));
		ASSERT_EQ(s, get_state(self->m.src));
		if (fd >= 0)
			close(fd);
		ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL))
			TH_LOG("%s -> RUNNING", state_name(s));
	}
}

/*
 * Every request from @from: the result, the state afterwards and the data
 * fd match what the uAPI's arc and path rules imply; the session of @from
 * continues exactly when both states are in the saving group.
 */
static void arcs_from(struct __test_metadata *_metadata, struct mig_devices *m, u32 from)
{
	static const u32 targets[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 99, STATE_INVALID };
	struct vfio_pci_device *dev = m->src;
	size_t len = 0;
	u8 *saved = NULL;
	int t, checked = 0;

	if (!state_supported(m->flags, from))
		SKIP(return, "the device does not offer %s", state_name(from));
	/* RESUMING is left with a complete stream written, as a VMM does. */
	if (from == S_(RESUMING)) {
		ASSERT_GT(save_state(m->src, &saved, &len, plain_chunks, 1), 0);
		dev = m->dst;
	}

	for (t = 0; t < ARRAY_SIZE(targets); t++) {
		u32 to = targets[t], end;
		int fd0 = -1, fd1 = -1, ret, exp;
		bool want_fd;

		ASSERT_EQ(0, back_to_running(dev));
		ASSERT_EQ(0, set_state(dev, from, &fd0)) TH_LOG("reach %s", state_name(from));
		ASSERT_EQ(has_session(from), fd0 >= 0)
			TH_LOG("RUNNING -> %s: data fd", state_name(from));
		if (saved)
			ASSERT_EQ(0, write_stream(fd0, saved, len, 0, 4096));

		exp = expect_request(m->flags, from, to, &end, &want_fd);
		ret = set_state(dev, to, &fd1);
		EXPECT_EQ(exp, ret) TH_LOG("%s -> %s (%u)", state_name(from), state_name(to), to);
		EXPECT_EQ(end, get_state(dev)) TH_LOG("%s -> %s (%u): state afterwards",
						      state_name(from), state_name(to), to);
		EXPECT_EQ(want_fd, fd1 >= 0) TH_LOG("%s -> %s: data fd", state_name(from),
						    state_name(to));
		if (fd1 >= 0) {
			int mode = fcntl(fd1, F_GETFL) & O_ACCMODE;

			EXPECT_EQ(to == S_(RESUMING) ? O_WRONLY : O_RDONLY, mode)
				TH_LOG("%s -> %s: data fd access mode", state_name(from),
				       state_name(to));
		}
		/* The saving session of @from continues or ends with the group. */
		if (fd0 >= 0 && in_saving_group(from) && !ret && to != from) {
			if (in_saving_group(end)) {
				EXPECT_FALSE(saving_fd_dead(fd0))
					TH_LOG("%s -> %s ended the session", state_name(from),
					       state_name(to));
			} else {
				EXPECT_TRUE(saving_fd_dead(fd0))
					TH_LOG("%s -> %s: old data fd not ENODEV", state_name(from),
					       state_name(to));
			}
		}
		if (fd1 >= 0)
			close(fd1);
		if (fd0 >= 0)
			close(fd0);
		checked++;
	}
	ASSERT_EQ(0, back_to_running(dev));
	free(saved);
	TH_LOG("%s: %d requests checked", state_name(from), checked);
}

TEST_F_TIMEOUT(migration, arcs_from_STOP, 120)
{
	arcs_from(_metadata, &self->m, S_(STOP));
}

TEST_F_TIMEOUT(migration, arcs_from_RUNNING, 120)
{
	arcs_from(_metadata, &self->m, S_(RUNNING));
}

TEST_F_TIMEOUT(migration, arcs_from_STOP_COPY, 120)
{
	arcs_from(_metadata, &self->m, S_(STOP_COPY));
}

TEST_F_TIMEOUT(migration, arcs_from_RESUMING, 120)
{
	arcs_from(_metadata, &self->m, S_(RESUMING));
}

TEST_F_TIMEOUT(migration, arcs_from_RUNNING_P2P, 120)
{
	arcs_from(_metadata, &self->m, S_(RUNNING_P2P));
}

TEST_F_TIMEOUT(migration, arcs_from_PRE_COPY, 120)
{
	arcs_from(_metadata, &self->m, S_(PRE_COPY));
}

TEST_F_TIMEOUT(migration, arcs_from_PRE_COPY_P2P, 120)
{
	arcs_from(_metadata, &self->m, S_(PRE_COPY_P2P));
}

/* ---- data transfer fds ---- */

TEST_F(migration, saving_fd_is_a_read_only_stream)
{
	u8 byte = 0;
	int fd;

	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), &fd));
	ASSERT_GE(fd, 0);
	ASSERT_EQ(O_RDONLY, fcntl(fd, F_GETFL) & O_ACCMODE);
	ASSERT_EQ(-1, write(fd, &byte, 1));
	ASSERT_EQ(EBADF, errno);
	ASSERT_EQ(-1, lseek(fd, 0, SEEK_SET));
	ASSERT_EQ(ESPIPE, errno);
	ASSERT_EQ(-1, pread(fd, &byte, 1, 0));
	ASSERT_EQ(ESPIPE, errno);
	/* O_CLOEXEC, as the vfio core installs it. */
	ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
}

TEST_F(migration, resuming_fd_is_a_write_only_stream)
{
	size_t len = 0;
	u8 *buf = NULL;
	u8 byte = 0;
	int fd;

	ASSERT_GT(save_state(self->m.src, &buf, &len, plain_chunks, 1), 0);
	ASSERT_EQ(0, set_state(self->m.dst, S_(RESUMING), &fd));
	ASSERT_GE(fd, 0);
	ASSERT_EQ(O_WRONLY, fcntl(fd, F_GETFL) & O_ACCMODE);
	ASSERT_EQ(-1, read(fd, &byte, 1));
	ASSERT_EQ(EBADF, errno);
	ASSERT_EQ(-1, lseek(fd, 0, SEEK_SET));
	ASSERT_EQ(ESPIPE, errno);
	ASSERT_EQ(-1, pwrite(fd, &byte, 1, 0));
	ASSERT_EQ(ESPIPE, errno);
	ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(0, write_stream(fd, buf, len, 0, 4096));
	close(fd);
	free(buf);
	ASSERT_EQ(0, set_state(self->m.dst, S_(RUNNING), NULL));
}

/*
 * STOP_COPY: reads of any size return at most what was asked, never ENOMSG,
 * and end with a permanent end of stream that poll reports readable.
 */
TEST_F(migration, stop_copy_reads_any_size)
{
	struct pollfd pfd = { .events = POLLIN };
	size_t len = 0;
	bool bad = false;
	u8 *buf = NULL;
	ssize_t n;
	int fd, i;

	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), &fd));
	n = read_stream(fd, &buf, &len, odd_chunks, ARRAY_SIZE(odd_chunks), false, &bad,
			NULL);
	ASSERT_GT(n, 0) TH_LOG("read: %s", n < 0 ? strerror(-n) : "empty stream");
	ASSERT_FALSE(bad) TH_LOG("a read returned more than asked");
	TH_LOG("stream of %zd bytes read in chunks of 1..65536 bytes", n);
	/* The end of stream is permanent. */
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, read(fd, buf, len));
	ASSERT_EQ(0, read(fd, buf, 0));
	pfd.fd = fd;
	ASSERT_EQ(1, poll(&pfd, 1, 1000));
	ASSERT_TRUE(pfd.revents & POLLIN);
	close(fd);
	free(buf);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
}

TEST_F(migration, saving_fd_after_session)
{
	int fd;

	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), &fd));
	ASSERT_EQ(0, set_state(self->m.src, S_(STOP), NULL));
	ASSERT_TRUE(saving_fd_dead(fd)) TH_LOG("read after STOP_COPY -> STOP: %s",
					       strerror(errno));
	/* A new session is independent of the dead fd. */
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
	close(fd);
	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), &fd));
	ASSERT_GE(fd, 0);
	close(fd);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
}

TEST_F(migration, resuming_fd_after_session)
{
	const struct known_bug *bug = known_bug(&self->m, "resuming_fd_after_session");
	size_t len = 0;
	u8 *buf = NULL;
	int fd;

	if (not_run(_metadata, bug))
		return;
	ASSERT_GT(save_state(self->m.src, &buf, &len, plain_chunks, 1), 0);
	ASSERT_EQ(0, set_state(self->m.dst, S_(RESUMING), &fd));
	ASSERT_EQ(0, write_stream(fd, buf, len, 0, 4096));
	ASSERT_EQ(0, set_state(self->m.dst, S_(STOP), NULL));
	ASSERT_TRUE(resuming_fd_dead(fd)) TH_LOG("write after RESUMING -> STOP: %s",
						 strerror(errno));
	close(fd);
	free(buf);
	ASSERT_EQ(0, set_state(self->m.dst, S_(RUNNING), NULL));
}

/* The device fd is closed while a data fd stays open: the fd is dead. */
TEST_F(migration, data_fd_outlives_device_fd)
{
	int fd;

	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), &fd));
	if (self->m.dst != self->m.src) {
		vfio_pci_device_cleanup(self->m.dst);
		self->m.dst = NULL;
	}
	vfio_pci_device_cleanup(self->m.src);
	self->m.src = NULL;
	ASSERT_TRUE(saving_fd_dead(fd)) TH_LOG("read after the device was closed: %s",
					       strerror(errno));
	close(fd);

	/* The device opens again in RUNNING with no session. */
	self->m.src = vfio_pci_device_init(device_bdfs[0], self->m.iommu);
	self->m.dst = self->m.src;
	ASSERT_EQ(S_(RUNNING), get_state(self->m.src));
	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), &fd));
	close(fd);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
}

/* ---- pre-copy ---- */

TEST_F(migration, precopy_reads_until_enomsg)
{
	struct vfio_precopy_info info;
	size_t len = 0;
	bool bad = false, enomsg;
	u8 *buf = NULL;
	ssize_t n;
	int fd, i;

	if (!(self->m.flags & VFIO_MIGRATION_PRE_COPY))
		SKIP(return, "the device does not offer VFIO_MIGRATION_PRE_COPY");
	ASSERT_EQ(0, set_state(self->m.src, S_(PRE_COPY), &fd));
	ASSERT_EQ(0, precopy_info(fd, &info));
	n = read_stream(fd, &buf, &len, odd_chunks, ARRAY_SIZE(odd_chunks), true, &bad,
			&enomsg);
	ASSERT_GE(n, 0) TH_LOG("pre-copy read: %s", strerror(-n));
	ASSERT_FALSE(bad);
	/* A drained pre-copy stream ends with ENOMSG, not with end of stream. */
	ASSERT_TRUE(enomsg) TH_LOG("read() returned 0 in PRE_COPY");
	ASSERT_GE(n, info.initial_bytes) TH_LOG("ENOMSG before initial_bytes were read");
	TH_LOG("pre-copy: %zd bytes before ENOMSG (initial_bytes %llu)", n,
	       (unsigned long long)info.initial_bytes);

	/* STOP_COPY: the rest, never ENOMSG, then a permanent end. */
	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), NULL));
	n = read_stream(fd, &buf, &len, plain_chunks, 1, false, &bad, NULL);
	ASSERT_GE(n, 0) TH_LOG("stop-copy read after pre-copy: %s", strerror(-n));
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, read(fd, buf, 1));
	close(fd);
	free(buf);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
}

TEST_F(migration, precopy_info_only_in_precopy_states)
{
	struct vfio_precopy_info info;
	int fd;

	/* A STOP_COPY session that never was in pre-copy. */
	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), &fd));
	ASSERT_EQ(-EINVAL, precopy_info(fd, &info));
	close(fd);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
	if (!(self->m.flags & VFIO_MIGRATION_PRE_COPY))
		return;

	ASSERT_EQ(0, set_state(self->m.src, S_(PRE_COPY), &fd));
	ASSERT_EQ(0, precopy_info(fd, &info));
	/* argsz smaller than the structure */
	info.argsz = offsetof(struct vfio_precopy_info, dirty_bytes);
	ASSERT_EQ(-1, ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
	ASSERT_EQ(EINVAL, errno);
	if (self->m.flags & VFIO_MIGRATION_P2P) {
		ASSERT_EQ(0, set_state(self->m.src, S_(PRE_COPY_P2P), NULL));
		ASSERT_EQ(0, precopy_info(fd, &info)) TH_LOG("in PRE_COPY_P2P");
	}
	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), NULL));
	ASSERT_EQ(-EINVAL, precopy_info(fd, &info)) TH_LOG("same fd, now in STOP_COPY");
	close(fd);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
}

/*
 * initial_bytes starts non-zero, never increases, and reaches zero once that
 * many bytes were read.
 */
TEST_F_TIMEOUT(migration, precopy_initial_bytes_consistent, 120)
{
	static const size_t steps[] = { 1, 15, 16, 100, 4096 };
	struct vfio_precopy_info info;
	u64 first, last, total = 0;
	u8 buf[4096];
	int fd, i = 0;

	if (!(self->m.flags & VFIO_MIGRATION_PRE_COPY))
		SKIP(return, "the device does not offer VFIO_MIGRATION_PRE_COPY");
	ASSERT_EQ(0, set_state(self->m.src, S_(PRE_COPY), &fd));
	/*
	 * A driver may defer the initial data, e.g. to bound the load on the
	 * device; a VMM keeps asking, so does the test, for up to 10 s.
	 */
	for (i = 0; i < 50; i++) {
		ASSERT_EQ(0, precopy_info(fd, &info));
		if (info.initial_bytes)
			break;
		usleep(200 * 1000);
	}
	first = last = info.initial_bytes;
	ASSERT_GT(first, 0) TH_LOG("initial_bytes should become non-zero");
	if (i)
		TH_LOG("initial_bytes non-zero after %d queries", i + 1);
	i = 0;
	while (total < first) {
		size_t want = steps[i++ % ARRAY_SIZE(steps)];
		ssize_t n;

		if (want > first - total)
			want = first - total;
		n = read(fd, buf, want);
		ASSERT_GT(n, 0) TH_LOG("read %zu of the %llu initial bytes at %llu: %s",
				       want, (unsigned long long)first,
				       (unsigned long long)total, n ? strerror(errno) : "EOF");
		total += n;
		ASSERT_EQ(0, precopy_info(fd, &info));
		ASSERT_LE(info.initial_bytes, last) TH_LOG("initial_bytes increased");
		ASSERT_LE(info.initial_bytes, first - total)
			TH_LOG("initial_bytes %llu after reading %llu of %llu",
			       (unsigned long long)info.initial_bytes,
			       (unsigned long long)total, (unsigned long long)first);
		last = info.initial_bytes;
	}
	ASSERT_EQ(0, last);
	TH_LOG("initial_bytes %llu, read in %d steps", (unsigned long long)first, i);
	close(fd);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
}

/* initial_bytes and dirty_bytes are outputs: what the caller passed is not echoed. */
TEST_F(migration, precopy_info_outputs)
{
	const struct known_bug *bug = known_bug(&self->m, "precopy_info_outputs");
	const u64 junk = 0x5a5a5a5a5a5a5a5aULL;
	struct vfio_precopy_info info;
	u8 buf[4096];
	int fd, round;
	bool ok;

	if (!(self->m.flags & VFIO_MIGRATION_PRE_COPY))
		SKIP(return, "the device does not offer VFIO_MIGRATION_PRE_COPY");
	ASSERT_EQ(0, set_state(self->m.src, S_(PRE_COPY), &fd));
	/* Once while initial data is pending, once after it was read. */
	for (round = 0; round < 2; round++) {
		memset(&info, 0, sizeof(info));
		info.argsz = sizeof(info);
		info.initial_bytes = junk;
		info.dirty_bytes = junk;
		ASSERT_EQ(0, ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
		ok = info.initial_bytes != junk && info.dirty_bytes != junk;
		TH_LOG("round %d: initial_bytes 0x%llx dirty_bytes 0x%llx", round,
		       (unsigned long long)info.initial_bytes,
		       (unsigned long long)info.dirty_bytes);
		if (known_failure(_metadata, ok, bug))
			return;
		ASSERT_TRUE(ok) TH_LOG("an output field echoes the input");
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	}
	close(fd);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
	known_bug_not_seen(_metadata, bug);
}

/* ---- MIG_DATA_SIZE ---- */

TEST_F_TIMEOUT(migration, data_size_in_every_state, 120)
{
	u64 size;
	u32 s;
	int ret;

	ret = data_size(self->m.src, &size);
	if (ret == -ENOTTY)
		SKIP(return, "no VFIO_DEVICE_FEATURE_MIG_DATA_SIZE");
	for (s = S_(STOP); s < VFIO_DEVICE_STATE_NR; s++) {
		int fd = -1;

		if (!state_supported(self->m.flags, s))
			continue;
		ASSERT_EQ(0, back_to_running(self->m.src));
		ASSERT_EQ(0, set_state(self->m.src, s, &fd));
		ASSERT_EQ(0, data_size(self->m.src, &size)) TH_LOG("in %s", state_name(s));
		ASSERT_GT(size, 0) TH_LOG("in %s", state_name(s));
		if (fd >= 0)
			close(fd);
	}
	ASSERT_EQ(0, back_to_running(self->m.src));
}

TEST_F(migration, data_size_covers_stream)
{
	const struct known_bug *bug = known_bug(&self->m, "data_size_covers_stream");
	size_t len = 0;
	bool bad = false;
	u8 *buf = NULL;
	u64 size;
	ssize_t n;
	int fd, ret;

	ret = data_size(self->m.src, &size);
	if (ret == -ENOTTY)
		SKIP(return, "no VFIO_DEVICE_FEATURE_MIG_DATA_SIZE");
	ASSERT_EQ(0, set_state(self->m.src, S_(STOP), NULL));
	ASSERT_EQ(0, data_size(self->m.src, &size));
	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), &fd));
	n = read_stream(fd, &buf, &len, plain_chunks, 1, false, &bad, NULL);
	ASSERT_GT(n, 0);
	close(fd);
	free(buf);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
	TH_LOG("stop_copy_length %llu, stream %zd bytes", (unsigned long long)size, n);
	if (known_failure(_metadata, size >= (u64)n, bug))
		return;
	ASSERT_GE(size, (u64)n) TH_LOG("stop_copy_length below the stream length");
	known_bug_not_seen(_metadata, bug);
}

/* ---- loading a saved state ---- */

static void check_running(struct __test_metadata *_metadata, struct vfio_pci_device *device)
{
	ASSERT_EQ(0, set_state(device, S_(RUNNING), NULL));
	ASSERT_EQ(S_(RUNNING), get_state(device));
	/* The device answers config cycles through VFIO. */
	ASSERT_NE(0xffff, vfio_pci_config_readw(device, PCI_VENDOR_ID));
}

TEST_F_TIMEOUT(migration, round_trip_stop_copy, 120)
{
	size_t len = 0, back_len = 0;
	u8 *buf = NULL, *back = NULL;

	ASSERT_GT(save_state(self->m.src, &buf, &len, plain_chunks, 1), 0);
	/* Segmentation need not be preserved: 1-byte writes, then odd chunks. */
	ASSERT_EQ(0, load_state(self->m.dst, buf, len, 64, 997));
	check_running(_metadata, self->m.dst);
	/* The destination can itself be saved, and its state loads back. */
	ASSERT_GT(save_state(self->m.dst, &back, &back_len, odd_chunks, ARRAY_SIZE(odd_chunks)), 0);
	ASSERT_EQ(0, load_state(self->m.src, back, back_len, 0, 65536));
	check_running(_metadata, self->m.src);
	TH_LOG("%s -> %s: %zu bytes; back: %zu bytes", device_bdfs[0],
	       device_bdfs[nr_devices > 1], len, back_len);
	free(buf);
	free(back);
}

TEST_F_TIMEOUT(migration, round_trip_pre_copy, 120)
{
	struct vfio_precopy_info info;
	size_t len = 0;
	bool bad = false;
	u8 *buf = NULL;
	int fd, rounds;

	if (!(self->m.flags & VFIO_MIGRATION_PRE_COPY))
		SKIP(return, "the device does not offer VFIO_MIGRATION_PRE_COPY");
	ASSERT_EQ(0, set_state(self->m.src, S_(PRE_COPY), &fd));
	/* A few pre-copy rounds the way a VMM iterates. */
	for (rounds = 0; rounds < 3; rounds++) {
		ASSERT_EQ(0, precopy_info(fd, &info));
		ASSERT_GE(read_stream(fd, &buf, &len, plain_chunks, 1, true, &bad, NULL), 0);
	}
	ASSERT_EQ(0, set_state(self->m.src, S_(STOP_COPY), NULL));
	ASSERT_GE(read_stream(fd, &buf, &len, plain_chunks, 1, false, &bad, NULL), 0);
	ASSERT_FALSE(bad);
	close(fd);
	ASSERT_EQ(0, set_state(self->m.src, S_(RUNNING), NULL));
	ASSERT_GT(len, 0);
	ASSERT_EQ(0, load_state(self->m.dst, buf, len, 0, 4096));
	check_running(_metadata, self->m.dst);
	TH_LOG("pre-copy + stop-copy stream of %zu bytes loaded", len);
	free(buf);
}

/*
 * A stream cut short must not be accepted: the write or RESUMING -> STOP
 * fails. The device is then usable again after a reset.
 */
TEST_F_TIMEOUT(migration, truncated_stream, 120)
{
	const struct known_bug *bug = known_bug(&self->m, "truncated_stream");
	size_t len = 0, cuts[3];
	u8 *buf = NULL;
	int i, ret;

	ASSERT_GT(save_state(self->m.src, &buf, &len, plain_chunks, 1), 1);
	cuts[0] = len - 1;	/* one byte short */
	cuts[1] = len / 2;	/* half */
	cuts[2] = 1;		/* inside the first bytes */
	for (i = 0; i < ARRAY_SIZE(cuts); i++) {
		ret = load_state(self->m.dst, buf, cuts[i], 0, 4096);
		ASSERT_EQ(0, device_reset(self->m.dst));
		ASSERT_EQ(S_(RUNNING), get_state(self->m.dst));
		if (ret == 0)
			TH_LOG("%zu of %zu bytes accepted", cuts[i], len);
		if (known_failure(_metadata, ret != 0, bug))
			return;
		ASSERT_NE(0, ret);
		TH_LOG("%zu of %zu bytes: %s", cuts[i], len,
		       ret == -EPROTO ? "RESUMING -> STOP failed" : "write failed");
	}
	/* The full stream still loads. */
	ASSERT_EQ(0, load_state(self->m.dst, buf, len, 0, 4096));
	check_running(_metadata, self->m.dst);
	free(buf);
	known_bug_not_seen(_metadata, bug);
}

/* ---- VFIO_DEVICE_RESET ---- */

/*
 * A reset in @state: the device is RUNNING afterwards, the session of the
 * state is over, and a new migration works.
 */
static void reset_from(struct __test_metadata *_metadata, struct mig_devices *m, u32 state)
{
	struct vfio_pci_device *dev = state == S_(RESUMING) ? m->dst : m->src;
	const struct known_bug *bug;
	char check[64];
	size_t len = 0;
	u8 *buf = NULL;
	int fd = -1;

	snprintf(check, sizeof(check), "reset_from_%s", state_name(state));
	bug = known_bug(m, check);

	if (!state_supported(m->flags, state))
		SKIP(return, "the device does not offer %s", state_name(state));
	if (not_run(_metadata, bug))
		return;
	ASSERT_EQ(0, set_state(dev, state, &fd));
	ASSERT_EQ(0, device_reset(dev));
	ASSERT_EQ(S_(RUNNING), get_state(dev)) TH_LOG("after a reset in %s", state_name(state));
	if (fd >= 0 && state != S_(RESUMING))
		ASSERT_TRUE(saving_fd_dead(fd));
	if (fd >= 0 && state == S_(RESUMING))
		ASSERT_TRUE(resuming_fd_dead(fd));
	if (fd >= 0)
		close(fd);
	ASSERT_GT(save_state(m->src, &buf, &len, plain_chunks, 1), 0);
	ASSERT_EQ(0, load_state(m->dst, buf, len, 0, 4096));
	check_running(_metadata, m->dst);
	free(buf);
}

TEST_F(migration, reset_from_STOP)
{
	reset_from(_metadata, &self->m, S_(STOP));
}

TEST_F(migration, reset_from_RUNNING)
{
	reset_from(_metadata, &self->m, S_(RUNNING));
}

TEST_F(migration, reset_from_STOP_COPY)
{
	reset_from(_metadata, &self->m, S_(STOP_COPY));
}

TEST_F(migration, reset_from_RESUMING)
{
	reset_from(_metadata, &self->m, S_(RESUMING));
}

TEST_F(migration, reset_from_RUNNING_P2P)
{
	reset_from(_metadata, &self->m, S_(RUNNING_P2P));
}

TEST_F(migration, reset_from_PRE_COPY)
{
	reset_from(_metadata, &self->m, S_(PRE_COPY));
}

TEST_F(migration, reset_from_PRE_COPY_P2P)
{
	reset_from(_metadata, &self->m, S_(PRE_COPY_P2P));
}

int main(int argc, char *argv[])
{
	device_bdfs = vfio_selftests_get_bdfs(&argc, argv, &nr_devices);
	return test_harness_run(argc, argv);
}
