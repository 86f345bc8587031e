// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-mig: move a VFIO device's migration state to or from a file with the
 * VFIO migration uAPI, as QEMU does it, for experiments and debugging.
 *
 *   vfio-mig save BDF FILE    RUNNING -> STOP_COPY, read the stream to FILE,
 *                             back to RUNNING
 *   vfio-mig load BDF FILE    RUNNING -> RESUMING, write FILE, -> RUNNING
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

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 16];
	long total = 0;
	int dev, data, file;
	ssize_t n;

	if (argc != 4 || (strcmp(argv[1], "save") && strcmp(argv[1], "load"))) {
		fprintf(stderr, "usage: vfio-mig save|load BDF FILE\n");
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
