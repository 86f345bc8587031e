/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Wrapper header for the bindgen run of tools/sim/Kbuild (the simulated
 * admin device, test kernels only).
 */
#ifndef _VIRTIO_RS_SIM_BINDINGS_H
#define _VIRTIO_RS_SIM_BINDINGS_H

#include <linux/notifier.h>
#include <linux/pci.h>
#include <linux/scatterlist.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_pci_admin_sim.h>

/* static inline functions. */
struct pci_dev *virtio_rs_sim_physfn(struct pci_dev *pdev);
bool virtio_rs_sim_is_virtfn(struct pci_dev *pdev);

#endif /* _VIRTIO_RS_SIM_BINDINGS_H */
