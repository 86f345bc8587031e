// SPDX-License-Identifier: GPL-2.0

//! The driver: probe, ops selection and the device ops.
//!
//! Binds only through `driver_override` (ids 1af4:1041 virtio-net and
//! 1af4:1042 virtio-blk, as upstream). A virtio VF whose PF (bound to
//! `virtio-pci`) offers the device-parts admin commands gets live migration
//! (STOP_COPY | P2P | PRE_COPY, see [`crate::migration`]); every other device it is
//! bound to, including a PF or a non-virtio device named in
//! `driver_override`, is served as a plain vfio-pci device, as upstream
//! does. A virtio-net VF without BAR0 whose PF offers the legacy admin
//! commands is served as a transitional device ([`crate::legacy`], when
//! built with legacy I/O), with live migration if its PF also offers device
//! parts, as upstream's `virtiovf_vfio_pci_tran_lm_ops`. Probe logs which it
//! chose.

use kernel::{
    debugfs, fmt, new_mutex,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
};

#[cfg(virtio_rs_legacy)]
use crate::abstractions::vfio::pci::{RegionInfo, RegionIo};
use crate::abstractions::vfio::{
    migration::{MIGRATION_P2P, MIGRATION_PRE_COPY, MIGRATION_STOP_COPY},
    pci::{self, CoreDevice, DeviceOps, NewDevice, OpenDevice, ProbeDevice, VfioPciDeviceId},
};
use crate::abstractions::virtio_admin::Vf;
#[cfg(virtio_rs_legacy)]
use crate::legacy::LegacyIo;
use crate::migration::{mig_of, MigDevice, MigStats, MigrationStateMachine};

/// PCI vendor id of virtio devices (Red Hat / Qumranet).
const VIRTIO_VENDOR: u16 = 0x1af4;
/// Modern virtio-net.
pub(crate) const VIRTIO_NET: u16 = 0x1041;
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
#[pin_data]
pub(crate) struct VirtioDevice {
    /// Migration state, for a VF whose PF offers device parts.
    mig: Option<Pin<KBox<MigDevice>>>,
    /// Legacy I/O, for a transitional VF.
    #[cfg(virtio_rs_legacy)]
    legacy: Option<Pin<KBox<LegacyIo>>>,
    /// The migration counters in debugfs. They belong to the binding, not
    /// to the object: a migration file can keep the object alive after the
    /// device was unbound, and a new binding of the same function must be
    /// able to create the directory of the same name. Removed at unbind.
    #[pin]
    debugfs: Mutex<Option<Pin<KBox<StatsFile>>>>,
}

/// `/sys/kernel/debug/virtio_vfio_pci_rs-<BDF>/stats`.
#[pin_data]
struct StatsFile {
    #[pin]
    _file: debugfs::File<Arc<MigStats>>,
    _dir: debugfs::Dir,
}

fn show_stats(stats: &Arc<MigStats>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    stats.show(f)
}

impl StatsFile {
    fn new(name: &CStr, stats: Arc<MigStats>) -> impl PinInit<Self, Error> + '_ {
        let dir = debugfs::Dir::new(name);
        try_pin_init!(Self {
            _file <- dir.read_callback_file(c"stats", stats, &show_stats),
            _dir: dir,
        })
    }
}

/// The migration state of a VF and its debugfs file.
type MigParts = (Pin<KBox<MigDevice>>, Pin<KBox<StatsFile>>);

impl VirtioDevice {
    fn new(mig: Option<MigParts>) -> impl PinInit<Self, Error> {
        let (mig, debugfs) = mig.unzip();
        try_pin_init!(Self {
            mig,
            #[cfg(virtio_rs_legacy)]
            legacy: None,
            debugfs <- new_mutex!(debugfs),
        })
    }

    #[cfg(virtio_rs_legacy)]
    fn new_transitional(
        mig: Option<MigParts>,
        legacy: Pin<KBox<LegacyIo>>,
    ) -> impl PinInit<Self, Error> {
        let (mig, debugfs) = mig.unzip();
        try_pin_init!(Self {
            mig,
            legacy: Some(legacy),
            debugfs <- new_mutex!(debugfs),
        })
    }

    /// The legacy I/O state, if the device is transitional.
    #[cfg(virtio_rs_legacy)]
    fn legacy(&self) -> Option<&LegacyIo> {
        self.legacy.as_deref()
    }

    /// The migration state, if the device migrates.
    pub(crate) fn mig(&self) -> Option<&MigDevice> {
        self.mig.as_deref()
    }
}

impl pci::Driver for VirtioVfioPci {
    type Data = VirtioDevice;

    const NAME: &'static CStr = c"virtio_vfio_pci_rs";
    const ID_TABLE: &'static dyn kernel::device_id::IdTable<VfioPciDeviceId, ()> =
        &VIRTIO_VFIO_PCI_RS_IDS;

    fn probe(pdev: &ProbeDevice<'_>) -> Result<NewDevice<Self>> {
        let virtio = pdev.vendor_id() == VIRTIO_VENDOR
            && matches!(pdev.device_id(), VIRTIO_NET | VIRTIO_BLK);
        if !(virtio && pdev.is_virtfn()) {
            dev_info!(
                pdev.as_ref(),
                "{:04x}:{:04x} is not a virtio VF: serving it as a plain vfio-pci device\n",
                pdev.vendor_id(),
                pdev.device_id()
            );
            return CoreDevice::create::<PlainVfioOps>(pdev, VirtioDevice::new(None));
        }
        #[cfg(virtio_rs_legacy)]
        if let Some(vf) = LegacyIo::supported(pdev) {
            let legacy = KBox::pin_init(LegacyIo::new(vf, pdev)?, GFP_KERNEL)?;
            let mig = mig_parts(pdev)?;
            let migrates = mig.is_some();
            let mut dev = CoreDevice::create::<TransitionalOps>(
                pdev,
                VirtioDevice::new_transitional(mig, legacy),
            )?;
            if migrates {
                dev.set_migration::<MigrationStateMachine>(
                    MIGRATION_STOP_COPY | MIGRATION_P2P | MIGRATION_PRE_COPY,
                );
            }
            dev_info!(
                pdev.as_ref(),
                "virtio VF: transitional (legacy I/O BAR0), {}\n",
                if migrates {
                    "live migration enabled (STOP_COPY | P2P | PRE_COPY)"
                } else {
                    "its PF offers no device parts: no live migration"
                }
            );
            return Ok(dev);
        }
        let Some(mig) = mig_parts(pdev)? else {
            dev_info!(
                pdev.as_ref(),
                "virtio VF: its PF offers no device parts: plain vfio-pci, no live migration\n"
            );
            return CoreDevice::create::<PlainVfioOps>(pdev, VirtioDevice::new(None));
        };
        let mut dev = CoreDevice::create::<LiveMigrationOps>(pdev, VirtioDevice::new(Some(mig)))?;
        dev.set_migration::<MigrationStateMachine>(
            MIGRATION_STOP_COPY | MIGRATION_P2P | MIGRATION_PRE_COPY,
        );
        dev_info!(
            pdev.as_ref(),
            "virtio VF: live migration enabled (STOP_COPY | P2P | PRE_COPY)\n"
        );
        Ok(dev)
    }

    fn unbind(dev: &CoreDevice<Self>) {
        // The debugfs directory and the right to send admin commands go
        // with the binding (see `VirtioDevice` and `Vf`).
        drop(dev.data().debugfs.lock().take());
        if let Some(mig) = mig_of(dev) {
            mig.unbind();
        }
        #[cfg(virtio_rs_legacy)]
        if let Some(legacy) = dev.data().get_ref().legacy() {
            legacy.unbind();
        }
    }

    fn reset_done(dev: &CoreDevice<Self>) {
        // As upstream: the legacy shadow first, then migration.
        #[cfg(virtio_rs_legacy)]
        if let Some(legacy) = dev.data().get_ref().legacy() {
            legacy.reset_done();
        }
        if let Some(mig) = mig_of(dev) {
            mig.reset_done();
        }
    }
}

/// The migration state of a VF whose PF offers device parts, with its
/// debugfs file; `None` if the PF does not.
fn mig_parts(pdev: &ProbeDevice<'_>) -> Result<Option<MigParts>> {
    let Some(vf) = Vf::with_dev_parts(pdev) else {
        return Ok(None);
    };
    let stats = Arc::new(MigStats::new(), GFP_KERNEL)?;
    let mig = KBox::pin_init(MigDevice::new(vf, stats.clone()), GFP_KERNEL)?;
    let name = CString::try_from_fmt(fmt!("virtio_vfio_pci_rs-{}", pdev.as_ref().name()))?;
    let debugfs = KBox::pin_init(StatsFile::new(&name, stats), GFP_KERNEL)?;
    Ok(Some((mig, debugfs)))
}

/// Ops of a device without migration: plain vfio-pci behaviour (upstream's
/// `virtiovf_vfio_pci_ops`).
struct PlainVfioOps;

#[vtable]
impl DeviceOps for PlainVfioOps {
    type Driver = VirtioVfioPci;
    const NAME: &'static CStr = c"virtio-vfio-pci-rs";
}

/// Ops of a VF with live migration (upstream's `virtiovf_vfio_pci_lm_ops`).
struct LiveMigrationOps;

#[vtable]
impl DeviceOps for LiveMigrationOps {
    type Driver = VirtioVfioPci;
    const NAME: &'static CStr = c"virtio-vfio-pci-rs-lm";

    fn open_device(dev: &OpenDevice<'_, VirtioVfioPci>) -> Result {
        if let Some(mig) = mig_of(dev) {
            mig.open();
        }
        Ok(())
    }

    fn close_device(dev: &CoreDevice<VirtioVfioPci>) {
        if let Some(mig) = mig_of(dev) {
            mig.close();
        }
    }
}

/// Ops of a transitional VF, with live migration when its PF offers device
/// parts (upstream's `virtiovf_vfio_pci_tran_lm_ops`): the config space,
/// BAR0 and its region info are those of [`LegacyIo`].
#[cfg(virtio_rs_legacy)]
struct TransitionalOps;

#[cfg(virtio_rs_legacy)]
#[vtable]
impl DeviceOps for TransitionalOps {
    type Driver = VirtioVfioPci;
    const NAME: &'static CStr = c"virtio-vfio-pci-rs-trans-lm";

    fn open_device(dev: &OpenDevice<'_, VirtioVfioPci>) -> Result {
        if let Some(legacy) = dev.data().get_ref().legacy() {
            legacy.open(dev)?;
        }
        LiveMigrationOps::open_device(dev)
    }

    fn close_device(dev: &CoreDevice<VirtioVfioPci>) {
        LiveMigrationOps::close_device(dev)
    }

    fn read(dev: &OpenDevice<'_, VirtioVfioPci>, io: &RegionIo<'_>) -> Result<usize> {
        match dev.data().get_ref().legacy() {
            Some(legacy) => legacy.read(dev, io),
            None => dev.core_read(io),
        }
    }

    fn write(dev: &OpenDevice<'_, VirtioVfioPci>, io: &RegionIo<'_>) -> Result<usize> {
        match dev.data().get_ref().legacy() {
            Some(legacy) => legacy.write(dev, io),
            None => dev.core_write(io),
        }
    }

    fn region_info(dev: &OpenDevice<'_, VirtioVfioPci>, info: &mut RegionInfo<'_>) -> Result {
        match dev.data().get_ref().legacy() {
            Some(legacy) => legacy.region_info(dev, info),
            None => dev.core_region_info(info),
        }
    }
}
