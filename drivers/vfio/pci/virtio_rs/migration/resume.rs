// SPDX-License-Identifier: GPL-2.0

//! The resuming side: the write-only migration file.
//!
//! The pure-core parser drives the writes; payload bytes go straight from
//! userspace into the `DEV_PARTS_SET` buffer behind the 8-byte object
//! header, which grows only as bytes arrive; one `DEV_PARTS_SET` per
//! complete device-data record; optional records of unknown kind are
//! skipped without buffering; zero-length records load nothing. Leaving
//! RESUMING fails with `EINVAL` when the stream ended inside a record, or
//! with the error that stopped the load.

use kernel::{
    fs::File,
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Release},
        ArcBorrow, Mutex,
    },
    transmute::AsBytes,
    uaccess::UserSliceReader,
};

use super::{inc, state::MigInner, Dev, Session, Slot, Stream, FILE_NAME};
use crate::{
    abstractions::{
        page_buffer::PageBuffer,
        stream_file::{self, Access, StreamOps},
        virtio_admin::{PartsObject, PartsOp, OBJ_HDR_LEN},
    },
    proto::{
        record::{HEADER_LEN, MAX_DEVICE_DATA},
        resume::{self, ErrorKind, Event, Parser, Want},
    },
};

/// [`Resuming::status`] when the data so far ended on a record boundary and
/// loaded without error.
const AT_BOUNDARY: i32 = 0;
/// [`Resuming::status`] when the data so far ended inside a record.
const IN_RECORD: i32 = 1;
/// [`Resuming::status`] while a write is in progress: it may have loaded
/// some of its records and not others yet.
const WRITING: i32 = 2;

/// The stream of a resuming session.
#[pin_data]
pub(crate) struct Resuming {
    /// Published for `RESUMING -> STOP`: [`WRITING`] during every write,
    /// then [`AT_BOUNDARY`], [`IN_RECORD`], or the negative errno that
    /// stopped the load.
    status: Atomic<i32>,
    /// Parser and buffer. Held across the copy from userspace.
    #[pin]
    inner: Mutex<ResumeInner>,
}

/// A resuming session.
pub(crate) type ResumeSession = Session<Resuming>;

struct ResumeInner {
    parser: Parser,
    /// Object header, then the payload of the current record.
    buf: PageBuffer,
    /// A device error: the data cannot be loaded any more.
    failed: Option<Error>,
}

impl From<resume::Error> for Error {
    fn from(e: resume::Error) -> Self {
        match e.kind {
            // Beyond what a device-parts size can express: as upstream.
            ErrorKind::TooLarge { size, .. } if size > MAX_DEVICE_DATA => ENOMEM,
            ErrorKind::TooLarge { .. } => EFBIG,
            ErrorKind::UnknownMandatoryTag { .. } => EOPNOTSUPP,
            ErrorKind::TruncatedHeader { .. }
            | ErrorKind::TruncatedPayload { .. }
            | ErrorKind::Misuse => EINVAL,
        }
    }
}

impl Resuming {
    fn new(obj: &PartsObject) -> Result<impl PinInit<Self, Error>> {
        let mut buf = PageBuffer::new();
        buf.reserve(OBJ_HDR_LEN)?;
        buf.write_bytes(0, obj.header().as_bytes())?;
        Ok(try_pin_init!(Self {
            status: Atomic::new(AT_BOUNDARY),
            inner <- new_mutex!(ResumeInner {
                parser: Parser::new(crate::max_record_size()),
                buf,
                failed: None,
            }),
        }))
    }

    /// RESUMING -> STOP: the data must have ended on a record boundary and
    /// loaded without error (the uAPI asks to fail the arc otherwise), and
    /// no write may be in progress (`EBUSY`: it may have loaded part of its
    /// data; try again when it returned).
    pub(super) fn check_complete(&self) -> Result {
        match self.status.load(Acquire) {
            AT_BOUNDARY => Ok(()),
            IN_RECORD => Err(EINVAL),
            WRITING => Err(EBUSY),
            // A negative errno stored by `ResumeInner::status`.
            e => Err(Error::from_errno(e)),
        }
    }
}

impl Stream for Resuming {
    const SAVING: bool = false;

    fn release(&self) {
        if let Some(mut g) = self.inner.try_lock() {
            g.buf.clear();
        }
    }
}

impl MigInner {
    /// STOP -> RESUMING: a new resuming session; its file goes to
    /// userspace.
    pub(super) fn create_resuming(&mut self, dev: &Dev) -> Result<ARef<File>> {
        let obj = self.vf.vf.create_parts(PartsOp::Set)?;
        let session = match Resuming::new(&obj).and_then(|s| Session::new(dev, s)) {
            Ok(s) => s,
            Err(e) => {
                self.vf.vf.destroy_parts(obj);
                return Err(e);
            }
        };
        let slot = Slot {
            session,
            obj: Some(obj),
        };
        match stream_file::create(FILE_NAME, slot.session.clone(), Access::WriteOnly) {
            Ok(file) => {
                self.resuming = Some(slot);
                inc(&self.vf.stats.resuming_sessions, 1);
                if self.vf.vf.tracing() {
                    self.vf.vf.trace_session(false, true);
                }
                Ok(file)
            }
            Err(e) => {
                slot.end(&mut self.vf.vf);
                Err(e)
            }
        }
    }
}

impl ResumeSession {
    /// Load bytes `0..len` of `buf` (object header and one device-data
    /// record of `payload` bytes) with `DEV_PARTS_SET`, under the state
    /// mutex, if this is still the device's resuming session.
    fn load(&self, buf: &PageBuffer, len: usize, payload: u64) -> Result {
        let mig = self.mig()?;
        let mut st = mig.lock();
        if self.ended() {
            return Err(ENODEV);
        }
        let MigInner { vf, resuming, .. } = &mut *st;
        let obj = match resuming {
            Some(slot) if slot.holds(self) => slot.obj.as_ref().ok_or(ENODEV)?,
            _ => return Err(ENODEV),
        };
        vf.vf.parts_set(obj, buf, len, crate::max_cmd_sg())?;
        vf.size = None;
        if vf.vf.tracing() {
            vf.vf.trace_record(false, payload);
        }
        inc(&vf.stats.records_loaded, 1);
        inc(&vf.stats.bytes_loaded, payload);
        Ok(())
    }
}

impl ResumeInner {
    /// The status to publish (see [`Resuming::status`]).
    fn status(&self) -> i32 {
        if let Some(e) = self.failed {
            return e.to_errno();
        }
        match self.parser.finish() {
            Ok(()) => AT_BOUNDARY,
            Err(e) => match e.kind {
                ErrorKind::TruncatedHeader { .. } | ErrorKind::TruncatedPayload { .. } => IN_RECORD,
                _ => Error::from(e).to_errno(),
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
            return Err(e.into());
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
                    self.parser.feed(part)?;
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
                    if session.ended() {
                        // A reset or close ended it: keep no more memory.
                        self.buf.clear();
                        return Err(ENODEV);
                    }
                    if offset == 0 {
                        // A record starts: room for the pointers to all its
                        // pages, once (its pages come as its bytes do).
                        let whole = usize::try_from(remaining)
                            .ok()
                            .and_then(|r| r.checked_add(OBJ_HDR_LEN))
                            .ok_or(EINVAL)?;
                        if let Err(e) = self.buf.reserve_index(whole) {
                            transient = Some(e);
                            break;
                        }
                    }
                    // Pages in runs sized for the whole record (its end is
                    // `off + remaining`), so few scatterlist entries however
                    // small the writes.
                    let record_end = usize::try_from(remaining)
                        .ok()
                        .and_then(|r| r.checked_add(off))
                        .ok_or(EINVAL)?;
                    if let Err(e) = self.buf.reserve_ahead(end, record_end) {
                        transient = Some(e);
                        break;
                    }
                    let copied = self.buf.copy_from_user(off, input, n);
                    self.parser.advance(copied)?;
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
                    self.parser.advance(n)?;
                }
                Want::Event => {
                    let step = self.parser.advance(0)?;
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
        let s = &this.stream;
        let mut inner = s.inner.lock();
        if this.ended() {
            inner.buf.clear();
            return Err(ENODEV);
        }
        s.status.store(WRITING, Release);
        let r = inner.write(&this, input);
        s.status.store(inner.status(), Release);
        if this.ended() {
            // Ended while this write ran: keep no buffer.
            inner.buf.clear();
        }
        r
    }
}
