// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers of the virtio_vfio_pci_rs selftests; see virtio_rs_test.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "virtio_rs_test.h"

int sysfs_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

int sysfs_write(const char *path, const char *val)
{
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	return 0;
}

int sysfs_read_ul(const char *path, unsigned long *val)
{
	char buf[64], *end;
	int ret;

	ret = sysfs_read(path, buf, sizeof(buf));
	if (ret)
		return ret;
	errno = 0;
	*val = strtoul(buf, &end, 0);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

static const char *dev_path(const char *bdf, const char *attr)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/%s", bdf, attr);
	return path;
}

int dev_attr_read(const char *bdf, const char *attr, char *buf, size_t len)
{
	return sysfs_read(dev_path(bdf, attr), buf, len);
}

int dev_attr_write(const char *bdf, const char *attr, const char *val)
{
	return sysfs_write(dev_path(bdf, attr), val);
}

int dev_attr_ul(const char *bdf, const char *attr, unsigned long *val)
{
	return sysfs_read_ul(dev_path(bdf, attr), val);
}

int find_sriov_pf(char *bdf, size_t len)
{
	unsigned long vendor, device, total;
	struct dirent *de;
	int ret = -ENODEV;
	DIR *d;

	d = opendir(PCI_DEVICES);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (dev_attr_ul(de->d_name, "vendor", &vendor) ||
		    dev_attr_ul(de->d_name, "device", &device))
			continue;
		if (vendor != VIRTIO_VENDOR_ID || device != VIRTIO_NET_DEVICE_ID)
			continue;
		if (dev_attr_ul(de->d_name, "sriov_totalvfs", &total) || !total)
			continue;
		snprintf(bdf, len, "%s", de->d_name);
		ret = 0;
		break;
	}
	closedir(d);
	return ret;
}

static int link_basename(const char *path, char *out, size_t len)
{
	char target[PATH_MAX];
	const char *base;
	ssize_t n;

	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	snprintf(out, len, "%s", base ? base + 1 : target);
	return 0;
}

int pf_vf_bdf(const char *pf, int idx, char *bdf, size_t len)
{
	char attr[32];

	snprintf(attr, sizeof(attr), "virtfn%d", idx);
	return link_basename(dev_path(pf, attr), bdf, len);
}

int dev_driver(const char *bdf, char *drv, size_t len)
{
	int ret = link_basename(dev_path(bdf, "driver"), drv, len);

	if (ret == -ENOENT) {
		drv[0] = '\0';
		return 0;
	}
	return ret;
}

int dev_iommu_group(const char *bdf)
{
	char group[32];
	int ret;

	ret = link_basename(dev_path(bdf, "iommu_group"), group, sizeof(group));
	if (ret)
		return ret;
	return atoi(group);
}

int dev_vfio_cdev(const char *bdf, char *name, size_t len)
{
	struct dirent *de;
	int ret = -ENOENT;
	DIR *d;

	d = opendir(dev_path(bdf, "vfio-dev"));
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "vfio", 4))
			continue;
		snprintf(name, len, "%s", de->d_name);
		ret = 0;
		break;
	}
	closedir(d);
	return ret;
}

int unbind_and_clear(const char *bdf)
{
	char drv[64], path[PATH_MAX];
	int ret;

	ret = dev_driver(bdf, drv, sizeof(drv));
	if (ret)
		return ret;
	if (drv[0]) {
		snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s/unbind", drv);
		ret = sysfs_write(path, bdf);
		if (ret)
			return ret;
	}
	return dev_attr_write(bdf, "driver_override", "\n");
}

int bind_driver_override(const char *bdf, const char *driver)
{
	char drv[64];
	int ret;

	ret = unbind_and_clear(bdf);
	if (ret)
		return ret;
	ret = dev_attr_write(bdf, "driver_override", driver);
	if (ret)
		return ret;
	ret = sysfs_write("/sys/bus/pci/drivers_probe", bdf);
	if (ret)
		return ret;
	ret = dev_driver(bdf, drv, sizeof(drv));
	if (ret)
		return ret;
	return strcmp(drv, driver) ? -ENODEV : 0;
}

static int run(const char *cmd)
{
	int st = system(cmd);

	if (st < 0)
		return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int modprobe(const char *module)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "modprobe %s", module);
	return run(cmd);
}

int modprobe_remove(const char *module)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "modprobe -r %s", module);
	return run(cmd);
}

bool module_loaded(const char *module)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/module/%s", module);
	return stat(path, &st) == 0;
}

int kmsg_watch_start(struct kmsg_watch *w)
{
	w->text = NULL;
	w->len = 0;
	w->fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (w->fd < 0)
		return -errno;
	if (lseek(w->fd, 0, SEEK_END) < 0)
		return -errno;
	return 0;
}

int kmsg_watch_collect(struct kmsg_watch *w)
{
	char rec[8192];
	ssize_t n;

	for (;;) {
		char *msg, *tmp;
		size_t mlen;

		n = read(w->fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;	/* overwritten records: keep going */
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		rec[n] = '\0';
		/* "prio,seq,ts,flags;message\n" followed by continuation lines. */
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		mlen = strlen(msg);
		tmp = realloc(w->text, w->len + mlen + 1);
		if (!tmp)
			return -ENOMEM;
		w->text = tmp;
		memcpy(w->text + w->len, msg, mlen + 1);
		w->len += mlen;
	}
}

/*
 * Extended regular expressions of kernel bug reports, one per line of
 * kernel-bug-markers, shared with the VM runner's console scan.
 */
static const char *const bug_markers[] = {
#include "bug_markers.h"
};

int kmsg_bug_markers(void)
{
	return sizeof(bug_markers) / sizeof(bug_markers[0]);
}

int kmsg_marker_matches(int i, const char *line)
{
	regex_t re;
	int ret;

	if (i < 0 || i >= kmsg_bug_markers())
		return -EINVAL;
	if (regcomp(&re, bug_markers[i], REG_EXTENDED | REG_NOSUB))
		return -EINVAL;
	ret = !regexec(&re, line, 0, NULL, 0);
	regfree(&re);
	return ret;
}

int kmsg_bug_lines(const struct kmsg_watch *w, char *first, size_t len)
{
	size_t nm = sizeof(bug_markers) / sizeof(bug_markers[0]), i;
	regex_t re[sizeof(bug_markers) / sizeof(bug_markers[0])];
	const char *line = w->text;
	int count = 0;

	if (first && len)
		first[0] = '\0';
	for (i = 0; i < nm; i++) {
		if (regcomp(&re[i], bug_markers[i], REG_EXTENDED | REG_NOSUB)) {
			while (i--)
				regfree(&re[i]);
			return -EINVAL;
		}
	}
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t ll = end ? (size_t)(end - line) : strlen(line);
		char *one = strndup(line, ll);

		if (!one) {
			count = -ENOMEM;
			break;
		}
		for (i = 0; i < nm; i++) {
			if (regexec(&re[i], one, 0, NULL, 0))
				continue;
			if (!count && first && len)
				snprintf(first, len, "%s", one);
			count++;
			break;
		}
		free(one);
		line = end ? end + 1 : NULL;
	}
	for (i = 0; i < nm; i++)
		regfree(&re[i]);
	return count;
}

bool kmsg_find(const struct kmsg_watch *w, const char *needle)
{
	return w->text && strstr(w->text, needle);
}

void kmsg_watch_stop(struct kmsg_watch *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->text);
	w->text = NULL;
	w->fd = -1;
}

#define KMEMLEAK "/sys/kernel/debug/kmemleak"

int kmemleak_new_leaks(bool *available, char *first, size_t len)
{
	char line[512];
	int count = 0;
	FILE *f;

	*available = access(KMEMLEAK, W_OK) == 0;
	if (!*available)
		return 0;
	sleep(6);
	if (sysfs_write(KMEMLEAK, "scan"))
		return -EIO;
	f = fopen(KMEMLEAK, "r");
	if (!f)
		return -errno;
	if (first && len)
		first[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "unreferenced object")) {
			if (!count && first && len)
				snprintf(first, len, "%s", line);
			count++;
		}
	}
	fclose(f);
	sysfs_write(KMEMLEAK, "clear");
	return count;
}

int find_plain_pci_device(char *bdf, size_t len)
{
	unsigned long vendor, class, hdr;
	char drv[64], path[PATH_MAX];
	struct dirent *de;
	int ret = -ENODEV;
	DIR *d;

	d = opendir(PCI_DEVICES);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (dev_attr_ul(de->d_name, "vendor", &vendor) ||
		    dev_attr_ul(de->d_name, "class", &class))
			continue;
		if (vendor == VIRTIO_VENDOR_ID || (class >> 16) == 0x06)
			continue;	/* virtio, or a bridge */
		if (dev_driver(de->d_name, drv, sizeof(drv)) || drv[0])
			continue;
		snprintf(path, sizeof(path), PCI_DEVICES "/%s/config", de->d_name);
		hdr = 0;
		{
			unsigned char cfg[16];
			int fd = open(path, O_RDONLY);

			if (fd < 0)
				continue;
			if (pread(fd, cfg, sizeof(cfg), 0) == sizeof(cfg))
				hdr = cfg[14] & 0x7f;
			close(fd);
		}
		if (hdr != 0)
			continue;
		snprintf(bdf, len, "%s", de->d_name);
		ret = 0;
		break;
	}
	closedir(d);
	return ret;
}

int run_cmd(const char *cmd, char *out, size_t len)
{
	char line[512];
	FILE *p;
	int st;

	if (out && len)
		out[0] = '\0';
	p = popen(cmd, "r");
	if (!p)
		return -errno;
	while (fgets(line, sizeof(line), p)) {
		if (out && len && !out[0])
			snprintf(out, len, "%s", line);
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int rs_reload(const char *params)
{
	char cmd[256], out[256];

	if (module_loaded(VIRTIO_RS_DRIVER) && modprobe_remove(VIRTIO_RS_DRIVER))
		return -EBUSY;
	snprintf(cmd, sizeof(cmd), "modprobe %s %s", VIRTIO_RS_DRIVER, params);
	return run_cmd(cmd, out, sizeof(out));
}

long drv_stat(const char *bdf, const char *name)
{
	char path[128], line[128];
	size_t nl = strlen(name);
	long val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/" VIRTIO_RS_DRIVER "-%s/stats", bdf);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, nl) && line[nl] == ' ')
			val = strtol(line + nl + 1, NULL, 10);
	fclose(f);
	return val;
}

int dev_binding_save(const char *bdf, struct dev_binding *b)
{
	int ret;

	memset(b, 0, sizeof(*b));
	ret = dev_driver(bdf, b->driver, sizeof(b->driver));
	if (ret)
		return ret;
	ret = dev_attr_read(bdf, "driver_override", b->override, sizeof(b->override));
	if (ret)
		return ret;
	if (!strcmp(b->override, "(null)"))
		b->override[0] = '\0';
	return 0;
}

int dev_binding_restore(const char *bdf, const struct dev_binding *b)
{
	char drv[64];
	int ret;

	ret = unbind_and_clear(bdf);
	if (ret)
		return ret;
	if (b->driver[0]) {
		/* The old driver, through an override: autoprobe may be off. */
		ret = dev_attr_write(bdf, "driver_override", b->driver);
		if (!ret)
			ret = sysfs_write("/sys/bus/pci/drivers_probe", bdf);
		if (!ret)
			ret = dev_driver(bdf, drv, sizeof(drv));
		if (!ret && strcmp(drv, b->driver))
			ret = -ENODEV;
		if (ret)
			return ret;
	}
	return dev_attr_write(bdf, "driver_override", b->override[0] ? b->override : "\n");
}
