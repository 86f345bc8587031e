// SPDX-License-Identifier: GPL-2.0

//! VFIO migration callbacks (`struct vfio_migration_ops`) from a trait.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h).
//!
//! # kCFI
//!
//! The C callbacks take `enum vfio_device_mig_state`. With kCFI the hash
//! checked at an indirect call encodes the enum's name, which Rust code in a
//! module cannot reproduce (that needs the unstable `#[cfi_encoding]`). The
//! table we install is therefore a `struct virtio_rs_mig_ops` (see
//! `include/virtio_rs_bindings.h`): its `ops` member holds C trampolines
//! with the exact C signatures, and they call our callbacks, whose
//! signatures have only integers and pointers to named structs, through the
//! other members. The vfio core sees `&table.ops` as `vdev->mig_ops`.

use core::marker::PhantomData;

use kernel::{
    error::{from_result, to_result},
    ffi::{c_int, c_ulong},
    fs::File,
    prelude::*,
    sync::aref::ARef,
    uaccess::{UserPtr, UserSlice},
};

use super::pci::{CoreDevice, Driver, NewDevice};
use crate::bindings;

pub use crate::proto::arcs::MigState;

/// `VFIO_MIGRATION_STOP_COPY`.
pub const MIGRATION_STOP_COPY: u32 = bindings::VFIO_MIGRATION_STOP_COPY;
/// `VFIO_MIGRATION_P2P`.
pub const MIGRATION_P2P: u32 = bindings::VFIO_MIGRATION_P2P;
/// `VFIO_MIGRATION_PRE_COPY`.
pub const MIGRATION_PRE_COPY: u32 = bindings::VFIO_MIGRATION_PRE_COPY;

/// `VFIO_MIG_GET_PRECOPY_INFO`: `_IO(VFIO_TYPE, VFIO_BASE + 21)`, a
/// function-like macro bindgen does not translate.
pub const MIG_GET_PRECOPY_INFO: u32 = kernel::ioctl::_IO(b';' as u32, 100 + 21);

/// The migration callbacks of a device of driver `Self::Driver`.
///
/// All three are mandatory for the vfio core. They run in process context
/// from the `VFIO_DEVICE_FEATURE` ioctl, never concurrently with
/// `release`; the driver serialises them itself.
pub trait MigrationOps: Sized + 'static {
    /// The driver these callbacks belong to.
    type Driver: Driver;

    /// Move the device to `new` (`migration_set_state`). The vfio core
    /// already checked that the arc is valid for the advertised flags only
    /// when the driver asks [`CoreDevice::mig_next_state`]; a migration data
    /// file is returned for arcs that start a data transfer.
    fn set_state(dev: &CoreDevice<Self::Driver>, new: MigState) -> Result<Option<ARef<File>>>;

    /// The current state (`migration_get_state`).
    fn get_state(dev: &CoreDevice<Self::Driver>) -> Result<MigState>;

    /// Estimated bytes of the STOP_COPY data (`migration_get_data_size`).
    fn get_data_size(dev: &CoreDevice<Self::Driver>) -> Result<usize>;
}

/// The migration table of callbacks `M`.
pub(crate) struct MigTable<M: MigrationOps>(PhantomData<M>);

impl<M: MigrationOps> MigTable<M> {
    pub(crate) const TABLE: bindings::virtio_rs_mig_ops = bindings::virtio_rs_mig_ops {
        ops: bindings::vfio_migration_ops {
            migration_set_state: Some(bindings::virtio_rs_mig_set_state),
            migration_get_state: Some(bindings::virtio_rs_mig_get_state),
            migration_get_data_size: Some(bindings::virtio_rs_mig_get_data_size),
        },
        set_state: Some(Self::set_state),
        get_state: Some(Self::get_state),
        get_data_size: Some(Self::get_data_size),
    };

    /// # Safety
    ///
    /// Called by our C trampoline for a device whose `mig_ops` is this
    /// table; `filep` is valid for writes.
    unsafe extern "C" fn set_state(
        vdev: *mut bindings::vfio_device,
        new: u32,
        filep: *mut *mut bindings::file,
    ) -> c_int {
        // SAFETY: `from_vdev()` needs the `vfio_device` of a
        // `CoreDevice<M::Driver>` live for the returned lifetime:
        // - our C trampoline calls this only for a device whose `mig_ops`
        //   is this table's `ops`, which only `set_migration::<M>` installs,
        //   on a `NewDevice<M::Driver>`, i.e. a `CoreDevice<M::Driver>`;
        // - the vfio core calls the migration callbacks from the
        //   `VFIO_DEVICE_FEATURE` ioctl of an open device file, so the
        //   device is registered and the binding's reference keeps it alive
        //   for the whole call, which `dev` does not outlive.
        let dev = unsafe { CoreDevice::<M::Driver>::from_vdev(vdev) };
        from_result(|| {
            let new = MigState::from_u32(new).ok_or(EINVAL)?;
            let file = M::set_state(dev, new)?;
            let raw = file.map_or(core::ptr::null_mut(), |f| ARef::into_raw(f).as_ptr());
            // SAFETY: `write()` needs `filep` valid for writes and aligned:
            // our C trampoline passes the address of its local `struct file
            // *` (safety requirement of this function). The vfio core then
            // installs the file in a new fd or `fput()`s it, taking over the
            // reference that `ARef::into_raw()` gave up.
            unsafe { filep.write(raw.cast()) };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// As for [`Self::set_state`]; `state` is valid for writes.
    unsafe extern "C" fn get_state(vdev: *mut bindings::vfio_device, state: *mut u32) -> c_int {
        // SAFETY: `from_vdev()` needs the `vfio_device` of a
        // `CoreDevice<M::Driver>` live for the returned lifetime:
        // - our C trampoline calls this only for a device whose `mig_ops`
        //   is this table's `ops`, which only `set_migration::<M>` installs,
        //   on a `NewDevice<M::Driver>`, i.e. a `CoreDevice<M::Driver>`;
        // - the vfio core calls the migration callbacks from the
        //   `VFIO_DEVICE_FEATURE` ioctl of an open device file, so the
        //   device is registered and the binding's reference keeps it alive
        //   for the whole call, which `dev` does not outlive.
        let dev = unsafe { CoreDevice::<M::Driver>::from_vdev(vdev) };
        from_result(|| {
            let s = M::get_state(dev)?;
            // SAFETY: `write()` needs `state` valid for writes and aligned:
            // our C trampoline passes the address of its local `u32` (safety
            // requirement of this function).
            unsafe { state.write(s.as_u32()) };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// As for [`Self::set_state`]; `len` is valid for writes.
    unsafe extern "C" fn get_data_size(
        vdev: *mut bindings::vfio_device,
        len: *mut c_ulong,
    ) -> c_int {
        // SAFETY: `from_vdev()` needs the `vfio_device` of a
        // `CoreDevice<M::Driver>` live for the returned lifetime:
        // - our C trampoline calls this only for a device whose `mig_ops`
        //   is this table's `ops`, which only `set_migration::<M>` installs,
        //   on a `NewDevice<M::Driver>`, i.e. a `CoreDevice<M::Driver>`;
        // - the vfio core calls the migration callbacks from the
        //   `VFIO_DEVICE_FEATURE` ioctl of an open device file, so the
        //   device is registered and the binding's reference keeps it alive
        //   for the whole call, which `dev` does not outlive.
        let dev = unsafe { CoreDevice::<M::Driver>::from_vdev(vdev) };
        from_result(|| {
            let n = M::get_data_size(dev)?;
            // SAFETY: `write()` needs `len` valid for writes and aligned:
            // our C trampoline passes on the vfio core's pointer to its local
            // `unsigned long` (safety requirement of this function).
            unsafe { len.write(n) };
            Ok(0)
        })
    }
}

impl<T: Driver> NewDevice<T> {
    /// Enable migration with callbacks `M` and uAPI `flags`
    /// (`VFIO_MIGRATION_*`, STOP_COPY at least). Before registration, as
    /// `include/linux/vfio.h` requires: a [`NewDevice`] is not registered.
    pub fn set_migration<M: MigrationOps<Driver = T>>(&mut self, flags: u32) {
        let table: &'static bindings::virtio_rs_mig_ops = &MigTable::<M>::TABLE;
        let vdev = self.vdev();
        // SAFETY:
        // - `vdev` is the `struct vfio_device` of the device, live while
        //   `self` holds its reference, so both fields are valid for
        //   writes;
        // - the device is not registered yet and nothing but this
        //   `NewDevice` can reach it (type invariant of `NewDevice`: it
        //   lends no reference to the device), so the vfio core and every
        //   other thread read neither field yet, as `include/linux/vfio.h`
        //   requires, and `&mut self` excludes another call here;
        // - the table is `'static` and `ops` is its member, as the C
        //   trampolines' `container_of()` expects.
        unsafe {
            (*vdev).migration_flags = flags;
            (*vdev).mig_ops = &table.ops;
        }
    }
}

/// `struct vfio_precopy_info` as read from userspace by
/// [`CoreDevice::precopy_info_request`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PrecopyInfo {
    /// `argsz` as userspace passed it.
    pub argsz: u32,
    /// `flags`: userspace's value without the v2 opt-in (kept for
    /// bug-compatibility), 0 with it.
    pub flags: u32,
    /// Initial data still to be read.
    pub initial_bytes: u64,
    /// Other data still to be read.
    pub dirty_bytes: u64,
}

impl<T: Driver> CoreDevice<T> {
    /// The next state on the way from `cur` to `new`
    /// (`vfio_mig_get_next_state()`): `EINVAL` when `new` is not
    /// reachable with the device's migration flags.
    pub fn mig_next_state(&self, cur: MigState, new: MigState) -> Result<MigState> {
        let mut next = bindings::vfio_device_mig_state(0);
        // SAFETY: `vfio_mig_get_next_state()` needs a valid `struct
        // vfio_device` and a valid pointer for the next state:
        // - `self.vdev()` is the `vfio_device` of this live object (type
        //   invariant); the function reads only its `migration_flags`,
        //   which `NewDevice::set_migration` writes before registration;
        // - `next` is a local, valid for writes;
        // - `cur` and `new` are states of the uAPI enum (`MigState`), and
        //   the function checks them against its tables anyway.
        // A direct call: no kCFI check applies.
        to_result(unsafe {
            bindings::vfio_mig_get_next_state(
                self.vdev(),
                bindings::vfio_device_mig_state(cur.as_u32()),
                bindings::vfio_device_mig_state(new.as_u32()),
                &mut next,
            )
        })?;
        MigState::from_u32(next.0).ok_or(EINVAL)
    }

    /// Validate a `VFIO_MIG_GET_PRECOPY_INFO` ioctl on one of this device's
    /// migration files and read its argument (`vfio_check_precopy_ioctl()`):
    /// `ENOTTY` for another command, `EFAULT`, `EINVAL` for a short `argsz`.
    pub fn precopy_info_request(&self, cmd: u32, arg: usize) -> Result<PrecopyInfo> {
        let mut info = bindings::vfio_precopy_info::default();
        // SAFETY: `vfio_check_precopy_ioctl()` (through our helper) needs a
        // valid `struct vfio_device` and a valid `struct vfio_precopy_info`
        // to fill:
        // - `self.vdev()` is the `vfio_device` of this live object (type
        //   invariant); the helper reads only its `precopy_info_v2` byte;
        // - `info` is a local, valid for writes;
        // - `arg` is used only as a user address, through
        //   `copy_from_user()`, which checks it and fails with `EFAULT`.
        to_result(unsafe {
            bindings::virtio_rs_helper_vfio_check_precopy_ioctl(self.vdev(), cmd, arg, &mut info)
        })?;
        Ok(PrecopyInfo {
            argsz: info.argsz,
            flags: info.flags,
            initial_bytes: info.initial_bytes,
            dirty_bytes: info.dirty_bytes,
        })
    }
}

impl PrecopyInfo {
    /// Copy the reply to the ioctl argument at `arg`: the whole
    /// `struct vfio_precopy_info`, as the C drivers do.
    pub fn reply(&self, arg: usize) -> Result {
        let out = bindings::vfio_precopy_info {
            argsz: self.argsz,
            flags: self.flags,
            initial_bytes: self.initial_bytes,
            dirty_bytes: self.dirty_bytes,
        };
        UserSlice::new(
            UserPtr::from_addr(arg),
            core::mem::size_of::<bindings::vfio_precopy_info>(),
        )
        .writer()
        .write(&out)
    }
}
