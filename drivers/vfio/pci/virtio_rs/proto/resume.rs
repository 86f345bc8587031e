// SPDX-License-Identifier: GPL-2.0

//! The push-style parser of the resuming side.
//!
//! Userspace writes the migration stream in chunks of any size, split at any
//! byte. The parser keeps only the partial record header (at most 15 bytes)
//! and counters; it never holds on to the input, and payload bytes are never
//! copied by it. There are two ways to drive it:
//!
//! - [`Parser::feed`] with byte slices: each call consumes a prefix of the
//!   input and returns at most one [`Event`]; for [`Event::Payload`] the
//!   consumed prefix is the payload chunk. Used by tests, fuzzers and the
//!   stream inspector.
//! - [`Parser::want`] + [`Parser::feed`] for header bytes + [`Parser::advance`]
//!   for payload or skipped bytes that the caller moved itself. Used by the
//!   driver, which copies payload from userspace straight into the buffer
//!   of the `DEV_PARTS_SET` command.
//!
//! Rules:
//!
//! - A device-data record ([`TAG_DEVICE_DATA`]) larger than the configured
//!   limit is an error ([`ErrorKind::TooLarge`]). The limit never exceeds
//!   [`MAX_DEVICE_DATA`] (2^32 - 1, the widest device-parts size).
//! - A record with another tag is skipped, without buffering, when it is
//!   flagged optional ([`FLAG_OPTIONAL`]) and its size is at most
//!   [`MAX_DEVICE_DATA`] (the upstream reader's bound for every record);
//!   otherwise it is an error ([`ErrorKind::UnknownMandatoryTag`],
//!   [`ErrorKind::TooLarge`]).
//! - A zero-length device-data record is accepted and completes at once:
//!   it carries no device parts, so there is nothing to load, and the
//!   driver sends no command for it. The upstream driver would send a
//!   malformed `DEV_PARTS_SET` for it; our writer never produces one.
//! - [`Parser::finish`] at the end of the stream fails when the stream
//!   stopped inside a header or a payload: the vfio uAPI requires leaving
//!   RESUMING to fail on incomplete data.
//! - The first error is sticky: every later call returns it again.

use super::record::{RecordHeader, FLAG_OPTIONAL, HEADER_LEN, MAX_DEVICE_DATA, TAG_DEVICE_DATA};

/// What went wrong, see [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A record is larger than the limit for its kind.
    TooLarge {
        /// The record's `size` field.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A record with an unknown tag is not flagged optional.
    UnknownMandatoryTag {
        /// The record's tag.
        tag: u32,
        /// The record's flags.
        flags: u32,
    },
    /// The stream ended after `have` of the 16 header bytes.
    TruncatedHeader {
        /// Header bytes received.
        have: usize,
    },
    /// The stream ended after `have` of the record's `size` payload bytes.
    TruncatedPayload {
        /// Payload bytes received.
        have: u64,
        /// The record's `size` field.
        size: u64,
    },
    /// The caller advanced by more bytes than the current record has left,
    /// or advanced while the parser expected header bytes.
    Misuse,
}

/// A parse error, with the stream offset of the record it concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Stream offset of the start of the offending record's header.
    pub offset: u64,
}

/// What the parser needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// `missing` more header bytes (1..=16), to be given to [`Parser::feed`].
    Header {
        /// Header bytes still missing.
        missing: usize,
    },
    /// Payload bytes of a device-data record, starting at `offset` within
    /// the payload, `remaining` of them left.
    Payload {
        /// Offset within the record's payload of the next byte.
        offset: u64,
        /// Payload bytes left in this record.
        remaining: u64,
    },
    /// Bytes of a skipped record, `remaining` of them left.
    Skip {
        /// Bytes left to skip.
        remaining: u64,
    },
    /// A record just completed: call [`Parser::advance`] with 0 to take the
    /// [`Event::Complete`] or [`Event::Skipped`] event.
    Event,
}

/// Something the parser recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A record header was accepted.
    Header {
        /// The header.
        header: RecordHeader,
        /// Stream offset of the header's first byte.
        offset: u64,
    },
    /// A chunk of device-data payload: with [`Parser::feed`], the consumed
    /// prefix of the input.
    Payload {
        /// Offset of the chunk within the record's payload.
        offset: u64,
        /// Length of the chunk.
        len: usize,
    },
    /// A device-data record is complete: its payload can be loaded.
    Complete {
        /// The record's header.
        header: RecordHeader,
    },
    /// An optional record with an unknown tag was skipped entirely.
    Skipped {
        /// The record's header.
        header: RecordHeader,
    },
}

/// The result of one parser call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the input consumed (for [`Parser::advance`], bytes accepted).
    pub consumed: usize,
    /// The event recognised, if any.
    pub event: Option<Event>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Payload { header: RecordHeader, done: u64 },
    Skip { header: RecordHeader, done: u64 },
    Done { header: RecordHeader, skipped: bool },
}

/// The resuming-side stream parser. See the module documentation.
///
/// # Invariants
///
/// `hdr_len < HEADER_LEN`; in `Payload`/`Skip` states `done < header.size`;
/// `pos` counts every byte consumed and `record_start` is the stream offset
/// of the current record's header.
#[derive(Clone, Debug)]
pub struct Parser {
    limit: u64,
    pos: u64,
    record_start: u64,
    hdr: [u8; HEADER_LEN],
    hdr_len: usize,
    state: State,
    records: u64,
    error: Option<Error>,
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn to_u64(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

impl Parser {
    /// A parser accepting device-data records of at most `limit` payload
    /// bytes (clamped to [`MAX_DEVICE_DATA`]).
    pub fn new(limit: u64) -> Self {
        Self {
            limit: if limit > MAX_DEVICE_DATA {
                MAX_DEVICE_DATA
            } else {
                limit
            },
            pos: 0,
            record_start: 0,
            hdr: [0; HEADER_LEN],
            hdr_len: 0,
            state: State::Header,
            records: 0,
            error: None,
        }
    }

    /// The device-data size limit in force.
    #[cfg(virtio_rs_test_support)]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Stream bytes consumed so far.
    #[cfg(virtio_rs_test_support)]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Records completed or skipped so far.
    #[cfg(virtio_rs_test_support)]
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The sticky error, if any.
    pub fn error(&self) -> Option<Error> {
        self.error
    }

    /// What the parser needs next.
    pub fn want(&self) -> Want {
        match self.state {
            State::Header => Want::Header {
                missing: HEADER_LEN.saturating_sub(self.hdr_len),
            },
            State::Payload { header, done } => Want::Payload {
                offset: done,
                remaining: header.size.saturating_sub(done),
            },
            State::Skip { header, done } => Want::Skip {
                remaining: header.size.saturating_sub(done),
            },
            State::Done { .. } => Want::Event,
        }
    }

    fn fail(&mut self, kind: ErrorKind) -> Error {
        let e = Error {
            kind,
            offset: self.record_start,
        };
        self.error = Some(e);
        e
    }

    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(to_u64(n));
    }

    /// Accept a complete header: decide what the record is.
    fn accept_header(&mut self) -> Result<Event, Error> {
        let header = RecordHeader::decode(&self.hdr);
        self.hdr_len = 0;
        let limit = if header.tag == TAG_DEVICE_DATA {
            self.limit
        } else if header.flags & FLAG_OPTIONAL != 0 {
            MAX_DEVICE_DATA
        } else {
            return Err(self.fail(ErrorKind::UnknownMandatoryTag {
                tag: header.tag,
                flags: header.flags,
            }));
        };
        if header.size > limit {
            return Err(self.fail(ErrorKind::TooLarge {
                size: header.size,
                limit,
            }));
        }
        let skipped = header.tag != TAG_DEVICE_DATA;
        self.state = match (header.size, skipped) {
            (0, _) => State::Done { header, skipped },
            (_, false) => State::Payload { header, done: 0 },
            (_, true) => State::Skip { header, done: 0 },
        };
        Ok(Event::Header {
            header,
            offset: self.record_start,
        })
    }

    /// Feed stream bytes. Consumes a prefix of `input` (possibly empty) and
    /// returns at most one event. In the payload state the consumed prefix
    /// is the chunk described by [`Event::Payload`]; in the skip state it is
    /// discarded. Call again with the rest of the input until it is empty
    /// and [`Parser::want`] is not [`Want::Event`].
    pub fn feed(&mut self, input: &[u8]) -> Result<Step, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.state {
            State::Header => {
                let missing = HEADER_LEN.saturating_sub(self.hdr_len);
                let n = missing.min(input.len());
                let (src, dst) = match (input.get(..n), self.hdr.get_mut(self.hdr_len..)) {
                    (Some(s), Some(d)) => (s, d),
                    _ => return Err(self.fail(ErrorKind::Misuse)),
                };
                if let Some(d) = dst.get_mut(..n) {
                    d.copy_from_slice(src);
                }
                if self.hdr_len == 0 && n > 0 {
                    self.record_start = self.pos;
                }
                self.hdr_len = self.hdr_len.saturating_add(n);
                self.consume(n);
                let event = if self.hdr_len == HEADER_LEN {
                    Some(self.accept_header()?)
                } else {
                    None
                };
                Ok(Step { consumed: n, event })
            }
            State::Payload { .. } | State::Skip { .. } | State::Done { .. } => {
                let n = match self.want() {
                    Want::Payload { remaining, .. } | Want::Skip { remaining } => {
                        to_usize(remaining).min(input.len())
                    }
                    _ => 0,
                };
                self.advance(n)
            }
        }
    }

    /// Declare that the caller moved `n` bytes of payload (or skipped `n`
    /// bytes) itself. With `n == 0` it only delivers a pending completion
    /// event ([`Want::Event`]). `n` larger than what the record has left, or
    /// non-zero while a header is expected, is [`ErrorKind::Misuse`].
    pub fn advance(&mut self, n: usize) -> Result<Step, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let n64 = to_u64(n);
        match self.state {
            State::Header if n == 0 => Ok(Step {
                consumed: 0,
                event: None,
            }),
            State::Header => Err(self.fail(ErrorKind::Misuse)),
            State::Payload { header, done } | State::Skip { header, done } => {
                let skipped = matches!(self.state, State::Skip { .. });
                let remaining = header.size.saturating_sub(done);
                if n64 > remaining {
                    return Err(self.fail(ErrorKind::Misuse));
                }
                let now = done.saturating_add(n64);
                self.consume(n);
                self.state = if now == header.size {
                    State::Done { header, skipped }
                } else if skipped {
                    State::Skip { header, done: now }
                } else {
                    State::Payload { header, done: now }
                };
                let event = (!skipped && n > 0).then_some(Event::Payload {
                    offset: done,
                    len: n,
                });
                Ok(Step { consumed: n, event })
            }
            State::Done { header, skipped } => {
                if n != 0 {
                    return Err(self.fail(ErrorKind::Misuse));
                }
                self.state = State::Header;
                self.records = self.records.saturating_add(1);
                let event = if skipped {
                    Event::Skipped { header }
                } else {
                    Event::Complete { header }
                };
                Ok(Step {
                    consumed: 0,
                    event: Some(event),
                })
            }
        }
    }

    /// Feed a whole buffer, calling `on_event` for every event with the
    /// payload bytes of [`Event::Payload`] (empty for other events).
    /// Returns the first parse error or the first error of `on_event`.
    #[cfg(virtio_rs_test_support)]
    pub fn feed_all<E: From<Error>>(
        &mut self,
        mut input: &[u8],
        mut on_event: impl FnMut(Event, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            if input.is_empty() && self.want() != Want::Event {
                return Ok(());
            }
            let step = self.feed(input)?;
            let (chunk, rest) = input.split_at(step.consumed.min(input.len()));
            input = rest;
            if let Some(event) = step.event {
                let data = if matches!(event, Event::Payload { .. }) {
                    chunk
                } else {
                    &[]
                };
                on_event(event, data)?;
            }
        }
    }

    /// End of stream: Ok when the stream ended on a record boundary (after
    /// any pending completion event was taken), otherwise the truncation
    /// error. Does not change the parser.
    pub fn finish(&self) -> Result<(), Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let kind = match self.state {
            State::Header if self.hdr_len == 0 => return Ok(()),
            State::Done { .. } => return Ok(()),
            State::Header => ErrorKind::TruncatedHeader { have: self.hdr_len },
            State::Payload { header, done } | State::Skip { header, done } => {
                ErrorKind::TruncatedPayload {
                    have: done,
                    size: header.size,
                }
            }
        };
        Err(Error {
            kind,
            offset: self.record_start,
        })
    }
}
