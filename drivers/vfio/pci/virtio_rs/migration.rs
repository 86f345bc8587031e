// SPDX-License-Identifier: GPL-2.0

//! The live migration engine: the counterpart of upstream's `migrate.c`.
//!
//! - [`state`]: the migration state, the state mutex and the deferred-reset
//!   protocol, the device-side bookkeeping (mode, read budget, size
//!   estimate) and the VFIO migration callbacks ([`MigrationStateMachine`]);
//! - [`save`]: the saving session (read-only migration file, pre-copy);
//! - [`resume`]: the resuming session (write-only migration file);
//! - here: what both sessions share ([`Session`], [`Slot`]) and the
//!   counters ([`MigStats`]).
//!
//! The engine names the driver's device type ([`Dev`]), as `migrate.c`
//! includes the driver's `common.h`: the device's data holds the engine
//! ([`crate::driver::VirtioDevice`]) and a session holds a reference to the
//! device. Making every engine type generic over the driver instead would
//! add a type parameter everywhere for its one instantiation.
//!
//! # Locking
//!
//! - [`MigDevice`]'s state mutex protects the migration state, the
//!   [`Vf`](crate::abstractions::virtio_admin::Vf) (so it serialises every
//!   admin command of the VF, as the PF API requires), the sessions'
//!   device objects, the read budget and the size estimate. Every path
//!   that sends an admin command holds it. No path holding it touches user
//!   memory or waits for a session's stream lock.
//! - A saving session has two mutexes: `queue` (records not yet handed to
//!   the reader, the byte accounting, a spare buffer; held only for short,
//!   non-faulting work) and `reader` (the record being read, held across
//!   the copy to userspace). Orders: state mutex, then `queue`; `reader`,
//!   then `queue`. The state-mutex paths (final capture, pre-copy query,
//!   ending the session) hand records over through `queue` only, so a
//!   reader stuck in a page fault (userfaultfd, FUSE) never blocks
//!   STOP_COPY, GET_STATE, MIG_DATA_SIZE, a reset or `close_device`.
//! - A resuming session has one mutex, `inner` (parser and buffer, held
//!   across the copy from userspace). A write takes the state mutex inside
//!   it, only to load a complete record: order `inner`, then state mutex.
//!   The state-mutex paths never wait for `inner`: leaving RESUMING reads
//!   the status each write publishes and ending the session only *tries*
//!   `inner`. A writer stuck in a page fault blocks only the later writes
//!   to its own file.
//! - A spinlock holds the "reset happened" flag (see [`state`]).
//!
//! # Device load
//!
//! The PF's admin queue is shared by all its VFs, and a virtio device
//! answers every `DEV_PARTS_GET` with its whole context. Besides the
//! per-session pre-copy policy ([`PrecopyPolicy`]), each device has a
//! [`ReadBudget`] of full-context reads across sessions (`device_read_burst`
//! back to back, then one per `precopy_interval_ms`): a pre-copy read
//! beyond it is skipped (a PRE_COPY session may start with no data, its
//! device object created only when it first reads), a stop-copy read waits
//! for it (at most one interval). `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`
//! answers from the size of the last capture or query for one interval,
//! so asking it in a loop sends at most three commands per interval.
//!
//! # Lifetimes
//!
//! A session holds a reference to the device, so a migration file that
//! outlives the device file (or the driver binding) keeps the object alive
//! and answers `ENODEV`. Device objects live in the state ([`Slot`]), not
//! in the sessions, and are destroyed with `Vf::destroy_parts` under the
//! state mutex when a session ends, on every path.
//!
//! [`PrecopyPolicy`]: crate::proto::precopy::PrecopyPolicy
//! [`ReadBudget`]: crate::proto::precopy::ReadBudget

use kernel::{
    alloc::flags::GFP_KERNEL_ACCOUNT,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Relaxed, Release},
        Arc,
    },
};

use crate::{
    abstractions::{
        vfio::pci::CoreDevice,
        virtio_admin::{destroys_failed, objects_leaked, PartsObject, Vf},
    },
    driver::VirtioVfioPci,
    proto::record::HEADER_LEN_U64,
};

mod resume;
mod save;
mod state;

pub(crate) use state::{MigDevice, MigrationStateMachine};

/// The device type of this driver.
pub(crate) type Dev = CoreDevice<VirtioVfioPci>;

/// The migration state of `dev`, if it migrates.
pub(crate) fn mig_of(dev: &Dev) -> Option<&MigDevice> {
    dev.data().get_ref().mig()
}

/// Name of the migration files' anonymous inode (as upstream).
const FILE_NAME: &CStr = c"virtiovf_mig";

/// Counters of one VF's migration activity, shown in debugfs
/// (`virtio_vfio_pci_rs-<BDF>/stats`). Updated with atomic adds from any
/// context; read without a lock.
pub(crate) struct MigStats {
    saving_sessions: Atomic<u64>,
    resuming_sessions: Atomic<u64>,
    device_reads: Atomic<u64>,
    records_saved: Atomic<u64>,
    bytes_saved: Atomic<u64>,
    records_loaded: Atomic<u64>,
    bytes_loaded: Atomic<u64>,
    resets: Atomic<u64>,
    resets_deferred: Atomic<u64>,
    failed_requests: Atomic<u64>,
    reads_skipped: Atomic<u64>,
    read_waits: Atomic<u64>,
    size_queries: Atomic<u64>,
    runs_after_reset: Atomic<u64>,
}

fn inc(c: &Atomic<u64>, n: u64) {
    c.add(n, Relaxed);
}

impl MigStats {
    pub(crate) fn new() -> Self {
        Self {
            saving_sessions: Atomic::new(0),
            resuming_sessions: Atomic::new(0),
            device_reads: Atomic::new(0),
            records_saved: Atomic::new(0),
            bytes_saved: Atomic::new(0),
            records_loaded: Atomic::new(0),
            bytes_loaded: Atomic::new(0),
            resets: Atomic::new(0),
            resets_deferred: Atomic::new(0),
            failed_requests: Atomic::new(0),
            reads_skipped: Atomic::new(0),
            read_waits: Atomic::new(0),
            size_queries: Atomic::new(0),
            runs_after_reset: Atomic::new(0),
        }
    }

    /// A device-context read queued as a record of `len` payload bytes.
    fn record_saved(&self, len: u32) {
        inc(&self.device_reads, 1);
        inc(&self.records_saved, 1);
        inc(&self.bytes_saved, u64::from(len) + HEADER_LEN_U64);
    }

    /// The `stats` file: one `name value` line per counter.
    pub(crate) fn show(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        for (name, c) in [
            ("saving_sessions", &self.saving_sessions),
            ("resuming_sessions", &self.resuming_sessions),
            ("device_reads", &self.device_reads),
            ("records_saved", &self.records_saved),
            ("bytes_saved", &self.bytes_saved),
            ("records_loaded", &self.records_loaded),
            ("bytes_loaded", &self.bytes_loaded),
            ("resets", &self.resets),
            ("resets_deferred", &self.resets_deferred),
            ("failed_requests", &self.failed_requests),
            ("reads_skipped", &self.reads_skipped),
            ("read_waits", &self.read_waits),
            ("size_queries", &self.size_queries),
            ("runs_after_reset", &self.runs_after_reset),
        ] {
            writeln!(f, "{} {}", name, c.load(Relaxed))?;
        }
        // Module-wide. The first is a driver bug if it is ever non-zero.
        writeln!(f, "objects_leaked {}", objects_leaked())?;
        writeln!(f, "destroys_failed {}", destroys_failed())
    }
}

/// What a direction's stream does when its session ends.
pub(crate) trait Stream: Send + Sync + 'static {
    /// Whether this is the saving direction (for trace events).
    const SAVING: bool;

    /// Free what can be freed without waiting for the stream's own locks:
    /// called with the state mutex held (see the module docs).
    fn release(&self);
}

/// A migration session: the stream behind one migration file.
///
/// What both directions share: a reference to the device (so the file may
/// outlive the device file and the binding), whether the session ended, and
/// the direction's stream `S` ([`save::Saving`] or [`resume::Resuming`]).
/// A session ends once (reset, close, or the arc that leaves its states);
/// its file then answers `ENODEV`.
#[pin_data]
pub(crate) struct Session<S> {
    dev: ARef<Dev>,
    dead: Atomic<bool>,
    #[pin]
    stream: S,
}

impl<S: Stream> Session<S> {
    fn new(dev: &Dev, stream: impl PinInit<S, Error>) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                dev: ARef::from(dev),
                dead: Atomic::new(false),
                stream <- stream,
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// End the session: its file answers `ENODEV` from now on.
    fn end(&self) {
        self.dead.store(true, Release);
        self.stream.release();
    }

    /// Whether the session ended.
    fn ended(&self) -> bool {
        self.dead.load(Acquire)
    }

    /// The device's migration state.
    fn mig(&self) -> Result<&MigDevice> {
        mig_of(&self.dev).ok_or(ENODEV)
    }
}

/// A session in the migration state, with its device object (a saving
/// session creates it with its first read, which the read budget may
/// defer).
pub(crate) struct Slot<S> {
    session: Arc<Session<S>>,
    obj: Option<PartsObject>,
}

impl<S: Stream> Slot<S> {
    /// Whether `session` is this slot's. A file of an older session is
    /// stale: it must not send a command with this slot's object.
    fn holds(&self, session: &Session<S>) -> bool {
        core::ptr::eq(&*self.session, session)
    }

    /// End the session and destroy its device object.
    fn end(self, vf: &mut Vf) {
        self.session.end();
        if let Some(obj) = self.obj {
            vf.destroy_parts(obj);
        }
        if vf.tracing() {
            vf.trace_session(S::SAVING, false);
        }
    }
}
