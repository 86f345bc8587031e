// SPDX-License-Identifier: GPL-2.0

//! The virtio PCI admin commands a VF driver sends through its PF.
//!
//! C header: [`include/linux/virtio_pci_admin.h`](srctree/include/linux/virtio_pci_admin.h).
//!
//! `virtio_pci` exports one function per admin command; each finds the PF
//! of the VF (it must be bound to `virtio-pci`), sends the command on the
//! PF's admin virtqueue with group SR-IOV and member "VF number + 1", and
//! waits for it. The caller must serialise the commands of one VF: every
//! method here takes `&mut self` on a [`Vf`], so holding the lock that
//! protects the `Vf` is what serialises them.
//!
//! Device parts objects are RAII: [`PartsObject`] destroys its object when
//! dropped, so an id is released exactly once on every path. A status that
//! the PF layer turns into something that is not an errno (any virtio
//! status above 4095 becomes `-status`) is reported as `EIO`.

use kernel::{ffi::c_int, prelude::*};

use crate::bindings;
use crate::page_buffer::PageBuffer;
use crate::vfio::pci::ProbeDevice;

/// Size of the object header in front of `DEV_PARTS_SET` data
/// (`struct virtio_admin_cmd_resource_obj_cmd_hdr`).
pub const OBJ_HDR_LEN: usize = 8;

/// Map the return value of a `virtio_pci_admin_*` function.
fn admin_result(ret: c_int) -> Result {
    if ret == 0 {
        return Ok(());
    }
    // A valid errno is -1..=-4095 (MAX_ERRNO); anything else is a device
    // status the PF layer negated without mapping it.
    if (-4095..0).contains(&ret) {
        Err(Error::from_errno(ret))
    } else {
        Err(EIO)
    }
}

/// A virtio VF whose PF offers admin commands.
///
/// # Invariants
///
/// `pdev` is a valid `struct pci_dev` on which we hold a reference.
pub struct Vf {
    pdev: core::ptr::NonNull<bindings::pci_dev>,
}

// SAFETY: a `struct pci_dev` reference can be used and dropped from any
// thread.
unsafe impl Send for Vf {}
// SAFETY: every command needs `&mut Vf`; shared access only reads.
unsafe impl Sync for Vf {}

/// The kind of a device parts object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartsOp {
    /// Source side: `DEV_PARTS_GET`.
    Get,
    /// Destination side: `DEV_PARTS_SET`.
    Set,
}

impl Vf {
    /// The VF being probed, if its PF (bound to `virtio-pci`) offers
    /// every device-parts admin command with a non-zero object limit
    /// (`virtio_pci_admin_has_dev_parts()`).
    pub fn probe(pdev: &ProbeDevice<'_>) -> Option<Self> {
        let raw = pdev.as_raw();
        // SAFETY: `raw` is the valid device being probed.
        if !unsafe { bindings::virtio_pci_admin_has_dev_parts(raw) } {
            return None;
        }
        // SAFETY: as above; the reference is dropped in `drop`.
        let raw = unsafe { bindings::pci_dev_get(raw) };
        // INVARIANT: we hold a reference on the valid device.
        core::ptr::NonNull::new(raw).map(|pdev| Self { pdev })
    }

    fn raw(&self) -> *mut bindings::pci_dev {
        self.pdev.as_ptr()
    }

    /// `DEV_MODE_SET`: stop (`true`) or run the device.
    pub fn mode_set(&mut self, stopped: bool) -> Result {
        let flags = if stopped {
            1u8 << bindings::VIRTIO_ADMIN_CMD_DEV_MODE_F_STOPPED
        } else {
            0
        };
        // SAFETY: `pdev` is valid (type invariant); `&mut self` serialises.
        admin_result(unsafe { bindings::virtio_pci_admin_mode_set(self.raw(), flags) })
    }

    /// `RESOURCE_OBJ_CREATE` of a device parts object.
    pub fn create_parts(&mut self, op: PartsOp) -> Result<PartsObject> {
        let op_type = match op {
            PartsOp::Get => bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS_TYPE_GET,
            PartsOp::Set => bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS_TYPE_SET,
        };
        let mut id = 0u32;
        // SAFETY: `pdev` is valid; `id` is a valid out pointer.
        admin_result(unsafe {
            bindings::virtio_pci_admin_obj_create(
                self.raw(),
                bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16,
                op_type as u8,
                &mut id,
            )
        })?;
        // SAFETY: `pdev` is valid; the new reference belongs to the object.
        unsafe { bindings::pci_dev_get(self.raw()) };
        // INVARIANT: the object was created and we took a reference.
        Ok(PartsObject {
            pdev: self.pdev,
            id,
            op,
        })
    }

    /// `DEV_PARTS_METADATA_GET(SIZE)`: bytes of device parts the object
    /// would return now.
    pub fn parts_size(&mut self, obj: &PartsObject) -> Result<u32> {
        let mut size = 0u32;
        // SAFETY: `pdev` is valid; `size` is a valid out pointer.
        admin_result(unsafe {
            bindings::virtio_pci_admin_dev_parts_metadata_get(
                self.raw(),
                bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16,
                obj.id,
                bindings::VIRTIO_ADMIN_CMD_DEV_PARTS_METADATA_TYPE_SIZE as u8,
                &mut size,
            )
        })?;
        Ok(size)
    }

    /// `DEV_PARTS_GET(ALL)` into bytes `0..len` of `buf`; returns the bytes
    /// the device wrote, which is at most `len` (`EIO` otherwise).
    pub fn parts_get(&mut self, obj: &PartsObject, buf: &PageBuffer, len: u32) -> Result<u32> {
        let pdev = self.raw();
        let mut got = 0u32;
        buf.with_sg(len as usize, |sg| {
            // SAFETY: `pdev` is valid; `sg` is an end-marked list over
            // `len` bytes of `buf`, borrowed for this call; `got` is valid.
            admin_result(unsafe {
                bindings::virtio_pci_admin_dev_parts_get(
                    pdev,
                    bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16,
                    obj.id,
                    bindings::VIRTIO_ADMIN_CMD_DEV_PARTS_GET_TYPE_ALL as u8,
                    sg.as_raw(),
                    &mut got,
                )
            })
        })??;
        if got > len {
            return Err(EIO);
        }
        Ok(got)
    }

    /// `DEV_PARTS_SET` with bytes `0..len` of `buf`: the object header
    /// [`PartsObject::header`] followed by device parts.
    pub fn parts_set(&mut self, buf: &PageBuffer, len: usize) -> Result {
        let pdev = self.raw();
        buf.with_sg(len, |sg| {
            // SAFETY: `pdev` is valid; `sg` is an end-marked list over `len`
            // bytes of `buf`, borrowed for this call.
            admin_result(unsafe { bindings::virtio_pci_admin_dev_parts_set(pdev, sg.as_raw()) })
        })?
    }
}

impl Drop for Vf {
    fn drop(&mut self) {
        // SAFETY: we hold a reference (type invariant).
        unsafe { bindings::pci_dev_put(self.raw()) };
    }
}

/// A device parts object of a VF, destroyed when dropped.
///
/// # Invariants
///
/// The object `id` exists on the device of `pdev`, on which we hold a
/// reference.
pub struct PartsObject {
    pdev: core::ptr::NonNull<bindings::pci_dev>,
    id: u32,
    op: PartsOp,
}

// SAFETY: as for `Vf`.
unsafe impl Send for PartsObject {}
// SAFETY: shared access only reads `id`.
unsafe impl Sync for PartsObject {}

impl PartsObject {
    /// The object id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The object's kind.
    pub fn op(&self) -> PartsOp {
        self.op
    }

    /// The 8-byte `virtio_admin_cmd_resource_obj_cmd_hdr` naming this
    /// object, which starts `DEV_PARTS_SET` data.
    pub fn header(&self) -> [u8; OBJ_HDR_LEN] {
        let mut h = [0u8; OBJ_HDR_LEN];
        let (ty, rest) = h.split_at_mut(2);
        let (_reserved, id) = rest.split_at_mut(2);
        ty.copy_from_slice(&(bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16).to_le_bytes());
        id.copy_from_slice(&self.id.to_le_bytes());
        h
    }
}

impl Drop for PartsObject {
    /// `RESOURCE_OBJ_DESTROY`. Must be dropped where the VF's commands are
    /// serialised (with the lock protecting its [`Vf`] held). The PF layer
    /// releases the id only when the command succeeds, so a failure is
    /// retried once, then logged; the id is never used again either way.
    fn drop(&mut self) {
        for attempt in 0..2 {
            // SAFETY: `pdev` is valid and the object exists (type
            // invariants).
            let ret = unsafe {
                bindings::virtio_pci_admin_obj_destroy(
                    self.pdev.as_ptr(),
                    bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16,
                    self.id,
                )
            };
            if ret == 0 {
                break;
            }
            if attempt == 1 {
                pr_warn!(
                    "destroying device parts object {} failed: {}\n",
                    self.id,
                    ret
                );
            }
        }
        // SAFETY: the reference taken in `create_parts`.
        unsafe { bindings::pci_dev_put(self.pdev.as_ptr()) };
    }
}
