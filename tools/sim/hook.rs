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

// SAFETY: the notifier block is only touched by the notifier chain (which
// serialises) and by `new`/`drop`.
unsafe impl Send for Registration {}
// SAFETY: as above.
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
                // SAFETY: `nb` is pinned storage inside `this`; it is on the
                // chain until drop. `sim2` is kept alive by `this.sim`.
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
        // SAFETY: registered in `new` (type invariant). Unregister waits for
        // commands in flight; after it, the hook no longer uses `sim`.
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
    // SAFETY: see the function's safety section.
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
    // SAFETY: `status` is the command's status buffer.
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
    // SAFETY: see the function's safety section.
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
    // SAFETY: `nb` is the `nb` field of a live `Registration` (it is on the
    // chain only while the registration exists); `pdev` is valid during the
    // call.
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
