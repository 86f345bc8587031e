// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO device helpers of the virtio_vfio_pci_rs selftests; see vfio_dev.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "vfio_dev.h"
#include "virtio_rs_test.h"

#define DMA_IOVA 0x10000000ULL
#define DMA_SIZE (1UL << 20)

static void vfio_init(struct vfio_dev *d)
{
	memset(d, 0, sizeof(*d));
	d->device_fd = d->container_fd = d->group_fd = d->iommufd = -1;
}

int vfio_open_group(const char *bdf, struct vfio_dev *d)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[64];
	int group, ret;

	vfio_init(d);
	group = dev_iommu_group(bdf);
	if (group < 0)
		return group;
	d->container_fd = open("/dev/vfio/vfio", O_RDWR);
	if (d->container_fd < 0)
		return -errno;
	if (ioctl(d->container_fd, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return -EPROTO;
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	d->group_fd = open(path, O_RDWR);
	if (d->group_fd < 0)
		return -errno;
	if (ioctl(d->group_fd, VFIO_GROUP_GET_STATUS, &status))
		return -errno;
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
		return -EBUSY;
	if (ioctl(d->group_fd, VFIO_GROUP_SET_CONTAINER, &d->container_fd))
		return -errno;
	if (ioctl(d->container_fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return -errno;
	ret = ioctl(d->group_fd, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (ret < 0)
		return -errno;
	d->device_fd = ret;
	return 0;
}

int vfio_open_cdev(const char *bdf, struct vfio_dev *d)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	char name[32], path[64];
	int ret;

	vfio_init(d);
	d->cdev = true;
	ret = dev_vfio_cdev(bdf, name, sizeof(name));
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	d->device_fd = open(path, O_RDWR);
	if (d->device_fd < 0)
		return -errno;
	d->iommufd = open("/dev/iommu", O_RDWR);
	if (d->iommufd < 0)
		return -errno;
	bind.iommufd = d->iommufd;
	if (ioctl(d->device_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return -errno;
	if (ioctl(d->iommufd, IOMMU_IOAS_ALLOC, &alloc))
		return -errno;
	d->ioas_id = alloc.out_ioas_id;
	attach.pt_id = d->ioas_id;
	if (ioctl(d->device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		return -errno;
	return 0;
}

void vfio_close(struct vfio_dev *d)
{
	if (d->device_fd >= 0)
		close(d->device_fd);
	if (d->group_fd >= 0)
		close(d->group_fd);
	if (d->container_fd >= 0)
		close(d->container_fd);
	if (d->iommufd >= 0)
		close(d->iommufd);
	vfio_init(d);
}

int vfio_region(struct vfio_dev *d, unsigned int index, struct vfio_region_info *info)
{
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	info->index = index;
	return ioctl(d->device_fd, VFIO_DEVICE_GET_REGION_INFO, info) ? -errno : 0;
}

int vfio_config_read(struct vfio_dev *d, uint64_t off, void *buf, size_t len)
{
	struct vfio_region_info reg = {
		.argsz = sizeof(reg),
		.index = VFIO_PCI_CONFIG_REGION_INDEX,
	};
	ssize_t n;

	if (ioctl(d->device_fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
		return -errno;
	n = pread(d->device_fd, buf, len, reg.offset + off);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

static int dma_map_unmap(struct vfio_dev *d)
{
	void *buf = mmap(NULL, DMA_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ret = 0;

	if (buf == MAP_FAILED)
		return -errno;
	memset(buf, 0x5a, DMA_SIZE);
	if (d->cdev) {
		struct iommu_ioas_map map = {
			.size = sizeof(map),
			.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_WRITEABLE,
			.ioas_id = d->ioas_id,
			.user_va = (uintptr_t)buf,
			.length = DMA_SIZE,
			.iova = DMA_IOVA,
		};
		struct iommu_ioas_unmap unmap = {
			.size = sizeof(unmap),
			.ioas_id = d->ioas_id,
			.iova = DMA_IOVA,
			.length = DMA_SIZE,
		};

		if (ioctl(d->iommufd, IOMMU_IOAS_MAP, &map))
			ret = -errno;
		else if (ioctl(d->iommufd, IOMMU_IOAS_UNMAP, &unmap))
			ret = -errno;
		else if (unmap.length != DMA_SIZE)
			ret = -EIO;
	} else {
		struct vfio_iommu_type1_dma_map map = {
			.argsz = sizeof(map),
			.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
			.vaddr = (uintptr_t)buf,
			.iova = DMA_IOVA,
			.size = DMA_SIZE,
		};
		struct vfio_iommu_type1_dma_unmap unmap = {
			.argsz = sizeof(unmap),
			.iova = DMA_IOVA,
			.size = DMA_SIZE,
		};

		if (ioctl(d->container_fd, VFIO_IOMMU_MAP_DMA, &map))
			ret = -errno;
		else if (ioctl(d->container_fd, VFIO_IOMMU_UNMAP_DMA, &unmap))
			ret = -errno;
		else if (unmap.size != DMA_SIZE)
			ret = -EIO;
	}
	munmap(buf, DMA_SIZE);
	return ret;
}

int vfio_basic_checks(struct vfio_dev *d, uint16_t vendor, uint16_t device,
		      const char **what)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	uint16_t ids[2];
	bool mapped = false;
	unsigned int i;

	*what = "VFIO_DEVICE_GET_INFO";
	if (ioctl(d->device_fd, VFIO_DEVICE_GET_INFO, &info))
		return -1;
	*what = "device flags (PCI, RESET) / region count";
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI) ||
	    !(info.flags & VFIO_DEVICE_FLAGS_RESET) ||
	    info.num_regions < VFIO_PCI_CONFIG_REGION_INDEX + 1)
		return -2;

	*what = "config space region info";
	{
		struct vfio_region_info reg = {
			.argsz = sizeof(reg),
			.index = VFIO_PCI_CONFIG_REGION_INDEX,
		};

		if (ioctl(d->device_fd, VFIO_DEVICE_GET_REGION_INFO, &reg) ||
		    reg.size < 256 || !(reg.flags & VFIO_REGION_INFO_FLAG_READ))
			return -3;
	}
	*what = "vendor/device id from config space";
	if (vfio_config_read(d, 0, ids, sizeof(ids)) || ids[0] != vendor ||
	    ids[1] != device)
		return -4;

	*what = "BAR region info / mmap";
	for (i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX; i++) {
		struct vfio_region_info reg = { .argsz = sizeof(reg), .index = i };
		void *p;

		if (ioctl(d->device_fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
			return -5;
		if (!reg.size || !(reg.flags & VFIO_REGION_INFO_FLAG_MMAP) || mapped)
			continue;
		p = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 d->device_fd, reg.offset);
		if (p == MAP_FAILED)
			return -6;
		(void)*(volatile uint32_t *)p;
		munmap(p, reg.size);
		mapped = true;
	}
	if (!mapped)
		return -7;

	*what = "VFIO_DEVICE_RESET";
	if (ioctl(d->device_fd, VFIO_DEVICE_RESET))
		return -8;

	*what = "DMA map/unmap";
	if (dma_map_unmap(d))
		return -9;
	*what = NULL;
	return 0;
}
