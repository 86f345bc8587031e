// SPDX-License-Identifier: GPL-2.0
/*
 * Nested QEMU for migration tests, see qemu.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qemu.h"

#define QEMU_BIN "/usr/bin/qemu-system-x86_64"

bool qemu_available(void)
{
	return access(SYSROOT QEMU_BIN, X_OK) == 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Next line from QMP into line (without CR/LF); 0, or -errno / -ETIMEDOUT. */
static int qmp_line(struct qemu *q, char *line, size_t len, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;

	for (;;) {
		char *nl = memchr(q->rbuf, '\n', q->rlen);
		struct pollfd p = { .fd = q->qmp, .events = POLLIN };
		ssize_t n;
		int left;

		if (nl) {
			size_t l = nl - q->rbuf;

			if (l && q->rbuf[l - 1] == '\r')
				l--;
			if (l >= len)
				l = len - 1;
			memcpy(line, q->rbuf, l);
			line[l] = 0;
			q->rlen -= nl + 1 - q->rbuf;
			memmove(q->rbuf, nl + 1, q->rlen);
			return 0;
		}
		if (q->rlen == sizeof(q->rbuf))
			q->rlen = 0;	/* an absurd line: drop it */
		left = (int)((end - now_s()) * 1000);
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, left) <= 0)
			continue;
		n = read(q->qmp, q->rbuf + q->rlen, sizeof(q->rbuf) - q->rlen);
		if (n <= 0)
			return n ? -errno : -EPIPE;
		q->rlen += n;
	}
}

int qmp(struct qemu *q, char *reply, size_t len, const char *fmt, ...)
{
	char cmd[1024], line[8192];
	va_list ap;
	int n, ret;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	va_end(ap);
	cmd[n++] = '\n';
	if (send(q->qmp, cmd, n, MSG_NOSIGNAL) != n)
		return -errno;
	for (;;) {
		ret = qmp_line(q, line, sizeof(line), 60000);
		if (ret)
			return ret;
		/* Events ({"timestamp": ..., "event": ...}) are not replies. */
		if (strncmp(line, "{\"return\"", 9) && strncmp(line, "{\"error\"", 8))
			continue;
		if (reply)
			snprintf(reply, len, "%s", line);
		return strncmp(line, "{\"return\"", 9) ? -EIO : 0;
	}
}

int qemu_start(struct qemu *q, const char *name, const char *bdf, const char *vfio_opts,
	       const char *extra)
{
	return qemu_start_guest(q, name, bdf, vfio_opts, extra, NULL);
}

int qemu_start_guest(struct qemu *q, const char *name, const char *bdf, const char *vfio_opts,
		     const char *extra, const struct qemu_guest *g)
{
	char cmdline[2048], qmp_path[128], line[4096], serial[96], *argv[96], *tok, *save;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double end;
	int argc = 0;

	memset(q, 0, sizeof(*q));
	snprintf(q->name, sizeof(q->name), "%s", name);
	snprintf(qmp_path, sizeof(qmp_path), "/tmp/%s.qmp", name);
	unlink(qmp_path);
	snprintf(serial, sizeof(serial), "none");
	if (g && g->console)
		snprintf(serial, sizeof(serial), "file:/tmp/%s.console", name);
	snprintf(cmdline, sizeof(cmdline),
		 QEMU_BIN " -name %s -nodefaults -display none -machine q35 -accel tcg"
		 " -m %d -smp 1 -serial %s -monitor none"
		 " -qmp unix:%s,server=on,wait=off -D /tmp/%s.log"
		 " -trace vfio_migration_set_device_state -trace vfio_load_*"
		 " -device vfio-pci,host=%s,rombar=0,id=vf0%s%s %s",
		 name, g && g->mem_mb ? g->mem_mb : 64, serial, qmp_path, name, bdf,
		 *vfio_opts ? "," : "", vfio_opts, extra);
	for (tok = strtok_r(cmdline, " ", &save); tok && argc < 88; tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	/* Kernel arguments whole (the command line has spaces). */
	if (g && g->kernel) {
		argv[argc++] = "-kernel";
		argv[argc++] = (char *)g->kernel;
	}
	if (g && g->initrd) {
		argv[argc++] = "-initrd";
		argv[argc++] = (char *)g->initrd;
	}
	if (g && g->append) {
		argv[argc++] = "-append";
		argv[argc++] = (char *)g->append;
	}
	argv[argc] = NULL;

	q->pid = fork();
	if (q->pid < 0)
		return -errno;
	if (!q->pid) {
		char out[64];
		int fd;

		snprintf(out, sizeof(out), "/tmp/%s.out", name);
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (chroot(SYSROOT) || chdir("/"))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}

	/* QMP: wait for the socket, then negotiate capabilities. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", qmp_path);
	end = now_s() + 120;
	for (;;) {
		int status;

		q->qmp = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->qmp < 0)
			return -errno;
		if (!connect(q->qmp, (struct sockaddr *)&sa, sizeof(sa)))
			break;
		close(q->qmp);
		q->qmp = -1;
		if (waitpid(q->pid, &status, WNOHANG) == q->pid) {
			q->pid = 0;
			return -ECHILD;
		}
		if (now_s() > end) {
			qemu_stop(q);
			return -ETIMEDOUT;
		}
		usleep(100000);
	}
	if (qmp_line(q, line, sizeof(line), 60000) || !strstr(line, "QMP"))
		return -EPROTO;
	return qmp(q, NULL, 0, "{\"execute\":\"qmp_capabilities\"}");
}

void json_str(const char *reply, const char *key, char *out, size_t len)
{
	char pat[64];
	const char *p, *e;

	*out = 0;
	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	p = strstr(reply, pat);
	if (!p)
		return;
	p += strlen(pat);
	e = strchr(p, '"');
	if (!e)
		return;
	snprintf(out, len, "%.*s", (int)(e - p), p);
}

long long json_int(const char *reply, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(reply, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

int qemu_wait_migration(struct qemu *q, char *reply, size_t len, int timeout_s)
{
	double end = now_s() + timeout_s;
	char status[32];

	for (;;) {
		int ret = qmp(q, reply, len, "{\"execute\":\"query-migrate\"}");

		if (ret)
			return ret;
		json_str(reply, "status", status, sizeof(status));
		if (!strcmp(status, "completed"))
			return 0;
		if (!strcmp(status, "failed") || !strcmp(status, "cancelled"))
			return -EIO;
		if (now_s() > end)
			return -ETIMEDOUT;
		usleep(200000);
	}
}

int qemu_wait_incoming(struct qemu *q, char *status, size_t len, int timeout_s)
{
	double end = now_s() + timeout_s;
	char r[4096];

	for (;;) {
		int ret = qmp(q, r, sizeof(r), "{\"execute\":\"query-status\"}");

		if (ret)
			return ret;
		json_str(r, "status", status, len);
		if (strcmp(status, "inmigrate"))
			return 0;
		if (now_s() > end)
			return -ETIMEDOUT;
		usleep(100000);
	}
}

bool qemu_exited(struct qemu *q, int *status)
{
	int st;

	if (!q->pid)
		return true;
	if (waitpid(q->pid, &st, WNOHANG) != q->pid)
		return false;
	q->pid = 0;
	if (status)
		*status = st;
	return true;
}

void qemu_stop(struct qemu *q)
{
	double end;

	if (q->qmp > 0) {
		qmp(q, NULL, 0, "{\"execute\":\"quit\"}");
		close(q->qmp);
		q->qmp = -1;
	}
	end = now_s() + 20;
	while (q->pid && !qemu_exited(q, NULL)) {
		if (now_s() > end) {
			kill(q->pid, SIGKILL);
			waitpid(q->pid, NULL, 0);
			q->pid = 0;
			break;
		}
		usleep(100000);
	}
}

int qemu_trace_states(const char *name, char *out, size_t len)
{
	char path[64], line[512];
	size_t used = 0;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/%s.log", name);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	*out = 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "vfio_migration_set_device_state");
		char state[32];

		if (!p)
			continue;
		p += strlen("vfio_migration_set_device_state");
		if (!(p = strstr(p, "state ")) || sscanf(p + 6, "%31s", state) != 1)
			continue;
		used += snprintf(out + used, used < len ? len - used : 0, "%s%s", n ? ">" : "",
				 state);
		n++;
	}
	fclose(f);
	return n;
}
