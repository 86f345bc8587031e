// SPDX-License-Identifier: GPL-2.0

//! VFIO PCI variant driver for virtio-net SR-IOV VFs with live migration.
//!
//! The Rust counterpart of `drivers/vfio/pci/virtio/` (module
//! `virtio_vfio_pci`); this module is `virtio_vfio_pci_rs` so that both can
//! be loaded in the same kernel. Bind a device with
//! `driver_override=virtio_vfio_pci_rs`.
//!
//! Layout, top down (the upstream C driver's files in brackets):
//!
//! - [`driver`]: probe, ops selection, the device ops (`main.c`);
//! - [`migration`]: the migration engine (`migrate.c`);
//! - [`proto`]: the pure protocol logic, shared with the host tests;
//! - [`abstractions`]: the safe abstractions over the C APIs, where all
//!   `unsafe` code lives;
//! - [`bindings`]: our bindgen output.
//!
//! The driver and the engine are compiled with `#[deny(unsafe_code)]`: "the
//! driver has no `unsafe`" is checked by the compiler.

use kernel::prelude::*;

pub mod abstractions;
mod bindings;
#[deny(unsafe_code)]
mod driver;
#[cfg(virtio_rs_legacy)]
#[deny(unsafe_code)]
mod legacy;
#[deny(unsafe_code)]
mod migration;
pub mod proto;

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
        max_cmd_sg: u32 {
            default: 1021,
            description: "Most scatterlist entries of device data in one admin command (0: no limit)",
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

/// Most scatterlist entries of device data in one admin command. Linux puts
/// a command in one indirect descriptor table, which a device bounds by its
/// queue size (the virtio spec; QEMU by 1024 descriptors whatever the size):
/// a `DEV_PARTS_GET` also has a header, its request and a status, 1021
/// entries of data fit in 1024. The admin queue's size is not exported by
/// `virtio_pci`; a device with a smaller admin queue needs a lower value.
pub(crate) fn max_cmd_sg() -> usize {
    match module_parameters::max_cmd_sg.value() {
        0 => usize::MAX,
        n => n as usize,
    }
}

/// Largest device-data record accepted when resuming, in bytes (the parser
/// clamps it to the 32-bit device-parts limit).
pub(crate) fn max_record_size() -> u64 {
    u64::from(module_parameters::max_record_mib.value()).saturating_mul(1 << 20)
}

#[pin_data(PinnedDrop)]
struct VirtioVfioPciRs {
    #[pin]
    reg: abstractions::vfio::pci::Registration<driver::VirtioVfioPci>,
}

impl kernel::InPlaceModule for VirtioVfioPciRs {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            // Refuse to load if bindgen and C disagree on what we embed.
            abstractions::vfio::pci::check_layout()?;
            pr_info!("loaded\n");
            Ok(try_pin_init!(Self {
                reg <- abstractions::vfio::pci::Registration::new(module),
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
