// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-rs-bench: our driver against upstream's virtio_vfio_pci, side by
 * side on the same simulated PF, in one VM run.
 *
 * VF1 -> VF2 are bound to virtio_vfio_pci_rs, VF3 -> VF4 to virtio_vfio_pci;
 * every measurement alternates between the two pairs (interleaved), REPS
 * times, and reports medians with the spread (min..max) and the ratio
 * ours / upstream's:
 *
 *   save        RUNNING -> STOP_COPY request until EOF of the stream
 *   resume      RESUMING, the stream written, until RESUMING -> STOP returns
 *   switchover  pre-copy as QEMU does it (destination RESUMING, source
 *               PRE_COPY, initial bytes read and loaded), then from the
 *               source's STOP_COPY request until the destination is RUNNING
 *               with the final record loaded
 *   driver      the same three, minus the time the device spent executing
 *               admin commands (the simulator's busy_ns): the driver's own
 *               share, which the simulator's cost (identical for both
 *               drivers) hides for large contexts
 *   memory      peak memory charged to the caller's memory cgroup by one
 *               saving and one resuming session
 *   scale       1..4 pairs migrating at once (all VFs bound to one driver):
 *               aggregate throughput and per-pair latency
 *
 *   breakdown   one migration with our driver and its trace events on, per
 *               -b size (default 4 KiB and 16 MiB; -b 0 for none): the
 *               events on a time line (the raw trace goes next to the -o
 *               report, <report>.trace-<KiB>k), and the time split into
 *               the device's, the driver's inside the state arcs, and the
 *               rest
 *
 * Our module is (re)loaded with device_read_burst=BURST (-B, default 0:
 * off). Its default, 8, is a policy upstream lacks: beyond 8 full-context
 * reads back to back, a VF's reads wait for the budget (at most 1 s each),
 * which is what this benchmark's back-to-back rounds would then measure.
 * A migration reads 2 or 3 times; -B 8 shows the policy's effect.
 *
 * Usage: virtio-rs-bench [-r REPS] [-s SIZE_KIB,...] [-p MAX_PAIRS] [-b KIB,...]
 *                        [-B BURST] [-o FILE]
 * Needs the simulator (virtio_rs_sim), both drivers, cgroup v2 and 8 VFs
 * for the full scale test (pairs beyond the VFs are left out).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "sim.h"
#include "vfio_dev.h"
#include "vfio_mig.h"
#include "virtio_rs_test.h"

#define MAX_VFS 8
#define MAX_REPS 64
#define CG_ROOT "/sys/fs/cgroup"
#define CG_BENCH CG_ROOT "/virtio-rs-bench"

enum { RS, C, NDRV };
static const char *const drv_name[NDRV] = { VIRTIO_RS_DRIVER, VIRTIO_C_DRIVER };

enum {
	SAVE, SAVE_MBS, RESUME, SWITCHOVER, SAVE_DRV, RESUME_DRV, SWITCH_DRV, MEM_SAVE,
	MEM_RESUME, NMET
};
static const char *const met_name[NMET] = {
	"save ms", "save MB/s", "resume ms", "switchover ms", "save, driver ms",
	"resume, driver ms", "switchover, driver ms", "save memory KiB", "resume memory KiB",
};

static char pf[32], vf[MAX_VFS][32];
static struct vfio_dev dev[MAX_VFS];
static int nvfs;
static FILE *outfile_fp;	/* a copy of the report, or NULL */
static const char *outfile;	/* its name */
static uint8_t *big;		/* stream buffer */
static size_t big_cap;
static bool have_cg;

/* Print to stdout and to the report file. */
static void pr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (outfile_fp) {
		va_start(ap, fmt);
		vfprintf(outfile_fp, fmt, ap);
		va_end(ap);
	}
	fflush(stdout);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "virtio-rs-bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static uint64_t busy_ns(void)
{
	long v = sim_stat("busy_ns");

	return v < 0 ? 0 : (uint64_t)v;
}

/* Bind VF i (0-based) to driver and open it. */
static void bind_open(int i, const char *driver)
{
	int ret;

	if (dev[i].device_fd > 0)
		vfio_close(&dev[i]);
	unbind_and_clear(vf[i]);
	ret = bind_driver_override(vf[i], driver);
	if (ret)
		die("bind", ret);
	ret = vfio_open_cdev(vf[i], &dev[i]);
	if (ret)
		die("open", ret);
}

static void ensure_cap(size_t len)
{
	if (len <= big_cap)
		return;
	big = realloc(big, len);
	if (!big)
		die("realloc", ENOMEM);
	big_cap = len;
}

/* Read everything from fd into big (from *len on), chunks of 1 MiB. */
static void read_to_eof(int fd, size_t *len, bool stop_at_enomsg)
{
	for (;;) {
		ssize_t n;

		ensure_cap(*len + (1 << 20));
		n = read(fd, big + *len, 1 << 20);
		if (n > 0) {
			*len += n;
			continue;
		}
		if (n == 0 || (stop_at_enomsg && errno == ENOMSG))
			return;
		die("read", errno);
	}
}

static void write_all(int fd, const uint8_t *buf, size_t len)
{
	if (mig_write_all(fd, buf, len, 1 << 20))
		die("write", errno);
}

static void set(int i, int state, int *fd)
{
	int ret = mig_set_state(dev[i].device_fd, state, fd);

	if (ret)
		die("set state", ret);
}

/*
 * Memory cgroup: charge to `name` and return memory.current. Since 6.12 a
 * write to memory.peak resets the peak seen through that open file only,
 * so the file stays open from the reset to the read (cg_peak()).
 * Resolution: the memory controller charges in per-CPU batches of 64
 * pages, so a peak moves in steps of 256 KiB.
 */
static int peak_fd = -1;

static long cg_enter(const char *name)
{
	char path[128], pid[32];
	unsigned long v;

	if (!have_cg)
		return 0;
	snprintf(path, sizeof(path), CG_BENCH "/%s/cgroup.procs", name);
	snprintf(pid, sizeof(pid), "%d", getpid());
	sysfs_write(path, pid);
	if (peak_fd >= 0)
		close(peak_fd);
	snprintf(path, sizeof(path), CG_BENCH "/%s/memory.peak", name);
	peak_fd = open(path, O_RDWR);
	if (peak_fd < 0 || write(peak_fd, "0", 1) != 1)
		die("memory.peak", errno);
	snprintf(path, sizeof(path), CG_BENCH "/%s/memory.current", name);
	return sysfs_read_ul(path, &v) ? 0 : (long)v;
}

/* The peak of the cgroup entered last, since cg_enter(). */
static long cg_peak(void)
{
	char buf[32];
	ssize_t n;

	if (!have_cg || peak_fd < 0)
		return 0;
	n = pread(peak_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		die("memory.peak", errno);
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

static void cg_setup(void)
{
	mkdir(CG_ROOT, 0755);
	if (mount("none", CG_ROOT, "cgroup2", 0, NULL) && errno != EBUSY)
		return;
	if (sysfs_write(CG_ROOT "/cgroup.subtree_control", "+memory"))
		return;
	mkdir(CG_BENCH, 0755);
	if (sysfs_write(CG_BENCH "/cgroup.subtree_control", "+memory"))
		return;
	mkdir(CG_BENCH "/save", 0755);
	mkdir(CG_BENCH "/resume", 0755);
	mkdir(CG_BENCH "/rest", 0755);
	have_cg = true;
}

struct sample {
	double v[NMET];
};

/* One save + resume + switchover round on pair (s, d). */
static void round_once(int s, int d, size_t *stream_len, struct sample *out)
{
	uint64_t b0, hs, hd;
	size_t len = 0, plen;
	double t0, t1;
	long base;
	int fd, rfd;

	/* save */
	base = cg_enter("save");
	b0 = busy_ns();
	t0 = now();
	set(s, VFIO_DEVICE_STATE_STOP_COPY, &fd);
	read_to_eof(fd, &len, false);
	t1 = now();
	out->v[SAVE] = (t1 - t0) * 1e3;
	out->v[SAVE_MBS] = len / 1e6 / (t1 - t0);
	out->v[SAVE_DRV] = out->v[SAVE] - (busy_ns() - b0) / 1e6;
	out->v[MEM_SAVE] = (cg_peak() - base) / 1024.0;
	cg_enter("rest");
	set(s, VFIO_DEVICE_STATE_RUNNING, NULL);
	close(fd);
	*stream_len = len;

	/* resume */
	base = cg_enter("resume");
	b0 = busy_ns();
	t0 = now();
	set(d, VFIO_DEVICE_STATE_RESUMING, &rfd);
	write_all(rfd, big, len);
	set(d, VFIO_DEVICE_STATE_STOP, NULL);
	t1 = now();
	out->v[RESUME] = (t1 - t0) * 1e3;
	out->v[RESUME_DRV] = out->v[RESUME] - (busy_ns() - b0) / 1e6;
	out->v[MEM_RESUME] = (cg_peak() - base) / 1024.0;
	cg_enter("rest");
	set(d, VFIO_DEVICE_STATE_RUNNING, NULL);
	close(rfd);

	/* pre-copy as QEMU does it, then the switchover */
	set(d, VFIO_DEVICE_STATE_RESUMING, &rfd);
	set(s, VFIO_DEVICE_STATE_PRE_COPY, &fd);
	plen = 0;
	read_to_eof(fd, &plen, true);
	write_all(rfd, big, plen);
	b0 = busy_ns();
	t0 = now();
	set(s, VFIO_DEVICE_STATE_STOP_COPY, NULL);
	len = 0;
	read_to_eof(fd, &len, false);
	write_all(rfd, big, len);
	set(d, VFIO_DEVICE_STATE_RUNNING, NULL);
	t1 = now();
	out->v[SWITCHOVER] = (t1 - t0) * 1e3;
	out->v[SWITCH_DRV] = out->v[SWITCHOVER] - (busy_ns() - b0) / 1e6;
	set(s, VFIO_DEVICE_STATE_RUNNING, NULL);
	close(fd);
	close(rfd);

	/* Both drivers must have moved the same state. */
	if (sim_vf_state(s + 1, &hs, NULL, NULL, NULL) || sim_vf_state(d + 1, &hd, NULL, NULL, NULL))
		die("sim state", EIO);
	if (hs != hd) {
		fprintf(stderr, "virtio-rs-bench: %s: destination state differs\n",
			drv_name[s == 0 ? RS : C]);
		exit(1);
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stat3 {
	double med, lo, hi;
};

static struct stat3 stats(double *v, int n)
{
	struct stat3 st;

	qsort(v, n, sizeof(*v), cmp_d);
	st.lo = v[0];
	st.hi = v[n - 1];
	st.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return st;
}

/* Scale: `pairs` pairs (VF 2i+1 -> VF 2i+2) migrating at once. */
struct pair_arg {
	int s, d;
	size_t len;
	double ms;
	uint8_t *buf;
	size_t cap;
};

static void *pair_thread(void *p)
{
	struct pair_arg *a = p;
	double t0 = now();
	int fd, rfd;

	a->len = 0;
	if (mig_set_state(dev[a->s].device_fd, VFIO_DEVICE_STATE_STOP_COPY, &fd))
		return NULL;
	for (;;) {
		ssize_t n;

		/* The buffer only grows: kept across rounds, faulted in once. */
		if (a->len + (1 << 20) > a->cap) {
			uint8_t *b = realloc(a->buf, a->len + (1 << 20));

			if (!b)
				return NULL;
			a->buf = b;
			a->cap = a->len + (1 << 20);
		}
		n = read(fd, a->buf + a->len, 1 << 20);
		if (n < 0)
			return NULL;
		if (n == 0)
			break;
		a->len += n;
	}
	mig_set_state(dev[a->s].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL);
	close(fd);
	if (mig_set_state(dev[a->d].device_fd, VFIO_DEVICE_STATE_RESUMING, &rfd))
		return NULL;
	mig_write_all(rfd, a->buf, a->len, 1 << 20);
	mig_set_state(dev[a->d].device_fd, VFIO_DEVICE_STATE_RUNNING, NULL);
	close(rfd);
	a->ms = (now() - t0) * 1e3;
	return NULL;
}

static void scale(size_t size, int reps, int max_pairs)
{
	int drv, pairs, r, i;

	pr("\nscale: %zu KiB contexts, whole migrations (save + resume) at once, "
	   "median of %d after a warm-up round\n", size >> 10, reps);
	pr("%-6s %-22s %14s %14s %8s\n", "pairs", "driver", "MB/s total", "ms per pair",
	   "x 1 pair");
	for (pairs = 1; pairs <= max_pairs && 2 * pairs <= nvfs; pairs++) {
		double agg[NDRV], lat[NDRV];

		for (drv = 0; drv < NDRV; drv++) {
			double tp[MAX_REPS], pl[MAX_REPS];
			/* Buffers kept across repetitions: no page faults of
			 * fresh memory in the measured time. */
			struct pair_arg a[4] = { 0 };

			for (i = 0; i < 2 * pairs; i++) {
				bind_open(i, drv_name[drv]);
				if (i % 2 == 0)
					sim_ctl("size %d %zu", i + 1, size);
			}
			for (r = -1; r < reps; r++) {	/* -1: warm-up */
				pthread_t th[4];
				double t0 = now(), tot = 0;
				size_t bytes = 0;

				for (i = 0; i < pairs; i++) {
					a[i].s = 2 * i;
					a[i].d = 2 * i + 1;
					pthread_create(&th[i], NULL, pair_thread, &a[i]);
				}
				for (i = 0; i < pairs; i++) {
					pthread_join(th[i], NULL);
					bytes += a[i].len;
					tot += a[i].ms;
				}
				if (r < 0)
					continue;
				tp[r] = bytes / 1e6 / (now() - t0);
				pl[r] = tot / pairs;
			}
			for (i = 0; i < pairs; i++)
				free(a[i].buf);
			agg[drv] = stats(tp, reps).med;
			lat[drv] = stats(pl, reps).med;
		}
		for (drv = 0; drv < NDRV; drv++) {
			static double one[NDRV];

			if (pairs == 1)
				one[drv] = agg[drv];
			pr("%-6d %-22s %14.1f %14.2f %8.2f\n", pairs, drv_name[drv], agg[drv],
			   lat[drv], agg[drv] / one[drv]);
		}
	}
	/* Back to the interleaved layout: VF1, VF2 ours; VF3, VF4 upstream's. */
	for (i = 0; i < 4; i++)
		bind_open(i, drv_name[i < 2 ? RS : C]);
}

/* ---- Time breakdown of one migration from our trace events ---- */

#define TRACEFS "/sys/kernel/tracing"

struct tev {
	double ts;		/* CLOCK_MONOTONIC seconds (trace_clock mono) */
	double ns;		/* duration, for arcs and commands */
	bool arc, cmd;
	char text[160];		/* the event, from its name on */
};

static char *slurp(const char *path, size_t *len)
{
	char *text = NULL;
	size_t tlen = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	for (;;) {
		char chunk[8192];
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n <= 0)
			break;
		text = realloc(text, tlen + n + 1);
		if (!text)
			die("realloc", ENOMEM);
		memcpy(text + tlen, chunk, n);
		tlen += n;
		text[tlen] = '\0';
	}
	close(fd);
	*len = tlen;
	return text;
}

/* Parse the module's events out of the trace buffer's text. */
static int parse_trace(char *text, struct tev *ev, int max)
{
	int n = 0;
	char *line = strtok(text, "\n");

	for (; line && n < max; line = strtok(NULL, "\n")) {
		char *name = strstr(line, ": virtio_rs_"), *p, *d;

		if (!name)
			continue;
		/* The timestamp is the word before ": virtio_rs_". */
		*name = '\0';
		p = strrchr(line, ' ');
		ev[n].ts = strtod(p ? p + 1 : line, NULL);
		name += 2;
		snprintf(ev[n].text, sizeof(ev[n].text), "%s", name);
		ev[n].arc = !strncmp(name, "virtio_rs_arc:", 14);
		ev[n].cmd = !strncmp(name, "virtio_rs_admin_cmd:", 20);
		ev[n].ns = 0;
		d = strstr(name, " ns ret");
		if (d && (ev[n].arc || ev[n].cmd)) {
			while (d > name && d[-1] != ' ')
				d--;
			ev[n].ns = strtod(d, NULL);
		}
		n++;
	}
	return n;
}

/* Inside an arc: a command that ended within [end - ns, end] of an arc. */
static bool in_arc(const struct tev *ev, int n, int c)
{
	for (int i = 0; i < n; i++)
		if (ev[i].arc && ev[c].ts <= ev[i].ts && ev[c].ts >= ev[i].ts - ev[i].ns / 1e9)
			return true;
	return false;
}

static void phase_summary(const char *what, const struct tev *ev, int n, double t0, double t1)
{
	double cmds = 0, arcs = 0, outside = 0;
	int ncmd = 0;

	for (int i = 0; i < n; i++) {
		if (ev[i].ts < t0 || ev[i].ts > t1)
			continue;
		if (ev[i].arc)
			arcs += ev[i].ns;
		if (ev[i].cmd) {
			cmds += ev[i].ns;
			ncmd++;
			if (!in_arc(ev, n, i))
				outside += ev[i].ns;
		}
	}
	pr("  %-7s %9.3f ms = device (%d admin commands) %9.3f + driver inside state arcs %9.3f"
	   " + the rest %9.3f\n", what, (t1 - t0) * 1e3, ncmd, cmds / 1e6,
	   (arcs - (cmds - outside)) / 1e6, ((t1 - t0) * 1e9 - arcs - outside) / 1e6);
}

/*
 * One save and resume of a `size` context with our driver (VF1 -> VF2),
 * the module's trace events on, the trace clock CLOCK_MONOTONIC: print the
 * events with their time since the request, and split each phase into the
 * device's time (admin commands), the driver's time inside the state arcs
 * (outside commands), and the rest (ioctl and file entry, the copies of
 * read()/write(), the parsing of written data, userspace).
 */
static void breakdown(size_t size)
{
	static struct tev ev[512];
	double t0, t1, t2;
	size_t len = 0, tlen;
	char *text;
	int fd, rfd, n;

	if (access(TRACEFS "/trace", F_OK))
		mount("nodev", TRACEFS, "tracefs", 0, NULL);
	if (access(TRACEFS "/events/virtio_vfio_pci_rs/enable", F_OK)) {
		pr("\nbreakdown: no tracefs or no trace events of %s\n", drv_name[RS]);
		return;
	}
	sim_ctl("size 1 %zu", size);
	sysfs_write(TRACEFS "/trace_clock", "mono");
	sysfs_write(TRACEFS "/buffer_size_kb", "4096");
	close(open(TRACEFS "/trace", O_WRONLY | O_TRUNC));	/* clears it */
	sysfs_write(TRACEFS "/events/virtio_vfio_pci_rs/enable", "1");
	/* Twice: the first migration with the events on warms the tracing
	 * paths up; the second is the one shown. */
	for (int round = 0; round < 2; round++) {
		len = 0;
		t0 = now();
		set(0, VFIO_DEVICE_STATE_STOP_COPY, &fd);
		read_to_eof(fd, &len, false);
		t1 = now();
		set(1, VFIO_DEVICE_STATE_RESUMING, &rfd);
		write_all(rfd, big, len);
		set(1, VFIO_DEVICE_STATE_STOP, NULL);
		t2 = now();
		if (round)
			sysfs_write(TRACEFS "/events/virtio_vfio_pci_rs/enable", "0");
		set(0, VFIO_DEVICE_STATE_RUNNING, NULL);
		set(1, VFIO_DEVICE_STATE_RUNNING, NULL);
		close(fd);
		close(rfd);
	}

	text = slurp(TRACEFS "/trace", &tlen);
	sysfs_write(TRACEFS "/trace_clock", "local");
	if (!text) {
		pr("\nbreakdown: cannot read the trace\n");
		return;
	}
	if (outfile) {
		/* The raw trace too, as tracefs printed it: <report>.trace-<KiB>k */
		char path[PATH_MAX];
		FILE *f;

		snprintf(path, sizeof(path), "%s.trace-%zuk", outfile, size >> 10);
		f = fopen(path, "w");
		if (f) {
			fputs(text, f);
			fclose(f);
		}
	}
	n = parse_trace(text, ev, 512);
	pr("\nbreakdown: one migration of a %zu KiB context with %s (VF1 -> VF2), "
	   "from its trace events\n", size >> 10, drv_name[RS]);
	for (int i = 0; i < n; i++)
		if (ev[i].ts >= t0)	/* not the warm-up's */
			pr("  %+10.1f us  %s\n", (ev[i].ts - t0) * 1e6, ev[i].text);
	phase_summary("save", ev, n, t0, t1);
	phase_summary("resume", ev, n, t1, t2);
	free(text);
}

int main(int argc, char **argv)
{
	size_t sizes[8] = { 4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20 };
	int nsizes = 5, reps = 9, max_pairs = 4, opt, z, r, m, i;
	size_t bsizes[4] = { 4 << 10, 16 << 20 };
	char load[128];
	int burst = 0;
	int nbsizes = 2;

	while ((opt = getopt(argc, argv, "r:s:p:o:b:B:")) != -1) {
		switch (opt) {
		case 'r':
			reps = atoi(optarg);
			break;
		case 's': {
			char *tok = strtok(optarg, ",");

			nsizes = 0;
			while (tok && nsizes < 8) {
				sizes[nsizes++] = strtoul(tok, NULL, 0) << 10;
				tok = strtok(NULL, ",");
			}
			break;
		}
		case 'p':
			max_pairs = atoi(optarg);
			break;
		case 'b': {
			char *tok = strtok(optarg, ",");

			nbsizes = 0;
			while (tok && nbsizes < 4) {
				if (strtoul(tok, NULL, 0))
					bsizes[nbsizes++] = strtoul(tok, NULL, 0) << 10;
				tok = strtok(NULL, ",");
			}
			break;
		}
		case 'o':
			outfile = optarg;
			break;
		case 'B':
			burst = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-r REPS] [-s KIB,...] [-p PAIRS] [-b KIB,...] [-B BURST] [-o FILE]\n",
				argv[0]);
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS || max_pairs > 4)
		die("arguments", EINVAL);
	if (outfile) {
		outfile_fp = fopen(outfile, "w");
		if (!outfile_fp)
			die(outfile, errno);
	}

	if (find_sriov_pf(pf, sizeof(pf)))
		die("no SR-IOV PF", ENODEV);
	for (nvfs = 0; nvfs < MAX_VFS; nvfs++)
		if (pf_vf_bdf(pf, nvfs, vf[nvfs], sizeof(vf[nvfs])))
			break;
	if (nvfs < 4)
		die("fewer than 4 VFs", ENODEV);
	for (i = 0; i < MAX_VFS; i++)
		dev[i].device_fd = -1;
	if (!module_loaded(SIM_MODULE) && sim_load(NULL))
		die("cannot load the simulator", ENODEV);
	/* Our module with the read budget asked for (see the usage text). */
	for (i = 0; i < nvfs; i++)
		unbind_and_clear(vf[i]);
	if (module_loaded(VIRTIO_RS_DRIVER) && modprobe_remove(VIRTIO_RS_DRIVER))
		die("cannot unload " VIRTIO_RS_DRIVER, EBUSY);
	snprintf(load, sizeof(load), VIRTIO_RS_DRIVER " device_read_burst=%d", burst);
	if (modprobe(load))
		die("cannot load " VIRTIO_RS_DRIVER, ENODEV);
	if (!module_loaded(VIRTIO_C_DRIVER) && modprobe(VIRTIO_C_DRIVER))
		die("cannot load " VIRTIO_C_DRIVER, ENODEV);
	cg_setup();
	for (i = 0; i < 4; i++)
		bind_open(i, drv_name[i < 2 ? RS : C]);

	pr("virtio-rs-bench: %s vs %s on one simulated PF, interleaved, median (min..max) "
	   "of %d (x5 up to 64 KiB), ratio = ours / upstream's%s\n", drv_name[RS], drv_name[C], reps,
	   have_cg ? "" : " (no memory cgroup: memory not measured)");
	pr("%s loaded with device_read_burst=%d%s\n", drv_name[RS], burst,
	   burst ? "" : " (read budget off: upstream has none)");
	for (z = 0; z < nsizes; z++) {
		static struct sample smp[NDRV][MAX_REPS];
		size_t len[NDRV];
		/* Contexts up to 64 KiB take a millisecond a round, and their
		 * medians move with the host's load: 5x the repetitions. */
		int n = sizes[z] <= (64 << 10) ? reps * 5 : reps;

		if (n > MAX_REPS)
			n = MAX_REPS;
		sim_ctl("size 1 %zu", sizes[z]);
		sim_ctl("size 3 %zu", sizes[z]);
		/* One unmeasured round per driver: warm caches and allocators. */
		for (int drv = 0; drv < NDRV; drv++) {
			struct sample warm;

			round_once(2 * drv, 2 * drv + 1, &len[drv], &warm);
		}
		for (r = 0; r < n; r++)
			for (int drv = 0; drv < NDRV; drv++)
				round_once(2 * drv, 2 * drv + 1, &len[drv], &smp[drv][r]);
		pr("\ncontext %zu KiB (stream %zu bytes), median of %d\n", sizes[z] >> 10,
		   len[RS], n);
		pr("%-22s %24s %24s %7s\n", "", "ours", "upstream", "ratio");
		for (m = 0; m < NMET; m++) {
			double a[MAX_REPS], b[MAX_REPS];
			struct stat3 sa, sb;
			char ratio[16];

			if (!have_cg && (m == MEM_SAVE || m == MEM_RESUME))
				continue;
			for (r = 0; r < n; r++) {
				a[r] = smp[RS][r].v[m];
				b[r] = smp[C][r].v[m];
			}
			sa = stats(a, n);
			sb = stats(b, n);
			if (sb.med > 0)
				snprintf(ratio, sizeof(ratio), "%7.2f", sa.med / sb.med);
			else
				snprintf(ratio, sizeof(ratio), "%7s", sa.med > 0 ? "inf" : "-");
			pr("%-22s %9.3f (%6.2f..%6.2f) %9.3f (%6.2f..%6.2f) %s\n", met_name[m],
			   sa.med, sa.lo, sa.hi, sb.med, sb.lo, sb.hi, ratio);
		}
	}
	for (i = 0; i < nbsizes; i++)
		breakdown(bsizes[i]);
	if (max_pairs > 0)
		scale(sizes[nsizes > 2 ? 2 : 0], reps, max_pairs);
	for (i = 0; i < MAX_VFS; i++)
		if (dev[i].device_fd > 0)
			vfio_close(&dev[i]);
	for (i = 0; i < nvfs; i++)
		unbind_and_clear(vf[i]);
	if (outfile_fp)
		fclose(outfile_fp);
	return 0;
}
