// SPDX-License-Identifier: GPL-2.0

//! A counted reference to the virtio-net PF the simulator serves.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h).
//!
//! Its own file so that the device model ([`crate::device`]) and the hook
//! registration ([`crate::hook`]) both use it without depending on each
//! other: `hook` uses `device`, never the other way round.

use core::ptr::NonNull;

use kernel::prelude::*;

use crate::bindings;

const VIRTIO_VENDOR: u32 = 0x1af4;
const VIRTIO_NET: u32 = 0x1041;

/// A counted reference to a PF.
///
/// # Invariants
///
/// `0` holds a reference taken by `pci_get_device()`/`pci_dev_get()`.
pub(crate) struct PfRef(NonNull<bindings::pci_dev>);

// SAFETY: a `pci_dev` reference may be used and dropped from any thread.
unsafe impl Send for PfRef {}
// SAFETY: as above; we only read immutable fields through it.
unsafe impl Sync for PfRef {}

impl PfRef {
    /// The first virtio-net function with SR-IOV capability.
    pub(crate) fn find_virtio_net_pf() -> Result<Self> {
        let mut cur: *mut bindings::pci_dev = core::ptr::null_mut();
        loop {
            // SAFETY: `pci_get_device()` drops the reference on `cur` (NULL
            // to start) and returns the next match with a reference.
            cur = unsafe { bindings::pci_get_device(VIRTIO_VENDOR, VIRTIO_NET, cur) };
            let Some(pdev) = NonNull::new(cur) else {
                return Err(ENODEV);
            };
            // SAFETY: `pdev` is referenced.
            let (vf, total) = unsafe {
                (
                    bindings::virtio_rs_sim_is_virtfn(pdev.as_ptr()),
                    bindings::pci_sriov_get_totalvfs(pdev.as_ptr()),
                )
            };
            if !vf && total > 0 {
                // INVARIANT: `pci_get_device()` returned it referenced.
                return Ok(Self(pdev));
            }
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::pci_dev {
        self.0.as_ptr()
    }

    /// Number of enabled VFs.
    pub(crate) fn num_vfs(&self) -> u16 {
        // SAFETY: the PF is referenced (type invariant).
        let n = unsafe { bindings::pci_num_vf(self.as_ptr()) };
        u16::try_from(n).unwrap_or(0)
    }

    /// Total VFs the PF supports.
    pub(crate) fn total_vfs(&self) -> u16 {
        // SAFETY: the PF is referenced.
        let n = unsafe { bindings::pci_sriov_get_totalvfs(self.as_ptr()) };
        u16::try_from(n).unwrap_or(0)
    }
}

impl Drop for PfRef {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant).
        unsafe { bindings::pci_dev_put(self.as_ptr()) };
    }
}
