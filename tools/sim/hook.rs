// SPDX-License-Identifier: GPL-2.0

//! Registration with the test kernel's admin backend hook and PCI reset
//! notifier.
//!
//! C headers: [`include/linux/virtio_pci_admin_sim.h`](srctree/include/linux/virtio_pci_admin_sim.h)
//! (added by `tools/kernel/patches`), [`include/linux/pci.h`](srctree/include/linux/pci.h).

use kernel::{
    error::to_result,
    ffi::{c_int, c_ulong, c_void},
    prelude::*,
    sync::Arc,
    types::Opaque,
};

use crate::{
    bindings,
    device::{Header, Sim},
    sg::SgList,
};

/// The backend registered for a PF, plus the reset notifier that tells it
/// about VF function resets.
///
/// # Invariants
///
/// While this object exists, `sim` is registered as the admin backend of
/// `pf` (until the PF is removed, which the hook reports through `detach`)
/// and `nb` is on the PCI reset notifier chain.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration {
    sim: Arc<Sim>,
    #[pin]
    nb: Opaque<bindings::notifier_block>,
}

// SAFETY: nothing in a `Registration` is tied to a thread:
// - `sim` is an `Arc<Sim>`, which is `Send` because `Sim` is `Send` and
//   `Sync` (atomics, mutexes and a `PfRef`);
// - Rust code touches `nb` only in `new` and `drop`; otherwise only the PCI
//   reset notifier chain uses it, under the chain's own lock, on whatever
//   thread resets a device; the unregister calls of `drop` may run on any
//   thread in process context.
unsafe impl Send for Registration {}
// SAFETY: `&Registration` gives access to nothing but `sim`, an `Arc<Sim>`
// (`Sim` is `Sync`, and `reset_cb` only borrows it): `nb` is read and
// written only by the notifier chain, under its own lock, and by `new` and
// `drop`, which have exclusive access.
unsafe impl Sync for Registration {}

static OPS: bindings::virtio_pci_admin_sim_ops = bindings::virtio_pci_admin_sim_ops {
    exec: Some(exec_cb),
    detach: Some(detach_cb),
};

impl Registration {
    pub(crate) fn new(sim: Arc<Sim>) -> impl PinInit<Self, Error> {
        let sim2 = sim.clone();
        try_pin_init!(Self {
            sim,
            nb <- Opaque::try_ffi_init(move |nb: *mut bindings::notifier_block| {
                // SAFETY:
                // - `nb` points to the `nb` storage of this registration,
                //   valid for writes and pinned; it is written whole first,
                //   zeroed, which is a valid `notifier_block` (no callback,
                //   a NULL `next`, priority 0);
                // - `pci_reset_done_notifier_register()` needs `nb` to stay
                //   valid and in place until it is unregistered: it is
                //   pinned, and `drop` (or the error path below)
                //   unregisters it. `reset_cb` may run from now on: it finds
                //   the registration with `container_of!` and only borrows
                //   `sim`, which is initialised before `nb`;
                // - `virtio_pci_admin_sim_register()` needs a valid PF, and
                //   ops and `priv` valid until
                //   `virtio_pci_admin_sim_unregister()`: the PF is held by
                //   the `PfRef` of the `Sim`, `OPS` is a `static`, and `priv`
                //   points to the `Sim` that the registration's `sim` field
                //   (the same `Arc` as `sim2`) keeps alive until `drop`
                //   unregisters; the hook may call `exec_cb` and `detach_cb`
                //   from now on, from any thread, and `Sim` is `Sync`;
                // - if that fails, the notifier is unregistered, which waits
                //   for running callbacks, before the initialiser fails and
                //   `sim` is dropped.
                unsafe {
                    nb.write(core::mem::zeroed());
                    (*nb).notifier_call = Some(reset_cb);
                    to_result(bindings::pci_reset_done_notifier_register(nb))?;
                    let ret = bindings::virtio_pci_admin_sim_register(
                        sim2.pf().as_ptr(),
                        &OPS,
                        Arc::as_ptr(&sim2).cast_mut().cast::<c_void>(),
                    );
                    if ret != 0 {
                        bindings::pci_reset_done_notifier_unregister(nb);
                        return Err(Error::from_errno(ret));
                    }
                }
                Ok(())
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Registration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY:
        // - `virtio_pci_admin_sim_unregister()` needs the PF that `new` gave
        //   to `virtio_pci_admin_sim_register()` (type invariant),
        //   `self.sim.pf()`, still valid as the `PfRef` in `sim` holds it;
        //   it waits for commands in flight and clears the backend, so the
        //   hook no longer uses `sim` afterwards (and if the PF was removed,
        //   the hook already cleared it then);
        // - `pci_reset_done_notifier_unregister()` needs the notifier block
        //   that `new` registered (type invariant), still in place as it is
        //   pinned; it waits for running callbacks, so `reset_cb` no longer
        //   uses `self` afterwards.
        // `sim` is dropped after this, when nothing can reach it.
        unsafe {
            bindings::virtio_pci_admin_sim_unregister(self.sim.pf().as_ptr());
            bindings::pci_reset_done_notifier_unregister(self.nb.get());
        }
    }
}

/// # Safety
///
/// Called by the hook with the `priv` given at registration (an `Arc<Sim>`
/// kept alive by the registration) and a command's header, lists and
/// status buffer, valid for the call.
unsafe extern "C" fn exec_cb(
    priv_: *mut c_void,
    hdr: *const bindings::virtio_admin_cmd_hdr,
    data: *mut bindings::scatterlist,
    result: *mut bindings::scatterlist,
    status: *mut bindings::virtio_admin_cmd_status,
) -> c_int {
    // SAFETY: the hook calls `exec` (safety requirement of this function)
    // with:
    // - `priv_`, the `Arc::as_ptr()` of the `Sim` given at registration,
    //   which the `Registration` keeps alive until it unregisters, and
    //   unregistering waits for this call: `&Sim` is valid for the call;
    // - `hdr`, the command's header, valid and aligned for reads;
    // - `data` and `result`, NULL or the heads of the caller's end-marked
    //   scatterlists, valid during the command and used by no one else
    //   meanwhile (the caller waits for the command, and the device model
    //   reads `data` and writes only `result`), as `SgList::from_raw()`
    //   requires; the `SgList`s are locals, dropped before this returns.
    let (sim, h, data, mut result) = unsafe {
        (
            &*priv_.cast::<Sim>(),
            core::ptr::read(hdr),
            SgList::from_raw(data),
            SgList::from_raw(result),
        )
    };
    let header = Header {
        opcode: u16::from_le(h.opcode),
        group: u16::from_le(h.group_type),
        member: u64::from_le(h.group_member_id),
    };
    let r = sim.exec(&header, data.as_ref(), result.as_mut());
    // SAFETY: `status` is the command's status buffer, which the hook passes
    // valid and aligned for writes, and which no one else uses until the
    // command completes (safety requirement of this function).
    unsafe {
        (*status).status = r.status.to_le();
        (*status).status_qualifier = r.qualifier.to_le();
    }
    c_int::try_from(r.written).unwrap_or(0)
}

/// # Safety
///
/// As for [`exec_cb`].
unsafe extern "C" fn detach_cb(priv_: *mut c_void) {
    // SAFETY: the hook calls `detach`, at PF removal, with the `priv` given
    // at registration: the `Arc::as_ptr()` of a `Sim` that the
    // `Registration` keeps alive until it unregisters. The hook calls
    // `detach` and unregistering clears the backend under the same lock, so
    // the `Sim` is alive for this call, which the `&Sim` does not outlive.
    unsafe { &*priv_.cast::<Sim>() }.detach();
}

/// # Safety
///
/// Called by the PCI reset notifier chain with our notifier block and the
/// reset `struct pci_dev`.
unsafe extern "C" fn reset_cb(
    nb: *mut bindings::notifier_block,
    _action: c_ulong,
    data: *mut c_void,
) -> c_int {
    let pdev = data.cast::<bindings::pci_dev>();
    // SAFETY:
    // - `nb` is the `nb` field of a live `Registration`: only `new`
    //   registers it, it is pinned, and it is on the chain only while the
    //   registration exists (`drop` and the error path of `new` unregister
    //   it, which waits for this call), so `container_of!` stays within the
    //   registration, and `sim`, initialised before `nb`, can be borrowed
    //   for this call;
    // - `pdev` is the `struct pci_dev` being reset, valid during the call;
    //   `virtio_rs_sim_is_virtfn()` and `virtio_rs_sim_physfn()` read its
    //   fields, and `pci_iov_vf_id()` runs only for a VF, which holds a
    //   reference on its PF, whose SR-IOV state it reads;
    // - `sim.pf()` is the PF we hold a reference on, only compared here.
    unsafe {
        let reg = kernel::container_of!(Opaque::cast_from(nb).cast_mut(), Registration, nb);
        let sim = &(*reg).sim;
        if bindings::virtio_rs_sim_is_virtfn(pdev)
            && bindings::virtio_rs_sim_physfn(pdev) == sim.pf().as_ptr()
        {
            let id = bindings::pci_iov_vf_id(pdev);
            if let Ok(id) = u16::try_from(id) {
                sim.vf_reset(id.saturating_add(1));
            }
        }
    }
    0
}
