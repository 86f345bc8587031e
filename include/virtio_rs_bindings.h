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

#endif /* _VIRTIO_RS_BINDINGS_H */
