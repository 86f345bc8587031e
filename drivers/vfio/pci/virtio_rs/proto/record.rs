// SPDX-License-Identifier: GPL-2.0

//! The record header of the migration data stream.
//!
//! A stream is a sequence of records, each a 16-byte little-endian header
//! followed by `size` payload bytes:
//!
//! | Offset | Size | Field   | Meaning                                        |
//! |--------|------|---------|------------------------------------------------|
//! | 0      | 8    | `size`  | payload bytes that follow the header           |
//! | 8      | 4    | `flags` | bit 0: [`FLAG_OPTIONAL`]; other bits reserved  |
//! | 12     | 4    | `tag`   | [`TAG_DEVICE_DATA`] (0) or another record kind |
//!
//! There is no magic, version or end record: the end of the stream is the
//! end of the data. A reader skips records with an unknown tag when they are
//! flagged optional and rejects them otherwise, so new kinds of records must
//! be added as optional tags. This is the format of the upstream C driver
//! (`struct virtiovf_migration_header`), so streams cross between the two.

/// Size of an encoded record header in bytes.
pub const HEADER_LEN: usize = 16;

/// [`HEADER_LEN`] as a stream length.
#[allow(clippy::as_conversions)] // CAST: 16 fits every integer type.
pub const HEADER_LEN_U64: u64 = HEADER_LEN as u64;

/// Tag of a record whose payload is the raw result of a `DEV_PARTS_GET`
/// admin command: a sequence of virtio device parts.
pub const TAG_DEVICE_DATA: u32 = 0;

/// Flag: a reader that does not know the record's tag may skip it.
pub const FLAG_OPTIONAL: u32 = 1 << 0;

/// Largest payload a device-data record can carry: device-parts sizes are
/// 32-bit on the wire (`virtio_admin_cmd_dev_parts_metadata_result`).
pub const MAX_DEVICE_DATA: u64 = 0xffff_ffff;

/// A decoded record header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// Number of payload bytes after the header.
    pub size: u64,
    /// Header flags ([`FLAG_OPTIONAL`]).
    pub flags: u32,
    /// Record kind ([`TAG_DEVICE_DATA`]).
    pub tag: u32,
}

impl RecordHeader {
    /// Header of a device-data record with `size` payload bytes, as the
    /// saving side writes it (flags 0, tag 0).
    pub const fn device_data(size: u64) -> Self {
        Self {
            size,
            flags: 0,
            tag: TAG_DEVICE_DATA,
        }
    }

    /// Whether a reader that does not know this record's tag may skip it.
    pub const fn is_optional(&self) -> bool {
        self.flags & FLAG_OPTIONAL != 0
    }

    /// Whether this is a device-data record. Device-data records ignore the
    /// optional flag, as the upstream reader does.
    pub const fn is_device_data(&self) -> bool {
        self.tag == TAG_DEVICE_DATA
    }

    /// The 16 wire bytes of this header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (size, rest) = out.split_at_mut(8);
        let (flags, tag) = rest.split_at_mut(4);
        size.copy_from_slice(&self.size.to_le_bytes());
        flags.copy_from_slice(&self.flags.to_le_bytes());
        tag.copy_from_slice(&self.tag.to_le_bytes());
        out
    }

    /// Decode 16 wire bytes. Every bit pattern is a header; whether it is
    /// acceptable is the reader's decision ([`super::resume::Parser`]).
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let (size, rest) = bytes.split_at(8);
        let (flags, tag) = rest.split_at(4);
        let mut s = [0u8; 8];
        let mut f = [0u8; 4];
        let mut t = [0u8; 4];
        s.copy_from_slice(size);
        f.copy_from_slice(flags);
        t.copy_from_slice(tag);
        Self {
            size: u64::from_le_bytes(s),
            flags: u32::from_le_bytes(f),
            tag: u32::from_le_bytes(t),
        }
    }
}
