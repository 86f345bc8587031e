// SPDX-License-Identifier: GPL-2.0

//! A counted reference to the virtio-net PF the simulator serves.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h).
//!
//! Its own file so that the device model ([`crate::device`]) and the hook
//! registration ([`crate::hook`]) both use it without depending on each
//! other: `hook` uses `device`, never the other way round.
//!
//! It also reads a VF's config space for LEGACY_NOTIFY_INFO
//! ([`PfRef::vf_common_cfg`]): the VF's `struct pci_dev` is found among the
//! virtio functions by its PF and VF number (`pci_get_domain_bus_and_slot()`
//! would need `pci_iov_virtfn_bus()`, which is not exported to modules),
//! then its capability list is walked with `pci_find_capability()` /
//! `pci_find_next_capability()` for the virtio vendor capability
//! (`struct virtio_pci_cap` of `include/uapi/linux/virtio_pci.h`) of type
//! COMMON_CFG.

use core::ptr::NonNull;

use kernel::{ffi::c_int, prelude::*};

use crate::bindings;

const VIRTIO_VENDOR: u32 = 0x1af4;
const VIRTIO_NET: u32 = 0x1041;
/// `PCI_ANY_ID`.
const ANY_ID: u32 = !0;
/// `PCI_CAP_ID_VNDR`.
const CAP_ID_VNDR: c_int = 0x09;
/// `VIRTIO_PCI_CAP_COMMON_CFG`.
const CAP_COMMON_CFG: u8 = 1;
/// Offsets in `struct virtio_pci_cap`: `cfg_type`, `bar`, `offset` (le32).
const CAP_CFG_TYPE: c_int = 3;
const CAP_BAR: c_int = 4;
const CAP_OFFSET: c_int = 8;

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

    /// The enabled VF `id` (0-based, as `pci_iov_vf_id()` counts).
    fn vf(&self, id: u16) -> Option<VfRef> {
        let mut cur: *mut bindings::pci_dev = core::ptr::null_mut();
        loop {
            // SAFETY: as in `find_virtio_net_pf()`: `cur` is NULL or the
            // previous result, whose reference we own and give up here.
            cur = unsafe { bindings::pci_get_device(VIRTIO_VENDOR, ANY_ID, cur) };
            let pdev = NonNull::new(cur)?;
            // SAFETY: `pdev` was just returned by `pci_get_device()` with a
            // reference we own, so it is a valid `struct pci_dev`;
            // `pci_iov_vf_id()` runs only for a VF of our PF, whose SR-IOV
            // state it reads and which we hold a reference on (type
            // invariant).
            let found = unsafe {
                bindings::virtio_rs_sim_is_virtfn(pdev.as_ptr())
                    && bindings::virtio_rs_sim_physfn(pdev.as_ptr()) == self.as_ptr()
                    && bindings::pci_iov_vf_id(pdev.as_ptr()) == c_int::from(id)
            };
            if found {
                // INVARIANT: `pci_get_device()` returned it referenced.
                return Some(VfRef(pdev));
            }
        }
    }

    /// BAR and offset of the common configuration structure of the enabled
    /// VF `id` (0-based): `Ok(None)` if the VF has no virtio COMMON_CFG
    /// capability, `ENODEV` if there is no such VF.
    pub(crate) fn vf_common_cfg(&self, id: u16) -> Result<Option<(u8, u32)>> {
        Ok(self.vf(id).ok_or(ENODEV)?.common_cfg())
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

/// A counted reference to a VF, held while its config space is read.
///
/// # Invariants
///
/// `0` holds a reference taken by `pci_get_device()`.
struct VfRef(NonNull<bindings::pci_dev>);

impl VfRef {
    fn read8(&self, at: c_int) -> Option<u8> {
        let mut v = 0u8;
        // SAFETY: `pci_read_config_byte()` needs a valid `struct pci_dev`
        // (we hold a reference, type invariant) and a writable byte (`v`).
        let ret = unsafe { bindings::pci_read_config_byte(self.0.as_ptr(), at, &mut v) };
        (ret == 0).then_some(v)
    }

    fn read32(&self, at: c_int) -> Option<u32> {
        let mut v = 0u32;
        // SAFETY: `pci_read_config_dword()` needs a valid `struct pci_dev`
        // (we hold a reference, type invariant) and a writable `u32` (`v`).
        let ret = unsafe { bindings::pci_read_config_dword(self.0.as_ptr(), at, &mut v) };
        (ret == 0).then_some(v)
    }

    /// `(bar, offset)` of the first virtio vendor capability of type
    /// COMMON_CFG; `None` if there is none or config space cannot be read.
    fn common_cfg(&self) -> Option<(u8, u32)> {
        // SAFETY: `pci_find_capability()` needs a valid `struct pci_dev`: we
        // hold a reference (type invariant). It reads config space only.
        let mut pos = unsafe { bindings::pci_find_capability(self.0.as_ptr(), CAP_ID_VNDR) };
        while pos != 0 {
            let at = c_int::from(pos);
            if self.read8(at + CAP_CFG_TYPE)? == CAP_COMMON_CFG {
                return Some((self.read8(at + CAP_BAR)?, self.read32(at + CAP_OFFSET)?));
            }
            // SAFETY: as for `pci_find_capability()`; `pos` is a capability
            // position it returned (the walk is bounded by the PCI core).
            pos = unsafe { bindings::pci_find_next_capability(self.0.as_ptr(), pos, CAP_ID_VNDR) };
        }
        None
    }
}

impl Drop for VfRef {
    fn drop(&mut self) {
        // SAFETY: `pci_dev_put()` needs a reference to give back: we own one
        // (type invariant), and `self` is not used after `drop`.
        unsafe { bindings::pci_dev_put(self.0.as_ptr()) };
    }
}
