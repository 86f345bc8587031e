// SPDX-License-Identifier: GPL-2.0

//! The pre-copy policy: when may the driver read the device context again?
//!
//! A virtio device cannot report incremental state: every read returns the
//! whole context. Pre-copy still pays off (the destination loads early state
//! before the source stops), but unbounded full reads must be prevented. Two
//! limits, both tunable:
//!
//! - at most `max_reads` device-context reads per saving session (default
//!   [`DEFAULT_MAX_READS`], the cap of the original design); the initial read
//!   counts. After the cap no new data is reported, so userspace converges
//!   to STOP_COPY. The final read at STOP_COPY is outside the cap.
//! - at most one device query per `interval` (default one second, as
//!   upstream). Time is passed in by the caller, in any monotonic unit, so
//!   tests control it. The window is anchored to the last allowed query
//!   (the initial read opens the first window) and a query is allowed once
//!   `now - last >= interval`; with `interval == 0` every query is allowed.

/// Default cap on device-context reads per saving session.
pub const DEFAULT_MAX_READS: u32 = 128;

/// The policy's answer to "may I query the device now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Yes: the read is counted and the rate-limit window restarts.
    Allowed,
    /// No: the session used all its reads.
    CapReached,
    /// No: the last query was less than an interval ago.
    RateLimited,
}

/// Pre-copy read policy of one saving session.
///
/// # Invariants
///
/// `reads <= max_reads` unless `max_reads` was 0 at creation and the initial
/// read was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrecopyPolicy {
    max_reads: u32,
    interval: u64,
    reads: u32,
    last: Option<u64>,
}

impl PrecopyPolicy {
    /// A policy allowing `max_reads` reads, one query per `interval`.
    pub const fn new(max_reads: u32, interval: u64) -> Self {
        Self {
            max_reads,
            interval,
            reads: 0,
            last: None,
        }
    }

    /// Record the initial read done when the session was created, at `now`.
    pub fn initial_read(&mut self, now: u64) {
        self.reads = self.reads.saturating_add(1);
        self.last = Some(now);
    }

    /// Decide whether a device query may happen at `now`; when allowed it is
    /// counted as a read and opens a new window.
    pub fn query(&mut self, now: u64) -> Decision {
        if self.reads >= self.max_reads {
            return Decision::CapReached;
        }
        if let Some(last) = self.last {
            if now.saturating_sub(last) < self.interval {
                return Decision::RateLimited;
            }
        }
        self.reads = self.reads.saturating_add(1);
        self.last = Some(now);
        Decision::Allowed
    }

    /// Reads counted so far.
    pub const fn reads(&self) -> u32 {
        self.reads
    }

    /// Whether the read cap is reached.
    pub const fn capped(&self) -> bool {
        self.reads >= self.max_reads
    }
}
