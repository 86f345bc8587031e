// SPDX-License-Identifier: GPL-2.0
/* C helpers of virtio_rs_sim.ko: static inline functions. */
#include <virtio_rs_sim_bindings.h>

struct pci_dev *virtio_rs_sim_physfn(struct pci_dev *pdev)
{
	return pci_physfn(pdev);
}

bool virtio_rs_sim_is_virtfn(struct pci_dev *pdev)
{
	return pdev->is_virtfn;
}
