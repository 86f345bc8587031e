// SPDX-License-Identifier: GPL-2.0
/*
 * The VFIO migration uAPI from a test's point of view; see vfio_mig.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "vfio_mig.h"
#include "virtio_rs_test.h"

static int feature(int fd, uint32_t flags, void *payload, size_t len)
{
	uint8_t buf[sizeof(struct vfio_device_feature) + 64] = { 0 };
	struct vfio_device_feature *f = (void *)buf;

	f->argsz = sizeof(*f) + len;
	f->flags = flags;
	if (len)
		memcpy(f->data, payload, len);
	if (ioctl(fd, VFIO_DEVICE_FEATURE, f))
		return -errno;
	if (len)
		memcpy(payload, f->data, len);
	return 0;
}

int64_t mig_flags(int device_fd)
{
	struct vfio_device_feature_migration m = { 0 };
	int ret = feature(device_fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
			  &m, sizeof(m));

	return ret ? ret : (int64_t)m.flags;
}

int mig_set_state(int device_fd, uint32_t state, int *data_fd)
{
	struct vfio_device_feature_mig_state s = { .device_state = state, .data_fd = -1 };
	int ret = feature(device_fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			  &s, sizeof(s));

	if (data_fd)
		*data_fd = ret ? -1 : s.data_fd;
	else if (!ret && s.data_fd >= 0)
		close(s.data_fd);
	return ret;
}

int mig_get_state(int device_fd)
{
	struct vfio_device_feature_mig_state s = { 0 };
	int ret = feature(device_fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			  &s, sizeof(s));

	return ret ? ret : (int)s.device_state;
}

int mig_data_size(int device_fd, uint64_t *size)
{
	struct vfio_device_feature_mig_data_size d = { 0 };
	int ret = feature(device_fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
			  &d, sizeof(d));

	if (!ret)
		*size = d.stop_copy_length;
	return ret;
}

int mig_precopy_info(int data_fd, uint64_t *initial, uint64_t *dirty)
{
	struct vfio_precopy_info info = { .argsz = sizeof(info) };

	if (ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info))
		return -errno;
	*initial = info.initial_bytes;
	*dirty = info.dirty_bytes;
	return 0;
}

ssize_t mig_read_all(int fd, uint8_t **buf, size_t *len, size_t chunk, int stop_at_enomsg)
{
	size_t start = *len;

	for (;;) {
		uint8_t *tmp = realloc(*buf, *len + chunk);
		ssize_t n;

		if (!tmp)
			return -ENOMEM;
		*buf = tmp;
		n = read(fd, *buf + *len, chunk);
		if (n < 0) {
			if (errno == ENOMSG && stop_at_enomsg)
				return *len - start;
			return -errno;
		}
		if (n == 0)
			return *len - start;
		*len += n;
	}
}

int mig_write_all(int fd, const uint8_t *buf, size_t len, size_t chunk)
{
	size_t off = 0;

	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;
		ssize_t w = write(fd, buf + off, n);

		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		off += w;
	}
	return 0;
}
