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
    time::{Instant, Monotonic},
};

use super::page_buffer::PageBuffer;
use super::vfio::pci::ProbeDevice;
use crate::bindings;

/// Size of the object header in front of `DEV_PARTS_SET` data
/// (`struct virtio_admin_cmd_resource_obj_cmd_hdr`).
pub const OBJ_HDR_LEN: usize =
    core::mem::size_of::<bindings::virtio_admin_cmd_resource_obj_cmd_hdr>();

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
/// The PF layer finds the PF of a VF through `pci_iov_get_pf_drvdata()`,
/// which is valid only while a driver is bound to the VF. A `Vf` may
/// outlive the binding that made it (a driver keeps it in its device data,
/// which an open migration file keeps alive after `remove`), so the driver
/// must [`Vf::revoke`] it when the binding ends (`Driver::unbind`); every
/// command then fails with `ENODEV` instead of reaching the PF layer.
///
/// # Invariants
///
/// `pdev` is a valid `struct pci_dev` on which we hold a reference. While
/// `revoked` is false, a driver is bound to it.
pub struct Vf {
    pdev: core::ptr::NonNull<bindings::pci_dev>,
    revoked: bool,
}

// SAFETY: a `Vf` owns a `struct pci_dev` reference and nothing tied to a
// thread: the admin commands it sends and `pci_dev_put()` in `drop` may run
// on any thread in process context.
unsafe impl Send for Vf {}
// SAFETY: `&Vf` gives access only to the value of the `pdev` pointer
// (compared by `owns`); every method that sends a command takes `&mut Vf`,
// so threads sharing a `&Vf` send nothing.
unsafe impl Sync for Vf {}

/// The legacy configuration area a legacy admin command accesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyArea {
    /// The legacy common configuration (features, queues, status, ISR,
    /// MSI-X vectors).
    Common,
    /// The legacy device configuration (virtio-net: MAC, link status).
    Device,
}

/// Signature of the `virtio_pci_admin_legacy_*_io_{read,write}()` functions.
#[cfg(virtio_rs_legacy)]
type LegacyIoFn = unsafe extern "C" fn(*mut bindings::pci_dev, u8, u8, *mut u8) -> c_int;

/// Size of a [`LegacyBuf`]: the emulated legacy BAR0.
pub const LEGACY_BUF_LEN: usize = 32;

/// The bytes of legacy register accesses. It lives on the heap because the
/// PF layer maps a read's buffer for DMA as the command's result, which
/// stack memory must never be.
pub struct LegacyBuf(KBox<[u8; LEGACY_BUF_LEN]>);

impl LegacyBuf {
    /// A zeroed buffer.
    pub fn new() -> Result<Self> {
        Ok(Self(KBox::new([0u8; LEGACY_BUF_LEN], GFP_KERNEL)?))
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8; LEGACY_BUF_LEN] {
        &self.0
    }

    /// The bytes, to fill.
    pub fn bytes_mut(&mut self) -> &mut [u8; LEGACY_BUF_LEN] {
        &mut self.0
    }
}

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
    /// (`virtio_pci_admin_has_dev_parts()`). The caller's driver must
    /// [`Vf::revoke`] it when this binding ends.
    pub fn with_dev_parts(pdev: &ProbeDevice<'_>) -> Option<Self> {
        let raw = pdev.as_raw();
        // SAFETY: `virtio_pci_admin_has_dev_parts()` needs a valid VF `struct
        // pci_dev` with a VF driver attached (it reads the PF's driver data
        // through `pci_iov_get_pf_drvdata()`): `raw` is the device being
        // probed, valid for the whole probe call, and the PF driver cannot
        // get past `pci_disable_sriov()` (which unbinds the VF drivers,
        // under the device lock the probe holds) before the probe returns.
        if !unsafe { bindings::virtio_pci_admin_has_dev_parts(raw) } {
            return None;
        }
        // SAFETY: `pci_dev_get()` needs a valid `struct pci_dev`: `raw` is
        // the device being probed, valid for the whole probe call. The
        // reference it takes is the one the type invariant of `Vf` requires;
        // `drop` gives it back.
        let raw = unsafe { bindings::pci_dev_get(raw) };
        // INVARIANT: we hold a reference on the valid device, which is
        // being bound to the caller's driver.
        core::ptr::NonNull::new(raw).map(|pdev| Self {
            pdev,
            revoked: false,
        })
    }

    /// The VF being probed, if its PF (bound to `virtio-pci`) offers every
    /// legacy-interface admin command (`virtio_pci_admin_has_legacy_io()`):
    /// LEGACY_COMMON_CFG_READ/WRITE, LEGACY_DEV_CFG_READ/WRITE and
    /// LEGACY_NOTIFY_INFO. The caller's driver must [`Vf::revoke`] it when
    /// this binding ends.
    #[cfg(virtio_rs_legacy)]
    pub fn with_legacy_io(pdev: &ProbeDevice<'_>) -> Option<Self> {
        let raw = pdev.as_raw();
        // SAFETY: `virtio_pci_admin_has_legacy_io()` needs a valid VF `struct
        // pci_dev` with a VF driver attached (it reads the PF's driver data
        // through `pci_iov_get_pf_drvdata()`): `raw` is the device being
        // probed, valid for the whole probe call, and the PF driver cannot
        // get past `pci_disable_sriov()` (which unbinds the VF drivers,
        // under the device lock the probe holds) before the probe returns.
        if !unsafe { bindings::virtio_pci_admin_has_legacy_io(raw) } {
            return None;
        }
        // SAFETY: `pci_dev_get()` needs a valid `struct pci_dev`: `raw` is
        // the device being probed. The reference is the one the type
        // invariant of `Vf` requires; `drop` gives it back.
        let raw = unsafe { bindings::pci_dev_get(raw) };
        // INVARIANT: we hold a reference on the valid device, which is
        // being bound to the caller's driver.
        core::ptr::NonNull::new(raw).map(|pdev| Self {
            pdev,
            revoked: false,
        })
    }

    /// `LEGACY_COMMON_CFG_READ` or `LEGACY_DEV_CFG_READ` of `len` register
    /// bytes at `offset` of `area`, into bytes `at..at + len` of `buf`.
    #[cfg(virtio_rs_legacy)]
    pub fn legacy_read(
        &mut self,
        area: LegacyArea,
        offset: u8,
        buf: &mut LegacyBuf,
        at: usize,
        len: usize,
    ) -> Result {
        let cmd = match area {
            LegacyArea::Common => (
                bindings::virtio_pci_admin_legacy_common_io_read as LegacyIoFn,
                bindings::VIRTIO_ADMIN_CMD_LEGACY_COMMON_CFG_READ,
            ),
            LegacyArea::Device => (
                bindings::virtio_pci_admin_legacy_device_io_read as LegacyIoFn,
                bindings::VIRTIO_ADMIN_CMD_LEGACY_DEV_CFG_READ,
            ),
        };
        self.legacy_cmd(cmd, offset, buf, at, len)
    }

    /// `LEGACY_COMMON_CFG_WRITE` or `LEGACY_DEV_CFG_WRITE` of bytes
    /// `at..at + len` of `buf` to the registers at `offset` of `area`.
    #[cfg(virtio_rs_legacy)]
    pub fn legacy_write(
        &mut self,
        area: LegacyArea,
        offset: u8,
        buf: &mut LegacyBuf,
        at: usize,
        len: usize,
    ) -> Result {
        let cmd = match area {
            LegacyArea::Common => (
                bindings::virtio_pci_admin_legacy_common_io_write as LegacyIoFn,
                bindings::VIRTIO_ADMIN_CMD_LEGACY_COMMON_CFG_WRITE,
            ),
            LegacyArea::Device => (
                bindings::virtio_pci_admin_legacy_device_io_write as LegacyIoFn,
                bindings::VIRTIO_ADMIN_CMD_LEGACY_DEV_CFG_WRITE,
            ),
        };
        self.legacy_cmd(cmd, offset, buf, at, len)
    }

    /// One of the four legacy register commands, `(function, opcode)`, on
    /// bytes `at..at + len` of `buf`.
    #[cfg(virtio_rs_legacy)]
    fn legacy_cmd(
        &mut self,
        (f, opcode): (LegacyIoFn, u32),
        offset: u8,
        buf: &mut LegacyBuf,
        at: usize,
        len: usize,
    ) -> Result {
        self.check()?;
        let size = u8::try_from(len).map_err(|_| EINVAL)?;
        let bytes = buf
            .0
            .get_mut(at..at.checked_add(len).ok_or(EINVAL)?)
            .ok_or(EINVAL)?;
        let t = self.cmd_start();
        // SAFETY: the legacy read and write functions need a valid VF
        // `struct pci_dev` whose commands the caller serialises, with a VF
        // driver attached, and `size` bytes of memory: a write copies them
        // into its command; a read puts them in a scatterlist as the
        // command's result, which the PF layer may map for DMA:
        // - `pdev` is valid: we hold a reference on it (type invariant);
        // - `&mut self` serialises the commands sent through this `Vf`;
        // - `bytes` is `size` bytes of the heap allocation of a `LegacyBuf`
        //   (kmalloc memory, never on the stack), borrowed mutably for the
        //   call;
        // - the PF layer finds the PF through `pci_iov_get_pf_drvdata()`,
        //   valid only while a VF driver is attached, which holds while the
        //   binding that made this `Vf` lasts: a `Vf` sends nothing after
        //   `revoke()`, which its driver calls when the binding ends (the
        //   contract of `with_legacy_io`), and `check()` above returned Ok.
        let r = admin_result(unsafe { f(self.raw(), offset, size, bytes.as_mut_ptr()) });
        self.cmd_done(t, opcode, u64::from(size), &r);
        r
    }

    /// `LEGACY_NOTIFY_INFO`: the BAR and offset, in the VF's own memory,
    /// where queue notifications of the legacy interface go (the first
    /// entry flagged "member device", `ENOENT` if none).
    #[cfg(virtio_rs_legacy)]
    pub fn legacy_notify_info(&mut self) -> Result<(u8, u64)> {
        self.check()?;
        let (mut bar, mut offset) = (0u8, 0u64);
        let t = self.cmd_start();
        // SAFETY: `virtio_pci_admin_legacy_io_notify_info()` needs a valid VF
        // `struct pci_dev` whose commands the caller serialises, with a VF
        // driver attached, and places for the BAR and offset (it allocates
        // the DMA-able result itself):
        // - `pdev` is valid: we hold a reference on it (type invariant);
        // - `&mut self` serialises the commands sent through this `Vf`;
        // - `bar` and `offset` are locals, valid for writes;
        // - the PF is found as in `legacy_cmd`, and `check()` returned Ok.
        let r = admin_result(unsafe {
            bindings::virtio_pci_admin_legacy_io_notify_info(
                self.raw(),
                // CAST: the flag is 2, a `u8` field of the command.
                bindings::VIRTIO_ADMIN_CMD_NOTIFY_INFO_FLAGS_OWNER_MEM as u8,
                &mut bar,
                &mut offset,
            )
        });
        self.cmd_done(t, bindings::VIRTIO_ADMIN_CMD_LEGACY_NOTIFY_INFO, 16, &r);
        r.map(|()| (bar, offset))
    }

    fn raw(&self) -> *mut bindings::pci_dev {
        self.pdev.as_ptr()
    }

    /// The binding of the driver that made this `Vf` ends: no command may be
    /// sent from now on (they fail with `ENODEV`).
    pub fn revoke(&mut self) {
        // INVARIANT: from now on no command relies on a bound driver.
        self.revoked = true;
    }

    /// `ENODEV` once revoked.
    fn check(&self) -> Result {
        if self.revoked {
            Err(ENODEV)
        } else {
            Ok(())
        }
    }

    /// `DEV_MODE_SET`: stop (`true`) or run the device.
    pub fn mode_set(&mut self, stopped: bool) -> Result {
        self.check()?;
        let flags = if stopped {
            1u8 << bindings::VIRTIO_ADMIN_CMD_DEV_MODE_F_STOPPED
        } else {
            0
        };
        let t = self.cmd_start();
        // SAFETY: `virtio_pci_admin_mode_set()` needs a valid VF `struct
        // pci_dev` whose commands the caller serialises, with a VF driver
        // attached:
        // - `pdev` is valid: we hold a reference on it (type invariant);
        // - `&mut self` serialises the commands sent through this `Vf`;
        // - the PF layer finds the PF through `pci_iov_get_pf_drvdata()`,
        //   valid only while a VF driver is attached, which holds while the
        //   binding that made this `Vf` lasts: a `Vf` sends nothing after
        //   `revoke()`, which its driver calls when the binding ends (the
        //   contract of `with_dev_parts`), and `check()` above returned Ok.
        let r = admin_result(unsafe { bindings::virtio_pci_admin_mode_set(self.raw(), flags) });
        self.cmd_done(t, bindings::VIRTIO_ADMIN_CMD_DEV_MODE_SET, 1, &r);
        r
    }

    /// `RESOURCE_OBJ_CREATE` of a device parts object.
    pub fn create_parts(&mut self, op: PartsOp) -> Result<PartsObject> {
        self.check()?;
        let op_type = match op {
            PartsOp::Get => bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS_TYPE_GET,
            PartsOp::Set => bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS_TYPE_SET,
        };
        let mut id = 0u32;
        let t = self.cmd_start();
        // SAFETY: `virtio_pci_admin_obj_create()` needs a valid VF `struct
        // pci_dev` whose commands the caller serialises, with a VF driver
        // attached, and a `u32` for the new id:
        // - `pdev` is valid: we hold a reference on it (type invariant);
        // - `&mut self` serialises the commands sent through this `Vf`;
        // - `id` is a local, valid for writes;
        // - the PF layer finds the PF through `pci_iov_get_pf_drvdata()`,
        //   valid only while a VF driver is attached, which holds while the
        //   binding that made this `Vf` lasts: a `Vf` sends nothing after
        //   `revoke()`, which its driver calls when the binding ends (the
        //   contract of `with_dev_parts`), and `check()` above returned Ok.
        let r = admin_result(unsafe {
            bindings::virtio_pci_admin_obj_create(
                self.raw(),
                bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16,
                op_type as u8,
                &mut id,
            )
        });
        self.cmd_done(t, bindings::VIRTIO_ADMIN_CMD_RESOURCE_OBJ_CREATE, 0, &r);
        r?;
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
        if self.revoked {
            // The binding ended: no command may be sent. The device's
            // objects go with the PF's next reset.
            obj.live = false;
            return;
        }
        if obj.owner != self.pdev {
            // Another VF's object: never send its id here (it stays leaked).
            pr_warn!("device parts object {} destroyed on another VF\n", obj.id);
            return;
        }
        for attempt in 0..2 {
            let t = self.cmd_start();
            // SAFETY: `virtio_pci_admin_obj_destroy()` needs a valid VF `struct
            // pci_dev` whose commands the caller serialises, with a VF driver
            // attached, and an object of that VF:
            // - `pdev` is valid: we hold a reference on it (type invariant);
            // - `&mut self` serialises the commands sent through this `Vf`;
            // - `obj.id` exists on this VF: `obj` is live until this function
            //   consumes it, and `owner` was checked above (type invariant of
            //   `PartsObject`);
            // - the PF layer finds the PF through `pci_iov_get_pf_drvdata()`,
            //   valid only while a VF driver is attached, which holds while the
            //   binding that made this `Vf` lasts: a `Vf` sends nothing after
            //   `revoke()`, which its driver calls when the binding ends (the
            //   contract of `with_dev_parts`), and `revoked` was found false
            //   above.
            let ret = unsafe {
                bindings::virtio_pci_admin_obj_destroy(
                    self.raw(),
                    bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16,
                    obj.id,
                )
            };
            self.cmd_done(
                t,
                bindings::VIRTIO_ADMIN_CMD_RESOURCE_OBJ_DESTROY,
                0,
                &admin_result(ret),
            );
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
        self.check()?;
        self.owns(obj)?;
        let mut size = 0u32;
        let t = self.cmd_start();
        // SAFETY: `virtio_pci_admin_dev_parts_metadata_get()` needs a valid VF
        // `struct pci_dev` whose commands the caller serialises, with a VF
        // driver attached, an object of that VF and a `u32` for the size:
        // - `pdev` is valid: we hold a reference on it (type invariant);
        // - `&mut self` serialises the commands sent through this `Vf`;
        // - `obj.id` exists on this VF: `obj` is live while borrowed, and
        //   `owns` checked its `owner` (type invariant of `PartsObject`);
        // - `size` is a local, valid for writes;
        // - the PF layer finds the PF through `pci_iov_get_pf_drvdata()`, valid
        //   only while a VF driver is attached, which holds while the binding
        //   that made this `Vf` lasts: a `Vf` sends nothing after `revoke()`,
        //   which its driver calls when the binding ends (the contract of
        //   `with_dev_parts`), and `check()` above returned Ok.
        let r = admin_result(unsafe {
            bindings::virtio_pci_admin_dev_parts_metadata_get(
                self.raw(),
                bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16,
                obj.id,
                bindings::VIRTIO_ADMIN_CMD_DEV_PARTS_METADATA_TYPE_SIZE as u8,
                &mut size,
            )
        });
        self.cmd_done(t, bindings::VIRTIO_ADMIN_CMD_DEV_PARTS_METADATA_GET, 4, &r);
        r?;
        Ok(size)
    }

    /// `DEV_PARTS_GET(ALL)` into bytes `0..len` of `buf`; returns the bytes
    /// the device wrote, which is at most `len` (`EIO` otherwise). `E2BIG`,
    /// with nothing sent, when the result list needs more than `max_ents`
    /// scatterlist entries.
    pub fn parts_get(
        &mut self,
        obj: &PartsObject,
        buf: &mut PageBuffer,
        len: u32,
        max_ents: usize,
    ) -> Result<u32> {
        self.check()?;
        self.owns(obj)?;
        let pdev = self.raw();
        let mut got = 0u32;
        let t = self.cmd_start();
        let r = buf.with_sg_mut(len as usize, max_ents, |sg| {
            // SAFETY: `virtio_pci_admin_dev_parts_get()` needs a valid VF
            // `struct pci_dev` whose commands the caller serialises, with a VF
            // driver attached, an object of that VF, an end-marked result list
            // the device may write and a `u32` for the bytes written:
            // - `pdev` is valid: we hold a reference on it (type invariant);
            // - `&mut self` serialises the commands sent through this `Vf`;
            // - `obj.id` exists on this VF: `obj` is live while borrowed, and
            //   `owns` checked its `owner` (type invariant of `PartsObject`);
            // - `sg` is an end-marked list over the first `len` bytes of `buf`,
            //   valid until `with_sg_mut` frees it after this closure; the
            //   device writes those pages while `buf` is borrowed
            //   exclusively, so nothing else reads or writes them meanwhile;
            // - `got` is a local, valid for writes;
            // - the PF layer finds the PF through `pci_iov_get_pf_drvdata()`,
            //   valid only while a VF driver is attached, which holds while the
            //   binding that made this `Vf` lasts: a `Vf` sends nothing after
            //   `revoke()`, which its driver calls when the binding ends (the
            //   contract of `with_dev_parts`), and `check()` above returned Ok.
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
        });
        let r = r.and_then(|r| r);
        self.cmd_done(
            t,
            bindings::VIRTIO_ADMIN_CMD_DEV_PARTS_GET,
            u64::from(got),
            &r,
        );
        r?;
        if got > len {
            return Err(EIO);
        }
        Ok(got)
    }

    /// `DEV_PARTS_SET` into `obj` with bytes `0..len` of `buf`: the
    /// object's header ([`PartsObject::header`]) followed by device parts.
    /// `E2BIG`, with nothing sent, when the data list needs more than
    /// `max_ents` scatterlist entries.
    pub fn parts_set(
        &mut self,
        obj: &PartsObject,
        buf: &PageBuffer,
        len: usize,
        max_ents: usize,
    ) -> Result {
        self.check()?;
        self.owns(obj)?;
        let pdev = self.raw();
        let t = self.cmd_start();
        let r = buf.with_sg(len, max_ents, |sg| {
            // SAFETY: `virtio_pci_admin_dev_parts_set()` needs a valid VF
            // `struct pci_dev` whose commands the caller serialises, with a VF
            // driver attached and an end-marked list of the data, which the
            // device reads:
            // - `pdev` is valid: we hold a reference on it (type invariant);
            // - `&mut self` serialises the commands sent through this `Vf`;
            // - `sg` is an end-marked list over the first `len` bytes of `buf`
            //   (the object's header, then device parts), valid until `with_sg`
            //   frees it after this closure; the device only reads it, which
            //   the shared borrow of `buf` allows;
            // - the PF layer finds the PF through `pci_iov_get_pf_drvdata()`,
            //   valid only while a VF driver is attached, which holds while the
            //   binding that made this `Vf` lasts: a `Vf` sends nothing after
            //   `revoke()`, which its driver calls when the binding ends (the
            //   contract of `with_dev_parts`), and `check()` above returned Ok.
            admin_result(unsafe { bindings::virtio_pci_admin_dev_parts_set(pdev, sg.as_raw()) })
        });
        let r = r.and_then(|r| r);
        self.cmd_done(t, bindings::VIRTIO_ADMIN_CMD_DEV_PARTS_SET, len as u64, &r);
        r
    }
}

/// Why a pre-copy query read the device or not (the `virtio_rs_precopy_query`
/// trace event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecopyDecision {
    /// The device was read again.
    Allowed = 0,
    /// Queued data was not read yet.
    Undrained = 1,
    /// The stream is complete (STOP_COPY).
    Complete = 2,
    /// The session used its reads.
    Cap = 3,
    /// Less than an interval since the last read.
    Rate = 4,
    /// The device's read budget is spent.
    Budget = 5,
}

/// The trace events of a VF (tracefs `events/virtio_vfio_pci_rs/`, defined
/// in `trace.h`). Each costs a call to check that it is enabled.
impl Vf {
    /// Whether any of the module's trace events is enabled.
    pub fn tracing(&self) -> bool {
        trace_on()
    }

    /// Start timing a command, when tracing.
    fn cmd_start(&self) -> Option<Instant<Monotonic>> {
        trace_on().then(Instant::now)
    }

    /// `virtio_rs_admin_cmd`, when [`Self::cmd_start`] started a timer.
    fn cmd_done<R>(&self, t: Option<Instant<Monotonic>>, opcode: u32, bytes: u64, r: &Result<R>) {
        let Some(t) = t else {
            return;
        };
        let ret = match r {
            Ok(_) => 0,
            Err(e) => e.to_errno(),
        };
        // SAFETY: the wrapper only records the event; `pdev` is valid (we
        // hold a reference on it, type invariant), and `pci_name()` reads
        // its name, which lives as long as the device.
        unsafe {
            bindings::virtio_rs_trace_admin_cmd(
                self.raw(),
                opcode as u16,
                bytes,
                t.elapsed().as_nanos(),
                ret,
            )
        };
    }

    /// `virtio_rs_state_request`: a request from `cur` to `new` (uAPI
    /// state values).
    pub fn trace_state_request(&self, cur: u32, new: u32) {
        // SAFETY: as in `cmd_done`: `pdev` is valid (type invariant) and the
        // wrapper only records the event.
        unsafe { bindings::virtio_rs_trace_state_request(self.raw(), cur, new) };
    }

    /// `virtio_rs_arc`: one arc, its duration and result.
    pub fn trace_arc(&self, from: u32, to: u32, ns: i64, r: &Result) {
        let ret = r.as_ref().map_or_else(|e| e.to_errno(), |()| 0);
        // SAFETY: as in `cmd_done`: `pdev` is valid (type invariant) and the
        // wrapper only records the event.
        unsafe { bindings::virtio_rs_trace_arc(self.raw(), from, to, ns, ret) };
    }

    /// `virtio_rs_session`: a saving or resuming session created or ended.
    pub fn trace_session(&self, saving: bool, created: bool) {
        // SAFETY: as in `cmd_done`: `pdev` is valid (type invariant) and the
        // wrapper only records the event.
        unsafe { bindings::virtio_rs_trace_session(self.raw(), saving, created) };
    }

    /// `virtio_rs_record`: a device-data record saved (queued) or loaded.
    pub fn trace_record(&self, saved: bool, size: u64) {
        // SAFETY: as in `cmd_done`: `pdev` is valid (type invariant) and the
        // wrapper only records the event.
        unsafe { bindings::virtio_rs_trace_record(self.raw(), saved, size) };
    }

    /// `virtio_rs_precopy_query`: a pre-copy query's decision and the bytes
    /// it reported.
    pub fn trace_precopy_query(&self, decision: PrecopyDecision, initial: u64, dirty: u64) {
        // SAFETY: as in `cmd_done`: `pdev` is valid (type invariant) and the
        // wrapper only records the event.
        unsafe {
            bindings::virtio_rs_trace_precopy_query(self.raw(), decision as u32, initial, dirty)
        };
    }
}

/// Whether any trace event of the module is enabled.
fn trace_on() -> bool {
    // SAFETY: the wrapper takes no arguments and only reads the events'
    // static keys.
    unsafe { bindings::virtio_rs_trace_on() }
}

impl Drop for Vf {
    fn drop(&mut self) {
        // SAFETY: `pci_dev_put()` needs a reference to give back: we hold
        // one on `pdev` (type invariant, taken in `with_dev_parts`), and
        // `self` is not used after `drop`.
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

// SAFETY: `owner` is a pointer that is only compared, never dereferenced
// (type invariant), and the other fields are plain data; dropping a
// `PartsObject` only bumps an atomic counter and logs, on any thread.
unsafe impl Send for PartsObject {}
// SAFETY: `&PartsObject` exposes only the plain `id` and `op` values and
// the `owner` pointer for comparison (never dereferenced, type
// invariant), and nothing writes them through a shared reference.
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

    /// The `struct virtio_admin_cmd_resource_obj_cmd_hdr` naming this
    /// object, which starts `DEV_PARTS_SET` data ([`OBJ_HDR_LEN`] bytes:
    /// `kernel::transmute::AsBytes::as_bytes` gives them).
    pub fn header(&self) -> bindings::virtio_admin_cmd_resource_obj_cmd_hdr {
        bindings::virtio_admin_cmd_resource_obj_cmd_hdr {
            type_: (bindings::VIRTIO_RESOURCE_OBJ_DEV_PARTS as u16).to_le(),
            reserved: [0; 2],
            id: self.id.to_le(),
        }
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
