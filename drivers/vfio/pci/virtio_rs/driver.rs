// SPDX-License-Identifier: GPL-2.0

//! The driver: probe and the device ops.
//!
//! Binds only through `driver_override` (ids 1af4:1041 virtio-net and
//! 1af4:1042 virtio-blk, as upstream), and serves every device it is bound
//! to as a vfio-pci device. As upstream does, a device that is not a virtio
//! VF (a PF, or another device named in `driver_override`) is served as a
//! plain vfio-pci device; we log that choice once per probe.

use kernel::prelude::*;

use crate::vfio::pci::{self, CoreDevice, DeviceOps, NewDevice, ProbeDevice, VfioPciDeviceId};

/// PCI vendor id of virtio devices (Red Hat / Qumranet).
const VIRTIO_VENDOR: u16 = 0x1af4;
/// Modern virtio-net.
const VIRTIO_NET: u16 = 0x1041;
/// Modern virtio-blk.
const VIRTIO_BLK: u16 = 0x1042;

kernel::module_device_table!(
    "pci",
    VfioPciDeviceId,
    VIRTIO_VFIO_PCI_RS_IDS,
    @none,
    [
        VfioPciDeviceId::new(VIRTIO_VENDOR, VIRTIO_NET),
        VfioPciDeviceId::new(VIRTIO_VENDOR, VIRTIO_BLK),
    ]
);

/// The driver.
pub(crate) struct VirtioVfioPci;

/// Per-device state of the driver.
pub(crate) struct VirtioDevice {
    /// Whether the device is a virtio VF (as opposed to a device served as
    /// plain vfio-pci).
    virtio_vf: bool,
}

impl pci::Driver for VirtioVfioPci {
    type Data = VirtioDevice;

    const NAME: &'static CStr = c"virtio_vfio_pci_rs";
    const ID_TABLE: &'static dyn kernel::device_id::IdTable<VfioPciDeviceId, ()> =
        &VIRTIO_VFIO_PCI_RS_IDS;

    fn probe(pdev: &ProbeDevice<'_>) -> Result<NewDevice<Self>> {
        let virtio =
            pdev.vendor() == VIRTIO_VENDOR && matches!(pdev.device_id(), VIRTIO_NET | VIRTIO_BLK);
        let virtio_vf = virtio && pdev.is_virtfn();
        if virtio_vf {
            dev_info!(
                pdev.as_ref(),
                "virtio VF: serving it through vfio-pci, live migration not supported yet\n"
            );
        } else {
            dev_info!(
                pdev.as_ref(),
                "{:04x}:{:04x} is not a virtio VF: serving it as a plain vfio-pci device\n",
                pdev.vendor(),
                pdev.device_id()
            );
        }
        CoreDevice::create::<PlainOps>(pdev, Ok::<_, Error>(VirtioDevice { virtio_vf }))
    }
}

impl VirtioDevice {
    /// Whether the device is a virtio VF.
    #[allow(dead_code)]
    pub(crate) fn is_virtio_vf(&self) -> bool {
        self.virtio_vf
    }
}

/// Ops of a device without migration: plain vfio-pci behaviour.
struct PlainOps;

#[vtable]
impl DeviceOps for PlainOps {
    type Driver = VirtioVfioPci;
    const NAME: &'static CStr = c"virtio-vfio-pci-rs";
}
