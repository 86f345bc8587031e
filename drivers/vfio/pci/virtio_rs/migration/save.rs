// SPDX-License-Identifier: GPL-2.0

//! The saving side: the read-only migration file, its records, pre-copy.
//!
//! Each device-context capture (the first read, pre-copy reads, the final
//! read) becomes one record (16-byte header + the device's bytes) queued in
//! the session; userspace reads the queue in pieces of any size. `ENOMSG`
//! in pre-copy when drained, 0 at the end of a complete stream, `ENODEV`
//! once the session ended.

use kernel::{
    alloc::{flags::GFP_KERNEL_ACCOUNT, KVec},
    fs::File,
    new_mutex,
    prelude::*,
    sync::{aref::ARef, ArcBorrow, Mutex},
    time::{Instant, Monotonic},
    uaccess::UserSliceWriter,
};

use super::{
    inc,
    state::{MigInner, VfCtx},
    Dev, Session, Slot, Stream, FILE_NAME,
};
use crate::{
    abstractions::{
        page_buffer::PageBuffer,
        stream_file::{self, Access, StreamOps},
        vfio::migration::{MigState, MIG_GET_PRECOPY_INFO},
        virtio_admin::{PartsObject, PartsOp, PrecopyDecision},
    },
    proto::{
        precopy::{Decision, PrecopyPolicy},
        record::HEADER_LEN,
        save::SaveStream,
    },
};

/// How often a capture is retried when the device context grew between
/// `METADATA_GET` and `DEV_PARTS_GET` (the device answers ENOMEM).
const CAPTURE_RETRIES: u32 = 2;

/// The stream of a saving session.
#[pin_data]
pub(crate) struct Saving {
    /// Records not yet handed to the reader, and the accounting. Never held
    /// across a user copy.
    #[pin]
    queue: Mutex<SaveQueue>,
    /// The record being read. Held across the copy to userspace.
    #[pin]
    reader: Mutex<Option<Record>>,
}

/// A saving session.
pub(crate) type SaveSession = Session<Saving>;

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

struct SaveQueue {
    /// Bytes produced and consumed; a reader's bytes count as consumed once
    /// its copy returned.
    stream: SaveStream,
    /// Oldest first.
    records: KVec<Record>,
    /// Every record the session will produce is queued.
    complete: bool,
    /// A pre-copy session (PRE_COPY or PRE_COPY_P2P at creation).
    precopy: bool,
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
        let first = self.stream.produced() == 0;
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
        if first && self.precopy {
            // The first record of a pre-copy session is its initial data,
            // also when the read budget deferred it past the session's start.
            self.stream.mark_initial();
        }
        Ok(())
    }

    /// The session starts with `first`, or with nothing when the read
    /// budget deferred the first read of a pre-copy session (the first
    /// pre-copy query then reads, and that record is the initial data).
    fn start(&mut self, first: Option<(PageBuffer, u32)>) -> Result {
        let read = first.is_some();
        if let Some((buf, len)) = first {
            self.push_record(buf, len)?;
        }
        if !self.precopy {
            self.complete = true;
        } else if read {
            let now = self.now_ms();
            self.policy.initial_read(now);
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

impl Saving {
    fn new(precopy: bool) -> impl PinInit<Self, Error> {
        let params = crate::precopy_params();
        let policy = if precopy {
            PrecopyPolicy::new(params.0, params.1)
        } else {
            PrecopyPolicy::new(0, 0)
        };
        try_pin_init!(Self {
            queue <- new_mutex!(SaveQueue {
                stream: SaveStream::new(),
                records: KVec::new(),
                complete: false,
                precopy,
                policy,
                created: Instant::now(),
                spare: None,
            }),
            reader <- new_mutex!(None),
        })
    }
}

impl Stream for Saving {
    const SAVING: bool = true;

    fn release(&self) {
        self.queue.lock().free_buffers();
        if let Some(mut cur) = self.reader.try_lock() {
            *cur = None;
        }
    }
}

impl VfCtx {
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
            match self.vf.parts_get(obj, &mut buf, size, crate::max_cmd_sg()) {
                Ok(0) => return Err(EIO),
                Ok(n) => {
                    self.stats.record_saved(n);
                    if self.vf.tracing() {
                        self.vf.trace_record(true, u64::from(n));
                    }
                    return Ok((buf, n));
                }
                // The context grew after METADATA_GET: ask again.
                Err(e) if e == ENOMEM && tries < CAPTURE_RETRIES => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

impl MigInner {
    /// STOP -> STOP_COPY, RUNNING -> PRE_COPY, RUNNING_P2P -> PRE_COPY_P2P:
    /// a new saving session; its file goes to userspace.
    pub(super) fn create_saving(&mut self, dev: &Dev, precopy: bool) -> Result<ARef<File>> {
        let mut slot = Slot {
            session: Session::new(dev, Saving::new(precopy))?,
            obj: None,
        };
        let r = self
            .fill_saving(&mut slot, precopy)
            .and_then(|()| stream_file::create(FILE_NAME, slot.session.clone(), Access::ReadOnly));
        match r {
            Ok(file) => {
                self.saving = Some(slot);
                inc(&self.vf.stats.saving_sessions, 1);
                if self.vf.vf.tracing() {
                    self.vf.vf.trace_session(true, true);
                }
                Ok(file)
            }
            Err(e) => {
                slot.end(&mut self.vf.vf);
                Err(e)
            }
        }
    }

    /// The first read of a new saving session: always for STOP_COPY, when
    /// the read budget allows for PRE_COPY.
    fn fill_saving(&mut self, slot: &mut Slot<Saving>, precopy: bool) -> Result {
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
        slot.session.stream.queue.lock().start(first)
    }

    /// PRE_COPY_P2P -> STOP_COPY: the final record; the stream is complete.
    pub(super) fn final_capture(&mut self) -> Result {
        let slot = self.saving.as_mut().ok_or(ENODEV)?;
        let spare = slot.session.stream.queue.lock().take_spare();
        self.vf.wait_read();
        let (buf, len) = self.vf.capture(&mut slot.obj, spare)?;
        let mut q = slot.session.stream.queue.lock();
        q.push_record(buf, len)?;
        q.complete = true;
        Ok(())
    }
}

impl SaveSession {
    /// Copy queued records to `out` (up to `want` bytes), taking them from
    /// the queue one at a time into `cur`, the reader's record. Returns the
    /// bytes copied and whether a copy faulted.
    fn copy_records(
        this: &Self,
        cur: &mut Option<Record>,
        out: &mut UserSliceWriter,
        want: usize,
    ) -> Result<(usize, bool)> {
        let s = &this.stream;
        let mut done = 0usize;
        while done < want {
            if cur.is_none() {
                let mut q = s.queue.lock();
                if q.records.is_empty() {
                    break;
                }
                *cur = q.records.remove(0).ok();
            }
            let Some(rec) = cur.as_mut() else {
                break;
            };
            // The copy may fault and sleep: only `reader` is held.
            let (n, copied) = rec.copy_out(out, want - done);
            done += copied;
            let finished = rec.finished();
            let mut q = s.queue.lock();
            q.stream.consume(copied as u64).map_err(|_| EINVAL)?;
            if finished {
                if let Some(r) = cur.take() {
                    // An ended session keeps no buffer.
                    if !this.ended() {
                        q.recycle(r.data);
                    }
                }
            }
            drop(q);
            if copied < n {
                return Ok((done, true));
            }
        }
        Ok((done, false))
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO`.
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
                Some(slot) if slot.holds(&this) => slot,
                _ => return Err(ENODEV),
            };
            let q_lock = &this.stream.queue;
            // Everything queued was read: may the device be read again? The
            // session's policy and the device's budget must both agree.
            let (spare, decision) = {
                let mut q = q_lock.lock();
                let now = q.now_ms();
                let dev_now = vf.now_ms();
                if !q.stream.drained() {
                    (None, PrecopyDecision::Undrained)
                } else if q.complete {
                    (None, PrecopyDecision::Complete)
                } else if !vf.budget.available(dev_now) {
                    (None, PrecopyDecision::Budget)
                } else {
                    match q.policy.query(now) {
                        Decision::Allowed => (Some(q.take_spare()), PrecopyDecision::Allowed),
                        Decision::CapReached => (None, PrecopyDecision::Cap),
                        Decision::RateLimited => (None, PrecopyDecision::Rate),
                    }
                }
            };
            let captured = match spare {
                Some(spare) if vf.reserve_read() => Some(vf.capture(&mut slot.obj, spare)?),
                _ => None,
            };
            let mut q = q_lock.lock();
            if let Some((buf, len)) = captured {
                q.push_record(buf, len)?;
            }
            let bytes = q.stream.precopy();
            info.initial_bytes = bytes.initial_bytes;
            info.dirty_bytes = bytes.dirty_bytes;
            drop(q);
            if vf.vf.tracing() {
                vf.vf
                    .trace_precopy_query(decision, bytes.initial_bytes, bytes.dirty_bytes);
            }
        }
        info.reply(arg)?;
        Ok(0)
    }
}

#[vtable]
impl StreamOps for SaveSession {
    fn read(this: ArcBorrow<'_, Self>, out: &mut UserSliceWriter) -> Result<usize> {
        let s = &this.stream;
        let mut cur = s.reader.lock();
        if this.ended() {
            *cur = None;
            s.queue.lock().free_buffers();
            return Err(ENODEV);
        }
        let want = out.len();
        let r = Self::read_locked(&this, &mut cur, out, want);
        if this.ended() {
            // Ended while this read ran: keep no buffer.
            *cur = None;
        }
        r
    }

    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd != MIG_GET_PRECOPY_INFO {
            return Err(ENOTTY);
        }
        Self::precopy_info(this, cmd, arg)
    }
}

impl SaveSession {
    /// `read()` with the reader's record `cur` locked: copy what is queued,
    /// then decide what an empty read means.
    fn read_locked(
        this: &Self,
        cur: &mut Option<Record>,
        out: &mut UserSliceWriter,
        want: usize,
    ) -> Result<usize> {
        let s = &this.stream;
        loop {
            let (done, fault) = Self::copy_records(this, cur, out, want)?;
            if done > 0 {
                return Ok(done);
            } else if fault {
                return Err(EFAULT);
            } else if want == 0 {
                return Ok(0);
            }
            // Nothing was read. Decide under one look at the queue: a record
            // queued since the copy looked, or the session ended since, must
            // not turn into an end of stream (`end()` marks the session dead
            // before it takes the queue to free it).
            let q = s.queue.lock();
            if this.ended() {
                return Err(ENODEV);
            } else if q.records.is_empty() {
                // Complete: the end. Else pre-copy drained: for now.
                return if q.complete { Ok(0) } else { Err(ENOMSG) };
            }
            // A capture queued a record meanwhile: copy it.
        }
    }
}
