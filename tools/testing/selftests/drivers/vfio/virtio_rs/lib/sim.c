// SPDX-License-Identifier: GPL-2.0
/*
 * The simulated virtio PF admin device (tools/sim) through its debugfs
 * files; see sim.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "virtio_rs_test.h"

int sim_load(const char *params)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "modprobe " SIM_MODULE " %s", params ? params : "");
	return run_cmd(cmd, NULL, 0);
}

int sim_unload(void)
{
	return modprobe_remove(SIM_MODULE);
}

int sim_ctl(const char *fmt, ...)
{
	char buf[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return sysfs_write(SIM_DEBUGFS "/ctl", buf);
}

int sim_vf_state(int vf, uint64_t *hash, uint64_t *size, int *stopped, uint64_t *reads)
{
	char line[256], mode[16];
	int ret = -ENOENT;
	FILE *f;

	f = fopen(SIM_DEBUGFS "/state", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long h, sz, gen, rd, sets;
		int n;

		if (sscanf(line, "vf %d mode %15s size %llu generation %llu hash %llx reads %llu sets %llu",
			   &n, mode, &sz, &gen, &h, &rd, &sets) != 7 || n != vf)
			continue;
		if (hash)
			*hash = h;
		if (size)
			*size = sz;
		if (stopped)
			*stopped = !strcmp(mode, "stopped");
		if (reads)
			*reads = rd;
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

long sim_stat(const char *name)
{
	char line[256];
	long val = -1;
	size_t nl = strlen(name);
	FILE *f;

	f = fopen(SIM_DEBUGFS "/stats", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, nl) && line[nl] == ' ') {
			val = strtol(line + nl + 1, NULL, 0);
			break;
		}
	}
	fclose(f);
	return val;
}

long sim_op_count(int opcode)
{
	char line[256];
	long count = 0;
	FILE *f;

	f = fopen(SIM_DEBUGFS "/stats", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned int op;
		unsigned long ok, failed;

		if (sscanf(line, "op %x ok %lu failed %lu", &op, &ok, &failed) == 3 &&
		    (int)op == opcode)
			count += ok + failed;
	}
	fclose(f);
	return count;
}

long sim_trace_count(int opcode)
{
	char line[256];
	long count = 0;
	FILE *f;

	f = fopen(SIM_DEBUGFS "/trace", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long seq;
		unsigned int op;

		if (sscanf(line, "%llu op %x", &seq, &op) == 2 && (int)op == opcode)
			count++;
	}
	fclose(f);
	return count;
}

int sim_trace_ops(int member, unsigned int *ops, int max)
{
	char line[256];
	int n = 0;
	FILE *f;

	f = fopen(SIM_DEBUGFS "/trace", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long seq;
		unsigned int op;
		int m;

		if (sscanf(line, "%llu op %x member %d", &seq, &op, &m) != 3 || m != member)
			continue;
		if (n < max)
			ops[n] = op;
		n++;
	}
	fclose(f);
	return n;
}

int sim_trace_lines(int member, char **buf)
{
	size_t len = 0, cap = 0;
	char line[512];
	int n = 0;
	FILE *f;

	*buf = NULL;
	f = fopen(SIM_DEBUGFS "/trace", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long seq;
		unsigned int op;
		int m, skip = 0;
		size_t ll;

		if (sscanf(line, "%llu %n", &seq, &skip) != 1 || !skip ||
		    sscanf(line + skip, "op %x member %d", &op, &m) != 2 || m != member)
			continue;
		ll = strcspn(line + skip, "\n");
		if (len + ll + 2 > cap) {
			char *tmp;

			cap = (len + ll + 2) * 2 + 4096;
			tmp = realloc(*buf, cap);
			if (!tmp) {
				fclose(f);
				return -ENOMEM;
			}
			*buf = tmp;
		}
		memcpy(*buf + len, line + skip, ll);
		len += ll;
		(*buf)[len++] = '\n';
		(*buf)[len] = '\0';
		n++;
	}
	fclose(f);
	if (!*buf)
		*buf = calloc(1, 1);
	return *buf ? n : -ENOMEM;
}
