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

// SAFETY: a `PfRef` owns a `struct pci_dev` reference and nothing tied to
// a thread: `pci_dev_put()` in `drop` and the PCI core functions its
// methods call may run on any thread in process context.
unsafe impl Send for PfRef {}
// SAFETY: `&PfRef` only allows `as_ptr`, `num_vfs` and `total_vfs`, which
// read the referenced device through `pci_num_vf()` and
// `pci_sriov_get_totalvfs()`, callable from any thread; nothing writes
// through a `&PfRef`.
unsafe impl Sync for PfRef {}

impl PfRef {
    /// The first virtio-net function with SR-IOV capability.
    pub(crate) fn find_virtio_net_pf() -> Result<Self> {
        let mut cur: *mut bindings::pci_dev = core::ptr::null_mut();
        loop {
            // SAFETY: `pci_get_device()` needs `from` to be NULL or a device
            // it returned, whose reference the caller gives up: `cur` is NULL
            // on the first pass and then the previous result, which we own
            // and did not keep (it did not match). It drops that reference
            // and returns the next match with a new one, or NULL.
            cur = unsafe { bindings::pci_get_device(VIRTIO_VENDOR, VIRTIO_NET, cur) };
            let Some(pdev) = NonNull::new(cur) else {
                return Err(ENODEV);
            };
            // SAFETY: `virtio_rs_sim_is_virtfn()` and
            // `pci_sriov_get_totalvfs()` need a valid `struct pci_dev`:
            // `pdev` was just returned by `pci_get_device()` with a
            // reference we own, so it stays valid until we give that back.
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
        // SAFETY: `pci_num_vf()` needs a valid `struct pci_dev`: we hold a
        // reference on it (type invariant), and the SR-IOV state it reads
        // for a PF is freed only with the device. The read is unlocked, so
        // the count may be stale, never invalid.
        let n = unsafe { bindings::pci_num_vf(self.as_ptr()) };
        u16::try_from(n).unwrap_or(0)
    }

    /// Total VFs the PF supports.
    pub(crate) fn total_vfs(&self) -> u16 {
        // SAFETY: `pci_sriov_get_totalvfs()` needs a valid `struct pci_dev`:
        // we hold a reference on it (type invariant), and the SR-IOV state
        // it reads for a PF is freed only with the device.
        let n = unsafe { bindings::pci_sriov_get_totalvfs(self.as_ptr()) };
        u16::try_from(n).unwrap_or(0)
    }
}

impl Drop for PfRef {
    fn drop(&mut self) {
        // SAFETY: `pci_dev_put()` needs a reference to give back: we own one
        // (type invariant, from `pci_get_device()`), and `self` is not used
        // after `drop`.
        unsafe { bindings::pci_dev_put(self.as_ptr()) };
    }
}
