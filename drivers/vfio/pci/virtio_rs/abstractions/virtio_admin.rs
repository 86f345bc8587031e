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
//! Device parts objects are destroyed with [`Vf::destroy_parts`], which takes
//! the object by value: it needs `&mut Vf`, so the destroy command is
//! serialised with the VF's other commands like every command, and an id
//! cannot be used after it. A [`PartsObject`] dropped any other way sends
//! nothing (it could not know that the VF's commands are serialised where
//! it is dropped): the object is leaked on the device, a warning is logged
//! and [`objects_leaked`] counts it. A status that
//! the PF layer turns into something that is not an errno (any virtio
//! status above 4095 becomes `-status`) is reported as `EIO`.

use kernel::{
    ffi::c_int,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use super::page_buffer::PageBuffer;
use super::vfio::pci::ProbeDevice;
use crate::bindings;

/// Size of the object header in front of `DEV_PARTS_SET` data
/// (`struct virtio_admin_cmd_resource_obj_cmd_hdr`).
pub const OBJ_HDR_LEN: usize = 8;

/// Device parts objects dropped without [`Vf::destroy_parts`], module-wide.
static OBJECTS_LEAKED: Atomic<u64> = Atomic::new(0);

/// Device parts objects the device failed to destroy, module-wide.
static DESTROYS_FAILED: Atomic<u64> = Atomic::new(0);

/// Device parts objects the device refused to destroy (twice): their ids
/// stay taken on the PF until it is reset.
pub fn destroys_failed() -> u64 {
    DESTROYS_FAILED.load(Relaxed)
}

/// Device parts objects leaked so far by this module (dropped without
/// [`Vf::destroy_parts`]); always 0 unless the driver has a bug.
pub fn objects_leaked() -> u64 {
    OBJECTS_LEAKED.load(Relaxed)
}

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
    pub fn with_dev_parts(pdev: &ProbeDevice<'_>) -> Option<Self> {
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
        // INVARIANT: the object was just created on this VF.
        Ok(PartsObject {
            owner: self.pdev,
            id,
            op,
            live: true,
        })
    }

    /// `RESOURCE_OBJ_DESTROY` of `obj`, an object of this VF. The PF layer
    /// releases the id only when the command succeeds, so a failure is
    /// retried once, then logged; the id is never used again either way.
    pub fn destroy_parts(&mut self, mut obj: PartsObject) {
        if obj.owner != self.pdev {
            // Another VF's object: never send its id here (it stays leaked).
            pr_warn!("device parts object {} destroyed on another VF\n", obj.id);
            return;
        }
        for attempt in 0..2 {
            // SAFETY: `pdev` is valid (type invariant) and `&mut self`
            // serialises the command with the VF's others; the object
            // exists on this VF (invariant of `obj`).
            let ret = unsafe {
                bindings::virtio_pci_admin_obj_destroy(
                    self.raw(),
                    bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16,
                    obj.id,
                )
            };
            if ret == 0 {
                break;
            }
            if attempt == 1 {
                DESTROYS_FAILED.add(1u64, Relaxed);
                pr_warn!(
                    "destroying device parts object {} failed: {}\n",
                    obj.id,
                    ret
                );
            }
        }
        obj.live = false;
    }

    /// Whether `obj` belongs to this VF.
    fn owns(&self, obj: &PartsObject) -> Result {
        if obj.owner == self.pdev {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// `DEV_PARTS_METADATA_GET(SIZE)`: bytes of device parts the object
    /// would return now.
    pub fn parts_size(&mut self, obj: &PartsObject) -> Result<u32> {
        self.owns(obj)?;
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
        self.owns(obj)?;
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

    /// `DEV_PARTS_SET` into `obj` with bytes `0..len` of `buf`: the
    /// object's header ([`PartsObject::header`]) followed by device parts.
    pub fn parts_set(&mut self, obj: &PartsObject, buf: &PageBuffer, len: usize) -> Result {
        self.owns(obj)?;
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

/// A device parts object of a VF. Destroy it with [`Vf::destroy_parts`];
/// dropping it otherwise leaks it (see the module docs).
///
/// # Invariants
///
/// While `live`, the object `id` exists on the VF whose `struct pci_dev` is
/// `owner`. `owner` is only compared, never dereferenced.
pub struct PartsObject {
    owner: core::ptr::NonNull<bindings::pci_dev>,
    id: u32,
    op: PartsOp,
    live: bool,
}

// SAFETY: `owner` is never dereferenced; the rest is plain data.
unsafe impl Send for PartsObject {}
// SAFETY: as above.
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
    fn drop(&mut self) {
        if self.live {
            OBJECTS_LEAKED.add(1u64, Relaxed);
            pr_warn!(
                "device parts object {} dropped without being destroyed: leaked\n",
                self.id
            );
        }
    }
}
