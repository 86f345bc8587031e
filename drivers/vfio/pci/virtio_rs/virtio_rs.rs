// SPDX-License-Identifier: GPL-2.0

//! VFIO PCI variant driver for virtio-net SR-IOV VFs with live migration.
//!
//! The Rust counterpart of `drivers/vfio/pci/virtio/` (module
//! `virtio_vfio_pci`); this module is `virtio_vfio_pci_rs` so that both can
//! be loaded in the same kernel. Bind a device with
//! `driver_override=virtio_vfio_pci_rs`.
//!
//! Layout:
//!
//! - the driver, with no `unsafe`: [`driver`] (probe, ops selection) and
//!   [`mig`] (the migration engine);
//! - the safe abstractions, where all `unsafe` code lives: [`vfio`] (VFIO
//!   PCI core devices, ops and migration vtables, the PCI driver
//!   registration), [`stream_file`] (anonymous-inode stream files),
//!   [`page_buffer`] (page-backed buffers as unmapped scatterlists) and
//!   [`virtio_admin`] (the virtio PCI admin commands of a VF);
//! - [`proto`]: the pure protocol logic shared with the host tests;
//! - [`bindings`]: our bindgen output.

use kernel::prelude::*;

mod bindings;
mod driver;
mod mig;
pub mod page_buffer;
pub mod proto;
pub mod stream_file;
pub mod vfio;
pub mod virtio_admin;

module! {
    type: VirtioVfioPciRs,
    name: "virtio_vfio_pci_rs",
    authors: ["The virtio-vfio-pci-rs authors"],
    description: "VFIO PCI variant driver for virtio-net VFs with live migration (Rust)",
    license: "GPL",
    params: {
        precopy_max_reads: u32 {
            default: 128,
            description: "Device-context reads per pre-copy session (the initial read counts)",
        },
        precopy_interval_ms: u32 {
            default: 1000,
            description: "Minimum time between two pre-copy device queries, in ms (0: none)",
        },
        device_read_burst: u32 {
            default: 8,
            description: "Full device-context reads a VF may do back to back, then one per precopy_interval_ms (0: no limit)",
        },
        max_record_mib: u32 {
            default: 1024,
            description: "Largest device-data record accepted when resuming, in MiB",
        },
    },
}

/// Pre-copy policy parameters: (reads per session, interval in ms).
pub(crate) fn precopy_params() -> (u32, u64) {
    (
        module_parameters::precopy_max_reads.value(),
        u64::from(module_parameters::precopy_interval_ms.value()),
    )
}

/// Size of the device-wide read budget (see `mig`'s module docs).
pub(crate) fn device_read_burst() -> u32 {
    module_parameters::device_read_burst.value()
}

/// Largest device-data record accepted when resuming, in bytes (the parser
/// clamps it to the 32-bit device-parts limit).
pub(crate) fn max_record_size() -> u64 {
    u64::from(module_parameters::max_record_mib.value()).saturating_mul(1 << 20)
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
