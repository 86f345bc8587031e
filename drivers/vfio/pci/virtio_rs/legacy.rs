// SPDX-License-Identifier: GPL-2.0

//! Legacy I/O for transitional VFs (`virtio_rs_legacy`: Kconfig option
//! `VIRTIO_VFIO_PCI_RS_ADMIN_LEGACY`, or the kernel's
//! `VIRTIO_PCI_ADMIN_LEGACY` out of tree).
//!
//! A modern virtio-net VF (device 0x1041) without a BAR0 of its own, whose
//! PF offers the legacy-interface admin commands, is shown to userspace as
//! a transitional device, so that a guest's legacy (virtio 0.9) driver can
//! use it: device id 0x1000, revision 0, subsystem ids of a virtio-net card
//! and a 32-byte I/O BAR0 that the driver emulates (see
//! [`crate::proto::legacy`] for the register layout and decoding).
//!
//! - Config-space reads are served by vfio-pci, then patched; writes of the
//!   command register and of BAR0 are kept in a shadow (IO enable, BAR
//!   address) and passed on.
//! - A BAR0 access needs the shadow IO bit (`EIO`) and must fit in 32
//!   bytes (`EINVAL`). QUEUE_NOTIFY (offset 16, exactly 2 bytes) is a 16-bit
//!   write (or read) of the VF's notify address, which `LEGACY_NOTIFY_INFO`
//!   gave at probe, through the mapping vfio-pci made of that BAR at open.
//!   Every other access becomes LEGACY_{COMMON,DEV}_CFG_{READ,WRITE}
//!   through the PF: the common configuration below offset 24 if the
//!   device's interrupts are MSI-X (20 otherwise), the device configuration
//!   from there. The commands of one device are serialised.
//! - A function reset clears the shadow command register (the BAR is
//!   disabled until userspace enables I/O again).
//!
//! This is what upstream's `legacy_io.c` does. Differences, all fixes of
//! upstream bugs: the shadow registers are locked (upstream reads and
//! writes them without a lock); a config read that vfio-pci answered short
//! returns that count and patches only those bytes (upstream returns the
//! full count); the notify address is checked to lie inside a memory BAR of
//! the VF before it is used (upstream trusts the device's offset); user
//! memory is copied outside the device's lock (upstream copies under it).

use kernel::{
    new_mutex, new_spinlock,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Mutex, SpinLock,
    },
};

use crate::abstractions::vfio::pci::{
    region, region_flags, OpenDevice, ProbeDevice, RegionInfo, RegionIo,
};
use crate::abstractions::virtio_admin::{LegacyArea, LegacyBuf, Vf, LEGACY_BUF_LEN};
use crate::driver::{VirtioVfioPci, VIRTIO_NET};
use crate::proto::legacy::{
    bar0_in_range, decode_bar0, overlay_config_read, Bar0Target, Shadow, BAR0_SIZE, OVERLAY_END,
    QUEUE_NOTIFY,
};

/// The shadowed config registers: PCI_COMMAND and PCI_BASE_ADDRESS_0
/// (offset, length).
const SHADOWED: [(u64, usize); 2] = [(0x04, 2), (0x10, 4)];

/// The bytes of an access of `len` bytes at `pos` that fall on register
/// `[reg, reg + reg_len)`: (index in the access, count).
fn overlap(pos: u64, len: usize, reg: u64, reg_len: usize) -> Option<(usize, usize)> {
    let end = pos.checked_add(u64::try_from(len).ok()?)?;
    let start = pos.max(reg);
    let stop = end.min(reg.checked_add(u64::try_from(reg_len).ok()?)?);
    if start >= stop {
        return None;
    }
    Some((
        usize::try_from(start - pos).ok()?,
        usize::try_from(stop - start).ok()?,
    ))
}

const _: () = assert!(LEGACY_BUF_LEN as u64 == BAR0_SIZE);

/// The legacy I/O state of a transitional VF.
#[pin_data]
pub(crate) struct LegacyIo {
    /// Where QUEUE_NOTIFY goes: a memory BAR of the VF and an offset in it.
    notify_bar: u8,
    notify_offset: u64,
    /// The shadow command register and BAR0. Held only for plain reads
    /// and writes of the two values (never across a user copy, a command
    /// or anything that could reset the device), so `reset_done` never
    /// waits on it for long.
    #[pin]
    shadow: SpinLock<Shadow>,
    /// Failed runtime resumes (logged once).
    pm_failures: Atomic<u32>,
    /// The legacy admin commands of this VF and their buffer.
    #[pin]
    cmds: Mutex<Commands>,
}

struct Commands {
    vf: Vf,
    buf: LegacyBuf,
}

impl LegacyIo {
    /// The VF being probed, if it is to be transitional: a virtio-net VF
    /// without BAR0 whose PF offers every legacy admin command (upstream's
    /// `virtiovf_support_legacy_io()`).
    pub(crate) fn supported(pdev: &ProbeDevice<'_>) -> Option<Vf> {
        if pdev.device_id() != VIRTIO_NET || pdev.bar_exists(0) {
            return None;
        }
        Vf::with_legacy_io(pdev)
    }

    /// Ask the PF where the VF's queue notifications go
    /// (`LEGACY_NOTIFY_INFO`, as upstream does at init) and set up.
    pub(crate) fn new(mut vf: Vf, pdev: &ProbeDevice<'_>) -> Result<impl PinInit<Self, Error>> {
        let (notify_bar, notify_offset) = vf.legacy_notify_info().inspect_err(|e| {
            dev_err!(
                pdev.as_ref(),
                "legacy I/O: LEGACY_NOTIFY_INFO failed: {:?}\n",
                e
            );
        })?;
        if !pdev.bar_exists(notify_bar) {
            dev_err!(
                pdev.as_ref(),
                "legacy I/O: the notify address is in BAR {}, which the VF does not have\n",
                notify_bar
            );
            return Err(EINVAL);
        }
        let buf = LegacyBuf::new()?;
        Ok(try_pin_init!(Self {
            notify_bar,
            notify_offset,
            pm_failures: Atomic::new(0),
            shadow <- new_spinlock!(Shadow::default()),
            cmds <- new_mutex!(Commands { vf, buf }),
        }))
    }

    /// The device was opened: the notify address must be mapped (vfio-pci
    /// mapped the BARs in `vfio_pci_core_enable()`) and lie inside its BAR.
    pub(crate) fn open(&self, dev: &OpenDevice<'_, VirtioVfioPci>) -> Result {
        if let Err(e) = dev.bar_contains(self.notify_bar, self.notify_offset, 2) {
            dev_err!(
                dev.as_ref(),
                "legacy I/O: notify offset {:#x} of BAR {} not usable: {:?}\n",
                self.notify_offset,
                self.notify_bar,
                e
            );
            return Err(e);
        }
        Ok(())
    }

    /// The function was reset: I/O decoding is off again.
    pub(crate) fn reset_done(&self) {
        self.shadow.lock().cmd = 0;
    }

    /// The binding ends: no legacy command may be sent any more.
    pub(crate) fn unbind(&self) {
        self.cmds.lock().vf.revoke();
    }

    /// `read()` on the device fd.
    pub(crate) fn read(
        &self,
        dev: &OpenDevice<'_, VirtioVfioPci>,
        io: &RegionIo<'_>,
    ) -> Result<usize> {
        if io.is_empty() {
            return Ok(0);
        }
        match io.index() {
            region::CONFIG => self.read_config(dev, io),
            region::BAR0 => self.bar0(dev, io, false),
            _ => dev.core_read(io),
        }
    }

    /// `write()` on the device fd.
    pub(crate) fn write(
        &self,
        dev: &OpenDevice<'_, VirtioVfioPci>,
        io: &RegionIo<'_>,
    ) -> Result<usize> {
        if io.is_empty() {
            return Ok(0);
        }
        match io.index() {
            region::CONFIG => self.write_config(dev, io),
            region::BAR0 => self.bar0(dev, io, true),
            _ => dev.core_write(io),
        }
    }

    /// `VFIO_DEVICE_GET_REGION_INFO`: BAR0 is the emulated I/O BAR (32
    /// bytes, read/write, no mmap).
    pub(crate) fn region_info(
        &self,
        dev: &OpenDevice<'_, VirtioVfioPci>,
        info: &mut RegionInfo<'_>,
    ) -> Result {
        if info.index() != region::BAR0 {
            return dev.core_region_info(info);
        }
        info.set(BAR0_SIZE, region_flags::READ | region_flags::WRITE);
        Ok(())
    }

    fn read_config(&self, dev: &OpenDevice<'_, VirtioVfioPci>, io: &RegionIo<'_>) -> Result<usize> {
        let n = dev.core_read(io)?;
        let pos = io.offset();
        if pos >= OVERLAY_END || n == 0 {
            return Ok(n);
        }
        // Patch the bytes read that fall below OVERLAY_END.
        let len = usize::try_from(OVERLAY_END - pos).unwrap_or(0).min(n);
        let mut tmp = [0u8; OVERLAY_END as usize];
        let bytes = tmp.get_mut(..len).ok_or(EINVAL)?;
        let (mut r, mut w) = io.user().reader_writer();
        r.read_slice(bytes)?;
        let shadow = *self.shadow.lock();
        overlay_config_read(bytes, pos, &shadow);
        w.write_slice(bytes)?;
        Ok(n)
    }

    fn write_config(
        &self,
        dev: &OpenDevice<'_, VirtioVfioPci>,
        io: &RegionIo<'_>,
    ) -> Result<usize> {
        let pos = io.offset();
        // As upstream: the bytes on COMMAND, then those on BAR0, each
        // taken into the shadow as soon as it is copied (a fault on the
        // second leaves the first applied), then the write itself.
        for (reg, len) in SHADOWED {
            let Some((in_buf, n)) = overlap(pos, io.len(), reg, len) else {
                continue;
            };
            let mut tmp = [0u8; 4];
            let bytes = tmp.get_mut(..n).ok_or(EINVAL)?;
            let mut r = io.user().reader();
            r.skip(in_buf)?;
            r.read_slice(bytes)?;
            let at = pos
                .checked_add(u64::try_from(in_buf).map_err(|_| EINVAL)?)
                .ok_or(EINVAL)?;
            self.shadow.lock().config_write(at, bytes);
        }
        dev.core_write(io)
    }

    /// A BAR0 access.
    fn bar0(
        &self,
        dev: &OpenDevice<'_, VirtioVfioPci>,
        io: &RegionIo<'_>,
        write: bool,
    ) -> Result<usize> {
        let (pos, count) = (io.offset(), io.len());
        if !self.shadow.lock().io_enabled() {
            return Err(EIO);
        }
        if !bar0_in_range(pos, count) {
            return Err(EINVAL);
        }
        let _pm = dev.pm_runtime_get().map_err(|e| {
            // Upstream logs every failure, rate limited; once per device
            // is enough to tell why accesses fail.
            if self.pm_failures.fetch_add(1, Relaxed) == 0 {
                dev_info!(dev.as_ref(), "runtime resume failed {:?}\n", e);
            }
            EIO
        })?;
        let msix = pos != QUEUE_NOTIFY && dev.msix_enabled();
        let target = decode_bar0(pos, count, msix).map_err(|_| EINVAL)?;
        let at = usize::try_from(pos).map_err(|_| EINVAL)?;
        let mut tmp = [0u8; LEGACY_BUF_LEN];
        let bytes = tmp.get_mut(..count).ok_or(EINVAL)?;
        let (area, offset) = match target {
            Bar0Target::Notify => {
                if write {
                    let mut v = [0u8; 2];
                    io.user().reader().read_slice(&mut v)?;
                    dev.bar_write16(self.notify_bar, self.notify_offset, u16::from_ne_bytes(v))?;
                } else {
                    let v = dev.bar_read16(self.notify_bar, self.notify_offset)?;
                    io.user().writer().write_slice(&v.to_ne_bytes())?;
                }
                return Ok(count);
            }
            Bar0Target::Common(o) => (LegacyArea::Common, o),
            Bar0Target::Device(o) => (LegacyArea::Device, o),
        };
        if write {
            io.user().reader().read_slice(bytes)?;
        }
        {
            let mut guard = self.cmds.lock();
            let c = &mut *guard;
            let slot = c
                .buf
                .bytes_mut()
                .get_mut(at..at.saturating_add(count))
                .ok_or(EINVAL)?;
            if write {
                slot.copy_from_slice(bytes);
                c.vf.legacy_write(area, offset, &mut c.buf, at, count)?;
            } else {
                c.vf.legacy_read(area, offset, &mut c.buf, at, count)?;
                let slot = c
                    .buf
                    .bytes()
                    .get(at..at.saturating_add(count))
                    .ok_or(EINVAL)?;
                bytes.copy_from_slice(slot);
            }
        }
        if !write {
            io.user().writer().write_slice(bytes)?;
        }
        Ok(count)
    }
}
