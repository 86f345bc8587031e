// SPDX-License-Identifier: GPL-2.0

//! VFIO PCI variant driver for virtio-net SR-IOV VFs with live migration.
//!
//! The Rust counterpart of `drivers/vfio/pci/virtio/` (module
//! `virtio_vfio_pci`); this module is `virtio_vfio_pci_rs` so that both can
//! be loaded in the same kernel. Bind a device with
//! `driver_override=virtio_vfio_pci_rs`.
//!
//! Layout: [`driver`] is the driver (no `unsafe`); [`vfio`] holds the safe
//! VFIO abstractions; [`proto`] the pure protocol logic shared with the
//! host tests; [`bindings`] our bindgen output.

use kernel::prelude::*;

mod bindings;
mod driver;
pub mod proto;
pub mod vfio;

module! {
    type: VirtioVfioPciRs,
    name: "virtio_vfio_pci_rs",
    authors: ["The virtio-vfio-pci-rs authors"],
    description: "VFIO PCI variant driver for virtio-net VFs with live migration (Rust)",
    license: "GPL",
}

#[pin_data(PinnedDrop)]
struct VirtioVfioPciRs {
    #[pin]
    reg: vfio::pci::Registration<driver::VirtioVfioPci>,
}

impl kernel::InPlaceModule for VirtioVfioPciRs {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // Our bindgen output and the C compiler must agree on the layout of
        // the structure the driver embeds; refuse to load otherwise.
        let rust_size = core::mem::size_of::<bindings::vfio_pci_core_device>();
        let rust_pdev = core::mem::offset_of!(bindings::vfio_pci_core_device, pdev);
        // SAFETY: the helpers take no arguments and only evaluate
        // `sizeof`/`offsetof`.
        let (c_size, c_pdev) = unsafe {
            (
                bindings::virtio_rs_helper_sizeof_vfio_pci_core_device(),
                bindings::virtio_rs_helper_offsetof_vfio_pci_core_device_pdev(),
            )
        };
        let same = rust_size == c_size && rust_pdev == c_pdev;
        pr_info!(
            "loaded: vfio_pci_core_device size {} (C {}), pdev at {} (C {}), layout match: {}\n",
            rust_size,
            c_size,
            rust_pdev,
            c_pdev,
            same
        );
        let check = if same { Ok(()) } else { Err(EINVAL) };
        pin_init::pin_init_scope(move || {
            check?;
            Ok(try_pin_init!(Self {
                reg <- vfio::pci::Registration::new(module),
            }))
        })
    }
}

#[pinned_drop]
impl PinnedDrop for VirtioVfioPciRs {
    fn drop(self: Pin<&mut Self>) {
        pr_info!("unloaded\n");
    }
}
