// SPDX-License-Identifier: GPL-2.0

//! The live migration engine: state arcs, saving and resuming sessions,
//! pre-copy, the device-wide read budget and the deferred-reset protocol.
//!
//! # Locking
//!
//! - [`MigDevice::state`] (the "state mutex") protects the migration state,
//!   the [`Vf`] (so it serialises every admin command of the VF, as the PF
//!   API requires), the sessions' device objects, the read budget and the
//!   size estimate. Every path that sends an admin command holds it. No path
//!   holding it touches user memory or waits for a session's stream lock.
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
//!   the status each write publishes ([`ResumeSession::status`]) and ending
//!   the session only *tries* `inner`. A writer stuck in a page fault
//!   blocks only the later writes to its own file.
//! - [`MigDevice::reset`] (a spinlock) holds the "reset happened" flag.
//!
//! # Deferred reset
//!
//! `reset_done` runs with `vfio_pci_core`'s `memory_lock` held; a thread
//! holding the state mutex may be in an admin command, so `reset_done` never
//! blocks on it: it sets the flag and only *tries* the mutex; whoever holds
//! it does the work when unlocking ([`StateGuard`]'s `Drop`): state RUNNING,
//! every session ended, and the device made to run if a stop may have
//! reached it after the function reset ([`VfCtx::after_reset`]). The guard
//! releases the mutex while holding the spinlock, so a reset cannot slip in
//! between. Ending a session on this path never waits for a stream lock
//! (it marks the session dead and frees its buffers where it can; a dead
//! session frees the rest on its next use).
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
//! and answers `ENODEV`. Device objects live in the state, not in the
//! sessions, and are destroyed with [`Vf::destroy_parts`] under the state
//! mutex when a session ends, on every path.

use kernel::{
    alloc::{flags::GFP_KERNEL_ACCOUNT, KVec},
    fs::File,
    new_mutex, new_spinlock,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Relaxed, Release},
        Arc, ArcBorrow, Mutex, MutexGuard, SpinLock, SpinLockGuard,
    },
    time::{delay::fsleep, Delta, Instant, Monotonic},
    uaccess::{UserSliceReader, UserSliceWriter},
};

use crate::{
    abstractions::{
        page_buffer::PageBuffer,
        stream_file::{self, Access, StreamOps},
        vfio::{
            migration::{MigState, MigrationOps, MIG_GET_PRECOPY_INFO},
            pci::CoreDevice,
        },
        virtio_admin::{objects_leaked, PartsObject, PartsOp, Vf, OBJ_HDR_LEN},
    },
    driver::VirtioVfioPci,
    proto::{
        arcs::{arc_action, Action},
        precopy::{Decision, PrecopyPolicy, ReadBudget},
        record::{HEADER_LEN, HEADER_LEN_U64, MAX_DEVICE_DATA},
        resume::{ErrorKind, Event, Parser, Want},
        save::SaveStream,
    },
};

type Dev = CoreDevice<VirtioVfioPci>;

/// The migration state of `dev`, if it migrates.
pub(crate) fn mig_of(dev: &Dev) -> Option<&MigDevice> {
    dev.data().get_ref().mig()
}

/// Name of the migration files' anonymous inode (as upstream).
const FILE_NAME: &CStr = c"virtiovf_mig";

/// How often a saving capture is retried when the device context grew
/// between `METADATA_GET` and `DEV_PARTS_GET` (the device answers ENOMEM).
const CAPTURE_RETRIES: u32 = 2;

/// Counters of one VF's migration activity, shown in debugfs
/// (`virtio_vfio_pci_rs-<BDF>/stats`).
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
        // Module-wide: a driver bug if it is ever non-zero.
        writeln!(f, "objects_leaked {}", objects_leaked())
    }
}

/// Migration state of one VF.
#[pin_data]
pub(crate) struct MigDevice {
    #[pin]
    state: Mutex<MigInner>,
    #[pin]
    reset: SpinLock<bool>,
}

/// The saving session of the state, with its device object (created with
/// the session's first read, which the read budget may defer).
struct SaveSlot {
    session: Arc<SaveSession>,
    obj: Option<PartsObject>,
}

/// The resuming session of the state, with its device object.
struct ResumeSlot {
    session: Arc<ResumeSession>,
    obj: PartsObject,
}

/// What the state mutex protects.
pub(crate) struct MigInner {
    vf: VfCtx,
    mig_state: MigState,
    saving: Option<SaveSlot>,
    resuming: Option<ResumeSlot>,
}

/// The VF and what the driver knows about its device.
struct VfCtx {
    vf: Vf,
    stats: Arc<MigStats>,
    /// A `DEV_MODE_SET(stopped)` was sent and no `DEV_MODE_SET(running)`
    /// succeeded since: the device may be stopped, whatever the migration
    /// state says after a reset (a stop in flight can reach the device after
    /// the function reset that restarted it).
    maybe_stopped: bool,
    /// Time base of `budget` and `size`.
    clock: Instant<Monotonic>,
    budget: ReadBudget,
    /// `precopy_interval_ms`: how long `size` answers `MIG_DATA_SIZE`.
    interval_ms: u64,
    /// The device-context size the last capture or query saw, and when.
    size: Option<(u64, u32)>,
}

/// The state mutex, held. Unlocking runs the deferred reset work.
///
/// # Invariants
///
/// `reset_held` is declared after `guard`, and Rust drops fields in
/// declaration order: when `drop()` returns with `reset_held` set, the state
/// mutex is released while the reset spinlock is still held, so a
/// `reset_done()` that found the mutex busy (its flag is set under the
/// spinlock) cannot have set its flag after our last look at it.
pub(crate) struct StateGuard<'a> {
    guard: MutexGuard<'a, MigInner>,
    reset_held: Option<SpinLockGuard<'a, bool>>,
    mig: &'a MigDevice,
}

impl core::ops::Deref for StateGuard<'_> {
    type Target = MigInner;

    fn deref(&self) -> &MigInner {
        &self.guard
    }
}

impl core::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut MigInner {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        loop {
            let mut reset = self.mig.reset.lock();
            if !*reset {
                // INVARIANT: kept until the mutex is released (see the type).
                self.reset_held = Some(reset);
                return;
            }
            *reset = false;
            drop(reset);
            // A reset happened while we held the mutex: do its work.
            inc(&self.guard.vf.stats.resets_deferred, 1);
            self.guard.after_reset();
        }
    }
}

impl MigDevice {
    /// Migration state for `vf`, RUNNING, counting into `stats`.
    pub(crate) fn new(vf: Vf, stats: Arc<MigStats>) -> impl PinInit<Self> {
        let (_, interval_ms) = crate::precopy_params();
        let clock = Instant::now();
        pin_init!(Self {
            state <- new_mutex!(MigInner {
                vf: VfCtx {
                    vf,
                    stats,
                    maybe_stopped: false,
                    clock,
                    budget: ReadBudget::new(crate::device_read_burst(), interval_ms, 0),
                    interval_ms,
                    size: None,
                },
                mig_state: MigState::Running,
                saving: None,
                resuming: None,
            }),
            reset <- new_spinlock!(false),
        })
    }

    fn lock(&self) -> StateGuard<'_> {
        StateGuard {
            guard: self.state.lock(),
            reset_held: None,
            mig: self,
        }
    }

    /// `err_handler->reset_done`: the function was reset.
    pub(crate) fn reset_done(&self) {
        let mut reset = self.reset.lock();
        *reset = true;
        let Some(g) = self.state.try_lock() else {
            // The holder of the state mutex does the work when unlocking.
            return;
        };
        *reset = false;
        drop(reset);
        let mut st = StateGuard {
            guard: g,
            reset_held: None,
            mig: self,
        };
        st.after_reset();
        // Unlocking handles a reset that came in meanwhile.
        drop(st);
    }

    /// The device was opened: it runs. The open path resets the function
    /// when it can; when it could not and the last user left the device
    /// stopped, make it run.
    pub(crate) fn open(&self) {
        let mut st = self.lock();
        st.mig_state = MigState::Running;
        st.vf.run_if_stopped();
    }

    /// The device is being closed: end every session, under the state
    /// mutex (upstream does this without the lock).
    pub(crate) fn close(&self) {
        self.lock().end_sessions();
    }
}

impl VfCtx {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(0)
    }

    /// `DEV_MODE_SET(stopped)`.
    fn mode_stop(&mut self) -> Result {
        // Before sending: a failed or interrupted command may still have
        // stopped the device.
        self.maybe_stopped = true;
        self.vf.mode_set(true)
    }

    /// `DEV_MODE_SET(running)`.
    fn mode_run(&mut self) -> Result {
        self.vf.mode_set(false)?;
        self.maybe_stopped = false;
        Ok(())
    }

    /// Make the device run if a stop may have reached it.
    fn run_if_stopped(&mut self) {
        if !self.maybe_stopped {
            return;
        }
        inc(&self.stats.runs_after_reset, 1);
        if let Err(e) = self.mode_run() {
            inc(&self.stats.failed_requests, 1);
            pr_warn!("cannot make the device run after a reset: {:?}\n", e);
        }
    }

    /// Take a pre-copy read from the budget, if one is left.
    fn reserve_read(&mut self) -> bool {
        let now = self.now_ms();
        if self.budget.try_take(now) {
            return true;
        }
        inc(&self.stats.reads_skipped, 1);
        false
    }

    /// Take a stop-copy read from the budget, waiting for it if needed
    /// (at most one interval; the read then happens anyway: a stop-copy read
    /// is never refused).
    fn wait_read(&mut self) {
        let mut waited = false;
        for _ in 0..2 {
            let now = self.now_ms();
            if self.budget.try_take(now) {
                return;
            }
            let wait = self.budget.wait(now);
            if !waited {
                inc(&self.stats.read_waits, 1);
                waited = true;
            }
            fsleep(Delta::from_millis(i64::try_from(wait).unwrap_or(1000)));
        }
    }

    /// Read the whole device context of `obj` (created first if `None`)
    /// into `buf`: `METADATA_GET(SIZE)` then `DEV_PARTS_GET(ALL)`. If the
    /// context grew in between (the device answers `ENOMEM`), ask again.
    fn capture(
        &mut self,
        obj: &mut Option<PartsObject>,
        mut buf: PageBuffer,
    ) -> Result<(PageBuffer, u32)> {
        if obj.is_none() {
            *obj = Some(self.vf.create_parts(PartsOp::Get)?);
        }
        let obj = obj.as_ref().ok_or(EINVAL)?;
        let mut tries = 0;
        loop {
            let size = self.vf.parts_size(obj)?;
            if size == 0 {
                return Err(EINVAL);
            }
            self.size = Some((self.now_ms(), size));
            buf.reserve(size as usize)?;
            match self.vf.parts_get(obj, &buf, size) {
                Ok(0) => return Err(EIO),
                Ok(n) => {
                    self.stats.record_saved(n);
                    return Ok((buf, n));
                }
                // The context grew after METADATA_GET: ask again.
                Err(e) if e == ENOMEM && tries < CAPTURE_RETRIES => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The device-context size for `MIG_DATA_SIZE`: the last one seen if it
    /// is less than an interval old, else asked through `live` (the saving
    /// session's object) or a temporary object.
    fn data_size(&mut self, live: Option<&PartsObject>) -> Result<u32> {
        let now = self.now_ms();
        if let Some((at, size)) = self.size {
            if now.saturating_sub(at) < self.interval_ms {
                return Ok(size);
            }
        }
        inc(&self.stats.size_queries, 1);
        let size = match live {
            Some(obj) => self.vf.parts_size(obj)?,
            None => {
                let obj = self.vf.create_parts(PartsOp::Get)?;
                let r = self.vf.parts_size(&obj);
                self.vf.destroy_parts(obj);
                r?
            }
        };
        self.size = Some((now, size));
        Ok(size)
    }
}

impl MigInner {
    /// The function was reset: state RUNNING, every session ended, the
    /// device running.
    fn after_reset(&mut self) {
        inc(&self.vf.stats.resets, 1);
        self.mig_state = MigState::Running;
        self.end_sessions();
        self.vf.size = None;
        // The reset restarted the device, but a stop sent before it by the
        // holder of the state mutex (or while `reset_done` waited for the
        // PCI core) may have reached the device after it.
        self.vf.run_if_stopped();
    }

    /// End every session: their files answer `ENODEV` from now on and
    /// their device objects are destroyed.
    fn end_sessions(&mut self) {
        if let Some(slot) = self.resuming.take() {
            slot.session.end();
            self.vf.vf.destroy_parts(slot.obj);
        }
        if let Some(slot) = self.saving.take() {
            slot.session.end();
            if let Some(obj) = slot.obj {
                self.vf.vf.destroy_parts(obj);
            }
        }
    }

    /// Perform the single arc from the current state to `next`.
    fn step(&mut self, dev: &Dev, next: MigState) -> Result<Option<ARef<File>>> {
        let action = arc_action(self.mig_state, next).ok_or(EINVAL)?;
        match action {
            Action::Nothing => Ok(None),
            Action::ModeStop => self.vf.mode_stop().map(|()| None),
            Action::ModeRun => self.vf.mode_run().map(|()| None),
            Action::CreateSaving { precopy } => self.create_saving(dev, precopy).map(Some),
            Action::FinalCapture => self.final_capture().map(|()| None),
            Action::CreateResuming => self.create_resuming(dev).map(Some),
            Action::EndSessions => {
                if self.mig_state == MigState::Resuming {
                    if let Some(slot) = &self.resuming {
                        slot.session.check_complete()?;
                    }
                }
                self.end_sessions();
                Ok(None)
            }
        }
    }

    fn create_saving(&mut self, dev: &Dev, precopy: bool) -> Result<ARef<File>> {
        let mut slot = SaveSlot {
            session: SaveSession::new(dev, precopy)?,
            obj: None,
        };
        let r = self
            .fill_saving(&mut slot, precopy)
            .and_then(|()| stream_file::create(FILE_NAME, slot.session.clone(), Access::ReadOnly));
        match r {
            Ok(file) => {
                self.saving = Some(slot);
                inc(&self.vf.stats.saving_sessions, 1);
                Ok(file)
            }
            Err(e) => {
                slot.session.end();
                if let Some(obj) = slot.obj {
                    self.vf.vf.destroy_parts(obj);
                }
                Err(e)
            }
        }
    }

    /// The first read of a new saving session: always for STOP_COPY, when
    /// the read budget allows for PRE_COPY.
    fn fill_saving(&mut self, slot: &mut SaveSlot, precopy: bool) -> Result {
        let read = if precopy {
            self.vf.reserve_read()
        } else {
            self.vf.wait_read();
            true
        };
        let first = if read {
            Some(self.vf.capture(&mut slot.obj, PageBuffer::new())?)
        } else {
            None
        };
        slot.session.queue.lock().start(first, precopy)
    }

    fn final_capture(&mut self) -> Result {
        let slot = self.saving.as_mut().ok_or(ENODEV)?;
        let spare = slot.session.queue.lock().take_spare();
        self.vf.wait_read();
        let (buf, len) = self.vf.capture(&mut slot.obj, spare)?;
        let mut q = slot.session.queue.lock();
        q.push_record(buf, len)?;
        q.complete = true;
        Ok(())
    }

    fn create_resuming(&mut self, dev: &Dev) -> Result<ARef<File>> {
        let obj = self.vf.vf.create_parts(PartsOp::Set)?;
        let session = match ResumeSession::new(dev, &obj) {
            Ok(s) => s,
            Err(e) => {
                self.vf.vf.destroy_parts(obj);
                return Err(e);
            }
        };
        match stream_file::create(FILE_NAME, session.clone(), Access::WriteOnly) {
            Ok(file) => {
                self.resuming = Some(ResumeSlot { session, obj });
                inc(&self.vf.stats.resuming_sessions, 1);
                Ok(file)
            }
            Err(e) => {
                session.end();
                self.vf.vf.destroy_parts(obj);
                Err(e)
            }
        }
    }
}

/// One record queued in a saving session.
struct Record {
    header: [u8; HEADER_LEN],
    data: PageBuffer,
    len: usize,
    /// Bytes of header + payload already read.
    off: usize,
}

impl Record {
    /// Copy the next piece, at most `room` bytes, to `out`: returns the
    /// bytes attempted and the bytes copied (fewer on a fault).
    fn copy_out(&mut self, out: &mut UserSliceWriter, room: usize) -> (usize, usize) {
        let (n, copied) = if self.off < HEADER_LEN {
            let hdr = self.header.get(self.off..).unwrap_or(&[]);
            let n = hdr.len().min(room);
            match out.write_slice(hdr.get(..n).unwrap_or(&[])) {
                Ok(()) => (n, n),
                Err(_) => (n, 0),
            }
        } else {
            let poff = self.off - HEADER_LEN;
            let n = self.len.saturating_sub(poff).min(room);
            (n, self.data.copy_to_user(poff, out, n))
        };
        self.off += copied;
        (n, copied)
    }

    fn finished(&self) -> bool {
        self.off >= HEADER_LEN + self.len
    }
}

/// A saving session: the stream behind a read-only migration file.
#[pin_data]
pub(crate) struct SaveSession {
    dev: ARef<Dev>,
    dead: Atomic<bool>,
    /// Records not yet handed to the reader, and the accounting. Never held
    /// across a user copy.
    #[pin]
    queue: Mutex<SaveQueue>,
    /// The record being read. Held across the copy to userspace.
    #[pin]
    reader: Mutex<Option<Record>>,
}

struct SaveQueue {
    /// Bytes produced and consumed; a reader's bytes count as consumed once
    /// its copy returned.
    stream: SaveStream,
    /// Oldest first.
    records: KVec<Record>,
    /// Every record the session will produce is queued.
    complete: bool,
    policy: PrecopyPolicy,
    created: Instant<Monotonic>,
    /// A consumed payload buffer, reused by the next capture.
    spare: Option<PageBuffer>,
}

impl SaveQueue {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(0)
    }

    fn push_record(&mut self, data: PageBuffer, len: u32) -> Result {
        self.records.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let header = self.stream.frame(u64::from(len)).map_err(|_| EINVAL)?;
        self.records.push(
            Record {
                header,
                data,
                len: len as usize,
                off: 0,
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        Ok(())
    }

    /// The session starts with `first` (or nothing, when the read budget
    /// deferred the first read of a pre-copy session).
    fn start(&mut self, first: Option<(PageBuffer, u32)>, precopy: bool) -> Result {
        let read = first.is_some();
        if let Some((buf, len)) = first {
            self.push_record(buf, len)?;
        }
        if precopy {
            self.stream.mark_initial();
            if read {
                let now = self.now_ms();
                self.policy.initial_read(now);
            }
        } else {
            self.complete = true;
        }
        Ok(())
    }

    fn take_spare(&mut self) -> PageBuffer {
        self.spare.take().unwrap_or_default()
    }

    /// Keep the larger of `buf` and the current spare for the next capture.
    fn recycle(&mut self, buf: PageBuffer) {
        if self
            .spare
            .as_ref()
            .is_none_or(|s| s.capacity() < buf.capacity())
        {
            self.spare = Some(buf);
        }
    }

    fn free_buffers(&mut self) {
        self.records.clear();
        self.spare = None;
    }
}

impl SaveSession {
    fn new(dev: &Dev, precopy: bool) -> Result<Arc<Self>> {
        let params = crate::precopy_params();
        let policy = if precopy {
            PrecopyPolicy::new(params.0, params.1)
        } else {
            PrecopyPolicy::new(0, 0)
        };
        Arc::pin_init(
            pin_init!(Self {
                dev: ARef::from(dev),
                dead: Atomic::new(false),
                queue <- new_mutex!(SaveQueue {
                    stream: SaveStream::new(),
                    records: KVec::new(),
                    complete: false,
                    policy,
                    created: Instant::now(),
                    spare: None,
                }),
                reader <- new_mutex!(None),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// The session ended. Called with the state mutex held: never waits
    /// for the reader (see the module docs).
    fn end(&self) {
        self.dead.store(true, Release);
        self.queue.lock().free_buffers();
        if let Some(mut cur) = self.reader.try_lock() {
            *cur = None;
        }
    }

    fn mig(&self) -> Result<&MigDevice> {
        mig_of(&self.dev).ok_or(ENODEV)
    }

    fn precopy_info(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        let mig = this.mig()?;
        let mut info = this.dev.precopy_info_request(cmd, arg)?;
        {
            let mut st = mig.lock();
            if !matches!(st.mig_state, MigState::PreCopy | MigState::PreCopyP2p) {
                return Err(EINVAL);
            }
            let MigInner { vf, saving, .. } = &mut *st;
            let slot = match saving {
                Some(slot) if core::ptr::eq(&*slot.session, &*this) => slot,
                _ => return Err(ENODEV),
            };
            // Everything queued was read: may the device be read again? The
            // session's policy and the device's budget must both agree.
            let spare = {
                let mut q = this.queue.lock();
                let now = q.now_ms();
                let dev_now = vf.now_ms();
                if q.stream.drained() && !q.complete && vf.budget.available(dev_now) {
                    match q.policy.query(now) {
                        Decision::Allowed => Some(q.take_spare()),
                        _ => None,
                    }
                } else {
                    None
                }
            };
            let captured = match spare {
                Some(spare) if vf.reserve_read() => Some(vf.capture(&mut slot.obj, spare)?),
                _ => None,
            };
            let mut q = this.queue.lock();
            if let Some((buf, len)) = captured {
                q.push_record(buf, len)?;
            }
            let bytes = q.stream.precopy();
            info.initial_bytes = bytes.initial_bytes;
            info.dirty_bytes = bytes.dirty_bytes;
        }
        info.reply(arg)?;
        Ok(0)
    }
}

#[vtable]
impl StreamOps for SaveSession {
    fn read(this: ArcBorrow<'_, Self>, out: &mut UserSliceWriter) -> Result<usize> {
        let mut cur = this.reader.lock();
        if this.dead.load(Acquire) {
            *cur = None;
            this.queue.lock().free_buffers();
            return Err(ENODEV);
        }
        let want = out.len();
        let mut done = 0usize;
        let mut fault = false;
        while done < want {
            if cur.is_none() {
                let mut q = this.queue.lock();
                if q.records.is_empty() {
                    break;
                }
                *cur = q.records.remove(0).ok();
            }
            let Some(rec) = Option::as_mut(&mut *cur) else {
                break;
            };
            // The copy may fault and sleep: only `reader` is held.
            let (n, copied) = rec.copy_out(out, want - done);
            done += copied;
            let finished = rec.finished();
            let mut q = this.queue.lock();
            q.stream.consume(copied as u64).map_err(|_| EINVAL)?;
            if finished {
                if let Some(r) = cur.take() {
                    q.recycle(r.data);
                }
            }
            drop(q);
            if copied < n {
                fault = true;
                break;
            }
        }
        if done > 0 {
            Ok(done)
        } else if fault {
            Err(EFAULT)
        } else if want == 0 {
            Ok(0)
        } else if this.queue.lock().complete {
            // Complete and nothing left (the loop found no record).
            Ok(0)
        } else {
            // Pre-copy with nothing queued: temporary end of stream.
            Err(ENOMSG)
        }
    }

    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd != MIG_GET_PRECOPY_INFO {
            return Err(ENOTTY);
        }
        Self::precopy_info(this, cmd, arg)
    }
}

/// [`ResumeSession::status`] when the data so far ended on a record
/// boundary and loaded without error.
const AT_BOUNDARY: i32 = 0;
/// [`ResumeSession::status`] when the data so far ended inside a record.
const IN_RECORD: i32 = 1;

/// A resuming session: the stream behind a write-only migration file.
#[pin_data]
pub(crate) struct ResumeSession {
    dev: ARef<Dev>,
    dead: Atomic<bool>,
    /// Published by every write for `RESUMING -> STOP`: [`AT_BOUNDARY`],
    /// [`IN_RECORD`], or the negative errno that stopped the load.
    status: Atomic<i32>,
    /// Parser and buffer. Held across the copy from userspace.
    #[pin]
    inner: Mutex<ResumeInner>,
}

struct ResumeInner {
    parser: Parser,
    /// Object header, then the payload of the current record.
    buf: PageBuffer,
    /// A device error: the data cannot be loaded any more.
    failed: Option<Error>,
}

fn parse_errno(kind: ErrorKind) -> Error {
    match kind {
        // Beyond what a device-parts size can express: as upstream.
        ErrorKind::TooLarge { size, .. } if size > MAX_DEVICE_DATA => ENOMEM,
        ErrorKind::TooLarge { .. } => EFBIG,
        ErrorKind::UnknownMandatoryTag { .. } => EOPNOTSUPP,
        ErrorKind::TruncatedHeader { .. }
        | ErrorKind::TruncatedPayload { .. }
        | ErrorKind::Misuse => EINVAL,
    }
}

impl ResumeSession {
    fn new(dev: &Dev, obj: &PartsObject) -> Result<Arc<Self>> {
        let mut buf = PageBuffer::new();
        buf.reserve(OBJ_HDR_LEN)?;
        buf.write_bytes(0, &obj.header())?;
        Arc::pin_init(
            pin_init!(Self {
                dev: ARef::from(dev),
                dead: Atomic::new(false),
                status: Atomic::new(AT_BOUNDARY),
                inner <- new_mutex!(ResumeInner {
                    parser: Parser::new(crate::max_record_size()),
                    buf,
                    failed: None,
                }),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// The session ended. Called with the state mutex held: never waits
    /// for a writer (see the module docs).
    fn end(&self) {
        self.dead.store(true, Release);
        if let Some(mut g) = self.inner.try_lock() {
            g.buf.clear();
        }
    }

    /// RESUMING -> STOP: the data must have ended on a record boundary and
    /// loaded without error (the uAPI asks to fail the arc otherwise). A
    /// write still in progress has not happened yet, as far as this is
    /// concerned.
    fn check_complete(&self) -> Result {
        match self.status.load(Acquire) {
            AT_BOUNDARY => Ok(()),
            IN_RECORD => Err(EINVAL),
            // A negative errno stored by `ResumeInner::status`.
            e => Err(Error::from_errno(e)),
        }
    }

    /// Load bytes `0..len` of `buf` (object header and one device-data
    /// record of `payload` bytes) with `DEV_PARTS_SET`, under the state
    /// mutex, if this is still the device's resuming session.
    fn load(&self, buf: &PageBuffer, len: usize, payload: u64) -> Result {
        let mig = mig_of(&self.dev).ok_or(ENODEV)?;
        let mut st = mig.lock();
        if self.dead.load(Acquire) {
            return Err(ENODEV);
        }
        let MigInner { vf, resuming, .. } = &mut *st;
        let slot = match resuming {
            Some(slot) if core::ptr::eq(&*slot.session, self) => slot,
            _ => return Err(ENODEV),
        };
        vf.vf.parts_set(&slot.obj, buf, len)?;
        vf.size = None;
        inc(&vf.stats.records_loaded, 1);
        inc(&vf.stats.bytes_loaded, payload);
        Ok(())
    }
}

impl ResumeInner {
    /// The status to publish (see [`ResumeSession::status`]).
    fn status(&self) -> i32 {
        if let Some(e) = self.failed {
            return e.to_errno();
        }
        match self.parser.finish() {
            Ok(()) => AT_BOUNDARY,
            Err(e) => match e.kind {
                ErrorKind::TruncatedHeader { .. } | ErrorKind::TruncatedPayload { .. } => IN_RECORD,
                kind => parse_errno(kind).to_errno(),
            },
        }
    }

    /// Consume `input`, loading each complete device-data record.
    /// Returns the bytes consumed; a fault or an allocation failure after
    /// some progress returns the progress (the next write retries), parse
    /// and device errors fail the session.
    fn write(&mut self, session: &ResumeSession, input: &mut UserSliceReader) -> Result<usize> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if let Some(e) = self.parser.error() {
            return Err(parse_errno(e.kind));
        }
        let total = input.len();
        let mut transient = None;
        loop {
            match self.parser.want() {
                Want::Header { missing } => {
                    if input.is_empty() {
                        break;
                    }
                    let mut hdr = [0u8; HEADER_LEN];
                    let n = missing.min(input.len()).min(HEADER_LEN);
                    let part = hdr.get_mut(..n).ok_or(EINVAL)?;
                    if let Err(e) = input.read_slice(part) {
                        transient = Some(e);
                        break;
                    }
                    self.parser.feed(part).map_err(|e| parse_errno(e.kind))?;
                }
                Want::Payload { offset, remaining } => {
                    if input.is_empty() {
                        break;
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    // The parser bounds `offset + remaining` by the record
                    // limit (< 4 GiB), so this cannot overflow.
                    let off = usize::try_from(offset)
                        .ok()
                        .and_then(|o| o.checked_add(OBJ_HDR_LEN))
                        .ok_or(EINVAL)?;
                    let end = off.checked_add(n).ok_or(EINVAL)?;
                    if let Err(e) = self.buf.reserve(end) {
                        transient = Some(e);
                        break;
                    }
                    let copied = self.buf.copy_from_user(off, input, n);
                    self.parser
                        .advance(copied)
                        .map_err(|e| parse_errno(e.kind))?;
                    if copied < n {
                        transient = Some(EFAULT);
                        break;
                    }
                }
                Want::Skip { remaining } => {
                    if input.is_empty() {
                        break;
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    input.skip(n)?;
                    self.parser.advance(n).map_err(|e| parse_errno(e.kind))?;
                }
                Want::Event => {
                    let step = self.parser.advance(0).map_err(|e| parse_errno(e.kind))?;
                    if let Some(Event::Complete { header }) = step.event {
                        if header.size > 0 {
                            let len = usize::try_from(header.size)
                                .ok()
                                .and_then(|s| s.checked_add(OBJ_HDR_LEN))
                                .ok_or(EINVAL)?;
                            if let Err(e) = session.load(&self.buf, len, header.size) {
                                self.failed = Some(e);
                                return Err(e);
                            }
                        }
                    }
                }
            }
        }
        let done = total - input.len();
        match transient {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }
}

#[vtable]
impl StreamOps for ResumeSession {
    fn write(this: ArcBorrow<'_, Self>, input: &mut UserSliceReader) -> Result<usize> {
        let mut s = this.inner.lock();
        if this.dead.load(Acquire) {
            s.buf.clear();
            return Err(ENODEV);
        }
        let r = s.write(&this, input);
        this.status.store(s.status(), Release);
        r
    }
}

/// The migration callbacks of our devices.
pub(crate) struct MigOps;

impl MigrationOps for MigOps {
    type Driver = VirtioVfioPci;

    fn set_state(dev: &Dev, new: MigState) -> Result<Option<ARef<File>>> {
        let mig = mig_of(dev).ok_or(ENOTTY)?;
        let mut st = mig.lock();
        let mut file = None;
        while st.mig_state != new {
            let next = dev.mig_next_state(st.mig_state, new)?;
            let f = match st.step(dev, next) {
                Ok(f) => f,
                Err(e) => {
                    inc(&st.vf.stats.failed_requests, 1);
                    return Err(e);
                }
            };
            st.mig_state = next;
            if let Some(f) = f {
                if next != new {
                    // The core's path table never does this.
                    return Err(EINVAL);
                }
                file = Some(f);
            }
        }
        Ok(file)
    }

    fn get_state(dev: &Dev) -> Result<MigState> {
        let mig = mig_of(dev).ok_or(ENOTTY)?;
        let st = mig.lock();
        Ok(st.mig_state)
    }

    fn get_data_size(dev: &Dev) -> Result<usize> {
        let mig = mig_of(dev).ok_or(ENOTTY)?;
        let mut st = mig.lock();
        let MigInner { vf, saving, .. } = &mut *st;
        let size = vf.data_size(saving.as_ref().and_then(|s| s.obj.as_ref()))?;
        // One record: header + payload.
        Ok((size as usize).saturating_add(HEADER_LEN))
    }
}
