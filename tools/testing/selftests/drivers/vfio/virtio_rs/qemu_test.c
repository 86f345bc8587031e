// SPDX-License-Identifier: GPL-2.0
/*
 * QEMU as the migration client: inside the test VM, two QEMU 11.1 processes
 * (from the toolchain sysroot, tools/vm/run --sysroot) run a small guest
 * (SeaBIOS idling, TCG) with a VF passed through: the source with VF1, the
 * destination (-incoming) with VF2. QEMU live-migrates the guest over a
 * unix socket; the VF's device state travels through our driver.
 *
 * Evidence per run: QMP query-migrate (status, times, VFIO bytes), the VFIO
 * migration state changes from QEMU's trace log on both sides, and the
 * simulated device's state hashes of VF1 and VF2.
 *
 * The transitional tests do the same with a transitional VF (legacy I/O
 * BAR0) and check what the guest sees through QEMU's monitor.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "qemu.h"
#include "sim.h"
#include "vfio_mig.h"
#include "virtio_rs_test.h"

#define MIG_URI "unix:/tmp/mig.sock"

enum variant { PRECOPY, STOP_COPY, MULTIFD, SWITCHOVER_ACK };

FIXTURE(nested)
{
	char pf[32], vf[2][32];
	struct qemu src, dst;
};

FIXTURE_SETUP(nested)
{
	if (!qemu_available())
		SKIP(return, "no QEMU in this VM (boot it with tools/vm/run --sysroot)");
	if (!module_loaded(SIM_MODULE))
		ASSERT_EQ(0, sim_load(NULL));
	if (!module_loaded(VIRTIO_RS_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_RS_DRIVER));
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
	ASSERT_EQ(0, find_sriov_pf(self->pf, sizeof(self->pf)));
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, pf_vf_bdf(self->pf, i, self->vf[i], sizeof(self->vf[i])));
	ASSERT_EQ(0, sim_ctl("clear"));
	memset(&self->src, 0, sizeof(self->src));
	memset(&self->dst, 0, sizeof(self->dst));
	self->src.qmp = self->dst.qmp = -1;
}

FIXTURE_TEARDOWN(nested)
{
	qemu_stop(&self->src);
	qemu_stop(&self->dst);
	for (int i = 0; i < 2; i++)
		EXPECT_EQ(0, unbind_and_clear(self->vf[i]));
	EXPECT_EQ(0, sim_stat("objects")) TH_LOG("device objects left behind");
	EXPECT_EQ(0, sim_ctl("clear"));
}

static const char *caps(enum variant v)
{
	switch (v) {
	case MULTIFD:
		return "{\"capability\":\"multifd\",\"state\":true}";
	case SWITCHOVER_ACK:
		return "{\"capability\":\"return-path\",\"state\":true},"
		       "{\"capability\":\"switchover-ack\",\"state\":true}";
	default:
		return NULL;
	}
}

static int set_caps(struct qemu *q, enum variant v)
{
	char r[4096];
	int ret = 0;

	if (caps(v))
		ret = qmp(q, r, sizeof(r),
			  "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":[%s]}}",
			  caps(v));
	if (!ret && v == MULTIFD)
		ret = qmp(q, r, sizeof(r),
			  "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"multifd-channels\":2}}");
	return ret;
}

/*
 * The vfio-pci options: the iommufd backend with enable-migration=on.
 *
 * Neither backend gives QEMU 11.1 dirty tracking in the test VM: the
 * emulated VT-d has no hardware dirty tracking for iommufd, and for the
 * type1 container QEMU reports dirty_pages_supported 0. Without dirty
 * tracking QEMU blocks migration unless enable-migration=on. With the
 * container, QEMU then marks all guest memory dirty at every sync, so RAM
 * migration never converges (measured: 900 MB sent for a 64 MB guest in
 * 300 s, even with the guest stopped) and, with the BARs mmapped, its
 * dirty sync fails on a 0xfc0-byte BAR piece (EINVAL); with iommufd the
 * migration completes in about a second.
 */
static const char *vfio_opts(enum variant v)
{
	return v == MULTIFD ? "enable-migration=on,iommufd=ifd0,x-migration-multifd-transfer=on" :
			      "enable-migration=on,iommufd=ifd0";
}

static const char *backend(enum variant v, bool incoming)
{
	(void)v;
	return incoming ? "-object iommufd,id=ifd0 -incoming defer" : "-object iommufd,id=ifd0";
}

/* Start the destination (incoming, deferred so capabilities can be set). */
static int start_dst_vf(struct qemu *q, const char *vf, enum variant v)
{
	char r[4096];
	int ret;

	unlink("/tmp/mig.sock");
	ret = qemu_start(q, "dst", vf, vfio_opts(v), backend(v, true));
	if (!ret)
		ret = set_caps(q, v);
	if (!ret)
		ret = qmp(q, r, sizeof(r),
			  "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"" MIG_URI "\"}}");
	return ret;
}

static int start_src_vf(struct qemu *q, const char *vf, enum variant v)
{
	int ret = qemu_start(q, "src", vf, vfio_opts(v), backend(v, false));

	if (!ret)
		ret = set_caps(q, v);
	return ret;
}

static int start_dst(FIXTURE_DATA(nested) *self, enum variant v)
{
	return start_dst_vf(&self->dst, self->vf[1], v);
}

static int start_src(FIXTURE_DATA(nested) *self, enum variant v)
{
	return start_src_vf(&self->src, self->vf[0], v);
}

static void vf_hash(struct __test_metadata *_metadata, int member, uint64_t *h, int *stopped)
{
	ASSERT_EQ(0, sim_vf_state(member, h, NULL, stopped, NULL));
}

/*
 * One migration: both QEMUs up, (source stopped first for STOP_COPY),
 * migrate, wait, check the status, the guest state on both sides, the VF
 * states the trace shows and the device state.
 */
static void migrate(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self,
		    const char *src_drv, const char *dst_drv, enum variant v)
{
	char r[8192], status[32], st[512], dt[512];
	uint64_t h1, h2;
	int stopped, ret;

	ASSERT_EQ(0, bind_driver_override(self->vf[0], src_drv));
	ASSERT_EQ(0, bind_driver_override(self->vf[1], dst_drv));
	ASSERT_EQ(0, start_dst(self, v));
	ASSERT_EQ(0, start_src(self, v));
	/* Let the guest run a little (SeaBIOS). */
	sleep(1);
	if (v == STOP_COPY)
		ASSERT_EQ(0, qmp(&self->src, r, sizeof(r), "{\"execute\":\"stop\"}")) TH_LOG("%s", r);
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r),
			 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"" MIG_URI "\"}}"))
		TH_LOG("migrate: %s", r);
	EXPECT_EQ(0, qemu_wait_migration(&self->src, r, sizeof(r), 300)) TH_LOG("%s", r);
	json_str(r, "status", status, sizeof(status));
	TH_LOG("query-migrate: status %s, total-time %lld ms, downtime %lld ms, setup-time %lld ms, VFIO bytes %lld",
	       status, json_int(r, "total-time"), json_int(r, "downtime"),
	       json_int(r, "setup-time"), json_int(r, "transferred"));
	ASSERT_STREQ("completed", status);

	/* The destination guest runs (or stays paused, like the source was). */
	ret = qemu_wait_incoming(&self->dst, status, sizeof(status), 60);
	if (ret) {
		char cmd[128], out[512];

		qemu_trace_states("dst", dt, sizeof(dt));
		TH_LOG("destination still %s; its VF states: %s", status, dt);
		snprintf(cmd, sizeof(cmd), "tail -n 4 /tmp/dst.log | cut -c1-160");
		run_cmd(cmd, out, sizeof(out));
		TH_LOG("destination trace tail: %s", out);
	}
	ASSERT_EQ(0, ret);
	EXPECT_STREQ(v == STOP_COPY ? "paused" : "running", status);

	/* A guest stopped before migration resumes on the destination only
	 * when told to. */
	if (v == STOP_COPY) {
		ASSERT_EQ(0, qmp(&self->dst, r, sizeof(r), "{\"execute\":\"cont\"}")) TH_LOG("%s", r);
		ASSERT_EQ(0, qmp(&self->dst, r, sizeof(r), "{\"execute\":\"query-status\"}"));
		json_str(r, "status", status, sizeof(status));
		EXPECT_STREQ("running", status);
	}

	/* Device state: the destination VF has the source VF's state. */
	vf_hash(_metadata, 1, &h1, NULL);
	vf_hash(_metadata, 2, &h2, &stopped);
	EXPECT_EQ(h1, h2) TH_LOG("destination VF state differs from the source's");
	EXPECT_FALSE(stopped) TH_LOG("the destination VF must run");

	/* The states QEMU drove the devices through. */
	EXPECT_GT(qemu_trace_states("src", st, sizeof(st)), 0);
	EXPECT_GT(qemu_trace_states("dst", dt, sizeof(dt)), 0);
	TH_LOG("source VF states: %s", st);
	TH_LOG("destination VF states: %s", dt);
	if (v == STOP_COPY) {
		EXPECT_NE(NULL, strstr(st, "STOP>STOP_COPY>STOP")) TH_LOG("%s", st);
	} else {
		EXPECT_NE(NULL, strstr(st, "PRE_COPY>PRE_COPY_P2P>STOP_COPY>STOP")) TH_LOG("%s", st);
	}
	EXPECT_NE(NULL, strstr(dt, "RESUMING")) TH_LOG("%s", dt);
	EXPECT_NE(NULL, strstr(dt, "RESUMING>RUNNING_P2P>RUNNING")) TH_LOG("%s", dt);
	EXPECT_EQ(NULL, strstr(dt, "ERROR"));
	TH_LOG("device commands: PARTS_GET %ld, PARTS_SET %ld, MODE_SET %ld",
	       sim_trace_count(VIRTIO_ADMIN_CMD_DEV_PARTS_GET),
	       sim_trace_count(VIRTIO_ADMIN_CMD_DEV_PARTS_SET),
	       sim_trace_count(VIRTIO_ADMIN_CMD_DEV_MODE_SET));
	/* Our driver's own counters, where it runs. */
	if (!strcmp(src_drv, VIRTIO_RS_DRIVER)) {
		long recs = drv_stat(self->vf[0], "records_saved");

		TH_LOG("source driver: saving_sessions %ld, device_reads %ld, records_saved %ld, bytes_saved %ld",
		       drv_stat(self->vf[0], "saving_sessions"), drv_stat(self->vf[0], "device_reads"),
		       recs, drv_stat(self->vf[0], "bytes_saved"));
		EXPECT_GE(recs, 1);
		EXPECT_EQ(recs, sim_trace_count(0xf)) TH_LOG("one record per device read");
	}
	if (!strcmp(dst_drv, VIRTIO_RS_DRIVER)) {
		long recs = drv_stat(self->vf[1], "records_loaded");

		TH_LOG("destination driver: resuming_sessions %ld, records_loaded %ld, bytes_loaded %ld",
		       drv_stat(self->vf[1], "resuming_sessions"), recs,
		       drv_stat(self->vf[1], "bytes_loaded"));
		EXPECT_EQ(recs, sim_trace_count(0x10)) TH_LOG("one DEV_PARTS_SET per record");
	}
	qemu_stop(&self->src);
	qemu_stop(&self->dst);
}

TEST_F_TIMEOUT(nested, qemu_migrate_precopy, 600)
{
	migrate(_metadata, self, VIRTIO_RS_DRIVER, VIRTIO_RS_DRIVER, PRECOPY);
}

TEST_F_TIMEOUT(nested, qemu_migrate_switchover_ack, 600)
{
	migrate(_metadata, self, VIRTIO_RS_DRIVER, VIRTIO_RS_DRIVER, SWITCHOVER_ACK);
}

TEST_F_TIMEOUT(nested, qemu_migrate_stop_copy, 600)
{
	migrate(_metadata, self, VIRTIO_RS_DRIVER, VIRTIO_RS_DRIVER, STOP_COPY);
}

TEST_F_TIMEOUT(nested, qemu_migrate_multifd, 600)
{
	migrate(_metadata, self, VIRTIO_RS_DRIVER, VIRTIO_RS_DRIVER, MULTIFD);
}

TEST_F_TIMEOUT(nested, qemu_migrate_c_to_rust, 600)
{
	migrate(_metadata, self, VIRTIO_C_DRIVER, VIRTIO_RS_DRIVER, PRECOPY);
}

/* A unix socket that accepts connections and never reads. */
static int sink_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	unlink(path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1)) {
		close(fd);
		return -errno;
	}
	return fd;
}

TEST_F_TIMEOUT(nested, qemu_migrate_cancel, 600)
{
	char r[8192], status[32], st[512];
	int stopped, sink;

	ASSERT_EQ(0, bind_driver_override(self->vf[0], VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, bind_driver_override(self->vf[1], VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, start_src(self, PRECOPY));
	/* Migrate into a socket nobody reads: once its buffer is full the
	 * migration stays in pre-copy (the guest's RAM is mostly zero pages and
	 * otherwise crosses in well under a second). */
	sink = sink_socket("/tmp/sink.sock");
	ASSERT_GE(sink, 0);
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r),
			 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:/tmp/sink.sock\"}}"));
	sleep(3);
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r), "{\"execute\":\"query-migrate\"}"));
	json_str(r, "status", status, sizeof(status));
	ASSERT_STREQ("active", status) TH_LOG("%s", r);
	ASSERT_EQ(0, sim_vf_state(1, NULL, NULL, &stopped, NULL));
	EXPECT_FALSE(stopped) TH_LOG("the source VF runs during pre-copy");
	EXPECT_EQ(1, sim_stat("objects")) TH_LOG("the pre-copy session's object");
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r), "{\"execute\":\"migrate_cancel\"}"));
	EXPECT_EQ(-EIO, qemu_wait_migration(&self->src, r, sizeof(r), 120));
	json_str(r, "status", status, sizeof(status));
	EXPECT_STREQ("cancelled", status);
	close(sink);

	/* The source keeps running with its VF running; nothing is left. */
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r), "{\"execute\":\"query-status\"}"));
	json_str(r, "status", status, sizeof(status));
	EXPECT_STREQ("running", status);
	ASSERT_EQ(0, sim_vf_state(1, NULL, NULL, &stopped, NULL));
	EXPECT_FALSE(stopped);
	EXPECT_EQ(0, sim_stat("objects"));
	EXPECT_GT(qemu_trace_states("src", st, sizeof(st)), 0);
	TH_LOG("source VF states: %s", st);
	EXPECT_NE(NULL, strstr(st, "PRE_COPY>RUNNING")) TH_LOG("%s", st);

	/* A second migration then succeeds. */
	ASSERT_EQ(0, start_dst(self, PRECOPY));
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r),
			 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"" MIG_URI "\"}}"));
	EXPECT_EQ(0, qemu_wait_migration(&self->src, r, sizeof(r), 300)) TH_LOG("%s", r);
	ASSERT_EQ(0, qemu_wait_incoming(&self->dst, status, sizeof(status), 60));
	EXPECT_STREQ("running", status);
	{
		uint64_t h1, h2;

		vf_hash(_metadata, 1, &h1, NULL);
		vf_hash(_metadata, 2, &h2, NULL);
		EXPECT_EQ(h1, h2);
	}
}

/* A destination VF with other device features must refuse the state: the
 * migration fails on the destination and the source keeps running. */
TEST_F_TIMEOUT(nested, qemu_migrate_bad_destination_config, 600)
{
	char r[8192], status[32], out[4096] = "";
	int stopped;
	FILE *f;

	/* VF2 offers the default features without VIRTIO_NET_F_MAC (bit 5). */
	ASSERT_EQ(0, sim_ctl("features 2 0x%llx",
			     (1ull << 32) | (1ull << 33) | (1ull << 17) | (1ull << 18) |
			     (1ull << 16) | (1ull << 15)));
	ASSERT_EQ(0, bind_driver_override(self->vf[0], VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, bind_driver_override(self->vf[1], VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, start_dst(self, PRECOPY));
	ASSERT_EQ(0, start_src(self, PRECOPY));
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r),
			 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"" MIG_URI "\"}}"));
	EXPECT_EQ(-EIO, qemu_wait_migration(&self->src, r, sizeof(r), 300));
	json_str(r, "status", status, sizeof(status));
	EXPECT_STREQ("failed", status) TH_LOG("%s", r);
	TH_LOG("source says: %s", r);
	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r), "{\"execute\":\"query-status\"}"));
	json_str(r, "status", status, sizeof(status));
	EXPECT_STREQ("running", status);
	ASSERT_EQ(0, sim_vf_state(1, NULL, NULL, &stopped, NULL));
	EXPECT_FALSE(stopped) TH_LOG("the source VF must run again");
	/* The destination reports the load error. */
	for (int i = 0; i < 100 && !qemu_exited(&self->dst, NULL); i++)
		usleep(100000);
	f = fopen("/tmp/dst.out", "r");
	if (f) {
		size_t n = fread(out, 1, sizeof(out) - 1, f);

		out[n] = 0;
		fclose(f);
	}
	{
		/* The last line: QEMU's load error. */
		size_t n = strlen(out);
		char *last;

		while (n && out[n - 1] == '\n')
			out[--n] = 0;
		last = strrchr(out, '\n');
		last = last ? last + 1 : out;
		TH_LOG("destination says: %s", last);
		EXPECT_NE(NULL, strstr(last, "load")) TH_LOG("the destination reports a load error");
	}
	ASSERT_EQ(0, sim_ctl("features 2 0x%llx",
			     (1ull << 32) | (1ull << 33) | (1ull << 5) | (1ull << 17) |
			     (1ull << 18) | (1ull << 16) | (1ull << 15)));
}

/*
 * Transitional VFs: with the simulated PF offering the legacy admin
 * commands (sim legacy_io=1), the VF is shown to QEMU as a transitional
 * virtio-net device. The guest (SeaBIOS) sizes and assigns its I/O BAR0;
 * the monitor's port I/O reaches the legacy registers through VFIO region 0,
 * and a legacy register written on the source reads the same on the
 * destination after migration (it is device state, moved as device parts).
 */
#define SIM_HOST_FEATURES 0x78020u	/* the simulated VFs' features, low half */
#define TRANS_GUEST_FEATURES 0x10020u	/* a subset of them */
#define TRANS_NOTIFY 0x2a5

FIXTURE(transitional)
{
	char pf[32], vf[2][32], drv[2][64];
	struct qemu src, dst;
};

FIXTURE_VARIANT(transitional)
{
	const char *src_drv;
};

FIXTURE_VARIANT_ADD(transitional, rust)
{
	.src_drv = VIRTIO_RS_DRIVER,
};

FIXTURE_VARIANT_ADD(transitional, c_to_rust)
{
	.src_drv = VIRTIO_C_DRIVER,
};

FIXTURE_SETUP(transitional)
{
	int ret;

	memset(&self->src, 0, sizeof(self->src));
	memset(&self->dst, 0, sizeof(self->dst));
	self->src.qmp = self->dst.qmp = -1;
	if (!qemu_available())
		SKIP(return, "no QEMU in this VM (boot it with tools/vm/run --sysroot)");
	if (!module_loaded(VIRTIO_RS_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_RS_DRIVER));
	if (!module_loaded(VIRTIO_C_DRIVER))
		ASSERT_EQ(0, modprobe(VIRTIO_C_DRIVER));
	ASSERT_EQ(0, find_sriov_pf(self->pf, sizeof(self->pf)));
	/*
	 * The drivers decide at probe whether a VF is transitional: unbind
	 * the VFs, then reload the simulated PF with the legacy commands.
	 */
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, pf_vf_bdf(self->pf, i, self->vf[i], sizeof(self->vf[i])));
		ASSERT_EQ(0, dev_driver(self->vf[i], self->drv[i], sizeof(self->drv[i])));
		ASSERT_EQ(0, unbind_and_clear(self->vf[i]));
	}
	if (module_loaded(SIM_MODULE))
		ASSERT_EQ(0, sim_unload());
	ret = sim_load("legacy_io=1");
	if (ret)
		sim_load(NULL);
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, sim_ctl("clear"));
}

FIXTURE_TEARDOWN(transitional)
{
	char path[128];

	qemu_stop(&self->src);
	qemu_stop(&self->dst);
	for (int i = 0; i < 2; i++)
		EXPECT_EQ(0, unbind_and_clear(self->vf[i]));
	EXPECT_EQ(0, sim_stat("objects")) TH_LOG("device objects left behind");
	/* The default simulated PF, and the VFs' drivers from before. */
	EXPECT_EQ(0, sim_unload());
	EXPECT_EQ(0, sim_load(NULL));
	for (int i = 0; i < 2; i++) {
		if (!self->drv[i][0])
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s/bind", self->drv[i]);
		EXPECT_EQ(0, sysfs_write(path, self->vf[i]));
	}
}

/* An HMP command; its output, unescaped, into out. 0 or -errno. */
static int hmp(struct qemu *q, char *out, size_t len, const char *fmt, ...)
{
	char cmd[256], r[8192], *p;
	size_t n = 0;
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	ret = qmp(q, r, sizeof(r),
		  "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"%s\"}}",
		  cmd);
	*out = 0;
	if (ret)
		return ret;
	p = strstr(r, "\"return\": \"");
	if (!p)
		return -EPROTO;
	for (p += 11; *p && *p != '"' && n + 1 < len; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			if (*p == 'r')
				continue;
			out[n++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
		} else {
			out[n++] = *p;
		}
	}
	while (n && out[n - 1] == '\n')
		n--;
	out[n] = 0;
	return 0;
}

/* The guest's view of the VF, from "info pci". */
struct guest_vf {
	unsigned int vendor, device, subvendor, subdevice;
	unsigned long long io, io_last, bar4;
	char lines[1024];
};

static int guest_vf(struct qemu *q, struct guest_vf *g)
{
	char out[8192], *id, *start, *p;
	int ret;

	memset(g, 0, sizeof(*g));
	ret = hmp(q, out, sizeof(out), "info pci");
	if (ret)
		return ret;
	id = strstr(out, "id \"vf0\"");
	if (!id)
		return -ENOENT;
	id[strlen("id \"vf0\"")] = 0;
	for (start = out; (p = strstr(start + 1, "  Bus ")) && p < id; start = p)
		;
	snprintf(g->lines, sizeof(g->lines), "%s", start);
	p = strstr(start, "PCI device ");
	if (!p || sscanf(p, "PCI device %x:%x", &g->vendor, &g->device) != 2)
		return -EPROTO;
	p = strstr(start, "PCI subsystem ");
	if (!p || sscanf(p, "PCI subsystem %x:%x", &g->subvendor, &g->subdevice) != 2)
		return -EPROTO;
	/* Not there (or "not mapped") until the BIOS has assigned it. */
	p = strstr(start, "BAR0: I/O at ");
	if (p && sscanf(p, "BAR0: I/O at %llx [%llx]", &g->io, &g->io_last) != 2)
		g->io = 0;
	p = strstr(start, "BAR4: ");
	if (p)
		p = strstr(p, "memory at ");
	if (p && sscanf(p, "memory at %llx", &g->bar4) != 1)
		g->bar4 = 0;
	return 0;
}

/* A guest port read of 4 bytes through the monitor, or -1. */
static long long port_inl(struct qemu *q, unsigned long long port)
{
	char out[256], *p;

	if (hmp(q, out, sizeof(out), "i /w 0x%llx", port))
		return -1;
	p = strstr(out, " = 0x");
	return p ? strtoll(p + 5, NULL, 16) : -1;
}

static void check_guest_vf(struct __test_metadata *_metadata, struct qemu *q,
			   struct guest_vf *g)
{
	char *line, *save;
	int i;

	/* SeaBIOS maps the BAR once it has sized and assigned it. */
	for (i = 0; i < 300; i++) {
		ASSERT_EQ(0, guest_vf(q, g));
		if (g->io)
			break;
		usleep(100000);
	}
	for (line = strtok_r(g->lines, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		TH_LOG("%s guest: %s", q->name, line);
	EXPECT_EQ(VIRTIO_VENDOR_ID, g->vendor);
	EXPECT_EQ(0x1000, g->device) TH_LOG("a transitional virtio-net device");
	EXPECT_EQ(VIRTIO_VENDOR_ID, g->subvendor);
	EXPECT_EQ(1, g->subdevice) TH_LOG("subsystem id: virtio-net");
	EXPECT_NE(0, g->io) TH_LOG("BAR0: an I/O BAR the BIOS assigned");
	EXPECT_EQ(32, g->io_last - g->io + 1) TH_LOG("BAR0: 32 bytes");
	/* The legacy HOST_FEATURES register, through VFIO region 0. */
	if (g->io)
		EXPECT_EQ(SIM_HOST_FEATURES, port_inl(q, g->io));
}

TEST_F_TIMEOUT(transitional, qemu_migrate, 600)
{
	char r[8192], out[256], status[32], *p;
	struct guest_vf gs, gd;
	uint64_t h1, h2;
	int stopped;

	ASSERT_EQ(0, bind_driver_override(self->vf[0], variant->src_drv));
	ASSERT_EQ(0, bind_driver_override(self->vf[1], VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, start_dst_vf(&self->dst, self->vf[1], PRECOPY));
	ASSERT_EQ(0, start_src_vf(&self->src, self->vf[0], PRECOPY));
	check_guest_vf(_metadata, &self->src, &gs);
	ASSERT_NE(0, gs.io);

	/*
	 * A legacy register write (GUEST_FEATURES), and QUEUE_NOTIFY: the
	 * simulated device's notify address is BAR4's device_feature_select.
	 */
	ASSERT_EQ(0, hmp(&self->src, out, sizeof(out), "o /w 0x%llx 0x%x", gs.io + 4,
			 TRANS_GUEST_FEATURES));
	EXPECT_EQ(TRANS_GUEST_FEATURES, port_inl(&self->src, gs.io + 4));
	ASSERT_EQ(0, hmp(&self->src, out, sizeof(out), "o /h 0x%llx 0x%x", gs.io + 16,
			 TRANS_NOTIFY));
	ASSERT_NE(0, gs.bar4);
	ASSERT_EQ(0, hmp(&self->src, out, sizeof(out), "xp /1wx 0x%llx", gs.bar4));
	p = strstr(out, ": 0x");
	EXPECT_EQ(TRANS_NOTIFY, p ? strtol(p + 4, NULL, 16) : -1) TH_LOG("%s", out);

	ASSERT_EQ(0, qmp(&self->src, r, sizeof(r),
			 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"" MIG_URI "\"}}"))
		TH_LOG("migrate: %s", r);
	EXPECT_EQ(0, qemu_wait_migration(&self->src, r, sizeof(r), 300)) TH_LOG("%s", r);
	json_str(r, "status", status, sizeof(status));
	TH_LOG("query-migrate: status %s, total-time %lld ms, downtime %lld ms",
	       status, json_int(r, "total-time"), json_int(r, "downtime"));
	ASSERT_STREQ("completed", status);
	ASSERT_EQ(0, qemu_wait_incoming(&self->dst, status, sizeof(status), 60));
	EXPECT_STREQ("running", status);
	ASSERT_EQ(0, sim_vf_state(1, &h1, NULL, NULL, NULL));
	ASSERT_EQ(0, sim_vf_state(2, &h2, NULL, &stopped, NULL));
	EXPECT_EQ(h1, h2) TH_LOG("destination VF state differs from the source's");
	EXPECT_FALSE(stopped);

	/*
	 * The destination shows the same device, at the same I/O address,
	 * with the legacy register value the source's guest wrote.
	 */
	check_guest_vf(_metadata, &self->dst, &gd);
	EXPECT_EQ(gs.io, gd.io);
	if (gd.io)
		EXPECT_EQ(TRANS_GUEST_FEATURES, port_inl(&self->dst, gd.io + 4));
}

TEST_HARNESS_MAIN
