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
    error::{from_result, to_result},
    ffi::{c_int, c_void},
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
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

// SAFETY: `VfioPciDeviceId` is a `#[repr(transparent)]` wrapper of
// `struct pci_device_id` and adds no state.
unsafe impl RawDeviceId for VfioPciDeviceId {
    type RawType = bindings::pci_device_id;
}

/// Check that our bindgen output and the C compiler agree on the layout of
/// `struct vfio_pci_core_device`, which [`CoreDevice`] embeds: `EINVAL`
/// (and an error in the log) otherwise. Call it before registering.
pub fn check_layout() -> Result {
    let rust_size = core::mem::size_of::<bindings::vfio_pci_core_device>();
    let rust_pdev = core::mem::offset_of!(bindings::vfio_pci_core_device, pdev);
    // SAFETY: both helpers take no arguments and only evaluate `sizeof` and
    // `offsetof` on the C type: there is nothing they could access.
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
        // SAFETY: `pdev` is valid during probe (type invariant of the
        // borrow); `vendor` is set at enumeration and never changes.
        unsafe { (*self.raw()).vendor }
    }

    /// PCI device id.
    pub fn device_id(&self) -> u16 {
        // SAFETY: as for `vendor`.
        unsafe { (*self.raw()).device }
    }

    /// Whether the device is an SR-IOV virtual function.
    pub fn is_virtfn(&self) -> bool {
        // SAFETY: `pdev` is valid during probe.
        unsafe { bindings::virtio_rs_helper_pci_is_virtfn(self.raw()) }
    }

    /// The raw `struct pci_dev`, for the other abstraction modules.
    pub(crate) fn as_raw(&self) -> *mut bindings::pci_dev {
        self.raw()
    }
}

impl AsRef<device::Device> for ProbeDevice<'_> {
    fn as_ref(&self) -> &device::Device {
        // SAFETY: `pdev` is valid during probe, so is its embedded
        // `struct device`, and the borrow does not outlive the probe.
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
    /// release here what belongs to the binding, not to the object.
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

    /// Userspace opened the device (first open). Default: enable the
    /// device in `vfio_pci_core` and finish, like `vfio-pci`.
    fn open_device(dev: &CoreDevice<Self::Driver>) -> Result {
        dev.enable()?;
        dev.finish_enable();
        Ok(())
    }

    /// Userspace closed the device (last close). The default is
    /// `vfio_pci_core_close_device()`; an override must call
    /// [`CoreDevice::close_core`] last.
    fn close_device(dev: &CoreDevice<Self::Driver>) {
        dev.close_core();
    }
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

// SAFETY: the C object is designed to be used from any thread (the vfio
// core serialises what needs it), and `T::Data: Send + Sync`.
unsafe impl<T: Driver> Send for CoreDevice<T> {}
// SAFETY: as above.
unsafe impl<T: Driver> Sync for CoreDevice<T> {}

// SAFETY: `get_device()`/`put_device()` on `vdev.device` manage the
// allocation's lifetime (`vfio_put_device()` is `put_device()`), and the
// object is freed only when the count reaches zero.
unsafe impl<T: Driver> AlwaysRefCounted for CoreDevice<T> {
    fn inc_ref(&self) {
        // SAFETY: `self` is a live reference, so the count is non-zero.
        unsafe { bindings::get_device(&raw mut (*self.vdev()).device) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference, which it gives up here.
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
        // SAFETY: `pdev` is being probed, so `pdev->dev` is valid; the ops
        // table is 'static; the size covers `Self`. On success this returns
        // a zeroed object of that size with `vdev` initialised and one
        // reference, after running `ops->init` (vfio_pci_core_init_dev).
        let vdev = unsafe {
            bindings::_vfio_alloc_device(
                core::mem::size_of::<Self>(),
                &raw mut (*pdev.as_raw()).dev,
                &OpsTable::<O>::TABLE,
            )
        };
        let vdev = kernel::error::from_err_ptr(vdev)?;
        let this = vdev.cast::<Self>();
        // SAFETY: `pdev` is valid; the reference is dropped in `release`,
        // which runs for every successfully allocated device.
        unsafe { bindings::pci_dev_get(pdev.as_raw()) };
        // The data is initialised through `this`, the pointer the allocator
        // returned, before any reference to the object exists: `Self` has
        // no interior mutability outside `core`, so a write through a
        // pointer derived from `&Self` would be undefined behaviour.
        //
        // SAFETY: `this` points to a live, zeroed allocation of
        // `size_of::<Self>()` bytes that only this function knows about;
        // `data` is a field of it, so the projection stays in bounds.
        let slot = unsafe { (&raw mut (*this).data).cast::<T::Data>() };
        // SAFETY:
        // - `slot` is valid for writes and uninitialised (zeroed memory);
        // - the allocation never moves (the vfio core frees it in place), so
        //   the data is pinned;
        // - on error the slot is left alone: `data_init` stays false, so
        //   `release` (run when the reference below is dropped) skips it.
        let res = unsafe { pin_init::raw_try_init(slot, data) };
        if res.is_ok() {
            // INVARIANT: `data` is initialised before the device is shared.
            // SAFETY: as for `slot`: the allocation is still ours alone.
            unsafe { (&raw mut (*this).data_init).write(true) };
        }
        // INVARIANT: allocated with the size of `Self` and ops for `T`.
        // SAFETY: `vdev` is the first member, at offset 0 of `Self` (see
        // the assertion above), non-NULL, and we own its initial reference.
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
        // SAFETY: `vdev` is at offset 0 of `Self` (type invariant).
        unsafe { &*vdev.cast::<Self>() }
    }

    fn core(&self) -> *mut bindings::vfio_pci_core_device {
        self.core.get()
    }

    pub(crate) fn vdev(&self) -> *mut bindings::vfio_device {
        // SAFETY: `core` is valid (type invariant); taking the field's
        // address does not read it.
        unsafe { &raw mut (*self.core()).vdev }
    }

    /// The raw `struct pci_dev`, for the other abstraction modules. Valid
    /// while `self` is (type invariant).
    pub(crate) fn pdev(&self) -> *mut bindings::pci_dev {
        // SAFETY: `pdev` is set by `vfio_pci_core_init_dev()` during
        // allocation and never changes.
        unsafe { (*self.core()).pdev }
    }

    /// The driver's data.
    pub fn data(&self) -> Pin<&T::Data> {
        // SAFETY: `data` is initialised before anyone but the probe path
        // sees the device (type invariant) and is never moved (it lives in
        // the C allocation).
        unsafe { Pin::new_unchecked(self.data.assume_init_ref()) }
    }

    /// `vfio_pci_core_enable()`: enable and reset the function for
    /// userspace. Only in `open_device`.
    pub fn enable(&self) -> Result {
        // SAFETY: `core` is a registered core device being opened.
        to_result(unsafe { bindings::vfio_pci_core_enable(self.core()) })
    }

    /// `vfio_pci_core_finish_enable()`. Only in `open_device`, after
    /// [`Self::enable`].
    pub fn finish_enable(&self) {
        // SAFETY: as for `enable`.
        unsafe { bindings::vfio_pci_core_finish_enable(self.core()) }
    }

    /// `vfio_pci_core_disable()`: undo [`Self::enable`] when a later step
    /// of `open_device` fails.
    pub fn disable(&self) {
        // SAFETY: as for `enable`.
        unsafe { bindings::vfio_pci_core_disable(self.core()) }
    }

    /// `vfio_pci_core_close_device()`. Only in `close_device`.
    pub fn close_core(&self) {
        // SAFETY: called from `close_device` of this device.
        unsafe { bindings::vfio_pci_core_close_device(self.vdev()) }
    }
}

impl<T: Driver> AsRef<device::Device> for CoreDevice<T> {
    fn as_ref(&self) -> &device::Device {
        // SAFETY: the PCI device outlives its vfio device (the vfio device
        // holds a reference on its parent).
        unsafe { device::Device::from_raw(&raw mut (*self.pdev()).dev) }
    }
}

/// A device allocated by probe and not registered yet.
///
/// # Invariants
///
/// `dev` is not registered with the vfio core: the probe path that holds
/// the `NewDevice` is its only user.
pub struct NewDevice<T: Driver> {
    dev: ARef<CoreDevice<T>>,
}

impl<T: Driver> NewDevice<T> {
    /// The device.
    pub fn device(&self) -> &CoreDevice<T> {
        &self.dev
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
        close_device: if O::HAS_CLOSE_DEVICE {
            Some(Self::close_device)
        } else {
            Some(bindings::vfio_pci_core_close_device)
        },
        read: Some(bindings::vfio_pci_core_read),
        write: Some(bindings::vfio_pci_core_write),
        ioctl: Some(bindings::vfio_pci_core_ioctl),
        get_region_info_caps: Some(bindings::vfio_pci_ioctl_get_region_info),
        mmap: Some(bindings::vfio_pci_core_mmap),
        request: Some(bindings::vfio_pci_core_request),
        match_: Some(bindings::vfio_pci_core_match),
        match_token_uuid: Some(bindings::vfio_pci_core_match_token_uuid),
        device_feature: Some(bindings::vfio_pci_core_ioctl_feature),
        // SAFETY: all-zero is a valid `vfio_device_ops` (NULL callbacks).
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };

    /// # Safety
    ///
    /// Called by the vfio core with a device of this table.
    unsafe extern "C" fn release(vdev: *mut bindings::vfio_device) {
        let this = vdev.cast::<CoreDevice<O::Driver>>();
        // SAFETY: the vfio core calls `release` once, when the last
        // reference is gone; nothing else can access the object now. The
        // reference to the PCI device taken in `create` is dropped last.
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
        // SAFETY: the device of this table is a `CoreDevice<O::Driver>`,
        // alive while userspace opens it.
        let dev = unsafe { CoreDevice::<O::Driver>::from_vdev(vdev) };
        from_result(|| O::open_device(dev).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by the vfio core with a device of this table.
    unsafe extern "C" fn close_device(vdev: *mut bindings::vfio_device) {
        // SAFETY: as for `open_device`.
        let dev = unsafe { CoreDevice::<O::Driver>::from_vdev(vdev) };
        O::close_device(dev)
    }
}

/// The `struct pci_error_handlers` of driver `T`.
struct ErrHandlers<T: Driver>(PhantomData<T>);

impl<T: Driver> ErrHandlers<T> {
    const TABLE: bindings::pci_error_handlers = bindings::pci_error_handlers {
        error_detected: Some(bindings::vfio_pci_core_aer_err_detected),
        reset_done: Some(Self::reset_done),
        // SAFETY: all-zero is a valid `pci_error_handlers`.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };

    /// # Safety
    ///
    /// Called by the PCI core for a device bound to driver `T`.
    unsafe extern "C" fn reset_done(pdev: *mut bindings::pci_dev) {
        // SAFETY: `pdev` is bound to our driver, so its driver data is NULL
        // (before registration) or the `CoreDevice<T>` the binding holds a
        // reference to until remove, which cannot run concurrently.
        let core = unsafe { bindings::dev_get_drvdata(&raw mut (*pdev).dev) };
        if core.is_null() {
            return;
        }
        // SAFETY: see above.
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

// SAFETY: the PCI core serialises use of the registered `pci_driver`; we
// only touch it in `new` and `drop`.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: as above.
unsafe impl<T: Driver> Sync for Registration<T> {}

impl<T: Driver> Registration<T> {
    /// Register driver `T` with the PCI core on behalf of `module`.
    pub fn new(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            drv <- Opaque::try_ffi_init(|drv: *mut bindings::pci_driver| {
                // SAFETY: `drv` points to the pinned, zeroed-to-be storage
                // of this registration.
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
                // SAFETY: the PCI core passes a valid device being probed.
                pdev: unsafe { NonNull::new_unchecked(pdev) },
                _p: PhantomData,
            };
            let NewDevice { dev } = T::probe(&probe)?;
            let dev_ptr = ARef::into_raw(dev);
            // SAFETY: `vfio_pci_core_register_device()` requires the driver
            // data to be the core device. Until remove, the binding owns the
            // reference `dev_ptr`.
            let ret = unsafe {
                bindings::dev_set_drvdata(&raw mut (*pdev).dev, dev_ptr.as_ptr().cast::<c_void>());
                bindings::vfio_pci_core_register_device(dev_ptr.as_ref().core())
            };
            if ret != 0 {
                // SAFETY: registration failed: take the reference back (the
                // device is released when it is dropped) and clear the
                // driver data that pointed to it.
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
        // SAFETY: `pdev` is a device we probed, so its driver data is the
        // binding's reference to its `CoreDevice<T>` (set in `probe`).
        let core = unsafe { bindings::dev_get_drvdata(&raw mut (*pdev).dev) };
        let Some(core) = NonNull::new(core.cast::<CoreDevice<T>>()) else {
            return;
        };
        // SAFETY: the binding owns this reference until the end of this
        // function: the device is alive, and giving the reference back
        // below is the binding's last use of it.
        let dev = unsafe { ARef::from_raw(core) };
        // SAFETY: `dev` is registered (probe succeeded). This waits until
        // userspace closed every file of the device.
        unsafe { bindings::vfio_pci_core_unregister_device(dev.core()) };
        T::unbind(&dev);
        drop(dev);
    }
}

#[pinned_drop]
impl<T: Driver> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `drv` was registered by `new` (type invariant).
        unsafe { bindings::pci_unregister_driver(self.drv.get()) };
    }
}
