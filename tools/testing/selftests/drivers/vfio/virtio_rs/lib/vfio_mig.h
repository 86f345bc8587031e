/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The VFIO migration uAPI (include/uapi/linux/vfio.h) from a test's point
 * of view.
 */
#ifndef VIRTIO_RS_VFIO_MIG_H
#define VIRTIO_RS_VFIO_MIG_H

#include <stddef.h>
#include <stdint.h>

/* VFIO_DEVICE_FEATURE_MIGRATION: flags, or -errno. */
int64_t mig_flags(int device_fd);
/*
 * VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET: 0 or -errno; *data_fd gets
 * the returned fd (-1 when none).
 */
int mig_set_state(int device_fd, uint32_t state, int *data_fd);
/* GET of the current state, or -errno. */
int mig_get_state(int device_fd);
/* VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: 0 or -errno. */
int mig_data_size(int device_fd, uint64_t *size);
/* VFIO_MIG_GET_PRECOPY_INFO: 0 or -errno. */
int mig_precopy_info(int data_fd, uint64_t *initial, uint64_t *dirty);

/*
 * Read a saving fd into *buf (realloc'd) in chunks of `chunk` bytes until
 * EOF (0) or, when stop_at_enomsg, until -ENOMSG. Returns bytes read or
 * -errno of the failing read.
 */
ssize_t mig_read_all(int fd, uint8_t **buf, size_t *len, size_t chunk, int stop_at_enomsg);
/* Write len bytes in chunks of `chunk`. 0 or -errno. */
int mig_write_all(int fd, const uint8_t *buf, size_t len, size_t chunk);

#endif
