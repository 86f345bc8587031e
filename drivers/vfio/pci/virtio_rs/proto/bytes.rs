// SPDX-License-Identifier: GPL-2.0

//! Little-endian fields of wire structures, read without panicking.
//!
//! Each reader returns the field at byte offset `at` of `b`, or 0 when the
//! buffer is too short: callers check lengths where a short buffer is an
//! error, and everywhere else a missing field reads as zero.

fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut x = [0u8; N];
    if let Some(s) = b.get(at..at.saturating_add(N)) {
        x.copy_from_slice(s);
    }
    x
}

/// `le16` at `at`.
pub fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(field(b, at))
}

/// `le32` at `at`.
pub fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(field(b, at))
}

/// `le64` at `at`.
pub fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(field(b, at))
}
