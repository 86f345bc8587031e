// SPDX-License-Identifier: GPL-2.0
/*
 * qemu-demo SRC_BDF DST_BDF: the `make run` demo's nested part. Two QEMU
 * 11.1 processes inside the test VM, each with a small guest and one VF
 * passed through (both VFs already bound to a vfio-pci variant driver);
 * QEMU live-migrates the source guest into the destination, and this says
 * in plain words what happened.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qemu.h"
#include "sim.h"
#include "vfio_mig.h"

#define OPTS "enable-migration=on,iommufd=ifd0"

static void say(const char *fmt, const char *a, const char *b)
{
	printf("nested: ");
	printf(fmt, a, b);
	printf("\n");
}

static void arrows(char *s)
{
	char out[1024] = "", *tok, *save;

	for (tok = strtok_r(s, ">", &save); tok; tok = strtok_r(NULL, ">", &save)) {
		if (*out)
			strcat(out, " -> ");
		strncat(out, tok, sizeof(out) - strlen(out) - 8);
	}
	strcpy(s, out);
}

int main(int argc, char **argv)
{
	struct qemu src, dst;
	char r[8192], status[32], st[1024], dt[1024];
	uint64_t h1, h2;
	int ret;

	if (argc != 3) {
		fprintf(stderr, "usage: qemu-demo SRC_BDF DST_BDF\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!qemu_available()) {
		printf("nested: no QEMU in this VM (tools/vm/run --sysroot)\n");
		return 1;
	}
	say("starting the destination QEMU: a guest waiting for an incoming migration, VF %s%s",
	    argv[2], " passed through (iommufd)");
	unlink("/tmp/mig.sock");
	ret = qemu_start(&dst, "dst", argv[2], OPTS, "-object iommufd,id=ifd0 -incoming defer");
	if (!ret)
		ret = qmp(&dst, r, sizeof(r),
			  "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"unix:/tmp/mig.sock\"}}");
	if (ret) {
		printf("nested: destination failed to start (%d)\n", ret);
		return 1;
	}
	say("starting the source QEMU: a running guest (SeaBIOS idling) with VF %s%s", argv[1],
	    " passed through");
	ret = qemu_start(&src, "src", argv[1], OPTS, "-object iommufd,id=ifd0");
	if (ret) {
		printf("nested: source failed to start (%d)\n", ret);
		qemu_stop(&dst);
		return 1;
	}
	sleep(1);
	say("QMP migrate to unix:/tmp/mig.sock (pre-copy: QEMU's default for a VFIO device %s)%s",
	    "with PRE_COPY", "");
	ret = qmp(&src, r, sizeof(r),
		  "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:/tmp/mig.sock\"}}");
	if (!ret)
		ret = qemu_wait_migration(&src, r, sizeof(r), 300);
	json_str(r, "status", status, sizeof(status));
	printf("nested: QEMU reports: status %s, total time %lld ms, downtime %lld ms, "
	       "VFIO device state %lld bytes\n",
	       status, json_int(r, "total-time"), json_int(r, "downtime"),
	       json_int(r, "transferred"));
	qemu_wait_incoming(&dst, status, sizeof(status), 60);
	say("destination guest is %s%s", status, "");
	if (qemu_trace_states("src", st, sizeof(st)) > 0) {
		arrows(st);
		say("source VF states (QEMU trace): %s%s", st, "");
	}
	if (qemu_trace_states("dst", dt, sizeof(dt)) > 0) {
		arrows(dt);
		say("destination VF states (QEMU trace): %s%s", dt, "");
	}
	sim_vf_state(1, &h1, NULL, NULL, NULL);
	sim_vf_state(2, &h2, NULL, NULL, NULL);
	printf("nested: device state: source VF %016llx, destination VF %016llx: %s\n",
	       (unsigned long long)h1, (unsigned long long)h2, h1 == h2 ? "equal" : "DIFFERENT");
	qemu_stop(&src);
	qemu_stop(&dst);
	return ret || h1 != h2;
}
