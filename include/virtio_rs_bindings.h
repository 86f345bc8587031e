/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Wrapper header for the bindgen run of drivers/vfio/pci/virtio_rs/Kbuild.
 *
 * It names the kernel headers whose items the Rust crate needs and that
 * rust/bindings/bindings_helper.h of the 7.3 tree does not cover, plus the
 * prototypes of our C helpers (helpers.c), so that the generated Rust
 * declarations and the C definitions come from the same text.
 */
#ifndef _VIRTIO_RS_BINDINGS_H
#define _VIRTIO_RS_BINDINGS_H

#include <linux/anon_inodes.h>
#include <linux/fs.h>
#include <linux/scatterlist.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_pci_admin.h>

/*
 * Layout checks: the C compiler's view of the structures the Rust side
 * embeds or indexes, compared at module load with the bindgen view.
 */
size_t virtio_rs_helper_sizeof_vfio_pci_core_device(void);
size_t virtio_rs_helper_offsetof_vfio_pci_core_device_pdev(void);

/* static inline functions and bitfields. */
bool virtio_rs_helper_pci_is_virtfn(struct pci_dev *pdev);
void virtio_rs_helper_vfio_put_device(struct vfio_device *vdev);
int virtio_rs_helper_vfio_check_precopy_ioctl(struct vfio_device *vdev,
					      unsigned int cmd, unsigned long arg,
					      struct vfio_precopy_info *info);
unsigned long virtio_rs_helper_pci_resource_flags(struct pci_dev *pdev, int bar);
u64 virtio_rs_helper_pci_resource_len(struct pci_dev *pdev, int bar);
int virtio_rs_helper_pm_runtime_resume_and_get(struct device *dev);
void virtio_rs_helper_pm_runtime_put(struct device *dev);
void __iomem *virtio_rs_helper_vfio_pci_barmap(struct vfio_pci_core_device *vdev,
						unsigned int bar);
bool virtio_rs_helper_vfio_pci_msix_enabled(struct vfio_pci_core_device *vdev);
void virtio_rs_helper_sg_set_page(struct scatterlist *sg, struct page *page,
				  unsigned int len, unsigned int offset);

/*
 * Migration callbacks without enums in their indirect-call signatures.
 *
 * The callbacks of struct vfio_migration_ops take enum
 * vfio_device_mig_state. Under kCFI the type hash of an indirect call
 * includes the enum's name, which Rust can only reproduce with the
 * unstable #[cfi_encoding] attribute (not allowed in modules). So
 * vdev->mig_ops points at the `ops` member of this structure, whose
 * callbacks are the C trampolines below; they find the structure with
 * container_of() and call the Rust callbacks with the state as a u32.
 *
 * set_state returns 0 and stores the new file (or NULL) in *filep, or
 * returns a negative errno.
 */
struct virtio_rs_mig_ops {
	struct vfio_migration_ops ops;
	int (*set_state)(struct vfio_device *vdev, u32 new_state,
			 struct file **filep);
	int (*get_state)(struct vfio_device *vdev, u32 *state);
	int (*get_data_size)(struct vfio_device *vdev, unsigned long *len);
};

struct file *virtio_rs_mig_set_state(struct vfio_device *vdev,
				     enum vfio_device_mig_state new_state);
int virtio_rs_mig_get_state(struct vfio_device *vdev,
			    enum vfio_device_mig_state *state);
int virtio_rs_mig_get_data_size(struct vfio_device *vdev, unsigned long *len);

/*
 * Trace events (drivers/vfio/pci/virtio_rs/trace.{h,c}): whether any is
 * enabled, and one wrapper per event.
 */
bool virtio_rs_trace_on(void);
void virtio_rs_trace_state_request(struct pci_dev *pdev, u32 cur, u32 new);
void virtio_rs_trace_arc(struct pci_dev *pdev, u32 from, u32 to, s64 ns, int ret);
void virtio_rs_trace_admin_cmd(struct pci_dev *pdev, u16 opcode, u64 bytes, s64 ns, int ret);
void virtio_rs_trace_session(struct pci_dev *pdev, bool saving, bool created);
void virtio_rs_trace_record(struct pci_dev *pdev, bool saved, u64 size);
void virtio_rs_trace_precopy_query(struct pci_dev *pdev, u32 decision, u64 initial,
				   u64 dirty);

#endif /* _VIRTIO_RS_BINDINGS_H */
