// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers linked into virtio_vfio_pci_rs.ko.
 *
 * Rust cannot call static inline functions or evaluate function-like macros;
 * the few this driver needs are wrapped here. Prototypes live in
 * include/virtio_rs_bindings.h, which is also the input of our bindgen run.
 */
#include <linux/container_of.h>
#include <linux/err.h>
#include <linux/pci.h>
#include <linux/pm_runtime.h>
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

int virtio_rs_helper_vfio_check_precopy_ioctl(struct vfio_device *vdev,
					      unsigned int cmd, unsigned long arg,
					      struct vfio_precopy_info *info)
{
	return vfio_check_precopy_ioctl(vdev, cmd, arg, info);
}

unsigned long virtio_rs_helper_pci_resource_flags(struct pci_dev *pdev, int bar)
{
	return pci_resource_flags(pdev, bar);
}

u64 virtio_rs_helper_pci_resource_len(struct pci_dev *pdev, int bar)
{
	return pci_resource_len(pdev, bar);
}

int virtio_rs_helper_pm_runtime_resume_and_get(struct device *dev)
{
	return pm_runtime_resume_and_get(dev);
}

void virtio_rs_helper_pm_runtime_put(struct device *dev)
{
	pm_runtime_put(dev);
}

/*
 * The iomap of a BAR, set by vfio_pci_core_enable() and torn down by
 * vfio_pci_core_disable(): NULL or an ERR_PTR when the BAR is not mapped.
 * vfio_pci_core_get_iomap() without its WARN_ON_ONCE(), which would fire
 * on a device-supplied BAR number.
 */
void __iomem *virtio_rs_helper_vfio_pci_barmap(struct vfio_pci_core_device *vdev,
						unsigned int bar)
{
	if (bar >= PCI_STD_NUM_BARS)
		return IOMEM_ERR_PTR(-EINVAL);
	if (!vdev->barmap[bar])
		return IOMEM_ERR_PTR(-ENODEV);
	return vdev->barmap[bar];
}

/*
 * Whether the device's interrupts are MSI-X now: irq_type under igate, the
 * lock VFIO_DEVICE_SET_IRQS changes it under (upstream's legacy_io.c reads
 * it unlocked).
 */
bool virtio_rs_helper_vfio_pci_msix_enabled(struct vfio_pci_core_device *vdev)
{
	guard(mutex)(&vdev->igate);
	return vdev->irq_type == VFIO_PCI_MSIX_IRQ_INDEX;
}

void virtio_rs_helper_sg_set_page(struct scatterlist *sg, struct page *page,
				  unsigned int len, unsigned int offset)
{
	sg_set_page(sg, page, len, offset);
}

static const struct virtio_rs_mig_ops *to_mig_ops(struct vfio_device *vdev)
{
	return container_of(vdev->mig_ops, struct virtio_rs_mig_ops, ops);
}

struct file *virtio_rs_mig_set_state(struct vfio_device *vdev,
				     enum vfio_device_mig_state new_state)
{
	struct file *filp = NULL;
	int ret;

	ret = to_mig_ops(vdev)->set_state(vdev, new_state, &filp);
	return ret ? ERR_PTR(ret) : filp;
}

int virtio_rs_mig_get_state(struct vfio_device *vdev,
			    enum vfio_device_mig_state *state)
{
	u32 s;
	int ret;

	ret = to_mig_ops(vdev)->get_state(vdev, &s);
	if (!ret)
		*state = s;
	return ret;
}

int virtio_rs_mig_get_data_size(struct vfio_device *vdev, unsigned long *len)
{
	return to_mig_ops(vdev)->get_data_size(vdev, len);
}
