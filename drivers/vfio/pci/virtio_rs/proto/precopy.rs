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
    #[cfg(virtio_rs_test_support)]
    pub const fn reads(&self) -> u32 {
        self.reads
    }

    /// Whether the read cap is reached.
    #[cfg(virtio_rs_test_support)]
    pub const fn capped(&self) -> bool {
        self.reads >= self.max_reads
    }
}

/// The device-wide budget of full device-context reads.
///
/// A virtio device answers every `DEV_PARTS_GET` with its whole context,
/// and the PF's admin queue is shared by all its VFs: one tenant that
/// cycles RUNNING <-> PRE_COPY (or STOP <-> STOP_COPY) would otherwise make
/// its device read the whole context on every cycle, starving the other
/// VFs' commands. [`PrecopyPolicy`] bounds one session; this bounds the
/// device, across sessions.
///
/// A token bucket: up to `burst` reads back to back, then one more per
/// `interval` (the unit is the caller's, as for [`PrecopyPolicy`]). A real
/// migration needs two reads at once (initial and final) plus at most one
/// pre-copy read per interval, so it never waits with `burst >= 2`.
/// `burst == 0` or `interval == 0` disables the budget.
///
/// # Invariants
///
/// `tokens <= burst`; `refilled <= ` the latest `now` seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadBudget {
    burst: u32,
    interval: u64,
    tokens: u32,
    refilled: u64,
}

impl ReadBudget {
    /// A full budget of `burst` reads, refilled one per `interval` from
    /// `now` on.
    pub const fn new(burst: u32, interval: u64, now: u64) -> Self {
        Self {
            burst,
            interval,
            tokens: burst,
            refilled: now,
        }
    }

    /// Whether the budget limits anything.
    pub const fn enabled(&self) -> bool {
        self.burst > 0 && self.interval > 0
    }

    fn refill(&mut self, now: u64) {
        if !self.enabled() || now <= self.refilled {
            return;
        }
        let periods = now
            .saturating_sub(self.refilled)
            .checked_div(self.interval)
            .unwrap_or(0);
        let room = self.burst.saturating_sub(self.tokens);
        match u32::try_from(periods) {
            Ok(p) if p < room => {
                self.tokens = self.tokens.saturating_add(p);
                // p periods fit between refilled and now: no overflow.
                self.refilled = self
                    .refilled
                    .saturating_add(u64::from(p).saturating_mul(self.interval));
            }
            _ => {
                self.tokens = self.burst;
                self.refilled = now;
            }
        }
    }

    /// Take a read at `now` if one is available.
    pub fn try_take(&mut self, now: u64) -> bool {
        if !self.enabled() {
            return true;
        }
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens = self.tokens.saturating_sub(1);
        true
    }

    /// Whether a read is available at `now`, without taking it.
    pub fn available(&mut self, now: u64) -> bool {
        if !self.enabled() {
            return true;
        }
        self.refill(now);
        self.tokens > 0
    }

    /// How long after `now` the next read becomes available (0: now).
    pub fn wait(&mut self, now: u64) -> u64 {
        if self.available(now) {
            return 0;
        }
        // tokens == 0 < burst, so refill() left refilled <= now and
        // now - refilled < interval.
        self.interval
            .saturating_sub(now.saturating_sub(self.refilled))
    }

    /// Reads available at `now`.
    #[cfg(virtio_rs_test_support)]
    pub fn tokens(&mut self, now: u64) -> u32 {
        self.refill(now);
        self.tokens
    }
}
