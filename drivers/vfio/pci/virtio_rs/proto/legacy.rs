// SPDX-License-Identifier: GPL-2.0

//! Legacy (virtio 0.9) I/O of a transitional VF: what the driver shows in
//! PCI config space and how it decodes an access to the emulated I/O BAR0.
//!
//! A transitional virtio-net device has PCI device id 0x1000, revision 0,
//! the virtio device type in its subsystem id and an I/O BAR0 holding the
//! legacy registers: the common configuration (features, queue address,
//! size, select and notify, status, ISR, and the two MSI-X vectors when
//! MSI-X is on) followed by the device configuration (MAC and link status).
//! A VF has no I/O BAR, so the driver emulates one: config-space reads are
//! patched as below ([`overlay_config_read`]); the command register's IO bit
//! and BAR0 are kept in a shadow written by config writes
//! ([`Shadow::config_write`]); a BAR0 access ([`decode_bar0`]) becomes a
//! 16-bit write to the VF's notify address for QUEUE_NOTIFY, and a legacy
//! admin command of the PF for everything else.
//!
//! All of it is byte for byte what upstream's `legacy_io.c` does; the
//! differences are fixed upstream bugs, listed in `Documentation/design.rst`.

/// Size of the emulated BAR0: the common configuration with MSI-X (24)
/// plus `struct virtio_net_config` up to `status` (8). A power of two, as
/// a BAR size must be.
pub const BAR0_SIZE: u64 = 32;
const _: () = assert!(BAR0_SIZE.is_power_of_two());
/// The address bits of BAR0 below its size, which read as 0.
const BAR0_ADDR_LOW: u32 = {
    let low = BAR0_SIZE.wrapping_sub(1);
    assert!(low <= 0xff);
    // CAST: checked just above to fit.
    #[allow(clippy::as_conversions)]
    let low = low as u32;
    low
};

/// Offset of QUEUE_NOTIFY (`VIRTIO_PCI_QUEUE_NOTIFY`) in the common
/// configuration.
pub const QUEUE_NOTIFY: u64 = 16;

/// Offset of the device configuration in BAR0 (`VIRTIO_PCI_CONFIG_OFF()`):
/// after the two MSI-X vectors when MSI-X is on.
pub const fn config_off(msix: bool) -> u64 {
    if msix {
        24
    } else {
        20
    }
}

/// PCI config space offsets (`include/uapi/linux/pci_regs.h`).
mod pci {
    pub(super) const DEVICE_ID: u64 = 0x02;
    pub(super) const COMMAND: u64 = 0x04;
    pub(super) const REVISION_ID: u64 = 0x08;
    pub(super) const BASE_ADDRESS_0: u64 = 0x10;
    pub(super) const SUBSYSTEM_VENDOR_ID: u64 = 0x2c;
    pub(super) const SUBSYSTEM_ID: u64 = 0x2e;
    pub(super) const COMMAND_IO: u16 = 0x1;
    /// `COMMAND_IO` in the register's low byte.
    pub(super) const COMMAND_IO_LOW_BYTE: u8 = 0x1;
    pub(super) const BASE_ADDRESS_SPACE_IO: u32 = 0x1;
}

/// Config space bytes below this offset may be patched.
pub const OVERLAY_END: u64 = 0x30;

/// Device id of a transitional virtio-net device (`VIRTIO_TRANS_ID_NET`).
pub const TRANS_ID_NET: u16 = 0x1000;
/// Virtio device type of a network card (`VIRTIO_ID_NET`), the subsystem id
/// of a transitional device.
pub const VIRTIO_ID_NET: u16 = 1;
/// Subsystem vendor id (`PCI_VENDOR_ID_REDHAT_QUMRANET`).
pub const VENDOR_REDHAT_QUMRANET: u16 = 0x1af4;

/// The part of register `[reg, reg + reg_len)` that an access of `len`
/// bytes at `pos` covers: (index in the access buffer, index in the
/// register, bytes). `vfio_pci_core_range_intersect_range()` in Rust.
fn intersect(pos: u64, len: usize, reg: u64, reg_len: usize) -> Option<(usize, usize, usize)> {
    let end = pos.saturating_add(u64::try_from(len).ok()?);
    let reg_end = reg.saturating_add(u64::try_from(reg_len).ok()?);
    let start = pos.max(reg);
    let stop = end.min(reg_end);
    if start >= stop {
        return None;
    }
    let in_buf = usize::try_from(start.checked_sub(pos)?).ok()?;
    let in_reg = usize::try_from(start.checked_sub(reg)?).ok()?;
    let n = usize::try_from(stop.checked_sub(start)?).ok()?;
    Some((in_buf, in_reg, n))
}

/// Copy `src` (if any) into `dst` at `at`, as far as it fits.
fn put_bytes(dst: &mut [u8], at: usize, src: Option<&[u8]>) {
    if let Some(src) = src {
        if let Some(d) = dst.get_mut(at..at.saturating_add(src.len())) {
            d.copy_from_slice(src);
        }
    }
}

/// Copy the covered bytes of register value `val` (little-endian) into the
/// access buffer `buf` read at `pos`.
fn patch(buf: &mut [u8], pos: u64, reg: u64, val: &[u8]) {
    if let Some((in_buf, in_reg, n)) = intersect(pos, buf.len(), reg, val.len()) {
        if let (Some(dst), Some(src)) = (
            buf.get_mut(in_buf..in_buf.saturating_add(n)),
            val.get(in_reg..in_reg.saturating_add(n)),
        ) {
            dst.copy_from_slice(src);
        }
    }
}

/// The shadowed config registers: what userspace last wrote to the
/// command register and to BAR0 (little-endian values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shadow {
    /// PCI_COMMAND as written.
    pub cmd: u16,
    /// PCI_BASE_ADDRESS_0 as written.
    pub bar0: u32,
}

impl Shadow {
    /// Whether the IO bit of the shadow command register is set: BAR0
    /// accesses fail with `EIO` otherwise.
    pub fn io_enabled(&self) -> bool {
        self.cmd & pci::COMMAND_IO != 0
    }

    /// Take the bytes of a config write of `data` at `pos` that fall on the
    /// command register or on BAR0 (the write itself also goes to the
    /// device).
    pub fn config_write(&mut self, pos: u64, data: &[u8]) {
        let mut cmd = self.cmd.to_le_bytes();
        if let Some((in_buf, in_reg, n)) = intersect(pos, data.len(), pci::COMMAND, cmd.len()) {
            put_bytes(&mut cmd, in_reg, data.get(in_buf..in_buf.saturating_add(n)));
        }
        self.cmd = u16::from_le_bytes(cmd);
        let mut bar0 = self.bar0.to_le_bytes();
        if let Some((in_buf, in_reg, n)) =
            intersect(pos, data.len(), pci::BASE_ADDRESS_0, bar0.len())
        {
            put_bytes(
                &mut bar0,
                in_reg,
                data.get(in_buf..in_buf.saturating_add(n)),
            );
        }
        self.bar0 = u32::from_le_bytes(bar0);
    }

    /// The value BAR0 reads as: the written address aligned to the BAR
    /// size, flagged as I/O space.
    pub fn bar0_value(&self) -> u32 {
        (self.bar0 & !BAR0_ADDR_LOW) | pci::BASE_ADDRESS_SPACE_IO
    }
}

/// Patch the bytes `buf` that a config-space read at `pos` returned, as a
/// transitional device shows them: device id 0x1000, the command
/// register's IO bit if the shadow has it, revision 0, BAR0 as an I/O BAR
/// of [`BAR0_SIZE`] bytes at the shadow address, subsystem vendor 0x1af4 and
/// subsystem id 1 (virtio-net).
pub fn overlay_config_read(buf: &mut [u8], pos: u64, shadow: &Shadow) {
    patch(buf, pos, pci::DEVICE_ID, &TRANS_ID_NET.to_le_bytes());
    if shadow.io_enabled() {
        if let Some((in_buf, 0, _)) = intersect(pos, buf.len(), pci::COMMAND, 2) {
            if let Some(b) = buf.get_mut(in_buf) {
                *b |= pci::COMMAND_IO_LOW_BYTE;
            }
        }
    }
    patch(buf, pos, pci::REVISION_ID, &[0]);
    patch(
        buf,
        pos,
        pci::BASE_ADDRESS_0,
        &shadow.bar0_value().to_le_bytes(),
    );
    patch(buf, pos, pci::SUBSYSTEM_ID, &VIRTIO_ID_NET.to_le_bytes());
    patch(
        buf,
        pos,
        pci::SUBSYSTEM_VENDOR_ID,
        &VENDOR_REDHAT_QUMRANET.to_le_bytes(),
    );
}

/// Where a BAR0 access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar0Target {
    /// QUEUE_NOTIFY: a 16-bit access to the VF's notify address.
    Notify,
    /// The legacy common configuration, at this offset.
    Common(u8),
    /// The legacy device configuration, at this offset.
    Device(u8),
}

/// Why a BAR0 access is refused (both `EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar0Error {
    /// The access does not fit in BAR0.
    OutOfRange,
    /// QUEUE_NOTIFY accessed with another width than 2 bytes.
    NotifyWidth,
}

/// Whether an access of `count` bytes at `pos` fits in BAR0 (checked before
/// anything else but the IO bit).
pub fn bar0_in_range(pos: u64, count: usize) -> bool {
    u64::try_from(count)
        .ok()
        .and_then(|c| pos.checked_add(c))
        .is_some_and(|end| end <= BAR0_SIZE)
}

/// Decode a BAR0 access of `count` bytes at `pos` (`count` > 0) with MSI-X
/// on or off: QUEUE_NOTIFY exactly at its offset, the common configuration
/// below [`config_off`], the device configuration from there.
pub fn decode_bar0(pos: u64, count: usize, msix: bool) -> Result<Bar0Target, Bar0Error> {
    if !bar0_in_range(pos, count) {
        return Err(Bar0Error::OutOfRange);
    }
    if pos == QUEUE_NOTIFY {
        return if count == 2 {
            Ok(Bar0Target::Notify)
        } else {
            Err(Bar0Error::NotifyWidth)
        };
    }
    let off = config_off(msix);
    let to_u8 = |v: u64| u8::try_from(v).map_err(|_| Bar0Error::OutOfRange);
    match pos.checked_sub(off) {
        Some(dev) => Ok(Bar0Target::Device(to_u8(dev)?)),
        None => Ok(Bar0Target::Common(to_u8(pos)?)),
    }
}
