// SPDX-License-Identifier: GPL-2.0

//! A host model of the pointer protocol of `vfio::pci::CoreDevice`
//! (`drivers/vfio/pci/virtio_rs/vfio/pci.rs`), for Miri.
//!
//! The kernel code cannot run under Miri, so this crate repeats its pointer
//! operations, one for one, over a model of the C side:
//!
//! - [`c`] plays `_vfio_alloc_device()`, `get_device()`/`put_device()` and
//!   the vfio core's call of `ops->release`: a zeroed allocation of the
//!   size the caller asks for, a reference count inside the C structure,
//!   `release` then free when it drops to zero. C pointers carry no Rust
//!   provenance, so the model's C side finds its allocation by address
//!   (as `container_of()` does), never through the pointer Rust handed it.
//! - [`CoreDevice`] is the Rust side: `#[repr(C)]` with the C structure
//!   first in an `Opaque`, then `data_init` and the driver's data; `create`
//!   initialises the data through the allocator's pointer before any
//!   reference exists; [`ARef`] counts references through the C functions;
//!   `release` drops the data if it was initialised.
//!
//! `cargo test` checks the protocol's bookkeeping (the data is dropped
//! exactly once, never when its initialisation failed, the allocation is
//! freed once); `cargo miri test` also checks Rust's aliasing rules on
//! every access. With the `buggy` feature, `create` writes the data through
//! a pointer derived from `&CoreDevice`, as the driver did before; Miri
//! rejects that under Stacked and Tree Borrows.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

/// The C side: the allocator and reference counting of `struct
/// vfio_device`.
pub mod c {
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// The C structure at offset 0 (`struct vfio_pci_core_device`, whose
    /// first member is `struct vfio_device`).
    #[repr(C)]
    pub struct CCore {
        /// `vdev.device.kobj.kref`.
        pub refs: AtomicUsize,
        /// `vdev.ops->release`.
        pub release: unsafe fn(*mut CCore),
        /// Something C writes after allocation (`vfio_pci_core_init_dev()`
        /// sets `pdev` and more).
        pub pdev: usize,
    }

    /// An allocation as C knows it: its base pointer, with the full
    /// provenance of the allocator, and its layout.
    struct Alloc {
        base: *mut u8,
        layout: Layout,
    }

    // SAFETY: the pointers in `ALLOCS` are only used under its mutex, and
    // the memory they point to may be used from any thread.
    unsafe impl Send for Alloc {}

    // Allocations by address: kept here, outside anything Rust borrows.
    static ALLOCS: Mutex<Option<HashMap<usize, Alloc>>> = Mutex::new(None);

    fn with_allocs<R>(f: impl FnOnce(&mut HashMap<usize, Alloc>) -> R) -> R {
        let mut g = ALLOCS.lock().unwrap_or_else(|e| e.into_inner());
        f(g.get_or_insert_with(HashMap::new))
    }

    /// Allocations still live.
    pub fn live_allocations() -> usize {
        with_allocs(|m| m.len())
    }

    /// The allocation `p` points to, by address (C has no provenance).
    fn base_of(p: *mut CCore) -> *mut CCore {
        let addr = p as usize;
        with_allocs(|m| m.get(&addr).map(|a| a.base))
            .expect("pointer to a live allocation")
            .cast()
    }

    /// `_vfio_alloc_device(size, dev, ops)`: zeroed memory of `size` bytes
    /// with one reference, after `ops->init`.
    ///
    /// # Safety
    ///
    /// `size` covers a `CCore` at offset 0 and `release` can be called with
    /// the allocation.
    pub unsafe fn alloc_device(size: usize, release: unsafe fn(*mut CCore)) -> *mut CCore {
        let layout = Layout::from_size_align(size, 8).expect("layout");
        // SAFETY: `size` is non-zero (it covers a `CCore`).
        let base = unsafe { alloc_zeroed(layout) };
        assert!(!base.is_null());
        let core = base.cast::<CCore>();
        // SAFETY: `base` is a fresh allocation large enough for a `CCore`.
        unsafe {
            core.write(CCore {
                refs: AtomicUsize::new(1),
                release,
                pdev: 0x1000,
            })
        };
        with_allocs(|m| m.insert(base as usize, Alloc { base, layout }));
        core
    }

    /// `get_device(&vdev->device)`.
    ///
    /// # Safety
    ///
    /// `p` points into a live allocation whose count is non-zero.
    pub unsafe fn get_device(p: *mut CCore) {
        let base = base_of(p);
        // SAFETY: `base` is the live allocation, `refs` is atomic.
        unsafe { (*base).refs.fetch_add(1, Ordering::Relaxed) };
    }

    /// `vfio_put_device()`: drop a reference; at zero, `release` then free.
    ///
    /// # Safety
    ///
    /// The caller owns a reference to the allocation `p` points to.
    pub unsafe fn put_device(p: *mut CCore) {
        let base = base_of(p);
        // SAFETY: `base` is live while the caller's reference is.
        if unsafe { (*base).refs.fetch_sub(1, Ordering::AcqRel) } != 1 {
            return;
        }
        // SAFETY: the last reference is gone: nobody else uses the object.
        let release = unsafe { (*base).release };
        // SAFETY: as the vfio core does: `release` with the device.
        unsafe { release(base) };
        let a = with_allocs(|m| m.remove(&(base as usize))).expect("allocation");
        // SAFETY: `a.base` was allocated with `a.layout` and is freed once.
        unsafe { dealloc(a.base, a.layout) };
    }
}

/// `kernel::types::Opaque`: C-owned memory, mutable behind `&`.
#[repr(transparent)]
pub struct Opaque<T>(UnsafeCell<MaybeUninit<T>>);

impl<T> Opaque<T> {
    /// A raw pointer to the contents.
    pub const fn get(&self) -> *mut T {
        UnsafeCell::raw_get(&self.0).cast()
    }
}

/// The model of `vfio::pci::CoreDevice<T>`.
#[repr(C)]
pub struct CoreDevice<D> {
    core: Opaque<c::CCore>,
    data_init: bool,
    data: MaybeUninit<D>,
}

// SAFETY: as in the driver: the C object is used from any thread, the
// count is atomic and `D: Send + Sync`.
unsafe impl<D: Send + Sync> Send for CoreDevice<D> {}
// SAFETY: as above.
unsafe impl<D: Send + Sync> Sync for CoreDevice<D> {}

/// `kernel::sync::aref::ARef`: an owned reference counted through
/// `get_device()`/`put_device()`.
pub struct ARef<D> {
    ptr: NonNull<CoreDevice<D>>,
}

// SAFETY: as `kernel::sync::aref::ARef` for a `Sync + Send` object.
unsafe impl<D: Send + Sync> Send for ARef<D> {}
// SAFETY: as above.
unsafe impl<D: Send + Sync> Sync for ARef<D> {}

impl<D> core::ops::Deref for ARef<D> {
    type Target = CoreDevice<D>;

    fn deref(&self) -> &CoreDevice<D> {
        // SAFETY: we own a reference, so the object is alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl<D> Clone for ARef<D> {
    fn clone(&self) -> Self {
        // `AlwaysRefCounted::inc_ref`: through `&self`.
        // SAFETY: `self` is live, so its count is non-zero.
        unsafe { c::get_device(self.vdev()) };
        Self { ptr: self.ptr }
    }
}

impl<D> Drop for ARef<D> {
    fn drop(&mut self) {
        // `AlwaysRefCounted::dec_ref(obj)`: `obj.as_ref().vdev()`.
        // SAFETY: we own a reference, which we give up here.
        unsafe { c::put_device(self.ptr.as_ref().vdev()) };
    }
}

impl<D> CoreDevice<D> {
    /// `CoreDevice::create`: allocate, initialise the data in place with
    /// `init` (which writes a `D` through the pointer it gets, or fails),
    /// and return the initial reference.
    pub fn create<E>(init: impl FnOnce(*mut D) -> Result<(), E>) -> Result<ARef<D>, E> {
        // SAFETY: the size covers `Self`, whose `CCore` is at offset 0.
        let vdev = unsafe { c::alloc_device(core::mem::size_of::<Self>(), Self::release) };
        let this = vdev.cast::<Self>();
        #[cfg(not(feature = "buggy"))]
        {
            // SAFETY: `this` is the allocation, known only here.
            let slot = unsafe { (&raw mut (*this).data).cast::<D>() };
            let res = init(slot);
            if res.is_ok() {
                // SAFETY: as for `slot`.
                unsafe { (&raw mut (*this).data_init).write(true) };
            }
            let dev = ARef {
                // SAFETY: non-NULL, and we own the initial reference.
                ptr: unsafe { NonNull::new_unchecked(this) },
            };
            res.map(|()| dev)
        }
        #[cfg(feature = "buggy")]
        {
            // The driver before the fix: the reference first, then writes
            // through pointers derived from `&Self`.
            let dev = ARef {
                // SAFETY: non-NULL, and we own the initial reference.
                ptr: unsafe { NonNull::new_unchecked(this) },
            };
            let slot = dev.data.as_ptr().cast_mut();
            init(slot)?;
            // SAFETY: (not really: this is the bug) only the probe path
            // can reach the device.
            unsafe { *(&raw const dev.data_init).cast_mut() = true };
            Ok(dev)
        }
    }

    /// `CoreDevice::vdev`.
    pub fn vdev(&self) -> *mut c::CCore {
        self.core.get()
    }

    /// `CoreDevice::from_vdev`.
    ///
    /// # Safety
    ///
    /// `vdev` is the C structure of a live `CoreDevice<D>`.
    pub unsafe fn from_vdev<'a>(vdev: *mut c::CCore) -> &'a Self {
        // SAFETY: the `CCore` is at offset 0 of `Self`.
        unsafe { &*vdev.cast::<Self>() }
    }

    /// `CoreDevice::data`.
    pub fn data(&self) -> &D {
        // SAFETY: initialised before the device is shared (`create` only
        // returns a reference when `data_init` is true).
        unsafe { self.data.assume_init_ref() }
    }

    /// A field C writes, read through the opaque structure.
    pub fn pdev(&self) -> usize {
        // SAFETY: `core` is initialised by the C allocator.
        unsafe { (*self.core.get()).pdev }
    }

    /// `OpsTable::release`: the vfio core's `ops->release`.
    ///
    /// # Safety
    ///
    /// Called once, by the C side, when the last reference is gone.
    unsafe fn release(vdev: *mut c::CCore) {
        let this = vdev.cast::<Self>();
        // SAFETY: nothing else accesses the object any more.
        unsafe {
            if (*this).data_init {
                (*this).data.assume_init_drop();
            }
        }
    }
}
