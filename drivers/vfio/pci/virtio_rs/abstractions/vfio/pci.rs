// SPDX-License-Identifier: GPL-2.0

//! VFIO PCI core devices, their ops tables and the PCI driver registration.
//!
//! C headers: [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h),
//! [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/pci.h`](srctree/include/linux/pci.h).
//!
//! # Lifecycle
//!
//! 1. The PCI core calls probe ([`Driver::probe`]). The driver allocates a
//!    [`CoreDevice`] with [`CoreDevice::create`], choosing one of its
//!    [`DeviceOps`] tables and initialising its data in place, optionally
//!    enables migration (`NewDevice::set_migration`, in
//!    [`super::migration`]) and returns the still unregistered device.
//! 2. The registration sets the device's driver data to the
//!    `vfio_pci_core_device` (`vfio_pci_core` reads it for runtime PM, AER
//!    and VGA) and calls `vfio_pci_core_register_device()`. From then on
//!    the binding owns the initial reference.
//! 3. Remove calls `vfio_pci_core_unregister_device()`, which waits until
//!    userspace closed every file of the device, then drops the binding's
//!    reference. Other holders (an open migration file, say) keep the
//!    object alive through [`ARef<CoreDevice>`]; when the last reference
//!    goes, the vfio core calls `release`, which drops the driver's data and
//!    then `vfio_pci_core_release_dev()`, and frees the object.

use core::{marker::PhantomData, mem::MaybeUninit, ptr::NonNull};

use kernel::{
    device,
    device_id::{IdTable, RawDeviceId},
    error::{from_result, to_result, VTABLE_DEFAULT_ERROR},
    ffi::{c_int, c_void},
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
    uaccess::{UserPtr, UserSlice},
    ThisModule,
};

use crate::bindings;

/// `PCI_ID_F_VFIO_DRIVER_OVERRIDE` of `include/linux/mod_devicetable.h`.
const PCI_ID_F_VFIO_DRIVER_OVERRIDE: u32 = 1;

/// A PCI device id that matches only through `driver_override`, as
/// `PCI_DRIVER_OVERRIDE_DEVICE_VFIO()` builds it.
///
/// `modpost` turns a table of these into `vfio_pci:v...d...sv*sd*bc*sc*i*`
/// module aliases, which libvirt's managed mode uses to find the variant
/// driver of a device.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct VfioPciDeviceId(bindings::pci_device_id);

impl VfioPciDeviceId {
    /// Any subsystem, any class, `driver_override` only.
    pub const fn new(vendor: u16, device: u16) -> Self {
        // CAST: widening u16 -> u32.
        Self(bindings::pci_device_id {
            vendor: vendor as u32,
            device: device as u32,
            subvendor: !0,
            subdevice: !0,
            class: 0,
            class_mask: 0,
            driver_data: 0,
            override_only: PCI_ID_F_VFIO_DRIVER_OVERRIDE,
        })
    }
}

// SAFETY: `RawDeviceId` requires `Self` to be layout-compatible with
// `RawType`, so that `IdArray::new` may transmute one into the other:
// `VfioPciDeviceId` is `#[repr(transparent)]` over its only field, a
// `bindings::pci_device_id`, which is `RawType`, and adds no state.
unsafe impl RawDeviceId for VfioPciDeviceId {
    type RawType = bindings::pci_device_id;
}

/// Check that our bindgen output and the C compiler agree on the layout of
/// `struct vfio_pci_core_device`, which [`CoreDevice`] embeds: `EINVAL`
/// (and an error in the log) otherwise. Call it before registering.
pub fn check_layout() -> Result {
    let rust_size = core::mem::size_of::<bindings::vfio_pci_core_device>();
    let rust_pdev = core::mem::offset_of!(bindings::vfio_pci_core_device, pdev);
    // SAFETY: the two helpers of `helpers.c` take no arguments and only
    // return `sizeof` and `offsetof` of `struct vfio_pci_core_device`,
    // which the C compiler evaluates: they access no memory and have no
    // precondition.
    let (c_size, c_pdev) = unsafe {
        (
            bindings::virtio_rs_helper_sizeof_vfio_pci_core_device(),
            bindings::virtio_rs_helper_offsetof_vfio_pci_core_device_pdev(),
        )
    };
    if rust_size == c_size && rust_pdev == c_pdev {
        return Ok(());
    }
    pr_err!(
        "layout mismatch: vfio_pci_core_device size {} (C {}), pdev at {} (C {})\n",
        rust_size,
        c_size,
        rust_pdev,
        c_pdev
    );
    Err(EINVAL)
}

/// A PCI device being probed by a VFIO driver. Valid for the duration of
/// the probe call.
pub struct ProbeDevice<'a> {
    pdev: NonNull<bindings::pci_dev>,
    _p: PhantomData<&'a bindings::pci_dev>,
}

impl ProbeDevice<'_> {
    fn raw(&self) -> *mut bindings::pci_dev {
        self.pdev.as_ptr()
    }

    /// PCI vendor id.
    pub fn vendor_id(&self) -> u16 {
        // SAFETY:
        // - `pdev` points to the `struct pci_dev` the PCI core is probing:
        //   a `ProbeDevice` is only built by `Registration::probe` for that
        //   device and only lent (`&ProbeDevice`) to `Driver::probe`, so
        //   the device is valid for as long as `self` is;
        // - `vendor` is set when the device is enumerated and never written
        //   again, so this plain read races with no writer.
        unsafe { (*self.raw()).vendor }
    }

    /// PCI device id.
    pub fn device_id(&self) -> u16 {
        // SAFETY:
        // - `pdev` points to the `struct pci_dev` the PCI core is probing:
        //   a `ProbeDevice` is only built by `Registration::probe` for that
        //   device and only lent (`&ProbeDevice`) to `Driver::probe`, so
        //   the device is valid for as long as `self` is;
        // - `device` is set when the device is enumerated and never written
        //   again, so this plain read races with no writer.
        unsafe { (*self.raw()).device }
    }

    /// Whether the device is an SR-IOV virtual function.
    pub fn is_virtfn(&self) -> bool {
        // SAFETY: `virtio_rs_helper_pci_is_virtfn()` reads `pdev->is_virtfn`
        // and needs a valid `struct pci_dev`: `pdev` is the device the PCI
        // core is probing (a `ProbeDevice` is only built by
        // `Registration::probe` for it and only lent to `Driver::probe`), so
        // it is valid for as long as `self` is. The bit is set when the VF
        // is created and never changes.
        unsafe { bindings::virtio_rs_helper_pci_is_virtfn(self.raw()) }
    }

    /// Whether BAR `bar` (0..=5) exists: its resource has flags
    /// (`pdev->resource[bar].flags != 0`). A VF has no I/O BAR, and a
    /// transitional VF must not have a BAR0 of its own.
    pub fn bar_exists(&self, bar: u8) -> bool {
        if usize::from(bar) >= STD_NUM_BARS {
            return false;
        }
        // SAFETY: `virtio_rs_helper_pci_resource_flags()` reads
        // `pdev->resource[bar].flags`: `pdev` is the device being probed,
        // valid for the whole probe call (a `ProbeDevice` is only lent to
        // `Driver::probe`), `bar` is a standard BAR index (checked above),
        // and the PCI core fixes the resources before it probes drivers.
        unsafe { bindings::virtio_rs_helper_pci_resource_flags(self.raw(), c_int::from(bar)) != 0 }
    }

    /// The raw `struct pci_dev`, for the other abstraction modules.
    pub(crate) fn as_raw(&self) -> *mut bindings::pci_dev {
        self.raw()
    }
}

/// `PCI_STD_NUM_BARS`.
const STD_NUM_BARS: usize = bindings::PCI_STD_NUM_BARS as usize;

impl AsRef<device::Device> for ProbeDevice<'_> {
    fn as_ref(&self) -> &device::Device {
        // SAFETY: `Device::from_raw()` needs a valid `struct device` whose
        // reference count cannot drop to zero while the returned reference
        // exists:
        // - `pdev` is the device the PCI core is probing (a `ProbeDevice` is
        //   only built by `Registration::probe` for it), so its embedded
        //   `dev` is a valid, registered `struct device`;
        // - removing the device (which drops its last reference) first
        //   unbinds it under the device lock that the probe holds, so the
        //   count stays non-zero for the whole probe call, and the returned
        //   reference borrows `self`, which does not outlive that call.
        unsafe { device::Device::from_raw(&raw mut (*self.raw()).dev) }
    }
}

/// A VFIO PCI variant driver.
pub trait Driver: Sized + Send + Sync + 'static {
    /// Per-device data, embedded in the [`CoreDevice`].
    type Data: Send + Sync;

    /// The driver's name: the string userspace writes to `driver_override`.
    const NAME: &'static CStr;

    /// The driver_override-only id table.
    const ID_TABLE: &'static dyn IdTable<VfioPciDeviceId, ()>;

    /// Create the device for `pdev`; the caller registers it.
    fn probe(pdev: &ProbeDevice<'_>) -> Result<NewDevice<Self>>;

    /// The device is being unbound (`pci_driver.remove`), after
    /// `vfio_pci_core_unregister_device()` returned (userspace closed the
    /// device) and before the binding drops its reference. Other references
    /// (an open migration file) may keep the device alive after this:
    /// release here what belongs to the binding, not to the object (and
    /// revoke any `virtio_admin::Vf` the device data holds).
    fn unbind(_dev: &CoreDevice<Self>) {}

    /// The function was reset (`err_handler->reset_done`): any reset
    /// through `pci_dev_restore()`, including `VFIO_DEVICE_RESET` and the
    /// reset done when userspace opens the device. Called with PCI locks
    /// held: it must not sleep on locks that the reset path may hold.
    fn reset_done(_dev: &CoreDevice<Self>) {}
}

/// A `struct vfio_device_ops` for devices of driver `Self::Driver`.
///
/// Every callback left out is the `vfio_pci_core_*` function that plain
/// `vfio-pci` uses, so an empty implementation is a plain vfio-pci device.
#[vtable]
pub trait DeviceOps: Sized + 'static {
    /// The driver these ops belong to.
    type Driver: Driver;

    /// `vfio_device_ops.name`.
    const NAME: &'static CStr;

    /// Userspace opened the device (first open). Called between
    /// `vfio_pci_core_enable()` (which enabled the function, reset it when
    /// it could and mapped its BARs) and `vfio_pci_core_finish_enable()`,
    /// as the vfio-pci variant drivers do; an error disables the device
    /// again and fails the open. The default does nothing more, as
    /// `vfio-pci`.
    fn open_device(_dev: &OpenDevice<'_, Self::Driver>) -> Result {
        Ok(())
    }

    /// `read()` on the device fd (a region access). Without it, and for
    /// whatever it passes on with [`OpenDevice::core_read`], plain vfio-pci
    /// (`vfio_pci_core_read()`) serves the access. Returns the bytes read.
    fn read(_dev: &OpenDevice<'_, Self::Driver>, _io: &RegionIo<'_>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `write()` on the device fd, as [`DeviceOps::read`]
    /// ([`OpenDevice::core_write`] passes an access on).
    fn write(_dev: &OpenDevice<'_, Self::Driver>, _io: &RegionIo<'_>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO`: fill `info` for its index
    /// ([`OpenDevice::core_region_info`] answers as vfio-pci).
    fn region_info(_dev: &OpenDevice<'_, Self::Driver>, _info: &mut RegionInfo<'_>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Userspace closed the device (last close). Called before
    /// `vfio_pci_core_close_device()`. The default does nothing more.
    fn close_device(_dev: &CoreDevice<Self::Driver>) {}
}

/// A VFIO PCI core device with the driver's data `T::Data` behind it.
///
/// # Invariants
///
/// - `core` is a `struct vfio_pci_core_device` allocated by
///   `_vfio_alloc_device()` with the size of `Self`, whose `vdev.ops` is a
///   table built by [`OpsTable`] for driver `T`; the allocation is
///   reference counted by `vdev.device` and freed by the vfio core after
///   `release`.
/// - `data` is initialised once `data_init` is true, and `data_init` is
///   set before the device is shared with anyone but the probe path.
/// - The object holds a reference to its `struct pci_dev` (`core.pdev`)
///   from allocation to `release`, so the PCI device outlives it even when
///   the driver is unbound while other references exist.
#[repr(C)]
pub struct CoreDevice<T: Driver> {
    core: Opaque<bindings::vfio_pci_core_device>,
    data_init: bool,
    data: MaybeUninit<T::Data>,
}

// The vfio core requires `struct vfio_device` at offset 0 of the
// allocation (`vfio_alloc_device()`), and it is the first member of
// `struct vfio_pci_core_device`.
const _: () = assert!(core::mem::offset_of!(bindings::vfio_pci_core_device, vdev) == 0);

// SAFETY: a `CoreDevice<T>` is never handed out by value (`create` makes
// it in the vfio core's allocation), so `Send` matters for
// `ARef<CoreDevice<T>>`: whoever drops the last reference runs `release`
// on its own thread, which drops `T::Data` there (`T::Data: Send`) and
// calls `vfio_pci_core_release_dev()` and `pci_dev_put()`, which any
// thread in process context may call.
unsafe impl<T: Driver> Send for CoreDevice<T> {}
// SAFETY: `&CoreDevice<T>` may be used from several threads at once:
// - `data()` hands out `Pin<&T::Data>`, and `T::Data: Sync`;
// - the reference count (`get_device()`) is atomic, and `pdev()`/`vdev()`
//   read only fields fixed at allocation;
// - the vfio core shares the C object with every thread that uses the
//   device, and `vfio_pci_core` protects its state with its own locks;
//   the functions that rely on the vfio core's `dev_set->lock` instead
//   (`vfio_pci_core_enable()`, `_finish_enable()`, `_disable()`,
//   `_close_device()`) are called only from the `open_device` and
//   `close_device` trampolines of [`OpsTable`], with that lock held, and
//   no method of `CoreDevice` reaches them.
unsafe impl<T: Driver> Sync for CoreDevice<T> {}

// SAFETY: `AlwaysRefCounted` requires that an increment keeps the object
// alive until the matching decrement and that every instance is
// reference counted:
// - `inc_ref`/`dec_ref` use `get_device()`/`put_device()` on
//   `vdev.device` (`vfio_put_device()` is `put_device()`), the count that
//   `vfio_init_device()` initialised, and the vfio core frees the
//   allocation only in the release of that device, when the count
//   reaches zero;
// - every `CoreDevice<T>` lives in an allocation of `_vfio_alloc_device()`
//   (type invariant; `create` is the only constructor and the fields are
//   private), so every instance carries that count.
unsafe impl<T: Driver> AlwaysRefCounted for CoreDevice<T> {
    fn inc_ref(&self) {
        // SAFETY: `get_device()` needs a valid, initialised `struct device`
        // with a non-zero count:
        // - `vdev.device` was initialised by `vfio_init_device()` when the
        //   object was allocated (type invariant);
        // - a `&CoreDevice<T>` only exists while a reference is held (an
        //   `ARef`, the binding's, or the vfio core's during a callback),
        //   so the count is not zero.
        unsafe { bindings::get_device(&raw mut (*self.vdev()).device) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY:
        // - the caller owns a reference (safety requirement of `dec_ref`),
        //   so `obj` points to a live `CoreDevice<T>` and `as_ref()` is
        //   valid until the put below;
        // - `virtio_rs_helper_vfio_put_device()` is `vfio_put_device()`,
        //   which needs a reference to give back: the caller's, which it
        //   gives up here; the object may be freed, and nothing here uses
        //   it afterwards.
        unsafe { bindings::virtio_rs_helper_vfio_put_device(obj.as_ref().vdev()) };
    }
}

impl<T: Driver> CoreDevice<T> {
    /// Allocate the device of `pdev` with ops `O` and initialise its data.
    pub fn create<O: DeviceOps<Driver = T>>(
        pdev: &ProbeDevice<'_>,
        data: impl PinInit<T::Data, Error>,
    ) -> Result<NewDevice<T>> {
        build_assert!(core::mem::align_of::<Self>() <= 8);
        // SAFETY: `_vfio_alloc_device()` needs a size covering the
        // driver's structure, whose first member is the `vfio_device`, a
        // valid device and an ops table that outlives the device:
        // - `size_of::<Self>()` covers `Self`, which starts with `struct
        //   vfio_pci_core_device`, whose first member is `vdev` (the
        //   assertion above);
        // - `pdev` is being probed, so `pdev->dev` is a valid, live device,
        //   and it is a PCI device's, as `ops->init`
        //   (`vfio_pci_core_init_dev()`) expects;
        // - `&OpsTable::<O>::TABLE` is a promoted constant: it has
        //   `'static` storage.
        // On success this returns a zeroed object of that size with `vdev`
        // initialised and one reference, after running `ops->init`.
        let vdev = unsafe {
            bindings::_vfio_alloc_device(
                core::mem::size_of::<Self>(),
                &raw mut (*pdev.as_raw()).dev,
                &OpsTable::<O>::TABLE,
            )
        };
        let vdev = kernel::error::from_err_ptr(vdev)?;
        let this = vdev.cast::<Self>();
        // SAFETY: `pci_dev_get()` needs a valid `struct pci_dev`: `pdev` is
        // the device being probed. The reference it takes is the one the
        // type invariant of `CoreDevice` requires; `release`, which runs
        // once for every successfully allocated device (also when `dev` is
        // dropped on the error path below), gives it back.
        unsafe { bindings::pci_dev_get(pdev.as_raw()) };
        // SAFETY: `&raw mut (*this).data` only computes the address of a
        // field, which must stay in bounds of a live allocation:
        // - `this` points to a live, zeroed allocation of
        //   `size_of::<Self>()` bytes that only this function knows about;
        // - `data` is a field of `Self`, so the projection stays in bounds;
        // - no reference to the object exists yet: the data is initialised
        //   through `this`, the pointer the allocator returned, because
        //   `Self` has no interior mutability outside `core`, so a write
        //   through a pointer derived from `&Self` would be undefined
        //   behaviour.
        let slot = unsafe { (&raw mut (*this).data).cast::<T::Data>() };
        // SAFETY: `raw_try_init()` requires:
        // - `slot` valid for writes and uninitialised: it points into the
        //   live allocation above, aligned for `T::Data` (`kvzalloc()`
        //   aligns to at least 8, `align_of::<Self>() <= 8` and `data` is a
        //   field of `Self`), and holds zeroes, which `MaybeUninit` allows;
        // - the slot not to move until it is dropped: the vfio core never
        //   moves the allocation and frees it in place, after `release`
        //   dropped the data;
        // - the slot not to be touched on error: `data_init` then stays
        //   false, so `release` (run when the reference below is dropped)
        //   skips it.
        let res = unsafe { pin_init::raw_try_init(slot, data) };
        if res.is_ok() {
            // INVARIANT: `data` is initialised before the device is shared.
            // SAFETY: the write goes through `this`, the pointer the
            // allocator returned, to the `data_init` field of the live,
            // 8-aligned allocation of `size_of::<Self>()` bytes; no
            // reference to the object exists yet and only this function
            // knows it, so nothing else reads or writes the field.
            unsafe { (&raw mut (*this).data_init).write(true) };
        }
        // INVARIANT: allocated with the size of `Self` and ops for `T`.
        // SAFETY: `ARef::from_raw()` needs a non-NULL pointer whose
        // reference we own and give up:
        // - `this` is the `vdev` that `_vfio_alloc_device()` returned, which
        //   is never NULL (a device or an error pointer, handled above) and
        //   sits at offset 0 of `Self` (the assertion above), so it is the
        //   `CoreDevice<T>`;
        // - the initial reference of `vdev.device` is ours and passes to
        //   `dev`; `this` is not used after this.
        let dev: ARef<Self> = unsafe { ARef::from_raw(NonNull::new_unchecked(this)) };
        // On error, dropping `dev` releases the allocation.
        res?;
        // INVARIANT: the device was just allocated; nothing registered it.
        Ok(NewDevice { dev })
    }

    /// # Safety
    ///
    /// `vdev` must be the `vfio_device` of a live `CoreDevice<T>`.
    pub(crate) unsafe fn from_vdev<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: the caller guarantees that `vdev` is the `vfio_device` of
        // a `CoreDevice<T>` that is live for `'a`. `vdev` is the first
        // member of `struct vfio_pci_core_device` (the assertion above),
        // which is `core`, the first field of the `#[repr(C)]` `Self`, and
        // `Opaque` is `#[repr(transparent)]`: the cast yields that
        // `CoreDevice<T>`, valid and aligned for `'a`, and a shared
        // reference to it is allowed (the C side only changes `core`, an
        // `Opaque`).
        unsafe { &*vdev.cast::<Self>() }
    }

    fn core(&self) -> *mut bindings::vfio_pci_core_device {
        self.core.get()
    }

    pub(crate) fn vdev(&self) -> *mut bindings::vfio_device {
        // SAFETY: `self.core()` points to the `struct vfio_pci_core_device`
        // of this live object (type invariant), so the projection to its
        // `vdev` member stays in bounds; `&raw mut` only takes the address
        // and reads nothing.
        unsafe { &raw mut (*self.core()).vdev }
    }

    /// The raw `struct pci_dev`, for the other abstraction modules. Valid
    /// while `self` is (type invariant).
    pub(crate) fn pdev(&self) -> *mut bindings::pci_dev {
        // SAFETY: `self.core()` points to the `struct vfio_pci_core_device`
        // of this live object (type invariant), and its `pdev` member was
        // written by `vfio_pci_core_init_dev()` inside
        // `_vfio_alloc_device()`, before any reference to the object
        // existed, and is never written again: this read races with no
        // writer.
        unsafe { (*self.core()).pdev }
    }

    /// The driver's data.
    pub fn data(&self) -> Pin<&T::Data> {
        // SAFETY:
        // - `assume_init_ref()` needs `data` initialised: a
        //   `&CoreDevice<T>` exists outside `create` only for a device whose
        //   data was initialised, as `create` hands the device out (as a
        //   `NewDevice`) only then, and every later reference (from the vfio
        //   or PCI core, or an `ARef`) is to a device that came out of a
        //   `NewDevice` (type invariant: `data_init` is set before the
        //   device is shared);
        // - `Pin::new_unchecked()` needs the data never to move until it is
        //   dropped: it lives in the vfio core's allocation, which is never
        //   moved, and `release` drops it in place before the allocation is
        //   freed.
        unsafe { Pin::new_unchecked(self.data.assume_init_ref()) }
    }
}

impl<T: Driver> AsRef<device::Device> for CoreDevice<T> {
    fn as_ref(&self) -> &device::Device {
        // SAFETY: `Device::from_raw()` needs a valid `struct device` whose
        // count cannot drop to zero while the returned reference exists:
        // `self.pdev()` is the `struct pci_dev` on which this object holds
        // a reference from allocation to `release` (type invariant), so its
        // `dev` is valid with a non-zero count while `self` is, and the
        // returned reference borrows `self`.
        unsafe { device::Device::from_raw(&raw mut (*self.pdev()).dev) }
    }
}

/// A device allocated by probe and not registered yet.
///
/// # Invariants
///
/// `dev` is not registered with the vfio core, and the `NewDevice` lends
/// no reference to it: the probe path that holds the `NewDevice` is its
/// only user until `Registration::probe` registers it.
pub struct NewDevice<T: Driver> {
    dev: ARef<CoreDevice<T>>,
}

impl<T: Driver> NewDevice<T> {
    /// The `struct vfio_device`, for `set_migration` (in
    /// [`super::migration`]). Nothing lends the device itself before it is
    /// registered, so nothing else can use it concurrently (type
    /// invariant).
    pub(super) fn vdev(&self) -> *mut bindings::vfio_device {
        self.dev.vdev()
    }
}

/// A [`CoreDevice`] that userspace opened: what the device-fd callbacks
/// ([`DeviceOps::open_device`], `read`, `write`, `region_info`) get.
///
/// # Invariants
///
/// The device was enabled by `vfio_pci_core_enable()` and is not disabled
/// (`vfio_pci_core_disable()`) while the `OpenDevice` exists: its BAR
/// maps (`barmap[]`), set by the enable, do not change meanwhile.
pub struct OpenDevice<'a, T: Driver>(&'a CoreDevice<T>);

impl<T: Driver> core::ops::Deref for OpenDevice<'_, T> {
    type Target = CoreDevice<T>;

    fn deref(&self) -> &CoreDevice<T> {
        self.0
    }
}

/// Turn a read/write result into the `ssize_t` of the callback.
fn rw_result(r: Result<usize>, count: usize) -> isize {
    match r {
        // A callback never reports more than it was asked for.
        Ok(n) => isize::try_from(n.min(count)).unwrap_or(isize::MAX),
        Err(e) => isize::try_from(e.to_errno()).unwrap_or(-1),
    }
}

/// A `read()` or `write()` of a VFIO region on the device fd.
pub struct RegionIo<'a> {
    buf: UserPtr,
    /// A `write()` (the buffer is userspace's source) or a `read()`.
    write: bool,
    count: usize,
    ppos: *mut bindings::loff_t,
    pos: u64,
    _p: PhantomData<&'a mut bindings::loff_t>,
}

/// `VFIO_PCI_OFFSET_SHIFT`: the region index is in the offset's top bits.
const VFIO_PCI_OFFSET_SHIFT: u32 = bindings::VFIO_PCI_OFFSET_SHIFT;

/// VFIO PCI region indices (`VFIO_PCI_*_REGION_INDEX`).
pub mod region {
    use crate::bindings;

    /// BAR0.
    pub const BAR0: u32 = bindings::VFIO_PCI_BAR0_REGION_INDEX;
    /// PCI config space.
    pub const CONFIG: u32 = bindings::VFIO_PCI_CONFIG_REGION_INDEX;
}

/// Region info flags (`VFIO_REGION_INFO_FLAG_*`).
pub mod region_flags {
    use crate::bindings;

    /// The region can be read.
    pub const READ: u32 = bindings::VFIO_REGION_INFO_FLAG_READ;
    /// The region can be written.
    pub const WRITE: u32 = bindings::VFIO_REGION_INFO_FLAG_WRITE;
}

impl RegionIo<'_> {
    /// The region index (`VFIO_PCI_OFFSET_TO_INDEX()`, an `unsigned int`
    /// in C: the top 24 bits of the position).
    pub fn index(&self) -> u32 {
        u32::try_from(self.pos >> VFIO_PCI_OFFSET_SHIFT).unwrap_or(u32::MAX)
    }

    /// The offset inside the region (`pos & VFIO_PCI_OFFSET_MASK`).
    pub fn offset(&self) -> u64 {
        self.pos & ((1u64 << VFIO_PCI_OFFSET_SHIFT) - 1)
    }

    /// Bytes asked for.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no bytes were asked for.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The user buffer, to copy from or to.
    pub fn user(&self) -> UserSlice {
        UserSlice::new(self.buf, self.count)
    }
}

/// A `VFIO_DEVICE_GET_REGION_INFO` being answered.
pub struct RegionInfo<'a> {
    info: *mut bindings::vfio_region_info,
    caps: *mut bindings::vfio_info_cap,
    _p: PhantomData<&'a mut bindings::vfio_region_info>,
}

impl RegionInfo<'_> {
    /// The region asked about.
    pub fn index(&self) -> u32 {
        // SAFETY: `info` is the vfio core's region info of this ioctl,
        // valid for the whole callback, which `self` does not outlive, and
        // only this callback's thread uses it.
        unsafe { (*self.info).index }
    }

    /// Answer: the region is at `VFIO_PCI_INDEX_TO_OFFSET(index)`, `size`
    /// bytes, with `flags` and no capabilities.
    pub fn set(&mut self, size: u64, flags: u32) {
        let offset = u64::from(self.index()) << VFIO_PCI_OFFSET_SHIFT;
        // SAFETY: as in `index`: `info` is valid for writes for the whole
        // callback, and `&mut self` makes this the only access through it.
        unsafe {
            (*self.info).offset = offset;
            (*self.info).size = size;
            (*self.info).flags = flags;
        }
    }
}

/// A runtime-PM reference on the device, dropped with `pm_runtime_put()`.
pub struct PmRuntimeRef<'a> {
    dev: *mut bindings::device,
    _p: PhantomData<&'a ()>,
}

impl Drop for PmRuntimeRef<'_> {
    fn drop(&mut self) {
        // SAFETY: `pm_runtime_put()` gives back the usage count that
        // `pm_runtime_resume_and_get()` took on the same live device
        // (`OpenDevice::pm_runtime_get`), once; the device outlives the
        // borrow of the `OpenDevice` that `'a` stands for.
        unsafe { bindings::virtio_rs_helper_pm_runtime_put(self.dev) }
    }
}

impl<'a, T: Driver> OpenDevice<'a, T> {
    /// Serve a read as plain vfio-pci does.
    pub fn core_read(&self, io: &RegionIo<'_>) -> Result<usize> {
        if io.write {
            return Err(EINVAL);
        }
        // SAFETY: `vfio_pci_core_read()` needs the `vfio_device` of an opened
        // `vfio_pci_core_device` and the buffer, count and position of a
        // `read()` callback: this device is open (type invariant) and `io`
        // holds exactly what the vfio core passed to the `read` trampoline
        // of this callback (only the trampolines build a `RegionIo`, which
        // cannot leave the callback: it borrows the position, and it is
        // neither `Send` nor `Sync`; `io.write` is false only for `read`),
        // valid for the whole callback.
        let r = unsafe {
            bindings::vfio_pci_core_read(self.vdev(), io.buf.as_mut_ptr().cast(), io.count, io.ppos)
        };
        ssize_result(r)
    }

    /// Serve a write as plain vfio-pci does.
    pub fn core_write(&self, io: &RegionIo<'_>) -> Result<usize> {
        if !io.write {
            return Err(EINVAL);
        }
        // SAFETY: as in `core_read`, for a `write()` callback (`io.write` is
        // true only for the `write` trampoline's `RegionIo`).
        let r = unsafe {
            bindings::vfio_pci_core_write(
                self.vdev(),
                io.buf.as_const_ptr().cast(),
                io.count,
                io.ppos,
            )
        };
        ssize_result(r)
    }

    /// Answer a region info request as plain vfio-pci does.
    pub fn core_region_info(&self, info: &mut RegionInfo<'_>) -> Result {
        // SAFETY: `vfio_pci_ioctl_get_region_info()` needs the `vfio_device`
        // of a `vfio_pci_core_device` and the info and capability chain of a
        // `get_region_info_caps` callback: `info` holds exactly what the vfio
        // core passed to this callback (only the trampoline builds a
        // `RegionInfo`), valid for the whole callback.
        to_result(unsafe {
            bindings::vfio_pci_ioctl_get_region_info(self.vdev(), info.info, info.caps)
        })
    }

    /// Whether the device's interrupts are MSI-X now (`irq_type ==
    /// VFIO_PCI_MSIX_IRQ_INDEX`), read under `igate`, the lock under which
    /// `VFIO_DEVICE_SET_IRQS` changes it.
    pub fn msix_enabled(&self) -> bool {
        // SAFETY: the helper locks `igate` of the `vfio_pci_core_device`
        // of this live, opened device (initialised by
        // `vfio_pci_core_init_dev()`) and reads `irq_type` under it; it
        // holds no other lock, so no lock order is involved, and a
        // device-fd callback may sleep.
        unsafe { bindings::virtio_rs_helper_vfio_pci_msix_enabled(self.0.core()) }
    }

    /// Resume the device for an access (`pm_runtime_resume_and_get()`); the
    /// reference goes when the guard is dropped.
    pub fn pm_runtime_get(&self) -> Result<PmRuntimeRef<'a>> {
        // SAFETY: `pdev()` is the valid PCI device of this live object, so
        // its `dev` is a valid device; `pm_runtime_resume_and_get()` may
        // sleep, which a device-fd callback may.
        let dev = unsafe { &raw mut (*self.0.pdev()).dev };
        // SAFETY: `dev` is valid (above); on success the usage count it
        // takes is given back by the guard's `drop`.
        to_result(unsafe { bindings::virtio_rs_helper_pm_runtime_resume_and_get(dev) })?;
        Ok(PmRuntimeRef {
            dev,
            _p: PhantomData,
        })
    }

    /// Whether `len` bytes at `offset` lie inside memory BAR `bar` and the
    /// BAR is mapped (`vfio_pci_core_enable()` maps every BAR it can): the
    /// map's error, or `EINVAL`, otherwise.
    pub fn bar_contains(&self, bar: u8, offset: u64, len: u64) -> Result {
        self.bar_addr(bar, offset, len).map(|_| ())
    }

    /// The address of `len` bytes at `offset` in mapped memory BAR `bar`.
    fn bar_addr(&self, bar: u8, offset: u64, len: u64) -> Result<*mut c_void> {
        let core = self.0.core();
        let pdev = self.0.pdev();
        let base = {
            // SAFETY: the helper reads `barmap[bar]` of this opened device
            // (`bar` is range-checked there), set by `vfio_pci_core_enable()`
            // and unchanged until `vfio_pci_core_disable()` (type invariant),
            // so the read races with no writer.
            unsafe { bindings::virtio_rs_helper_vfio_pci_barmap(core, u32::from(bar)) }
        };
        let base = kernel::error::from_err_ptr(base)?;
        let size = {
            // SAFETY: `pdev` is the valid PCI device of this live object and
            // `bar` is a standard BAR (it is mapped); its resource is fixed
            // while a driver is bound.
            unsafe { bindings::virtio_rs_helper_pci_resource_len(pdev, c_int::from(bar)) }
        };
        let flags = {
            // SAFETY: `pdev` is the valid PCI device of this live object and
            // `bar` a standard BAR; its resource flags are fixed while a
            // driver is bound.
            unsafe { bindings::virtio_rs_helper_pci_resource_flags(pdev, c_int::from(bar)) }
        };
        // CAST: IORESOURCE_MEM is a flag bit of `unsigned long` flags.
        if flags & (bindings::IORESOURCE_MEM as usize) == 0 {
            return Err(EINVAL);
        }
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if end > size {
            return Err(EINVAL);
        }
        let off = usize::try_from(offset).map_err(|_| EINVAL)?;
        Ok(base.cast::<u8>().wrapping_add(off).cast())
    }

    /// 16-bit MMIO read at `offset` of memory BAR `bar`
    /// (`vfio_pci_core_ioread16()` with the memory-enable test): `EINVAL`
    /// outside the BAR, `EIO` while memory decoding is off.
    pub fn bar_read16(&self, bar: u8, offset: u64) -> Result<u16> {
        let io = self.bar_addr(bar, offset, 2)?;
        let mut val = 0u16;
        // SAFETY: `vfio_pci_core_ioread16()` needs the opened core device and
        // an address inside one of its mapped BARs: `io` is 2 bytes inside
        // mapped memory BAR `bar` (checked by `bar_addr`), which stays mapped
        // while the device is open (type invariant); `val` is a local.
        to_result(unsafe { bindings::vfio_pci_core_ioread16(self.0.core(), true, &mut val, io) })?;
        Ok(val)
    }

    /// 16-bit MMIO write at `offset` of memory BAR `bar`, as
    /// [`Self::bar_read16`].
    pub fn bar_write16(&self, bar: u8, offset: u64, val: u16) -> Result {
        let io = self.bar_addr(bar, offset, 2)?;
        // SAFETY: as in `bar_read16`: `io` is 2 bytes inside mapped memory
        // BAR `bar` of this opened device.
        to_result(unsafe { bindings::vfio_pci_core_iowrite16(self.0.core(), true, val, io) })
    }
}

/// Map an `ssize_t` result.
fn ssize_result(r: isize) -> Result<usize> {
    if r < 0 {
        Err(Error::from_errno(
            i32::try_from(r).unwrap_or(-(bindings::EIO as i32)),
        ))
    } else {
        usize::try_from(r).map_err(|_| EIO)
    }
}

/// The `struct vfio_device_ops` of ops `O`.
pub struct OpsTable<O: DeviceOps>(PhantomData<O>);

impl<O: DeviceOps> OpsTable<O> {
    // `CStrExt::as_char_ptr()` is not `const`; this is the same cast.
    #[allow(clippy::disallowed_methods)]
    const TABLE: bindings::vfio_device_ops = bindings::vfio_device_ops {
        name: O::NAME.as_ptr().cast::<u8>().cast_mut(),
        init: Some(bindings::vfio_pci_core_init_dev),
        release: Some(Self::release),
        #[cfg(CONFIG_IOMMUFD)]
        bind_iommufd: Some(bindings::vfio_iommufd_physical_bind),
        #[cfg(CONFIG_IOMMUFD)]
        unbind_iommufd: Some(bindings::vfio_iommufd_physical_unbind),
        #[cfg(CONFIG_IOMMUFD)]
        attach_ioas: Some(bindings::vfio_iommufd_physical_attach_ioas),
        #[cfg(CONFIG_IOMMUFD)]
        detach_ioas: Some(bindings::vfio_iommufd_physical_detach_ioas),
        open_device: Some(Self::open_device),
        close_device: Some(Self::close_device),
        read: if O::HAS_READ {
            Some(Self::read)
        } else {
            Some(bindings::vfio_pci_core_read)
        },
        write: if O::HAS_WRITE {
            Some(Self::write)
        } else {
            Some(bindings::vfio_pci_core_write)
        },
        ioctl: Some(bindings::vfio_pci_core_ioctl),
        get_region_info_caps: if O::HAS_REGION_INFO {
            Some(Self::region_info)
        } else {
            Some(bindings::vfio_pci_ioctl_get_region_info)
        },
        mmap: Some(bindings::vfio_pci_core_mmap),
        request: Some(bindings::vfio_pci_core_request),
        match_: Some(bindings::vfio_pci_core_match),
        match_token_uuid: Some(bindings::vfio_pci_core_match_token_uuid),
        device_feature: Some(bindings::vfio_pci_core_ioctl_feature),
        // SAFETY: every field of `struct vfio_device_ops` is a raw pointer
        // or an `Option` of a function pointer, for which all-zero bytes
        // are a valid value (NULL, `None`), so the zeroed value is
        // initialised; the vfio core treats NULL callbacks as absent.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };

    /// # Safety
    ///
    /// Called by the vfio core with a device of this table.
    unsafe extern "C" fn release(vdev: *mut bindings::vfio_device) {
        let this = vdev.cast::<CoreDevice<O::Driver>>();
        // SAFETY:
        // - the vfio core calls `release` once, from the release of
        //   `vdev.device` when its count reached zero, for a device whose
        //   ops are this table, i.e. a `CoreDevice<O::Driver>` (only
        //   `create::<O>` installs it): no reference to the object is left,
        //   so the accesses through `this` race with nothing;
        // - `data` is initialised exactly when `data_init` is true (type
        //   invariant), so it is dropped in place only then, and once;
        // - `vfio_pci_core_release_dev()` undoes `vfio_pci_core_init_dev()`
        //   (`ops->init`), which ran for this device, and runs once;
        // - `pdev` was read first, and the reference on it taken in
        //   `create` is still ours; it is dropped last, when nothing uses
        //   the device any more.
        unsafe {
            let pdev = (*this).pdev();
            if (*this).data_init {
                (*this).data.assume_init_drop();
            }
            bindings::vfio_pci_core_release_dev(vdev);
            bindings::pci_dev_put(pdev);
        }
    }

    /// # Safety
    ///
    /// Called by the vfio core with a device of this table.
    unsafe extern "C" fn open_device(vdev: *mut bindings::vfio_device) -> c_int {
        // SAFETY: `from_vdev()` needs the `vfio_device` of a
        // `CoreDevice<O::Driver>` live for the returned lifetime:
        // - the vfio core calls `open_device` only for devices whose ops are
        //   this table, which only `CoreDevice::<O::Driver>::create::<O>`
        //   installs;
        // - the device is registered and being opened, so the binding's
        //   reference (dropped only after `vfio_pci_core_unregister_device()`
        //   waited for every open file) keeps it alive for the whole call,
        //   which `dev` does not outlive.
        let dev = unsafe { CoreDevice::<O::Driver>::from_vdev(vdev) };
        let core = dev.core();
        from_result(|| {
            // SAFETY: `vfio_pci_core_enable()` needs the registered core
            // device being opened, with the vfio core's `dev_set->lock`
            // held: this is the vfio core's `open_device` callback of this
            // device, which the core calls on the first open of a
            // registered device with that lock held; `core` is the device's
            // `vfio_pci_core_device`.
            to_result(unsafe { bindings::vfio_pci_core_enable(core) })?;
            // INVARIANT: `vfio_pci_core_enable()` succeeded just above and
            // `vfio_pci_core_disable()` runs only after this callback (on
            // its error path or in `close_device`).
            if let Err(e) = O::open_device(&OpenDevice(dev)) {
                // SAFETY: `vfio_pci_core_disable()` undoes a successful
                // `vfio_pci_core_enable()` with the same lock held: the
                // enable above succeeded, in this callback.
                unsafe { bindings::vfio_pci_core_disable(core) };
                return Err(e);
            }
            // SAFETY: `vfio_pci_core_finish_enable()` completes the enable
            // above, in the same `open_device` callback, with the lock
            // still held.
            unsafe { bindings::vfio_pci_core_finish_enable(core) };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the vfio core with a device of this table, opened, with
    /// the user buffer and file position of a `read()` on its fd.
    unsafe extern "C" fn read(
        vdev: *mut bindings::vfio_device,
        buf: *mut kernel::ffi::c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: `from_vdev()` needs the `vfio_device` of a
        // `CoreDevice<O::Driver>` live for the returned lifetime: the vfio
        // core calls `read` only for devices whose ops are this table
        // (installed only by `create::<O>`), from `vfio_device_fops_read()`
        // on a device file whose `access_granted` is set, which happens only
        // after `vfio_df_open()` succeeded; the file cannot be released
        // during its own syscall, so the device stays registered (the
        // binding's reference alive) and open for the whole call.
        let dev = unsafe { CoreDevice::<O::Driver>::from_vdev(vdev) };
        // SAFETY: `ppos` is the vfio core's position argument, valid for
        // reads and writes for the whole call.
        let pos = unsafe { *ppos };
        let io = RegionIo {
            buf: UserPtr::from_ptr(buf.cast()),
            write: false,
            count,
            ppos,
            pos: u64::try_from(pos).unwrap_or(u64::MAX),
            _p: PhantomData,
        };
        // INVARIANT: a `read()` reaches a device only through a file of an
        // opened device: `open_device` completed (the BARs are mapped) and
        // `close_device` runs only after the last file is gone.
        let r = O::read(&OpenDevice(dev), &io);
        rw_result(r, count)
    }

    /// # Safety
    ///
    /// Called by the vfio core with a device of this table, opened, with
    /// the user buffer and file position of a `write()` on its fd.
    unsafe extern "C" fn write(
        vdev: *mut bindings::vfio_device,
        buf: *const kernel::ffi::c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: as in `read`: the vfio core calls `write` only for a
        // device of this table, from `vfio_device_fops_write()` on a file
        // with `access_granted` set (the device was opened), which keeps it
        // registered and open for the whole call.
        let dev = unsafe { CoreDevice::<O::Driver>::from_vdev(vdev) };
        // SAFETY: `ppos` is the vfio core's position argument, valid for
        // reads and writes for the whole call.
        let pos = unsafe { *ppos };
        let io = RegionIo {
            buf: UserPtr::from_ptr(buf.cast_mut().cast()),
            write: true,
            count,
            ppos,
            pos: u64::try_from(pos).unwrap_or(u64::MAX),
            _p: PhantomData,
        };
        // INVARIANT: as in `read`, the device is open for the whole call.
        let r = O::write(&OpenDevice(dev), &io);
        rw_result(r, count)
    }

    /// # Safety
    ///
    /// Called by the vfio core with a device of this table, opened, and the
    /// region info and capability chain of a `VFIO_DEVICE_GET_REGION_INFO`.
    unsafe extern "C" fn region_info(
        vdev: *mut bindings::vfio_device,
        info: *mut bindings::vfio_region_info,
        caps: *mut bindings::vfio_info_cap,
    ) -> c_int {
        // SAFETY: as in `read`: the vfio core calls this only for a device
        // of this table, from `VFIO_DEVICE_GET_REGION_INFO` in
        // `vfio_device_fops_unl_ioctl()`, which refuses every ioctl but
        // `BIND_IOMMUFD` until `access_granted` is set (the device was
        // opened); the file keeps it registered and open for the call.
        let dev = unsafe { CoreDevice::<O::Driver>::from_vdev(vdev) };
        let mut info = RegionInfo {
            info,
            caps,
            _p: PhantomData,
        };
        // INVARIANT: as in `read`, the device is open for the whole call.
        from_result(|| O::region_info(&OpenDevice(dev), &mut info).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by the vfio core with a device of this table.
    unsafe extern "C" fn close_device(vdev: *mut bindings::vfio_device) {
        // SAFETY: `from_vdev()` needs the `vfio_device` of a
        // `CoreDevice<O::Driver>` live for the returned lifetime:
        // - the vfio core calls `close_device` only for devices whose ops
        //   are this table, which only `CoreDevice::<O::Driver>::create::<O>`
        //   installs;
        // - it calls it on the last close of an opened, registered device,
        //   before `vfio_pci_core_unregister_device()` can return, so the
        //   binding's reference keeps it alive for the whole call, which
        //   `dev` does not outlive.
        let dev = unsafe { CoreDevice::<O::Driver>::from_vdev(vdev) };
        O::close_device(dev);
        // SAFETY: `vfio_pci_core_close_device()` needs the `vfio_device` of
        // an opened `vfio_pci_core_device` on its last close, with the vfio
        // core's `dev_set->lock` held: this is the vfio core's
        // `close_device` callback of this device, called on the last close
        // of a device its `open_device` opened, with that lock held.
        unsafe { bindings::vfio_pci_core_close_device(vdev) }
    }
}

/// The `struct pci_error_handlers` of driver `T`.
struct ErrHandlers<T: Driver>(PhantomData<T>);

impl<T: Driver> ErrHandlers<T> {
    const TABLE: bindings::pci_error_handlers = bindings::pci_error_handlers {
        error_detected: Some(bindings::vfio_pci_core_aer_err_detected),
        reset_done: Some(Self::reset_done),
        // SAFETY: every field of `struct pci_error_handlers` is an `Option`
        // of a function pointer, for which all-zero bytes are a valid value
        // (`None`), so the zeroed value is initialised; the PCI core treats
        // NULL handlers as absent.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };

    /// # Safety
    ///
    /// Called by the PCI core for a device bound to driver `T`.
    unsafe extern "C" fn reset_done(pdev: *mut bindings::pci_dev) {
        // SAFETY: `dev_get_drvdata()` reads the driver data of a valid
        // `struct device`: the PCI core calls `reset_done` with a valid
        // `pdev`, bound to our driver, under its device lock.
        let core = unsafe { bindings::dev_get_drvdata(&raw mut (*pdev).dev) };
        if core.is_null() {
            return;
        }
        // SAFETY: a `&CoreDevice<T>` needs a live `CoreDevice<T>` whose data
        // is initialised, for as long as the reference is used:
        // - the driver data of a device bound to our driver is NULL
        //   (checked above) or was set by `probe` to the binding's
        //   reference to a `CoreDevice<T>` that came out of a `NewDevice`,
        //   so its data is initialised (`probe` clears it again if
        //   registration fails);
        // - the PCI core calls `reset_done` under the device lock, which
        //   `probe` and `remove` also hold, so the binding's reference is
        //   not dropped during this call, which the reference does not
        //   outlive.
        T::reset_done(unsafe { &*core.cast::<CoreDevice<T>>() })
    }
}

/// The registration of driver `T` with the PCI core.
///
/// # Invariants
///
/// `drv` is registered with the PCI core from a successful `new()` until
/// drop; it is pinned because the PCI core keeps pointers to it, and
/// writable because `vfio_pci_core` installs its PM ops in it.
#[pin_data(PinnedDrop)]
pub struct Registration<T: Driver> {
    #[pin]
    drv: Opaque<bindings::pci_driver>,
    _p: PhantomData<T>,
}

// SAFETY: a `Registration<T>` owns the registered `struct pci_driver` and
// nothing else (`T` is only a marker); the PCI core uses the structure
// from its own threads whichever thread registered it, and dropping the
// registration on another thread calls `pci_unregister_driver()`, which
// any thread in process context may call.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: `&Registration<T>` gives access to nothing: Rust code touches
// `drv` only in `new` and `drop`, which have exclusive access, and the PCI
// core serialises its own use of the registered driver.
unsafe impl<T: Driver> Sync for Registration<T> {}

impl<T: Driver> Registration<T> {
    /// Register driver `T` with the PCI core on behalf of `module`.
    pub fn new(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            drv <- Opaque::try_ffi_init(|drv: *mut bindings::pci_driver| {
                // SAFETY:
                // - `drv` points to the storage of this registration's
                //   `Opaque`, valid for writes and pinned; the whole
                //   structure is written first, zeroed, which is a valid
                //   value (every field is a raw pointer, an integer, an
                //   `Option` of a function pointer or a structure of
                //   those), so the field writes that follow are to an
                //   initialised value;
                // - `__pci_register_driver()` needs a driver structure that
                //   stays valid and in place until `pci_unregister_driver()`:
                //   it is pinned, and `drop` unregisters it (type
                //   invariant); if registration fails, nothing is
                //   registered and the initialiser fails, so `drop` never
                //   runs;
                // - the name, the id table (zero-terminated, as `IdTable`
                //   guarantees) and the error handlers (a promoted
                //   constant) are `'static`, and `module` is this module,
                //   which outlives the registration.
                unsafe {
                    drv.write(core::mem::zeroed());
                    (*drv).name = T::NAME.as_char_ptr();
                    (*drv).id_table = T::ID_TABLE.as_ptr();
                    (*drv).probe = Some(Self::probe);
                    (*drv).remove = Some(Self::remove);
                    (*drv).err_handler = &ErrHandlers::<T>::TABLE;
                    (*drv).driver_managed_dma = true;
                    to_result(bindings::__pci_register_driver(
                        drv,
                        module.as_ptr(),
                        T::NAME.as_char_ptr(),
                    ))
                }
            }),
            _p: PhantomData,
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core for a device matching our driver.
    unsafe extern "C" fn probe(
        pdev: *mut bindings::pci_dev,
        _id: *const bindings::pci_device_id,
    ) -> c_int {
        from_result(|| {
            let probe = ProbeDevice {
                // SAFETY: the PCI core calls `probe` with a valid, non-NULL
                // `struct pci_dev`, under its device lock, valid for the
                // whole call; `probe` lives in this call only and is lent
                // to `T::probe` by reference.
                pdev: unsafe { NonNull::new_unchecked(pdev) },
                _p: PhantomData,
            };
            let NewDevice { dev } = T::probe(&probe)?;
            let dev_ptr = ARef::into_raw(dev);
            // SAFETY:
            // - `pdev` is valid (the PCI core is probing it) and its device
            //   lock is held, so setting its driver data races with no other
            //   user of it;
            // - `dev_ptr` is a reference we own (from `ARef::into_raw`) to a
            //   live `CoreDevice<T>`, so `as_ref()` is valid; the binding
            //   owns that reference until `remove`;
            // - `vfio_pci_core_register_device()` needs a core device
            //   allocated with `vfio_pci_core_init_dev()` as `ops->init`
            //   (every `OpsTable` has it), not registered yet (type invariant
            //   of `NewDevice`, which `T::probe` gave up by value), and
            //   whose PCI device has it as driver data, which the first
            //   call sets (for a device of another PCI device, it checks
            //   that, warns and fails, registering nothing).
            let ret = unsafe {
                bindings::dev_set_drvdata(&raw mut (*pdev).dev, dev_ptr.as_ptr().cast::<c_void>());
                bindings::vfio_pci_core_register_device(dev_ptr.as_ref().core())
            };
            if ret != 0 {
                // SAFETY:
                // - `pdev` is valid and its device lock is held, so clearing
                //   the driver data that pointed to the device races with no
                //   other user of it;
                // - registration failed, so the vfio core did not take the
                //   reference `dev_ptr` and nothing else can reach it now:
                //   `ARef::from_raw()` takes back the reference we own, and
                //   dropping it releases the device if it was the last one.
                unsafe {
                    bindings::dev_set_drvdata(&raw mut (*pdev).dev, core::ptr::null_mut());
                    drop(ARef::from_raw(dev_ptr));
                }
                return Err(Error::from_errno(ret));
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core for a device we probed successfully.
    unsafe extern "C" fn remove(pdev: *mut bindings::pci_dev) {
        // SAFETY: `dev_get_drvdata()` reads the driver data of a valid
        // `struct device`: the PCI core calls `remove` with a valid `pdev`
        // that we probed successfully, under its device lock.
        let core = unsafe { bindings::dev_get_drvdata(&raw mut (*pdev).dev) };
        let Some(core) = NonNull::new(core.cast::<CoreDevice<T>>()) else {
            return;
        };
        // SAFETY: `ARef::from_raw()` needs a reference we own and give up:
        // the driver data of a device we probed successfully is the
        // binding's reference to its `CoreDevice<T>` (set in `probe`), and
        // the binding gives it to `dev` here, as its last use of it (the
        // driver core clears the driver data after `remove`, still under
        // the device lock, so `reset_done` cannot read it in between).
        let dev = unsafe { ARef::from_raw(core) };
        // SAFETY: `vfio_pci_core_unregister_device()` needs a core device
        // registered with `vfio_pci_core_register_device()`: `probe`
        // succeeded for this device, so `dev` was registered, and only this
        // call, once per binding, unregisters it; `dev` keeps it alive
        // across the call, which waits until userspace closed every file of
        // the device.
        unsafe { bindings::vfio_pci_core_unregister_device(dev.core()) };
        T::unbind(&dev);
        drop(dev);
    }
}

#[pinned_drop]
impl<T: Driver> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `pci_unregister_driver()` needs a driver registered with
        // `__pci_register_driver()` and still in place: a `Registration`
        // exists only if `new` registered `drv` (type invariant), it is
        // pinned, and this is the only place that unregisters it, once.
        unsafe { bindings::pci_unregister_driver(self.drv.get()) };
    }
}
