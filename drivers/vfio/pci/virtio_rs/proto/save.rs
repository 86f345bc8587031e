// SPDX-License-Identifier: GPL-2.0

//! Framing and byte accounting of the saving side.
//!
//! The saving file is a queue of records. The driver appends a record each
//! time it reads the device context (the initial read, pre-copy reads, the
//! final read), and userspace reads the queue in pieces of any size. This
//! type keeps the two counters that everything else is derived from:
//!
//! - `produced`: stream bytes appended so far (headers included);
//! - `consumed`: stream bytes userspace has read so far.
//!
//! plus the end of the initial data (`initial_end`) for pre-copy. The
//! `VFIO_MIG_GET_PRECOPY_INFO` fields follow from them exactly: the bytes
//! still to be read are split into `initial_bytes` (up to `initial_end`) and
//! `dirty_bytes` (the rest), so their sum is what the next reads return.

use super::record::{RecordHeader, HEADER_LEN, HEADER_LEN_U64, MAX_DEVICE_DATA};

/// Errors of the saving-side accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveError {
    /// A device-data payload must be 1..=2^32-1 bytes.
    BadPayloadSize,
    /// More bytes consumed than produced.
    Overread,
    /// A counter would overflow.
    Overflow,
}

/// The two fields of `struct vfio_precopy_info` the driver reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrecopyBytes {
    /// Initial data still to be read.
    pub initial_bytes: u64,
    /// Other queued data still to be read.
    pub dirty_bytes: u64,
}

/// Byte accounting of one saving session.
///
/// # Invariants
///
/// `consumed <= produced`; `initial_end <= produced`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaveStream {
    produced: u64,
    consumed: u64,
    initial_end: u64,
    records: u64,
}

/// Bytes a record with `payload` payload bytes occupies in the stream.
pub fn record_len(payload: u64) -> Option<u64> {
    payload.checked_add(HEADER_LEN_U64)
}

impl SaveStream {
    /// An empty stream.
    pub const fn new() -> Self {
        Self {
            produced: 0,
            consumed: 0,
            initial_end: 0,
            records: 0,
        }
    }

    /// Append a device-data record of `payload` bytes: returns the header
    /// bytes to queue in front of the payload.
    pub fn frame(&mut self, payload: u64) -> Result<[u8; HEADER_LEN], SaveError> {
        if payload == 0 || payload > MAX_DEVICE_DATA {
            return Err(SaveError::BadPayloadSize);
        }
        let len = record_len(payload).ok_or(SaveError::Overflow)?;
        self.produced = self.produced.checked_add(len).ok_or(SaveError::Overflow)?;
        self.records = self.records.saturating_add(1);
        Ok(RecordHeader::device_data(payload).encode())
    }

    /// Mark everything produced so far as the initial data (pre-copy).
    pub fn mark_initial(&mut self) {
        self.initial_end = self.produced;
    }

    /// Userspace read `n` more bytes.
    pub fn consume(&mut self, n: u64) -> Result<(), SaveError> {
        let c = self.consumed.checked_add(n).ok_or(SaveError::Overflow)?;
        if c > self.produced {
            return Err(SaveError::Overread);
        }
        self.consumed = c;
        Ok(())
    }

    /// Stream bytes appended so far.
    pub const fn produced(&self) -> u64 {
        self.produced
    }

    /// Stream bytes read so far (the stream position).
    pub const fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Records appended so far.
    pub const fn records(&self) -> u64 {
        self.records
    }

    /// Bytes queued and not yet read.
    pub const fn pending(&self) -> u64 {
        self.produced.saturating_sub(self.consumed)
    }

    /// Whether everything appended has been read.
    pub const fn drained(&self) -> bool {
        self.pending() == 0
    }

    /// The split of [`Self::pending`] into initial and dirty bytes.
    pub const fn precopy(&self) -> PrecopyBytes {
        let pending = self.pending();
        let initial_left = self.initial_end.saturating_sub(self.consumed);
        let initial_bytes = if initial_left < pending {
            initial_left
        } else {
            pending
        };
        PrecopyBytes {
            initial_bytes,
            dirty_bytes: pending.saturating_sub(initial_bytes),
        }
    }
}
