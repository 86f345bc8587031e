/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Nested QEMU for migration tests: start QEMU 11.1 from the toolchain
 * sysroot (tools/vm/run --sysroot) with a VF passed through, and talk QMP to
 * it.
 */
#ifndef VIRTIO_RS_QEMU_H
#define VIRTIO_RS_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SYSROOT "/sysroot"

struct qemu {
	char name[16];
	pid_t pid;
	int qmp;
	char rbuf[65536];
	size_t rlen;
};

/* Whether the VM was booted with the sysroot (QEMU available). */
bool qemu_available(void);

/*
 * Start QEMU `name` with VF `bdf` passed through (vfio-pci options
 * `vfio_opts` appended to the -device, may be ""), extra arguments `extra`
 * (space separated, may be ""), QMP on /tmp/<name>.qmp, trace log of the
 * VFIO migration state events in /tmp/<name>.log, output in /tmp/<name>.out.
 * Connects QMP (capabilities negotiated). 0 or -errno.
 */
int qemu_start(struct qemu *q, const char *name, const char *bdf, const char *vfio_opts,
	       const char *extra);

/*
 * What a guest boots, beyond SeaBIOS idling: guest memory (0: 64 MiB), a
 * kernel, initramfs and command line (-kernel/-initrd/-append, paths as the
 * sysroot sees them: /tmp is the VM's /tmp), and the first serial port into
 * the file /tmp/<name>.console (console: true).
 */
struct qemu_guest {
	int mem_mb;
	const char *kernel;
	const char *initrd;
	const char *append;
	bool console;
};

/* qemu_start() with a guest g (NULL: qemu_start()). */
int qemu_start_guest(struct qemu *q, const char *name, const char *bdf, const char *vfio_opts,
		     const char *extra, const struct qemu_guest *g);

/*
 * One QMP command (a JSON object). Returns 0 on {"return"...}, -EIO on
 * {"error"...}, -errno on I/O failure; the reply line goes to reply.
 */
int qmp(struct qemu *q, char *reply, size_t len, const char *fmt, ...);

/* Poll query-migrate until a final status (completed/failed/cancelled) or
 * timeout_s; the last reply in reply. Returns 0 when completed. */
int qemu_wait_migration(struct qemu *q, char *reply, size_t len, int timeout_s);

/* Poll query-status until the VM is no longer "inmigrate" (or timeout_s);
 * the final status in status. 0 or -errno. */
int qemu_wait_incoming(struct qemu *q, char *status, size_t len, int timeout_s);

/* "status" value of a query-* reply, into out ("" when absent). */
void json_str(const char *reply, const char *key, char *out, size_t len);
/* Integer value of "key" in a reply, or -1. */
long long json_int(const char *reply, const char *key);

/* Quit (QMP quit, then SIGKILL after a grace period) and reap. */
void qemu_stop(struct qemu *q);
/* Whether the process has exited (reaps it). */
bool qemu_exited(struct qemu *q, int *status);

/*
 * VFIO device states logged by the vfio_migration_set_device_state trace
 * event of QEMU `name`, in order, joined with ">" into out. Count or -errno.
 */
int qemu_trace_states(const char *name, char *out, size_t len);

#endif
