// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-mig: move a VFIO device's migration state to or from a file with the
 * VFIO migration uAPI, as QEMU does it, for experiments and debugging.
 *
 *   vfio-mig save BDF FILE    RUNNING -> STOP_COPY, read the stream to FILE,
 *                             back to RUNNING
 *   vfio-mig load BDF FILE    RUNNING -> RESUMING, write FILE, -> RUNNING
 *   vfio-mig migrate SRC DST  live-migrate SRC's state into DST as QEMU
 *                             does: DST RESUMING, SRC PRE_COPY (initial
 *                             data streamed while SRC runs), PRE_COPY_P2P,
 *                             STOP_COPY, then DST RUNNING; prints every
 *                             state change, the bytes moved per phase and
 *                             the stop-to-resume time
 *
 * The device (bound to a vfio-pci variant driver with migration support) is
 * opened through its iommufd cdev. The stream can be decoded on the host
 * with tools/virtio-rs-proto's virtio-rs-inspect.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

static int die(const char *what)
{
	fprintf(stderr, "vfio-mig: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int open_device(const char *bdf)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	char path[256];
	struct dirent *de;
	int fd, iommufd;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	d = opendir(path);
	if (!d)
		die("no vfio cdev for this device (bound to a vfio driver?)");
	while ((de = readdir(d)) && strncmp(de->d_name, "vfio", 4))
		;
	if (!de)
		die("no vfio cdev");
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", de->d_name);
	closedir(d);
	fd = open(path, O_RDWR);
	if (fd < 0)
		die(path);
	iommufd = open("/dev/iommu", O_RDWR);
	if (iommufd < 0)
		die("/dev/iommu");
	bind.iommufd = iommufd;
	if (ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		die("VFIO_DEVICE_BIND_IOMMUFD");
	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc))
		die("IOMMU_IOAS_ALLOC");
	attach.pt_id = alloc.out_ioas_id;
	if (ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		die("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
	return fd;
}

static int set_state(int fd, uint32_t state)
{
	uint8_t buf[sizeof(struct vfio_device_feature) +
		    sizeof(struct vfio_device_feature_mig_state)] = { 0 };
	struct vfio_device_feature *f = (void *)buf;
	struct vfio_device_feature_mig_state *s = (void *)f->data;

	f->argsz = sizeof(buf);
	f->flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	s->device_state = state;
	if (ioctl(fd, VFIO_DEVICE_FEATURE, f))
		die("VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE");
	return s->data_fd;
}

static const char *const names[] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P",
	"PRE_COPY", "PRE_COPY_P2P",
};

static int go(const char *who, int fd, uint32_t state)
{
	printf("  %-11s -> %s\n", who, names[state]);
	return set_state(fd, state);
}

/* Copy from data fd `src` to `dst` until EOF (or -ENOMSG when precopy). */
static long pump(int src, int dst, int precopy)
{
	static uint8_t buf[1 << 16];
	long total = 0;
	ssize_t n;

	for (;;) {
		n = read(src, buf, sizeof(buf));
		if (n < 0 && precopy && errno == ENOMSG)
			break;
		if (n < 0)
			die("read migration data");
		if (n == 0)
			break;
		if (write(dst, buf, n) != n)
			die("write migration data");
		total += n;
	}
	return total;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int migrate(const char *src_bdf, const char *dst_bdf)
{
	struct vfio_precopy_info info = { .argsz = sizeof(info) };
	int src, dst, sfd, dfd;
	long pre = 0, stop;
	double t0;

	src = open_device(src_bdf);
	dst = open_device(dst_bdf);
	printf("states traversed (source %s, destination %s):\n", src_bdf, dst_bdf);
	dfd = go("destination", dst, VFIO_DEVICE_STATE_RESUMING);
	sfd = go("source", src, VFIO_DEVICE_STATE_PRE_COPY);
	if (ioctl(sfd, VFIO_MIG_GET_PRECOPY_INFO, &info))
		die("VFIO_MIG_GET_PRECOPY_INFO");
	printf("  pre-copy: initial_bytes %llu dirty_bytes %llu\n",
	       (unsigned long long)info.initial_bytes, (unsigned long long)info.dirty_bytes);
	pre = pump(sfd, dfd, 1);
	t0 = now();
	go("source", src, VFIO_DEVICE_STATE_PRE_COPY_P2P);
	go("source", src, VFIO_DEVICE_STATE_STOP_COPY);
	stop = pump(sfd, dfd, 0);
	go("destination", dst, VFIO_DEVICE_STATE_STOP);
	go("destination", dst, VFIO_DEVICE_STATE_RUNNING);
	printf("bytes moved: %ld while the source ran (pre-copy), %ld after it stopped (stop-copy)\n",
	       pre, stop);
	printf("device downtime (source stopped -> destination running): %.1f ms\n",
	       (now() - t0) * 1e3);
	go("source", src, VFIO_DEVICE_STATE_STOP);
	close(sfd);
	close(dfd);
	close(src);
	close(dst);
	return 0;
}

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 16];
	long total = 0;
	int dev, data, file;
	ssize_t n;

	if (argc == 4 && !strcmp(argv[1], "migrate"))
		return migrate(argv[2], argv[3]);
	if (argc != 4 || (strcmp(argv[1], "save") && strcmp(argv[1], "load"))) {
		fprintf(stderr, "usage: vfio-mig save|load BDF FILE | migrate SRC DST\n");
		return 2;
	}
	dev = open_device(argv[2]);
	if (!strcmp(argv[1], "save")) {
		file = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (file < 0)
			die(argv[3]);
		data = set_state(dev, VFIO_DEVICE_STATE_STOP_COPY);
		while ((n = read(data, buf, sizeof(buf))) > 0) {
			if (write(file, buf, n) != n)
				die("write");
			total += n;
		}
		if (n < 0)
			die("read migration data");
		set_state(dev, VFIO_DEVICE_STATE_RUNNING);
		printf("saved %ld bytes of device state from %s\n", total, argv[2]);
	} else {
		file = open(argv[3], O_RDONLY);
		if (file < 0)
			die(argv[3]);
		data = set_state(dev, VFIO_DEVICE_STATE_RESUMING);
		while ((n = read(file, buf, sizeof(buf))) > 0) {
			if (write(data, buf, n) != n)
				die("write migration data");
			total += n;
		}
		set_state(dev, VFIO_DEVICE_STATE_RUNNING);
		printf("loaded %ld bytes of device state into %s\n", total, argv[2]);
	}
	close(data);
	close(file);
	close(dev);
	return 0;
}
