// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers linked into virtio_vfio_pci_rs.ko.
 *
 * Rust cannot call static inline functions or evaluate function-like macros;
 * the few this driver needs are wrapped here. Prototypes live in
 * include/virtio_rs_bindings.h, which is also the input of our bindgen run.
 */
#include <linux/stddef.h>
#include <virtio_rs_bindings.h>

size_t virtio_rs_helper_sizeof_vfio_pci_core_device(void)
{
	return sizeof(struct vfio_pci_core_device);
}

size_t virtio_rs_helper_offsetof_vfio_pci_core_device_pdev(void)
{
	return offsetof(struct vfio_pci_core_device, pdev);
}

bool virtio_rs_helper_pci_is_virtfn(struct pci_dev *pdev)
{
	return pdev->is_virtfn;
}

void virtio_rs_helper_vfio_put_device(struct vfio_device *vdev)
{
	vfio_put_device(vdev);
}
