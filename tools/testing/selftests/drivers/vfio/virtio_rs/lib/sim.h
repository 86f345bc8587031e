/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The simulated virtio PF admin device of the test kernel (tools/sim,
 * module virtio_rs_sim) through its debugfs files: load/unload, controls,
 * per-VF state, counters and the command trace. Opcodes are the
 * VIRTIO_ADMIN_CMD_* of <linux/virtio_pci.h>. Tests that need it are not
 * hardware tests: they SKIP without it.
 */
#ifndef VIRTIO_RS_SIM_H
#define VIRTIO_RS_SIM_H

#include <stdint.h>

#include <linux/virtio_pci.h>

#define SIM_MODULE "virtio_rs_sim"
#define SIM_DEBUGFS "/sys/kernel/debug/virtio_rs_sim"

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
/*
 * The trace lines of one group member since the last `clear`, oldest first,
 * without their sequence numbers ("op 0x3 member 1 status 0 ..."), into
 * *buf (malloc'd, NUL-terminated, one line each). Returns the count or
 * -errno.
 */
int sim_trace_lines(int member, char **buf);

#endif
