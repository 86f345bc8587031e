// SPDX-License-Identifier: GPL-2.0

//! The live migration engine: state arcs, saving and resuming sessions,
//! pre-copy, and the deferred-reset protocol.
//!
//! # Locking
//!
//! - [`MigDevice::state`] (the "state mutex") protects the migration state,
//!   the [`Vf`] (so it serialises every admin command of the VF, as the PF
//!   API requires) and the sessions' device objects. Every path that sends
//!   an admin command holds it.
//! - Each session has its own mutex for its stream: queued records and
//!   position (saving), parser and buffer (resuming). Order: state mutex,
//!   then session mutex. `read()` on a saving file takes only the session
//!   mutex, so a slow reader never blocks state changes.
//! - [`MigDevice::reset`] (a spinlock) holds the "reset happened" flag.
//!
//! # Deferred reset
//!
//! `reset_done` runs with `vfio_pci_core`'s `memory_lock` held, while the
//! migration paths hold the state mutex across user copies (which can fault
//! into a BAR mmap and take `memory_lock`). So `reset_done` never blocks on
//! the state mutex: it sets the flag and only *tries* the mutex; whoever
//! holds it does the work when unlocking ([`StateGuard`]'s `Drop`): state
//! RUNNING and every session ended. The guard releases the mutex while
//! holding the spinlock, so a reset cannot slip in between. Ending a
//! session on this path never waits for a session mutex either (it marks
//! the session dead and frees its buffers only if the mutex is free; a
//! dead session frees them on its next use).
//!
//! # Lifetimes
//!
//! A session holds a reference to the device, so a migration file that
//! outlives the device file (or the driver binding) keeps the object alive
//! and answers `ENODEV`. Device objects live in the state, not in the
//! sessions, and are destroyed exactly once when a session ends (RAII).

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
    time::{Instant, Monotonic},
    uaccess::{UserSliceReader, UserSliceWriter},
};

use crate::{
    driver::VirtioVfioPci,
    page_buffer::PageBuffer,
    proto::{
        arcs::{arc_action, Action},
        precopy::{Decision, PrecopyPolicy},
        record::{HEADER_LEN, HEADER_LEN_U64, MAX_DEVICE_DATA},
        resume::{ErrorKind, Event, Parser, Want},
        save::SaveStream,
    },
    stream_file::{self, Access, StreamOps},
    vfio::{
        migration::{MigState, MigrationOps, MIG_GET_PRECOPY_INFO},
        pci::CoreDevice,
    },
    virtio_admin::{PartsObject, PartsOp, Vf, OBJ_HDR_LEN},
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
    failed_requests: Atomic<u64>,
}

/// Add to a counter. Counters are only written under the state mutex, so
/// a load and a store suffice.
fn bump(c: &Atomic<u64>, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
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
            failed_requests: Atomic::new(0),
        }
    }

    /// A device-context read queued as a record of `len` payload bytes.
    fn record_saved(&self, len: u32) {
        bump(&self.device_reads, 1);
        bump(&self.records_saved, 1);
        bump(&self.bytes_saved, u64::from(len) + HEADER_LEN_U64);
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
            ("failed_requests", &self.failed_requests),
        ] {
            writeln!(f, "{} {}", name, c.load(Relaxed))?;
        }
        Ok(())
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

struct SaveSlot {
    session: Arc<SaveSession>,
    obj: PartsObject,
}

struct ResumeSlot {
    session: Arc<ResumeSession>,
    obj: PartsObject,
}

/// What the state mutex protects.
pub(crate) struct MigInner {
    vf: Vf,
    stats: Arc<MigStats>,
    mig_state: MigState,
    saving: Option<SaveSlot>,
    resuming: Option<ResumeSlot>,
}

/// The state mutex, held. Unlocking runs deferred reset work.
///
/// Field order matters: after `drop()` returns, `guard` (the state mutex)
/// is released before `reset_held` (the spinlock), so a `reset_done` that
/// found the mutex locked cannot set its flag unseen.
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
                // Keep the spinlock until the mutex is released (fields).
                self.reset_held = Some(reset);
                return;
            }
            *reset = false;
            drop(reset);
            bump(&self.guard.stats.resets, 1);
            self.guard.mig_state = MigState::Running;
            self.guard.end_sessions();
        }
    }
}

impl MigDevice {
    /// Migration state for `vf`, RUNNING, counting into `stats`.
    pub(crate) fn new(vf: Vf, stats: Arc<MigStats>) -> impl PinInit<Self> {
        pin_init!(Self {
            state <- new_mutex!(MigInner {
                vf,
                stats: stats.clone(),
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
        drop(reset);
        drop(StateGuard {
            guard: g,
            reset_held: None,
            mig: self,
        });
    }

    /// The device was opened: it runs (the open path reset it).
    pub(crate) fn open(&self) {
        self.lock().mig_state = MigState::Running;
    }

    /// The device is being closed: end every session, under the state
    /// mutex (upstream does this without the lock).
    pub(crate) fn close(&self) {
        self.lock().end_sessions();
    }
}

impl MigInner {
    /// End every session: their files answer `ENODEV` from now on and
    /// their device objects are destroyed.
    fn end_sessions(&mut self) {
        if let Some(slot) = self.resuming.take() {
            slot.session.end();
            drop(slot.obj);
        }
        if let Some(slot) = self.saving.take() {
            slot.session.end();
            drop(slot.obj);
        }
    }

    /// Perform the single arc from the current state to `next`.
    fn step(&mut self, dev: &Dev, next: MigState) -> Result<Option<ARef<File>>> {
        let action = arc_action(self.mig_state, next).ok_or(EINVAL)?;
        match action {
            Action::Nothing => Ok(None),
            Action::ModeStop => self.vf.mode_set(true).map(|()| None),
            Action::ModeRun => self.vf.mode_set(false).map(|()| None),
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
        let obj = self.vf.create_parts(PartsOp::Get)?;
        let (buf, len) = capture(&mut self.vf, &obj, PageBuffer::new())?;
        let session = SaveSession::new(dev, precopy)?;
        session.inner.lock().first_record(buf, len, precopy)?;
        let file = stream_file::create(FILE_NAME, session.clone(), Access::ReadOnly)?;
        self.saving = Some(SaveSlot { session, obj });
        bump(&self.stats.saving_sessions, 1);
        self.stats.record_saved(len);
        Ok(file)
    }

    fn final_capture(&mut self) -> Result {
        let slot = self.saving.as_ref().ok_or(ENODEV)?;
        let spare = slot.session.inner.lock().spare.take().unwrap_or_default();
        let (buf, len) = capture(&mut self.vf, &slot.obj, spare)?;
        let mut s = slot.session.inner.lock();
        s.push_record(buf, len)?;
        s.complete = true;
        self.stats.record_saved(len);
        Ok(())
    }

    fn create_resuming(&mut self, dev: &Dev) -> Result<ARef<File>> {
        let obj = self.vf.create_parts(PartsOp::Set)?;
        let session = ResumeSession::new(dev, &obj)?;
        let file = stream_file::create(FILE_NAME, session.clone(), Access::WriteOnly)?;
        self.resuming = Some(ResumeSlot { session, obj });
        bump(&self.stats.resuming_sessions, 1);
        Ok(file)
    }
}

/// Read the whole device context of `obj` into `buf` (grown as needed):
/// `METADATA_GET(SIZE)` then `DEV_PARTS_GET(ALL)`. Returns the buffer and
/// the bytes the device wrote.
fn capture(vf: &mut Vf, obj: &PartsObject, mut buf: PageBuffer) -> Result<(PageBuffer, u32)> {
    let mut tries = 0;
    loop {
        let size = vf.parts_size(obj)?;
        if size == 0 {
            return Err(EINVAL);
        }
        buf.reserve(size as usize)?;
        match vf.parts_get(obj, &buf, size) {
            Ok(0) => return Err(EIO),
            Ok(n) => return Ok((buf, n)),
            // The context grew after METADATA_GET: ask again.
            Err(e) if e == ENOMEM && tries < CAPTURE_RETRIES => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

fn now_ms(since: &Instant<Monotonic>) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(0)
}

/// One record queued in a saving session.
struct Record {
    header: [u8; HEADER_LEN],
    data: PageBuffer,
    len: usize,
    /// Bytes of header + payload already read.
    off: usize,
}

/// A saving session: the stream behind a read-only migration file.
#[pin_data]
pub(crate) struct SaveSession {
    dev: ARef<Dev>,
    dead: Atomic<bool>,
    #[pin]
    inner: Mutex<SaveInner>,
}

struct SaveInner {
    stream: SaveStream,
    records: KVec<Record>,
    /// Every record the session will produce is queued.
    complete: bool,
    policy: PrecopyPolicy,
    created: Instant<Monotonic>,
    /// A consumed payload buffer, reused by the next capture.
    spare: Option<PageBuffer>,
}

impl SaveInner {
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

    fn first_record(&mut self, data: PageBuffer, len: u32, precopy: bool) -> Result {
        self.push_record(data, len)?;
        if precopy {
            self.stream.mark_initial();
            let now = now_ms(&self.created);
            self.policy.initial_read(now);
        } else {
            self.complete = true;
        }
        Ok(())
    }

    fn free_buffers(&mut self) {
        self.records.clear();
        self.spare = None;
    }

    fn read(&mut self, out: &mut UserSliceWriter) -> Result<usize> {
        let want = out.len();
        let mut done = 0usize;
        let mut fault = false;
        while done < want {
            let Some(rec) = self.records.first_mut() else {
                break;
            };
            let room = want - done;
            let (n, copied) = if rec.off < HEADER_LEN {
                let hdr = rec.header.get(rec.off..).unwrap_or(&[]);
                let n = hdr.len().min(room);
                match out.write_slice(hdr.get(..n).unwrap_or(&[])) {
                    Ok(()) => (n, n),
                    Err(_) => (n, 0),
                }
            } else {
                let poff = rec.off - HEADER_LEN;
                let n = rec.len.saturating_sub(poff).min(room);
                (n, rec.data.copy_to_user(poff, out, n))
            };
            rec.off += copied;
            done += copied;
            self.stream.consume(copied as u64).map_err(|_| EINVAL)?;
            if rec.off >= HEADER_LEN + rec.len {
                if let Ok(r) = self.records.remove(0) {
                    if self
                        .spare
                        .as_ref()
                        .is_none_or(|s| s.capacity() < r.data.capacity())
                    {
                        self.spare = Some(r.data);
                    }
                }
            }
            if copied < n {
                fault = true;
                break;
            }
        }
        if done > 0 {
            Ok(done)
        } else if fault {
            Err(EFAULT)
        } else if want == 0 || self.complete {
            Ok(0)
        } else {
            // Pre-copy with nothing queued: temporary end of stream.
            Err(ENOMSG)
        }
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
                inner <- new_mutex!(SaveInner {
                    stream: SaveStream::new(),
                    records: KVec::new(),
                    complete: false,
                    policy,
                    created: Instant::now(),
                    spare: None,
                }),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// The session ended: never block here (see the module docs).
    fn end(&self) {
        self.dead.store(true, Release);
        if let Some(mut g) = self.inner.try_lock() {
            g.free_buffers();
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
            let MigInner {
                vf, saving, stats, ..
            } = &mut *st;
            let slot = match saving {
                Some(slot) if core::ptr::eq(&*slot.session, &*this) => slot,
                _ => return Err(ENODEV),
            };
            let query = {
                let mut s = this.inner.lock();
                if s.stream.drained() && !s.complete {
                    let now = now_ms(&s.created);
                    s.policy.query(now) == Decision::Allowed
                } else {
                    false
                }
            };
            if query {
                let spare = this.inner.lock().spare.take().unwrap_or_default();
                let (buf, len) = capture(vf, &slot.obj, spare)?;
                this.inner.lock().push_record(buf, len)?;
                stats.record_saved(len);
            }
            let bytes = this.inner.lock().stream.precopy();
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
        let mut s = this.inner.lock();
        if this.dead.load(Acquire) {
            s.free_buffers();
            return Err(ENODEV);
        }
        s.read(out)
    }

    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd != MIG_GET_PRECOPY_INFO {
            return Err(ENOTTY);
        }
        Self::precopy_info(this, cmd, arg)
    }
}

/// A resuming session: the stream behind a write-only migration file.
#[pin_data]
pub(crate) struct ResumeSession {
    dev: ARef<Dev>,
    dead: Atomic<bool>,
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
                inner <- new_mutex!(ResumeInner {
                    parser: Parser::new(crate::max_record_size()),
                    buf,
                    failed: None,
                }),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    fn end(&self) {
        self.dead.store(true, Release);
        if let Some(mut g) = self.inner.try_lock() {
            g.buf.clear();
        }
    }

    /// RESUMING -> STOP: the data must have ended on a record boundary and
    /// loaded without error (the uAPI asks to fail the arc otherwise).
    fn check_complete(&self) -> Result {
        let s = self.inner.lock();
        if let Some(e) = s.failed {
            return Err(e);
        }
        s.parser.finish().map_err(|e| parse_errno(e.kind))
    }
}

impl ResumeInner {
    /// Consume `input`, loading each complete device-data record.
    /// Returns the bytes consumed; a fault or an allocation failure after
    /// some progress returns the progress (the next write retries), parse
    /// and device errors fail the session.
    fn write(
        &mut self,
        vf: &mut Vf,
        stats: &MigStats,
        input: &mut UserSliceReader,
    ) -> Result<usize> {
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
                            if let Err(e) = vf.parts_set(&self.buf, len) {
                                self.failed = Some(e);
                                return Err(e);
                            }
                            bump(&stats.records_loaded, 1);
                            bump(&stats.bytes_loaded, header.size);
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
        let mig = mig_of(&this.dev).ok_or(ENODEV)?;
        let mut st = mig.lock();
        if this.dead.load(Acquire) {
            return Err(ENODEV);
        }
        let MigInner {
            vf,
            resuming,
            stats,
            ..
        } = &mut *st;
        match resuming {
            Some(slot) if core::ptr::eq(&*slot.session, &*this) => {}
            _ => return Err(ENODEV),
        }
        let mut s = this.inner.lock();
        let r = s.write(vf, stats, input);
        // Session mutex before the state mutex: the state guard's unlock
        // may end this session.
        drop(s);
        drop(st);
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
                    bump(&st.stats.failed_requests, 1);
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
        let size = match saving {
            Some(slot) => vf.parts_size(&slot.obj)?,
            None => {
                let obj = vf.create_parts(PartsOp::Get)?;
                let r = vf.parts_size(&obj);
                drop(obj);
                r?
            }
        };
        // One record: header + payload.
        Ok((size as usize).saturating_add(HEADER_LEN))
    }
}
