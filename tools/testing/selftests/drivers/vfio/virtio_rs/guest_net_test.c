// SPDX-License-Identifier: GPL-2.0
/*
 * A guest's network across a live migration with its VF (issue 18's
 * "moonshot"): inside the test VM, a nested QEMU 11.1 (the sysroot's, TCG)
 * boots a small Linux (tools/vm/build-guest: the VM carries it in /guest)
 * whose virtio_net drives VF1, passed through with vfio-pci. VF1, VF2 and
 * the PF share one Ethernet segment (a QEMU hub of the outer QEMU,
 * tools/vm/run), so the test VM's virtio_net on the PF (192.0.2.1) pings
 * the guest (192.0.2.2) at a fixed rate from a raw ICMP socket while the
 * nested QEMU live-migrates the guest to a second nested QEMU with VF2.
 *
 * Reported: the guest's boot time, packets sent/received/lost, the longest
 * gap between replies (the interruption the guest's peer sees), QEMU's
 * downtime; checked after the switchover: replies come while the source
 * QEMU is gone and the destination's vfio-pci device is VF2, and the PF
 * receives them.
 *
 * Two devices:
 *  - the QEMU PF with a real admin virtqueue (tools/vm/run with
 *    VIRTIO_RS_QEMU=... --no-sim): device parts are VF1's real state, so
 *    the guest's network must survive on VF2;
 *  - the simulated admin device (virtio_rs_sim, the default VM): the
 *    passthrough is real (the guest pings over VF1 before the migration)
 *    but the migration moves the simulator's fake parts, so VF2 runs no
 *    queue and the guest's network must NOT survive: a negative control
 *    that shows the test sees a broken migration. NETMIG_EXPECT_SURVIVAL=1
 *    in the environment asks for survival anyway (the test then fails with
 *    the simulator).
 *
 * Environment: NETMIG_INTERVAL_MS (ping interval, default 20).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "qemu.h"
#include "sim.h"
#include "vfio_dev.h"
#include "vfio_mig.h"
#include "virtio_rs_test.h"

#define MIG_URI "unix:/tmp/mig.sock"
#define HOST_ADDR "192.0.2.1"
#define GUEST_ADDR "192.0.2.2"
#define GUEST_DIR "/guest"		/* in the test VM's initramfs */
#define GUEST_TMP "/tmp/guest"		/* where the sysroot's QEMU sees it */
#define GUEST_APPEND "console=ttyS0 panic=-1 no_timer_check"
#define GUEST_MEM_MB 96
#define MAXSEQ 65536

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The traffic: ICMP echo requests at a fixed interval, sequence numbered;
 * the send and reply time of every sequence number.
 */
struct pinger {
	int fd;
	uint16_t id;
	struct sockaddr_in dst;
	int interval_us;
	pthread_t tx, rx;
	atomic_int stop_tx, stop;	/* requests; replies too */
	atomic_uint sent;		/* sequence numbers used */
	atomic_uint received, dups;
	double *tsend, *trecv;		/* [MAXSEQ], 0: none */
	double drain_s;			/* waited for late replies */
};

static uint16_t csum(const void *buf, size_t len)
{
	const uint16_t *p = buf;
	uint32_t s = 0;

	for (; len > 1; len -= 2)
		s += *p++;
	if (len)
		s += *(const uint8_t *)p;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return ~s;
}

static void *pinger_tx(void *arg)
{
	struct pinger *p = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&p->stop_tx)) {
		unsigned int seq = atomic_load(&p->sent);
		struct {
			struct icmphdr h;
			char payload[56];
		} pkt = { 0 };

		if (seq >= MAXSEQ)
			break;
		pkt.h.type = ICMP_ECHO;
		pkt.h.un.echo.id = htons(p->id);
		pkt.h.un.echo.sequence = htons(seq);
		memset(pkt.payload, 0xa5, sizeof(pkt.payload));
		pkt.h.checksum = csum(&pkt, sizeof(pkt));
		p->tsend[seq] = now_s();
		/* A full queue or no neighbour yet: the packet counts as lost. */
		sendto(p->fd, &pkt, sizeof(pkt), MSG_DONTWAIT, (struct sockaddr *)&p->dst,
		       sizeof(p->dst));
		atomic_store(&p->sent, seq + 1);
		next.tv_nsec += p->interval_us * 1000L;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	return NULL;
}

static void *pinger_rx(void *arg)
{
	struct pinger *p = arg;
	char buf[1500];

	while (!atomic_load(&p->stop)) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(p->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		struct iphdr *ip = (struct iphdr *)buf;
		struct icmphdr *h;
		unsigned int seq;

		if (n < (ssize_t)sizeof(*ip) || n < ip->ihl * 4 + (ssize_t)sizeof(*h))
			continue;
		h = (struct icmphdr *)(buf + ip->ihl * 4);
		if (h->type != ICMP_ECHOREPLY || ntohs(h->un.echo.id) != p->id ||
		    from.sin_addr.s_addr != p->dst.sin_addr.s_addr)
			continue;
		seq = ntohs(h->un.echo.sequence);
		if (seq >= atomic_load(&p->sent))
			continue;
		if (p->trecv[seq]) {
			atomic_fetch_add(&p->dups, 1);
			continue;
		}
		p->trecv[seq] = now_s();
		atomic_fetch_add(&p->received, 1);
	}
	return NULL;
}

static int pinger_start(struct pinger *p, const char *dst, int interval_ms)
{
	struct timeval tv = { .tv_usec = 100000 };

	memset(p, 0, sizeof(*p));
	p->tsend = calloc(MAXSEQ, sizeof(double));
	p->trecv = calloc(MAXSEQ, sizeof(double));
	if (!p->tsend || !p->trecv)
		return -ENOMEM;
	p->fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (p->fd < 0)
		return -errno;
	setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	p->id = getpid() & 0xffff;
	p->dst.sin_family = AF_INET;
	inet_pton(AF_INET, dst, &p->dst.sin_addr);
	p->interval_us = interval_ms * 1000;
	if (pthread_create(&p->rx, NULL, pinger_rx, p))
		return -EAGAIN;
	if (pthread_create(&p->tx, NULL, pinger_tx, p)) {
		atomic_store(&p->stop, 1);
		pthread_join(p->rx, NULL);
		return -EAGAIN;
	}
	return 0;
}

/*
 * Replies in flight after the last request: wait until none has come for
 * 1 s, at most 10 s. A late reply is not a lost packet: a nested guest under
 * TCG on a loaded host can answer a backlog seconds late (the window's
 * round-trip times show it), duplicates included (the hub holds the
 * requests of the switchover for it), so any reply counts as one still in
 * flight.
 */
static void pinger_drain(struct pinger *p)
{
	unsigned int n = atomic_load(&p->received) + atomic_load(&p->dups), m;
	double t0 = now_s(), t_last = t0;

	while (now_s() - t0 < 10 && now_s() - t_last < 1) {
		usleep(100000);
		m = atomic_load(&p->received) + atomic_load(&p->dups);
		if (m != n) {
			n = m;
			t_last = now_s();
		}
	}
	p->drain_s = now_s() - t0;
}

static void pinger_stop(struct pinger *p)
{
	if (!p->tsend)
		return;
	if (p->fd > 0) {
		/* Requests stop first; the receiver counts the late replies. */
		atomic_store(&p->stop_tx, 1);
		pthread_join(p->tx, NULL);
		pinger_drain(p);
		atomic_store(&p->stop, 1);
		pthread_join(p->rx, NULL);
		close(p->fd);
		p->fd = -1;
	}
}

static void pinger_free(struct pinger *p)
{
	free(p->tsend);
	free(p->trecv);
	p->tsend = p->trecv = NULL;
}

/*
 * What the echo requests with sequence numbers [a, b) saw. The longest gap
 * is the interruption the guest's peer sees: the longest time without a
 * reply, between two replies, or, when the replies stop, from the last
 * reply (or the window's first request) to the window's last request
 * ("open": no reply came back until the end).
 */
struct window {
	unsigned int sent, received, lost;
	unsigned int longest_lost_run;	/* consecutive sequence numbers */
	double max_gap;			/* s */
	double gap_from, gap_to;	/* where (send times, relative to t0) */
	bool gap_open;
	double rtt_max, rtt_avg;
};

static struct window window(const struct pinger *p, unsigned int a, unsigned int b, double t0)
{
	struct window w = { 0 };
	double last = 0, rtt_sum = 0;
	unsigned int run = 0, i, last_seq = a;

	if (a > 0 && p->trecv[a - 1]) {
		last = p->trecv[a - 1];	/* the gap that opens at a counts */
		last_seq = a - 1;
	}
	for (i = a; i < b; i++) {
		w.sent++;
		if (!p->trecv[i]) {
			w.lost++;
			if (++run > w.longest_lost_run)
				w.longest_lost_run = run;
			continue;
		}
		run = 0;
		w.received++;
		rtt_sum += p->trecv[i] - p->tsend[i];
		if (p->trecv[i] - p->tsend[i] > w.rtt_max)
			w.rtt_max = p->trecv[i] - p->tsend[i];
		if (last && p->trecv[i] - last > w.max_gap) {
			w.max_gap = p->trecv[i] - last;
			w.gap_from = p->tsend[last_seq] - t0;
			w.gap_to = p->tsend[i] - t0;
		}
		last = p->trecv[i];
		last_seq = i;
	}
	if (run && b > a) {
		double from = last ? last : p->tsend[a];

		if (p->tsend[b - 1] - from > w.max_gap) {
			w.max_gap = p->tsend[b - 1] - from;
			w.gap_from = p->tsend[last ? last_seq : a] - t0;
			w.gap_to = p->tsend[b - 1] - t0;
			w.gap_open = true;
		}
	}
	w.rtt_avg = w.received ? rtt_sum / w.received : 0;
	return w;
}

/* The first line of file path containing needle, into line. */
static bool file_find(const char *path, const char *needle, char *line, size_t len)
{
	char buf[512];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (fgets(buf, sizeof(buf), f)) {
		if (!strstr(buf, needle))
			continue;
		buf[strcspn(buf, "\r\n")] = 0;
		if (line)
			snprintf(line, len, "%s", buf);
		found = true;
		break;
	}
	fclose(f);
	return found;
}

/* The last line of file path containing needle. */
static bool file_find_last(const char *path, const char *needle, char *line, size_t len)
{
	char buf[512];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (fgets(buf, sizeof(buf), f)) {
		if (!strstr(buf, needle))
			continue;
		buf[strcspn(buf, "\r\n")] = 0;
		snprintf(line, len, "%s", buf);
		found = true;
	}
	fclose(f);
	return found;
}

/* The last n lines of file path into the TAP log. */
static void log_tail(struct __test_metadata *_metadata, const char *what, const char *path, int n)
{
	static char buf[1 << 16];
	size_t len;
	char *p, *line, *save;
	long size;
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = 0;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = 0;
	for (p = buf + len; p > buf; p--) {
		if (*p == '\n' && --n == 0) {
			p++;
			break;
		}
	}
	for (line = strtok_r(p, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save))
		TH_LOG("%s: %.200s", what, line);
}

/* The PF's network interface in the test VM. */
static int pf_netdev(const char *pf, char *ifname, size_t len)
{
	char pat[128];
	glob_t g;
	int ret = -ENOENT;

	snprintf(pat, sizeof(pat), PCI_DEVICES "/%s/virtio*/net/*", pf);
	if (glob(pat, 0, NULL, &g))
		return -ENOENT;
	if (g.gl_pathc) {
		snprintf(ifname, len, "%s", strrchr(g.gl_pathv[0], '/') + 1);
		ret = 0;
	}
	globfree(&g);
	return ret;
}

static long if_stat(const char *ifname, const char *stat)
{
	char path[128];
	unsigned long v;

	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", ifname, stat);
	return sysfs_read_ul(path, &v) ? -1 : (long)v;
}

/* Whether VF bdf, bound to its driver, offers VFIO live migration. */
static bool vf_migrates(const char *bdf)
{
	struct vfio_dev d;
	int64_t flags;

	if (vfio_open_cdev(bdf, &d))
		return false;
	flags = mig_flags(d.device_fd);
	vfio_close(&d);
	return flags > 0 && (flags & VFIO_MIGRATION_STOP_COPY);
}

FIXTURE(guestnet)
{
	char pf[32], vf[2][32], ifname[32];
	struct qemu src, dst;
	struct pinger ping;
	bool sim, addr_added;
};

FIXTURE_VARIANT(guestnet)
{
	const char *src_drv;
};

FIXTURE_VARIANT_ADD(guestnet, ours_to_ours)
{
	.src_drv = VIRTIO_RS_DRIVER,
};

FIXTURE_VARIANT_ADD(guestnet, upstream_to_ours)
{
	.src_drv = VIRTIO_C_DRIVER,
};

FIXTURE_SETUP(guestnet)
{
	char cmd[256], out[256];

	memset(&self->src, 0, sizeof(self->src));
	memset(&self->dst, 0, sizeof(self->dst));
	memset(&self->ping, 0, sizeof(self->ping));
	self->src.qmp = self->dst.qmp = -1;
	if (!qemu_available())
		SKIP(return, "no QEMU in this VM (boot it with tools/vm/run --sysroot)");
	if (access(GUEST_DIR "/bzImage", R_OK) || access(GUEST_DIR "/initramfs.cpio", R_OK))
		SKIP(return, "no nested guest in " GUEST_DIR " (tools/vm/build-guest)");
	ASSERT_EQ(0, find_sriov_pf(self->pf, sizeof(self->pf)));
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, pf_vf_bdf(self->pf, i, self->vf[i], sizeof(self->vf[i])));
	if (pf_netdev(self->pf, self->ifname, sizeof(self->ifname)))
		SKIP(return, "the PF %s has no network interface (virtio_net)", self->pf);
	if (!module_loaded(VIRTIO_RS_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_RS_DRIVER));
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
	self->sim = module_loaded(SIM_MODULE);
	if (self->sim)
		ASSERT_EQ(0, sim_ctl("clear"));

	ASSERT_EQ(0, bind_driver_override(self->vf[0], variant->src_drv));
	ASSERT_EQ(0, bind_driver_override(self->vf[1], VIRTIO_RS_DRIVER));
	for (int i = 0; i < 2; i++) {
		if (vf_migrates(self->vf[i]))
			continue;
		unbind_and_clear(self->vf[0]);
		unbind_and_clear(self->vf[1]);
		SKIP(return, "VF %s cannot migrate: its PF has no admin queue with device parts%s",
		     self->vf[i], self->sim ? "" : " (and the simulator is not loaded)");
	}

	/*
	 * The responder: the PF's interface, on the guest's segment. Quiet
	 * (no IPv6): the hub holds what the PF sends until a VF on it
	 * receives, and the PF's transmit queue stalls meanwhile.
	 */
	snprintf(cmd, sizeof(cmd),
		 "(echo 1 >/proc/sys/net/ipv6/conf/%s/disable_ipv6 || true) && ip link set %s up && ip addr add " HOST_ADDR "/24 dev %s",
		 self->ifname, self->ifname, self->ifname);
	ASSERT_EQ(0, run_cmd(cmd, out, sizeof(out))) TH_LOG("%s: %s", cmd, out);
	self->addr_added = true;

	/* The sysroot's QEMU sees the VM's /tmp, not its initramfs. */
	ASSERT_EQ(0, run_cmd("mkdir -p " GUEST_TMP " && cp " GUEST_DIR "/bzImage " GUEST_DIR
			     "/initramfs.cpio " GUEST_TMP "/", out, sizeof(out)))
		TH_LOG("%s", out);
	unlink("/tmp/src.console");
	unlink("/tmp/dst.console");
}

FIXTURE_TEARDOWN(guestnet)
{
	char cmd[256], out[256];

	pinger_stop(&self->ping);
	pinger_free(&self->ping);
	qemu_stop(&self->src);
	qemu_stop(&self->dst);
	if (self->addr_added) {
		snprintf(cmd, sizeof(cmd), "ip addr del " HOST_ADDR "/24 dev %s && ip link set %s down",
			 self->ifname, self->ifname);
		EXPECT_EQ(0, run_cmd(cmd, out, sizeof(out))) TH_LOG("%s", out);
	}
	if (self->vf[0][0]) {
		for (int i = 0; i < 2; i++)
			EXPECT_EQ(0, unbind_and_clear(self->vf[i]));
	}
	if (self->sim)
		EXPECT_EQ(0, sim_stat("objects")) TH_LOG("device objects left behind");
}

static int start_qemu(struct qemu *q, const char *name, const char *vf, bool incoming)
{
	const struct qemu_guest g = {
		.mem_mb = GUEST_MEM_MB,
		.kernel = GUEST_TMP "/bzImage",
		.initrd = GUEST_TMP "/initramfs.cpio",
		.append = GUEST_APPEND,
		.console = true,
	};
	char r[4096];
	int ret;

	if (incoming)
		unlink("/tmp/mig.sock");
	ret = qemu_start_guest(q, name, vf, "enable-migration=on,iommufd=ifd0",
			       incoming ? "-no-reboot -object iommufd,id=ifd0 -incoming defer" :
					  "-no-reboot -object iommufd,id=ifd0", &g);
	if (!ret && incoming)
		ret = qmp(q, r, sizeof(r),
			  "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"" MIG_URI "\"}}");
	return ret;
}

static void log_window(struct __test_metadata *_metadata, const char *what,
		       const struct window *w, int interval_ms)
{
	TH_LOG("%s: sent %u, received %u, lost %u (longest run %u = %u ms), longest time without a reply %.0f ms%s (requests sent %.2f..%.2f s), rtt avg %.1f max %.1f ms",
	       what, w->sent, w->received, w->lost, w->longest_lost_run,
	       w->longest_lost_run * interval_ms, w->max_gap * 1000,
	       w->gap_open ? " (open: no reply until the end)" : "", w->gap_from, w->gap_to,
	       w->rtt_avg * 1000, w->rtt_max * 1000);
}

/* Let the traffic run for s seconds. */
static void ping_for(double s)
{
	usleep((useconds_t)(s * 1e6));
}

TEST_F_TIMEOUT(guestnet, ping_across_migration, 1200)
{
	const char *env = getenv("NETMIG_INTERVAL_MS");
	int interval_ms = env && atoi(env) > 0 ? atoi(env) : 20;
	bool expect_survival = !self->sim || getenv("NETMIG_EXPECT_SURVIVAL");
	char r[8192], line[512], status[32], host[64];
	unsigned int s_base, s_mig, s_sw, s_gone, s_end;
	double t0, t_boot, t_mig, t_done, t_gone;
	long pf_rx0, pf_rx1, pf_rx2;
	struct window wb, wm, wg, wall;

	TH_LOG("device: %s; source driver %s, destination %s; ping every %d ms",
	       self->sim ? "simulated admin device (virtio_rs_sim): the migration moves fake parts" :
			   "the PF's admin virtqueue",
	       variant->src_drv, VIRTIO_RS_DRIVER, interval_ms);

	/* The guest boots on VF1. */
	t0 = now_s();
	ASSERT_EQ(0, start_qemu(&self->src, "src", self->vf[0], false));
	TH_LOG("source QEMU up (QMP) in %.1f s", now_s() - t0);
	while (!file_find("/tmp/src.console", "guest-net: eth0 up", line, sizeof(line))) {
		ASSERT_FALSE(qemu_exited(&self->src, NULL)) {
			log_tail(_metadata, "source QEMU", "/tmp/src.out", 10);
			log_tail(_metadata, "guest console", "/tmp/src.console", 20);
		}
		ASSERT_LT(now_s() - t0, 600) {
			log_tail(_metadata, "guest console", "/tmp/src.console", 20);
			TH_LOG("the guest did not bring eth0 up");
		}
		usleep(200000);
	}
	t_boot = now_s() - t0;
	TH_LOG("guest booted, eth0 up, %.1f s after the QEMU start: %s", t_boot, line);
	if (file_find("/tmp/src.console", "Run /init", line, sizeof(line)))
		TH_LOG("guest kernel: %s", line);

	/* Traffic, and proof that it flows over VF1 before the migration. */
	ASSERT_EQ(0, pinger_start(&self->ping, GUEST_ADDR, interval_ms));
	for (t0 = now_s(); !atomic_load(&self->ping.received); usleep(100000))
		ASSERT_LT(now_s() - t0, 60) TH_LOG("no reply from the guest over VF1 in 60 s");
	TH_LOG("first reply %.1f s after the first request", now_s() - t0);
	s_base = atomic_load(&self->ping.sent);
	ping_for(5);
	s_mig = atomic_load(&self->ping.sent);
	wb = window(&self->ping, s_base, s_mig, t0);
	log_window(_metadata, "before the migration (VF1, 5 s)", &wb, interval_ms);
	ASSERT_GT(wb.received, wb.sent / 2) TH_LOG("the guest's network over VF1 does not work");

	/* The destination, then the live migration. */
	t0 = now_s();
	ASSERT_EQ(0, start_qemu(&self->dst, "dst", self->vf[1], true));
	TH_LOG("destination QEMU up (QMP, incoming) in %.1f s", now_s() - t0);
	pf_rx0 = if_stat(self->ifname, "rx_packets");
	s_mig = atomic_load(&self->ping.sent);
	t_mig = now_s();
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r),
			 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"" MIG_URI "\"}}"))
		TH_LOG("migrate: %s", r);
	EXPECT_EQ(0, qemu_wait_migration(&self->src, r, sizeof(r), 600)) TH_LOG("%s", r);
	json_str(r, "status", status, sizeof(status));
	TH_LOG("query-migrate: status %s, total-time %lld ms, downtime %lld ms, setup-time %lld ms, RAM transferred %lld B",
	       status, json_int(r, "total-time"), json_int(r, "downtime"),
	       json_int(r, "setup-time"), json_int(r, "transferred"));
	ASSERT_STREQ("completed", status);
	ASSERT_EQ(0, qemu_wait_incoming(&self->dst, status, sizeof(status), 120));
	EXPECT_STREQ("running", status);
	t_done = now_s();
	s_sw = atomic_load(&self->ping.sent);
	TH_LOG("destination running %.2f s after the migrate command", t_done - t_mig);
	ASSERT_EQ(0, qmp(&self->dst, r, sizeof(r),
			 "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"vf0\",\"property\":\"host\"}}"))
		TH_LOG("%s", r);
	json_str(r, "return", host, sizeof(host));
	TH_LOG("destination QEMU's vfio-pci device: %s", host);
	EXPECT_STREQ(self->vf[1], host);

	/* 10 s on the destination with the source paused, then without it. */
	ping_for(10);
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r), "{\"execute\":\"query-status\"}"));
	json_str(r, "status", status, sizeof(status));
	EXPECT_STREQ("postmigrate", status);
	qemu_stop(&self->src);
	t_gone = now_s();
	pf_rx1 = if_stat(self->ifname, "rx_packets");
	s_gone = atomic_load(&self->ping.sent);
	ping_for(5);
	s_end = atomic_load(&self->ping.sent);
	pinger_stop(&self->ping);
	pf_rx2 = if_stat(self->ifname, "rx_packets");

	wm = window(&self->ping, s_mig, s_gone, t_mig);
	wg = window(&self->ping, s_gone, s_end, t_mig);
	wall = window(&self->ping, s_mig, s_end, t_mig);
	TH_LOG("times relative to the migrate command: destination running at %.2f s, source QEMU gone at %.2f s",
	       t_done - t_mig, t_gone - t_mig);
	log_window(_metadata, "migration and 10 s after it", &wm, interval_ms);
	log_window(_metadata, "after the source QEMU quit (VF2 only, 5 s)", &wg, interval_ms);
	log_window(_metadata, "from the migrate command to the end", &wall, interval_ms);
	TH_LOG("requests sent after the destination ran: %u, answered: %u; duplicate replies in the whole run: %u",
	       s_end - s_sw, window(&self->ping, s_sw, s_end, t_mig).received,
	       atomic_load(&self->ping.dups));
	TH_LOG("late replies waited for after the last request: %.1f s", self->ping.drain_s);
	TH_LOG("PF rx packets: %ld during the migration window, %ld after the source quit",
	       pf_rx1 - pf_rx0, pf_rx2 - pf_rx1);
	/* The guest's own counters, before and after the switchover. */
	if (file_find_last("/tmp/src.console", "guest-net:", line, sizeof(line)))
		TH_LOG("guest's last heartbeat on the source: %s", line);
	if (file_find("/tmp/dst.console", "guest-net:", line, sizeof(line)))
		TH_LOG("guest's first heartbeat on the destination: %s", line);
	else
		TH_LOG("no guest heartbeat on the destination's console");
	if (file_find_last("/tmp/dst.console", "guest-net:", line, sizeof(line)))
		TH_LOG("guest's last heartbeat on the destination: %s", line);
	log_tail(_metadata, "destination console", "/tmp/dst.console", 8);

	if (expect_survival) {
		EXPECT_GT(wg.received, 0) TH_LOG("the guest's network did not survive on VF2");
		EXPECT_GT(pf_rx2 - pf_rx1, 0) TH_LOG("the PF received nothing from VF2");
		EXPECT_GT(wg.received, wg.sent / 2) TH_LOG("VF2 loses most packets");
	} else {
		/*
		 * Negative control: the simulator moved fake parts, VF2's
		 * queues were never set up, so nothing may come back.
		 */
		EXPECT_EQ(0, wg.received)
			TH_LOG("replies from VF2 after a simulated migration: the test cannot tell a real migration from a broken one");
		TH_LOG("simulated device: as expected the guest's network did not survive (%u of %u answered after the switchover); the real admin queue is needed for survival",
		       wg.received, wg.sent);
	}
}

TEST_HARNESS_MAIN
