/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Opening a VFIO PCI device through the legacy group/container interface or
 * the iommufd cdev, and the basic checks every test device must pass.
 */
#ifndef VIRTIO_RS_VFIO_DEV_H
#define VIRTIO_RS_VFIO_DEV_H

#include <stdint.h>
#include <stdbool.h>

struct vfio_dev {
	int device_fd;
	int container_fd;	/* group/container path */
	int group_fd;
	int iommufd;		/* cdev path */
	uint32_t ioas_id;
	bool cdev;
};

/* Open bdf through /dev/vfio/vfio + /dev/vfio/<group>. 0 or -errno. */
int vfio_open_group(const char *bdf, struct vfio_dev *d);
/* Open bdf through /dev/vfio/devices/vfioN + /dev/iommu. 0 or -errno. */
int vfio_open_cdev(const char *bdf, struct vfio_dev *d);
void vfio_close(struct vfio_dev *d);

/*
 * The checks of core_test's iface.*.core_open:
 * DEVICE_GET_INFO, region info of config space and BARs, vendor/device id
 * from config space, mmap of a BAR, DEVICE_RESET, DMA map/unmap of 1 MiB.
 * Returns 0 or a negative step number; *what names the failed step.
 */
int vfio_basic_checks(struct vfio_dev *d, uint16_t vendor, uint16_t device,
		      const char **what);

struct vfio_region_info;
/* VFIO_DEVICE_GET_REGION_INFO of region index (no capabilities). 0 or -errno. */
int vfio_region(struct vfio_dev *d, unsigned int index, struct vfio_region_info *info);

/* Read len bytes of config space at off. 0 or -errno. */
int vfio_config_read(struct vfio_dev *d, uint64_t off, void *buf, size_t len);

#endif
