// SPDX-License-Identifier: GPL-2.0

//! The legacy interface of a VF (virtio 0.9.x PCI registers), as a view
//! onto its device parts.
//!
//! Wire side: the admin commands LEGACY_COMMON_CFG_WRITE/READ and
//! LEGACY_DEV_CFG_WRITE/READ of `include/uapi/linux/virtio_pci.h` (group
//! SR-IOV, member = VF number) carry `{u8 offset; u8 reserved[7]; u8
//! registers[]}` (writes) or `{u8 offset}` (reads, result = the bytes read);
//! [`crate::device`] parses them and calls [`Regs`].
//!
//! There is no separate legacy register file: every register a driver can
//! change is a field of a device part, so the legacy interface and the
//! modern state are the same device, and legacy writes migrate with
//! DEV_PARTS_GET/SET. Values are edited in place, never resized, so the
//! parts still validate after any legacy write. The common configuration
//! (24 bytes, MSI-X layout as the PF's driver uses it):
//!
//! | Off | Field             | Size | Access | Backed by                                   |
//! |-----|-------------------|------|--------|---------------------------------------------|
//! | 0   | HOST_FEATURES     | 4    | RO     | low 32 bits of the VF's device features     |
//! | 4   | GUEST_FEATURES    | 4    | RW     | DRV_FEATURES (write: `v & host`, high 0)    |
//! | 8   | QUEUE_PFN         | 4    | RW     | VQ_CFG of the selected queue, see below     |
//! | 12  | QUEUE_NUM         | 2    | RO     | VQ_CFG `queue_size` (0: no such queue)      |
//! | 14  | QUEUE_SEL         | 2    | RW     | PCI_COMMON_CFG at 0x16 (`queue_select`)     |
//! | 16  | QUEUE_NOTIFY      | 2    | none   | use the NOTIFY_INFO address instead         |
//! | 18  | STATUS            | 1    | RW     | DEVICE_STATUS; writing 0 resets, see below  |
//! | 19  | ISR               | 1    | RO     | per-VF byte, not a part; read clears it     |
//! | 20  | MSI_CONFIG_VECTOR | 2    | RW     | PCI_COMMON_CFG at 0x10 (`msix_config`)      |
//! | 22  | MSI_QUEUE_VECTOR  | 2    | RW     | VQ_CFG `vector` of the selected queue       |
//!
//! QUEUE_PFN reads `desc >> 12`. Writing a PFN `p != 0` sets the legacy
//! ring layout (4096-byte alignment): `desc = p << 12`, `driver = desc +
//! 16 * size`, `device = align_up(driver + 6 + 2 * size, 4096)`, `enabled =
//! 1`; writing 0 clears the three addresses and `enabled`. On a queue that
//! does not exist QUEUE_PFN and QUEUE_NUM read 0, MSI_QUEUE_VECTOR reads
//! `VIRTIO_MSI_NO_VECTOR`, and writes of both are ignored (as QEMU's legacy
//! device does). Writing STATUS 0 resets what the legacy interface sees:
//! driver features 0, status 0, in every VQ_CFG the addresses 0, `enabled`
//! 0 and `vector` `VIRTIO_MSI_NO_VECTOR`, `queue_select` 0, `msix_config`
//! `VIRTIO_MSI_NO_VECTOR`, ISR 0.
//!
//! An access must lie in 0..24, be at least one byte, start at a field's
//! start and end at a field's end (it may cover several whole fields); it
//! may not cover QUEUE_NOTIFY, and a write may not cover a read-only field.
//!
//! The device configuration is `struct virtio_net_config` up to `status`
//! (8 bytes): `mac[6]` at 0 is the value of the NET_CVQ_CFG part {class 1
//! (MAC), command 1 (ADDR_SET)}, readable and writable byte by byte;
//! `status` (le16) at 6 reads `VIRTIO_NET_S_LINK_UP` and is read-only. Any
//! byte range inside 0..8 may be read; a write must lie inside 0..6.
//!
//! Any other access, or one whose part is missing from the state (a test
//! replaced it), fails with [`Invalid`] (status EINVAL, qualifier
//! INVALID_FIELD on the wire) and has no effect: writes are checked in full
//! before anything changes. The registers work whether the VF is running or
//! stopped: the specification allows configuration access in stopped mode,
//! and refusing writes there would add a rule no driver relies on.

use core::ops::Range;

use crate::proto::{
    bytes::{le16, le32, le64},
    parts::{types, Part, Parts, PART_HDR_LEN, VQ_CFG_LEN},
};

/// Size of the legacy common configuration (with the MSI-X fields).
pub(crate) const COMMON_LEN: usize = 24;
/// Size of the legacy device configuration (`virtio_net_config` up to
/// `status`).
pub(crate) const DEVICE_LEN: usize = 8;
/// Bytes of the MAC address at the start of the device configuration.
const MAC_LEN: usize = 6;
/// `VIRTIO_MSI_NO_VECTOR`.
const NO_VECTOR: u16 = 0xffff;
/// `VIRTIO_NET_S_LINK_UP`.
const LINK_UP: u16 = 1;
/// Offsets of `msix_config` and `queue_select` in `virtio_pci_common_cfg`
/// (the selectors of their PCI_COMMON_CFG parts).
const CFG_MSIX_CONFIG: u32 = 0x10;
const CFG_QUEUE_SELECT: u32 = 0x16;

/// An access the device refuses: EINVAL with qualifier INVALID_FIELD on the
/// wire, and no effect.
#[derive(Debug)]
pub(crate) struct Invalid;

type Res<T> = core::result::Result<T, Invalid>;

/// A register of the legacy common configuration.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reg {
    HostFeatures,
    GuestFeatures,
    QueuePfn,
    QueueNum,
    QueueSel,
    QueueNotify,
    Status,
    Isr,
    MsiConfig,
    MsiQueue,
}

/// Where a register lies and whether a write may cover it.
struct Field {
    off: usize,
    len: usize,
    reg: Reg,
    writable: bool,
}

const fn field(off: usize, len: usize, reg: Reg, writable: bool) -> Field {
    Field {
        off,
        len,
        reg,
        writable,
    }
}

/// The common configuration, field by field, in offset order.
const FIELDS: [Field; 10] = [
    field(0, 4, Reg::HostFeatures, false),
    field(4, 4, Reg::GuestFeatures, true),
    field(8, 4, Reg::QueuePfn, true),
    field(12, 2, Reg::QueueNum, false),
    field(14, 2, Reg::QueueSel, true),
    field(16, 2, Reg::QueueNotify, false),
    field(18, 1, Reg::Status, true),
    field(19, 1, Reg::Isr, false),
    field(20, 2, Reg::MsiConfig, true),
    field(22, 2, Reg::MsiQueue, true),
];

/// The fields an access of `len` bytes at `off` covers, if it is a valid
/// access of whole fields that does not touch QUEUE_NOTIFY.
fn covered(off: usize, len: usize) -> Res<impl Iterator<Item = &'static Field> + Clone> {
    let end = off.checked_add(len).ok_or(Invalid)?;
    if len == 0
        || end > COMMON_LEN
        || !FIELDS.iter().any(|f| f.off == off)
        || !FIELDS.iter().any(|f| f.off + f.len == end)
    {
        return Err(Invalid);
    }
    let fields = FIELDS
        .iter()
        .filter(move |f| f.off >= off && f.off + f.len <= end);
    if fields.clone().any(|f| f.reg == Reg::QueueNotify) {
        return Err(Invalid);
    }
    Ok(fields)
}

/// Value bytes of the first part of type `t` at or after `from` (a part
/// boundary) for which `want` holds.
fn find(
    state: &[u8],
    from: usize,
    t: u16,
    want: impl Fn(&Part<'_>) -> bool,
) -> Option<Range<usize>> {
    Parts::new(state.get(from..)?)
        .map_while(|p| p.ok())
        .find(|p| p.part_type == t && want(p))
        .map(|p| {
            let start = from + p.offset + PART_HDR_LEN;
            start..start + p.value.len()
        })
}

/// The legacy registers of one VF.
///
/// Borrows the VF's device parts, its device features and its ISR byte
/// from [`crate::device`], which holds the device lock for the access.
pub(crate) struct Regs<'a> {
    /// The VF's device-parts byte string.
    pub(crate) state: &'a mut [u8],
    /// The VF's device features (HOST_FEATURES is their low 32 bits).
    pub(crate) features: u64,
    /// The VF's interrupt status byte.
    pub(crate) isr: &'a mut u8,
}

impl Regs<'_> {
    fn st(&self) -> &[u8] {
        self.state
    }

    fn drv_features(&self) -> Res<Range<usize>> {
        find(self.st(), 0, types::DRV_FEATURES, |p| p.value.len() >= 8).ok_or(Invalid)
    }

    fn common_cfg(&self, at: u32) -> Res<Range<usize>> {
        find(self.st(), 0, types::PCI_COMMON_CFG, |p| {
            p.cfg_offset() == at && p.value.len() == 2
        })
        .ok_or(Invalid)
    }

    fn status(&self) -> Res<Range<usize>> {
        find(self.st(), 0, types::DEVICE_STATUS, |p| p.value.len() == 1).ok_or(Invalid)
    }

    fn mac(&self) -> Res<Range<usize>> {
        find(self.st(), 0, types::NET_CVQ_CFG, |p| {
            p.selector[0] == 1 && p.selector[1] == 1 && p.value.len() == MAC_LEN
        })
        .ok_or(Invalid)
    }

    /// VQ_CFG value of the queue `queue_select` selects, `None` if there is
    /// no such queue (`Err` if `queue_select` itself is missing).
    fn queue(&self) -> Res<Option<Range<usize>>> {
        let sel = le16(self.st(), self.common_cfg(CFG_QUEUE_SELECT)?.start);
        Ok(find(self.st(), 0, types::VQ_CFG, |p| {
            p.vq_index() == sel && p.value.len() == VQ_CFG_LEN
        }))
    }

    fn vq_value(&self, r: &Range<usize>) -> Res<[u8; VQ_CFG_LEN]> {
        let mut v = [0u8; VQ_CFG_LEN];
        v.copy_from_slice(self.st().get(r.clone()).ok_or(Invalid)?);
        Ok(v)
    }

    /// Store `bytes` at `at`, unless this is the checking pass (`dry`).
    fn put(&mut self, at: usize, bytes: &[u8], dry: bool) -> Res<()> {
        let end = at.checked_add(bytes.len()).ok_or(Invalid)?;
        let dst = self.state.get_mut(at..end).ok_or(Invalid)?;
        if !dry {
            dst.copy_from_slice(bytes);
        }
        Ok(())
    }

    fn get(&self, reg: Reg) -> Res<u32> {
        let st = self.st();
        Ok(match reg {
            // CAST: HOST_FEATURES is the low 32 bits.
            Reg::HostFeatures => self.features as u32,
            Reg::GuestFeatures => le32(st, self.drv_features()?.start),
            Reg::QueuePfn => match self.queue()? {
                // CAST: a 32-bit PFN register; higher addresses do not fit.
                Some(q) => (le64(st, q.start + 8) >> 12) as u32,
                None => 0,
            },
            Reg::QueueNum => match self.queue()? {
                Some(q) => u32::from(le16(st, q.start)),
                None => 0,
            },
            Reg::QueueSel => u32::from(le16(st, self.common_cfg(CFG_QUEUE_SELECT)?.start)),
            Reg::Status => u32::from(*st.get(self.status()?.start).ok_or(Invalid)?),
            Reg::Isr => u32::from(*self.isr),
            Reg::MsiConfig => u32::from(le16(st, self.common_cfg(CFG_MSIX_CONFIG)?.start)),
            Reg::MsiQueue => match self.queue()? {
                Some(q) => u32::from(le16(st, q.start + 2)),
                None => u32::from(NO_VECTOR),
            },
            Reg::QueueNotify => return Err(Invalid),
        })
    }

    /// Write `v` to `reg`; with `dry`, only check that it would succeed.
    fn set(&mut self, reg: Reg, v: u32, dry: bool) -> Res<()> {
        // CAST: 16- and 8-bit registers take the low bits of `v`, which
        // holds exactly the bytes written.
        let (v16, v8) = (v as u16, v as u8);
        match reg {
            Reg::GuestFeatures => {
                let r = self.drv_features()?;
                // CAST: the low 32 bits.
                let accepted = v & self.features as u32;
                self.put(r.start, &accepted.to_le_bytes(), dry)?;
                for at in r.start + 4..r.end {
                    self.put(at, &[0], dry)?;
                }
            }
            Reg::QueuePfn => {
                let Some(q) = self.queue()? else {
                    return Ok(());
                };
                let mut vq = self.vq_value(&q)?;
                let size = u64::from(le16(&vq, 0));
                let (enabled, desc, driver, device) = if v == 0 {
                    (0u16, 0, 0, 0)
                } else {
                    let desc = u64::from(v) << 12;
                    let driver = desc + 16 * size;
                    let device = (driver + 6 + 2 * size).next_multiple_of(4096);
                    (1, desc, driver, device)
                };
                vq[4..6].copy_from_slice(&enabled.to_le_bytes());
                vq[8..16].copy_from_slice(&desc.to_le_bytes());
                vq[16..24].copy_from_slice(&driver.to_le_bytes());
                vq[24..32].copy_from_slice(&device.to_le_bytes());
                self.put(q.start, &vq, dry)?;
            }
            Reg::QueueSel => {
                let r = self.common_cfg(CFG_QUEUE_SELECT)?;
                self.put(r.start, &v16.to_le_bytes(), dry)?;
            }
            Reg::Status if v8 == 0 => self.reset(dry)?,
            Reg::Status => {
                let r = self.status()?;
                self.put(r.start, &[v8], dry)?;
            }
            Reg::MsiConfig => {
                let r = self.common_cfg(CFG_MSIX_CONFIG)?;
                self.put(r.start, &v16.to_le_bytes(), dry)?;
            }
            Reg::MsiQueue => {
                if let Some(q) = self.queue()? {
                    self.put(q.start + 2, &v16.to_le_bytes(), dry)?;
                }
            }
            Reg::HostFeatures | Reg::QueueNum | Reg::QueueNotify | Reg::Isr => return Err(Invalid),
        }
        Ok(())
    }

    /// STATUS written with 0: the legacy-visible state returns to reset
    /// values (queue sizes, device features and the MAC stay).
    fn reset(&mut self, dry: bool) -> Res<()> {
        let features = self.drv_features()?;
        let status = self.status()?;
        let msix = self.common_cfg(CFG_MSIX_CONFIG)?;
        let select = self.common_cfg(CFG_QUEUE_SELECT)?;
        if dry {
            return Ok(());
        }
        for at in features {
            self.put(at, &[0], false)?;
        }
        self.put(status.start, &[0], false)?;
        self.put(msix.start, &NO_VECTOR.to_le_bytes(), false)?;
        self.put(select.start, &0u16.to_le_bytes(), false)?;
        let mut from = 0;
        while let Some(q) = find(self.st(), from, types::VQ_CFG, |p| {
            p.value.len() == VQ_CFG_LEN
        }) {
            let mut vq = self.vq_value(&q)?;
            vq[2..4].copy_from_slice(&NO_VECTOR.to_le_bytes());
            vq[4..6].copy_from_slice(&0u16.to_le_bytes());
            vq[8..32].fill(0);
            self.put(q.start, &vq, false)?;
            from = q.end;
        }
        *self.isr = 0;
        Ok(())
    }

    /// LEGACY_COMMON_CFG_READ of `out.len()` bytes at `off`.
    pub(crate) fn common_read(&mut self, off: u8, out: &mut [u8]) -> Res<()> {
        let off = usize::from(off);
        let mut read_isr = false;
        for f in covered(off, out.len())? {
            let v = self.get(f.reg)?.to_le_bytes();
            let at = f.off - off;
            let dst = out.get_mut(at..at + f.len).ok_or(Invalid)?;
            dst.copy_from_slice(v.get(..f.len).ok_or(Invalid)?);
            read_isr |= f.reg == Reg::Isr;
        }
        if read_isr {
            *self.isr = 0;
        }
        Ok(())
    }

    /// LEGACY_COMMON_CFG_WRITE of `src` at `off`: checked in full (first
    /// pass), then applied field by field in offset order.
    pub(crate) fn common_write(&mut self, off: u8, src: &[u8]) -> Res<()> {
        let off = usize::from(off);
        let fields = covered(off, src.len())?;
        if fields.clone().any(|f| !f.writable) {
            return Err(Invalid);
        }
        for dry in [true, false] {
            for f in fields.clone() {
                let at = f.off - off;
                let mut v = [0u8; 4];
                v.get_mut(..f.len)
                    .ok_or(Invalid)?
                    .copy_from_slice(src.get(at..at + f.len).ok_or(Invalid)?);
                self.set(f.reg, u32::from_le_bytes(v), dry)?;
            }
        }
        Ok(())
    }

    /// LEGACY_DEV_CFG_READ of `out.len()` bytes at `off`.
    pub(crate) fn device_read(&self, off: u8, out: &mut [u8]) -> Res<()> {
        let off = usize::from(off);
        let end = off + out.len();
        if out.is_empty() || end > DEVICE_LEN {
            return Err(Invalid);
        }
        let mut cfg = [0u8; DEVICE_LEN];
        if off < MAC_LEN {
            let mac = self.st().get(self.mac()?).ok_or(Invalid)?;
            cfg[..MAC_LEN].copy_from_slice(mac);
        }
        cfg[MAC_LEN..].copy_from_slice(&LINK_UP.to_le_bytes());
        out.copy_from_slice(cfg.get(off..end).ok_or(Invalid)?);
        Ok(())
    }

    /// LEGACY_DEV_CFG_WRITE of `src` at `off`: only MAC bytes are writable.
    pub(crate) fn device_write(&mut self, off: u8, src: &[u8]) -> Res<()> {
        let off = usize::from(off);
        if src.is_empty() || off + src.len() > MAC_LEN {
            return Err(Invalid);
        }
        let mac = self.mac()?;
        self.put(mac.start + off, src, false)
    }
}

/// What the trace shows of a legacy read or write: the register offset,
/// the access length, and up to the first 8 register bytes written or
/// returned.
#[derive(Clone, Copy, Default)]
pub(crate) struct Access {
    pub(crate) offset: u8,
    pub(crate) len: usize,
    pub(crate) data: [u8; 8],
    pub(crate) data_len: usize,
}

impl Access {
    /// The access a legacy write (`write`) or read command describes,
    /// `None` for a command without data. `result_cap` is the result buffer size
    /// (the length of a read); a read's bytes are added after it succeeds
    /// ([`Access::set_data`]).
    pub(crate) fn of(write: bool, data: &[u8], result_cap: usize) -> Option<Self> {
        let offset = *data.first()?;
        let mut a = Self {
            offset,
            len: result_cap,
            ..Self::default()
        };
        if write {
            let regs = data.get(8..).unwrap_or(&[]);
            a.len = regs.len();
            a.set_data(regs);
        }
        Some(a)
    }

    /// Record the register bytes (at most the first 8).
    pub(crate) fn set_data(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.data.len());
        self.data_len = n;
        if let (Some(d), Some(s)) = (self.data.get_mut(..n), bytes.get(..n)) {
            d.copy_from_slice(s);
        }
    }

    /// The recorded bytes.
    pub(crate) fn data(&self) -> &[u8] {
        self.data.get(..self.data_len).unwrap_or(&[])
    }
}
