// SPDX-License-Identifier: GPL-2.0

//! Simulated virtio PF admin device, for tests only.
//!
//! No emulator implements the virtio admin virtqueue (QEMU offers neither
//! feature bit 41 nor `admin_queue_index`/`admin_queue_num`), so without
//! hardware no migration path could run. This module is the device side of
//! the admin command set for the first virtio-net PF with SR-IOV, served
//! through the test kernel's hook (`tools/kernel/patches`) below
//! `virtio_pci`'s exported admin API: the upstream C driver and ours run
//! against it unchanged.
//!
//! Load it before binding VFs to a migration driver: migration support is
//! decided when the VF driver probes. Parameters: object limits offered in
//! DEVICE_CAP_GET, the default state size and queue count of every VF, and
//! the descriptor count of the virtual admin queue (commands needing more
//! are counted, see [`control`]), and `legacy_io`: offer the
//! legacy-interface admin commands (opcodes 0x2..0x6) in LIST_QUERY, which
//! makes the VFs transitional for the drivers ([`legacy`]). The capability
//! negotiation runs when the module registers, so parameters take effect at
//! load.

use kernel::prelude::*;

mod bindings;
mod control;
mod device;
mod hook;
mod legacy;
mod pf;
#[path = "../../drivers/vfio/pci/virtio_rs/proto.rs"]
pub mod proto;
mod sg;

module! {
    type: VirtioRsSim,
    name: "virtio_rs_sim",
    authors: ["The virtio-vfio-pci-rs authors"],
    description: "Simulated virtio PF admin device for tests (device parts, modes, objects)",
    license: "GPL",
    params: {
        get_limit: u8 {
            default: 255,
            description: "get_parts_resource_objects_limit offered by DEVICE_CAP_GET",
        },
        set_limit: u8 {
            default: 255,
            description: "set_parts_resource_objects_limit offered by DEVICE_CAP_GET",
        },
        state_size: usize {
            default: 4096,
            description: "default device state size of each VF in bytes (max 64 MiB)",
        },
        queues: u16 {
            default: 3,
            description: "virtqueues of each VF (VQ_CFG/VQ_NOTIFY_CFG parts)",
        },
        vq_size: u32 {
            default: 256,
            description: "descriptors of the virtual admin queue (commands needing more are counted)",
        },
        legacy_io: u8 {
            default: 0,
            description: "offer the legacy-interface admin commands (transitional VFs)",
        },
    },
}

#[pin_data]
struct VirtioRsSim {
    #[pin]
    control: control::Control,
    #[pin]
    reg: hook::Registration,
}

impl kernel::InPlaceModule for VirtioRsSim {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(|| {
            let pf = pf::PfRef::find_virtio_net_pf()?;
            let cfg = device::Config {
                get_limit: module_parameters::get_limit.value(),
                set_limit: module_parameters::set_limit.value(),
                size: module_parameters::state_size.value(),
                queues: module_parameters::queues.value(),
                vq_size: module_parameters::vq_size.value(),
                legacy_io: module_parameters::legacy_io.value() != 0,
            };
            let sim = device::Sim::new(pf, &cfg)?;
            pr_info!(
                "serving admin commands of PF with {} VFs, limits {}/{}, state {} bytes, legacy {}\n",
                sim.pf().total_vfs(),
                cfg.get_limit,
                cfg.set_limit,
                cfg.size,
                cfg.legacy_io
            );
            Ok(try_pin_init!(Self {
                control <- control::Control::new(sim.clone()),
                reg <- hook::Registration::new(sim),
            }))
        })
    }
}
