/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The VFIO migration uAPI (include/uapi/linux/vfio.h) from a test's point
 * of view, and the simulated admin device's debugfs controls.
 */
#ifndef VIRTIO_RS_VFIO_MIG_H
#define VIRTIO_RS_VFIO_MIG_H

#include <stddef.h>
#include <stdint.h>

#define SIM_MODULE "virtio_rs_sim"
#define SIM_DEBUGFS "/sys/kernel/debug/virtio_rs_sim"

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

/* Simulated device (debugfs). */
int sim_load(const char *params);	/* modprobe with params, 0 or exit status */
int sim_unload(void);
int sim_ctl(const char *fmt, ...);	/* write one ctl command, 0 or -errno */
/* Fields of VF vf's `state` line. 0 or -errno. */
int sim_vf_state(int vf, uint64_t *hash, uint64_t *size, int *stopped, uint64_t *reads);
/* Value of a "name N" line in `stats`, or -1. */
long sim_stat(const char *name);
/* Count of trace lines with this opcode since the last `clear`. */
long sim_trace_count(int opcode);
/*
 * Commands of this opcode executed since the last `clear` (ok + failed,
 * from `stats`: not limited by the trace's length), or -1.
 */
long sim_op_count(int opcode);
/*
 * Opcodes of the traced commands for one group member (VF number + 1), in
 * order, since the last `clear`: stores up to max, returns the count or
 * -errno.
 */
int sim_trace_ops(int member, unsigned int *ops, int max);

#endif
