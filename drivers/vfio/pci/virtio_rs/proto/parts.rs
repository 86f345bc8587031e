// SPDX-License-Identifier: GPL-2.0

//! Virtio 1.4 device parts: walking and validating a `DEV_PARTS_GET` result.
//!
//! The payload of a device-data record is a sequence of device parts, each a
//! 16-byte header followed by `length` value bytes (all little-endian):
//!
//! | Offset | Field                                                    |
//! |--------|----------------------------------------------------------|
//! | 0      | `le16 type`                                              |
//! | 2      | `u8 flags` (bit 0: OPTIONAL)                             |
//! | 3      | `u8 reserved`                                            |
//! | 4      | 8-byte selector: `{le32 offset; le32 reserved}` for      |
//! |        | PCI_COMMON_CFG, `{le16 index; u8 reserved[6]}` for VQ    |
//! |        | parts, raw bytes for device-specific parts               |
//! | 12     | `le32 length`                                            |
//! | 16     | value                                                    |
//!
//! [`Parts`] walks the headers and checks that each value lies inside the
//! buffer. [`validate`] also checks the order and shapes the specification
//! requires: common parts in type order (features, driver features, common
//! config fields, status, per-queue config, per-queue notify config), then
//! device-specific parts (types 0x200..=0x5ff); DEV_FEATURES, DRV_FEATURES
//! and DEVICE_STATUS at most once; common-config offsets and queue indices
//! strictly increasing within their type; fixed value lengths where the
//! type has one; reserved bytes zero. Parts of unknown types are accepted
//! only when flagged OPTIONAL.
//!
//! The driver never parses device parts (it moves them opaquely, as
//! upstream does); the simulated device, the tests and the stream inspector
//! use this module.

use super::bytes::{le16, le32};

/// Size of a device-part header.
pub const PART_HDR_LEN: usize = 16;

/// Device part types.
pub mod types {
    /// Device feature bits (optional part).
    pub const DEV_FEATURES: u16 = 0x100;
    /// Driver (negotiated) feature bits.
    pub const DRV_FEATURES: u16 = 0x101;
    /// One field of the PCI common configuration, selected by offset.
    pub const PCI_COMMON_CFG: u16 = 0x102;
    /// The device status byte.
    pub const DEVICE_STATUS: u16 = 0x103;
    /// Configuration of one virtqueue.
    pub const VQ_CFG: u16 = 0x104;
    /// Notification configuration of one virtqueue.
    pub const VQ_NOTIFY_CFG: u16 = 0x105;
    /// virtio-net: the data of one control-queue command.
    pub const NET_CVQ_CFG: u16 = 0x200;
    /// First device-specific type.
    pub const DEVICE_SPECIFIC_FIRST: u16 = 0x200;
    /// Last device-specific type.
    pub const DEVICE_SPECIFIC_LAST: u16 = 0x5ff;
}

/// Part flag: a device may ignore this part.
pub const PART_F_OPTIONAL: u8 = 1 << 0;

/// Value length of a VQ_CFG part.
pub const VQ_CFG_LEN: usize = 32;
/// Value length of a VQ_NOTIFY_CFG part.
pub const VQ_NOTIFY_CFG_LEN: usize = 8;
/// Size of the virtio PCI common configuration, admin queue fields included.
pub const COMMON_CFG_LEN: u32 = 64;

/// Name of a part type, for humans.
pub const fn type_name(t: u16) -> &'static str {
    match t {
        types::DEV_FEATURES => "DEV_FEATURES",
        types::DRV_FEATURES => "DRV_FEATURES",
        types::PCI_COMMON_CFG => "PCI_COMMON_CFG",
        types::DEVICE_STATUS => "DEVICE_STATUS",
        types::VQ_CFG => "VQ_CFG",
        types::VQ_NOTIFY_CFG => "VQ_NOTIFY_CFG",
        types::NET_CVQ_CFG => "NET_CVQ_CFG",
        _ => range_name(t),
    }
}

const fn range_name(t: u16) -> &'static str {
    match t {
        0x0000..=0x01ff => "COMMON(unknown)",
        types::DEVICE_SPECIFIC_FIRST..=types::DEVICE_SPECIFIC_LAST => "DEVICE_SPECIFIC",
        _ => "UNKNOWN",
    }
}

/// One device part, borrowed from the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// Byte offset of the part's header in the buffer.
    pub offset: usize,
    /// Part type ([`types`]).
    pub part_type: u16,
    /// Part flags ([`PART_F_OPTIONAL`]).
    pub flags: u8,
    /// The reserved byte after the flags.
    pub reserved: u8,
    /// The raw 8-byte selector.
    pub selector: [u8; 8],
    /// The value bytes.
    pub value: &'a [u8],
}

impl Part<'_> {
    /// Whether the device may ignore this part.
    pub const fn is_optional(&self) -> bool {
        self.flags & PART_F_OPTIONAL != 0
    }

    /// Human-readable type name.
    pub const fn name(&self) -> &'static str {
        type_name(self.part_type)
    }

    /// The virtqueue index selector (VQ parts).
    pub fn vq_index(&self) -> u16 {
        le16(&self.selector, 0)
    }

    /// The common-configuration offset selector (PCI_COMMON_CFG).
    pub fn cfg_offset(&self) -> u32 {
        le32(&self.selector, 0)
    }

    /// The value as a little-endian integer when it is 1, 2, 4 or 8 bytes.
    pub fn value_u64(&self) -> Option<u64> {
        let mut x = [0u8; 8];
        match self.value.len() {
            1 | 2 | 4 | 8 => {
                x.get_mut(..self.value.len())?.copy_from_slice(self.value);
                Some(u64::from_le_bytes(x))
            }
            _ => None,
        }
    }
}

/// What is wrong with a device-part buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartErrorKind {
    /// Fewer than 16 bytes left for a header.
    TruncatedHeader,
    /// The value runs past the end of the buffer.
    TruncatedValue {
        /// The part's `length` field.
        length: u32,
    },
    /// A type outside the defined ranges, not flagged OPTIONAL.
    UnknownType,
    /// The part's type is lower than the previous part's.
    OutOfOrder,
    /// A part that may appear once appeared again, or a selector repeated
    /// or went backwards within its type.
    Duplicate,
    /// The value length is wrong for the type.
    BadLength,
    /// A selector value is out of range (common-config offset).
    BadSelector,
    /// A reserved byte is not zero.
    Reserved,
}

/// A device-part error, with the byte offset of the offending part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartError {
    /// What is wrong.
    pub kind: PartErrorKind,
    /// Offset of the part's header in the buffer.
    pub offset: usize,
}

/// Iterator over the parts of a buffer; yields an error (once) for a
/// malformed part and stops.
#[derive(Clone, Debug)]
pub struct Parts<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Parts<'a> {
    /// Walk `data`.
    pub const fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for Parts<'a> {
    type Item = Result<Part<'a>, PartError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.data.len() {
            return None;
        }
        let offset = self.pos;
        let err = |kind| Some(Err(PartError { kind, offset }));
        let Some(hdr) = self.data.get(offset..offset.saturating_add(PART_HDR_LEN)) else {
            self.done = true;
            return err(PartErrorKind::TruncatedHeader);
        };
        let length = le32(hdr, 12);
        let start = offset.saturating_add(PART_HDR_LEN);
        let value = usize::try_from(length)
            .ok()
            .and_then(|l| start.checked_add(l))
            .and_then(|end| self.data.get(start..end).map(|v| (v, end)));
        let Some((value, end)) = value else {
            self.done = true;
            return err(PartErrorKind::TruncatedValue { length });
        };
        let mut selector = [0u8; 8];
        if let Some(s) = hdr.get(4..12) {
            selector.copy_from_slice(s);
        }
        self.pos = end;
        Some(Ok(Part {
            offset,
            part_type: le16(hdr, 0),
            flags: hdr.get(2).copied().unwrap_or(0),
            reserved: hdr.get(3).copied().unwrap_or(0),
            selector,
            value,
        }))
    }
}

/// Counts of a validated buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Number of parts.
    pub parts: usize,
    /// Number of VQ_CFG parts.
    pub vqs: usize,
    /// Number of device-specific parts.
    pub device_specific: usize,
    /// Total value bytes.
    pub value_bytes: usize,
}

/// Walk and validate `data` (see the module documentation).
pub fn validate(data: &[u8]) -> Result<Summary, PartError> {
    let mut sum = Summary::default();
    let mut last_type: Option<u16> = None;
    let mut last_sel: Option<u32> = None;
    for part in Parts::new(data) {
        let p = part?;
        let fail = |kind| PartError {
            kind,
            offset: p.offset,
        };
        let known = matches!(
            p.part_type,
            types::DEV_FEATURES..=types::VQ_NOTIFY_CFG
                | types::DEVICE_SPECIFIC_FIRST..=types::DEVICE_SPECIFIC_LAST
        );
        if !known && !p.is_optional() {
            return Err(fail(PartErrorKind::UnknownType));
        }
        if p.reserved != 0 {
            return Err(fail(PartErrorKind::Reserved));
        }
        if last_type.is_some_and(|t| p.part_type < t) {
            return Err(fail(PartErrorKind::OutOfOrder));
        }
        let same_type = last_type == Some(p.part_type);
        let len = p.value.len();
        match p.part_type {
            types::DEV_FEATURES | types::DRV_FEATURES => {
                if same_type {
                    return Err(fail(PartErrorKind::Duplicate));
                }
                if len == 0 || len % 8 != 0 {
                    return Err(fail(PartErrorKind::BadLength));
                }
            }
            types::DEVICE_STATUS => {
                if same_type {
                    return Err(fail(PartErrorKind::Duplicate));
                }
                if len != 1 {
                    return Err(fail(PartErrorKind::BadLength));
                }
            }
            types::PCI_COMMON_CFG => {
                let off = p.cfg_offset();
                if !matches!(len, 1 | 2 | 4 | 8) {
                    return Err(fail(PartErrorKind::BadLength));
                }
                let end = u64::from(off).saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
                if end > u64::from(COMMON_CFG_LEN) || le32(&p.selector, 4) != 0 {
                    return Err(fail(PartErrorKind::BadSelector));
                }
                if same_type && last_sel.is_some_and(|s| off <= s) {
                    return Err(fail(PartErrorKind::Duplicate));
                }
                last_sel = Some(off);
            }
            types::VQ_CFG | types::VQ_NOTIFY_CFG => {
                let want = if p.part_type == types::VQ_CFG {
                    VQ_CFG_LEN
                } else {
                    VQ_NOTIFY_CFG_LEN
                };
                if len != want {
                    return Err(fail(PartErrorKind::BadLength));
                }
                if p.selector
                    .get(2..)
                    .is_some_and(|r| r.iter().any(|&b| b != 0))
                {
                    return Err(fail(PartErrorKind::BadSelector));
                }
                let idx = u32::from(p.vq_index());
                if same_type && last_sel.is_some_and(|s| idx <= s) {
                    return Err(fail(PartErrorKind::Duplicate));
                }
                last_sel = Some(idx);
                if p.part_type == types::VQ_CFG {
                    sum.vqs = sum.vqs.saturating_add(1);
                }
            }
            types::DEVICE_SPECIFIC_FIRST..=types::DEVICE_SPECIFIC_LAST => {
                sum.device_specific = sum.device_specific.saturating_add(1);
            }
            _ => {}
        }
        last_type = Some(p.part_type);
        sum.parts = sum.parts.saturating_add(1);
        sum.value_bytes = sum.value_bytes.saturating_add(len);
    }
    Ok(sum)
}
