// SPDX-License-Identifier: GPL-2.0

//! Record codec, resume parser and saving-side accounting.

use proptest::prelude::*;
use virtio_rs_proto::record::*;
use virtio_rs_proto::resume::*;
use virtio_rs_proto::save::*;

/// Parse `stream` split at `cuts`; return (events, payloads of completed
/// device-data records) or the error.
fn parse_chunks(
    stream: &[u8],
    cuts: &[usize],
    limit: u64,
) -> Result<(Vec<Event>, Vec<Vec<u8>>), Error> {
    let mut p = Parser::new(limit);
    let mut events = Vec::new();
    let mut records = Vec::new();
    let mut cur = Vec::new();
    let mut last = 0;
    let mut bounds: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c <= stream.len())
        .collect();
    bounds.sort_unstable();
    bounds.push(stream.len());
    for b in bounds {
        let chunk = &stream[last..b];
        last = b;
        p.feed_all(chunk, |ev, data| -> Result<(), Error> {
            match ev {
                Event::Header { .. } => cur.clear(),
                Event::Payload { offset, len } => {
                    assert_eq!(offset as usize, cur.len(), "payload offsets are contiguous");
                    assert_eq!(len, data.len());
                    cur.extend_from_slice(data);
                }
                Event::Complete { header } => {
                    assert_eq!(header.size as usize, cur.len());
                    records.push(std::mem::take(&mut cur));
                }
                Event::Skipped { .. } => {}
            }
            events.push(ev);
            Ok(())
        })?;
    }
    p.finish()?;
    assert_eq!(p.position(), stream.len() as u64);
    Ok((events, records))
}

fn stream_of(records: &[Vec<u8>]) -> (Vec<u8>, SaveStream) {
    let mut s = SaveStream::new();
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&s.frame(r.len() as u64).unwrap());
        out.extend_from_slice(r);
    }
    (out, s)
}

#[test]
fn golden_header_bytes_match_upstream() {
    // struct virtiovf_migration_header { __le64 record_size; __le32 flags;
    // __le32 tag; } for a 0x1234-byte device-data record.
    let h = RecordHeader::device_data(0x1234);
    assert_eq!(
        h.encode(),
        [0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let opt = RecordHeader {
        size: 0x0102_0304_0506_0708,
        flags: FLAG_OPTIONAL,
        tag: 0xaabb_ccdd,
    };
    assert_eq!(
        opt.encode(),
        [8, 7, 6, 5, 4, 3, 2, 1, 1, 0, 0, 0, 0xdd, 0xcc, 0xbb, 0xaa]
    );
    assert_eq!(RecordHeader::decode(&opt.encode()), opt);
    assert!(opt.is_optional() && !opt.is_device_data());
}

#[test]
fn golden_upstream_stream_parses() {
    // Two device-data records as the upstream driver writes them: header
    // (size, 0, 0) + raw DEV_PARTS_GET result.
    let mut s = Vec::new();
    s.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    s.extend_from_slice(b"abc");
    s.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    s.extend_from_slice(b"z");
    let (_, recs) = parse_chunks(&s, &[], MAX_DEVICE_DATA).unwrap();
    assert_eq!(recs, vec![b"abc".to_vec(), b"z".to_vec()]);
}

#[test]
fn truncated_header_fails_finish() {
    let (s, _) = stream_of(&[vec![1, 2, 3]]);
    for cut in 1..HEADER_LEN {
        let err = parse_chunks(&s[..cut], &[], MAX_DEVICE_DATA).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TruncatedHeader { have: cut });
        assert_eq!(err.offset, 0);
    }
    // Second record's header truncated: offset of that header.
    let (s2, _) = stream_of(&[vec![1, 2, 3], vec![4]]);
    let err = parse_chunks(&s2[..19 + 5], &[], MAX_DEVICE_DATA).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TruncatedHeader { have: 5 });
    assert_eq!(err.offset, 19);
}

#[test]
fn truncated_payload_fails_finish() {
    let (s, _) = stream_of(&[vec![7; 100]]);
    let err = parse_chunks(&s[..16 + 40], &[3, 20], MAX_DEVICE_DATA).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::TruncatedPayload {
            have: 40,
            size: 100
        }
    );
}

#[test]
fn empty_stream_is_complete() {
    let (ev, recs) = parse_chunks(&[], &[], 10).unwrap();
    assert!(ev.is_empty() && recs.is_empty());
}

#[test]
fn size_limit() {
    let (s, _) = stream_of(&[vec![0; 64]]);
    assert!(parse_chunks(&s, &[], 64).is_ok());
    let err = parse_chunks(&s, &[], 63).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::TooLarge {
            size: 64,
            limit: 63
        }
    );
    // The limit never exceeds 2^32 - 1.
    assert_eq!(Parser::new(u64::MAX).limit(), MAX_DEVICE_DATA);
    let big = RecordHeader::device_data(MAX_DEVICE_DATA + 1).encode();
    let err = parse_chunks(&big, &[], u64::MAX).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::TooLarge {
            size: MAX_DEVICE_DATA + 1,
            limit: MAX_DEVICE_DATA
        }
    );
    // The error is raised when the header completes, before any payload.
    let mut p = Parser::new(10);
    let h = RecordHeader::device_data(11).encode();
    assert!(p.feed(&h[..15]).is_ok());
    assert!(p.feed(&h[15..]).is_err());
}

#[test]
fn unknown_mandatory_tag_rejected() {
    let h = RecordHeader {
        size: 4,
        flags: 0,
        tag: 7,
    };
    let mut s = h.encode().to_vec();
    s.extend_from_slice(&[1, 2, 3, 4]);
    let err = parse_chunks(&s, &[], 100).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::UnknownMandatoryTag { tag: 7, flags: 0 }
    );
    // Other flag bits do not make a record optional.
    let h2 = RecordHeader { flags: 2, ..h };
    assert!(parse_chunks(&h2.encode(), &[], 100).is_err());
}

#[test]
fn unknown_optional_tag_skipped_without_payload_events() {
    let skip = RecordHeader {
        size: 1 << 20,
        flags: FLAG_OPTIONAL,
        tag: 0x5151,
    };
    let mut s = skip.encode().to_vec();
    s.resize(16 + (1 << 20), 0xee);
    let (more, _) = stream_of(&[vec![9, 9]]);
    s.extend_from_slice(&more);
    // A device limit far below the skipped record's size does not matter.
    let (events, recs) = parse_chunks(&s, &[1, 17, 4096, 100_000], 16).unwrap();
    assert_eq!(recs, vec![vec![9, 9]]);
    assert!(events.contains(&Event::Skipped { header: skip }));
    let payload_events = events
        .iter()
        .filter(|e| matches!(e, Event::Payload { .. }))
        .count();
    assert_eq!(payload_events, 1, "only the device-data record has payload");
    // Even optional records are bounded by 2^32 - 1, as upstream.
    let huge = RecordHeader {
        size: MAX_DEVICE_DATA + 1,
        ..skip
    };
    assert!(matches!(
        parse_chunks(&huge.encode(), &[], 16).unwrap_err().kind,
        ErrorKind::TooLarge { .. }
    ));
}

#[test]
fn optional_flag_on_device_data_is_device_data() {
    let h = RecordHeader {
        size: 2,
        flags: FLAG_OPTIONAL,
        tag: TAG_DEVICE_DATA,
    };
    let mut s = h.encode().to_vec();
    s.extend_from_slice(&[5, 6]);
    let (_, recs) = parse_chunks(&s, &[], 10).unwrap();
    assert_eq!(recs, vec![vec![5, 6]]);
}

#[test]
fn zero_length_device_data_completes_at_once() {
    let mut s = RecordHeader::device_data(0).encode().to_vec();
    let (more, _) = stream_of(&[vec![1]]);
    s.extend_from_slice(&more);
    let (events, recs) = parse_chunks(&s, &[16], 10).unwrap();
    assert_eq!(recs, vec![vec![], vec![1]]);
    assert!(matches!(events[1], Event::Complete { header } if header.size == 0));
    // A stream ending right after a zero-length header is complete.
    let only = RecordHeader::device_data(0).encode();
    let mut p = Parser::new(10);
    p.feed(&only).unwrap();
    assert_eq!(p.want(), Want::Event);
    assert!(p.finish().is_ok());
}

#[test]
fn errors_are_sticky_and_misuse_is_an_error() {
    let mut p = Parser::new(10);
    let bad = RecordHeader {
        size: 1,
        flags: 0,
        tag: 3,
    }
    .encode();
    let e = p.feed(&bad).unwrap_err();
    assert_eq!(p.feed(&[0]).unwrap_err(), e);
    assert_eq!(p.advance(0).unwrap_err(), e);
    assert_eq!(p.finish().unwrap_err(), e);

    let mut q = Parser::new(10);
    assert_eq!(q.advance(1).unwrap_err().kind, ErrorKind::Misuse);
    let mut r = Parser::new(10);
    r.feed(&RecordHeader::device_data(4).encode()).unwrap();
    assert_eq!(r.advance(5).unwrap_err().kind, ErrorKind::Misuse);
}

#[test]
fn want_advance_api_matches_feed() {
    // The driver's way: header bytes through feed, payload through advance.
    let (s, _) = stream_of(&[vec![1; 10], vec![2; 3]]);
    let mut p = Parser::new(100);
    let mut input = &s[..];
    let mut completed = Vec::new();
    loop {
        let step = match p.want() {
            Want::Header { missing } => {
                if input.is_empty() {
                    break;
                }
                let n = missing.min(input.len()).min(5);
                p.feed(&input[..n]).unwrap()
            }
            Want::Payload { remaining, .. } | Want::Skip { remaining } => {
                let n = (remaining as usize).min(input.len()).min(4);
                p.advance(n).unwrap()
            }
            Want::Event => p.advance(0).unwrap(),
        };
        input = &input[step.consumed..];
        if let Some(Event::Complete { header }) = step.event {
            completed.push(header.size);
        }
    }
    assert_eq!(completed, vec![10, 3]);
    assert!(p.finish().is_ok());
}

#[test]
fn save_stream_accounting() {
    let mut s = SaveStream::new();
    assert_eq!(s.frame(0), Err(SaveError::BadPayloadSize));
    assert_eq!(s.frame(MAX_DEVICE_DATA + 1), Err(SaveError::BadPayloadSize));
    s.frame(100).unwrap();
    s.mark_initial();
    assert_eq!(
        s.precopy(),
        PrecopyBytes {
            initial_bytes: 116,
            dirty_bytes: 0
        }
    );
    s.consume(50).unwrap();
    assert_eq!(s.precopy().initial_bytes, 66);
    s.frame(10).unwrap(); // a pre-copy record queued behind the initial one
    assert_eq!(
        s.precopy(),
        PrecopyBytes {
            initial_bytes: 66,
            dirty_bytes: 26
        }
    );
    s.consume(66).unwrap();
    assert_eq!(
        s.precopy(),
        PrecopyBytes {
            initial_bytes: 0,
            dirty_bytes: 26
        }
    );
    assert_eq!(s.consume(27), Err(SaveError::Overread));
    s.consume(26).unwrap();
    assert!(s.drained());
    assert_eq!(s.records(), 2);
    assert_eq!(s.produced(), 142);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Writer -> parser round trip with random payloads and chunkings.
    #[test]
    fn roundtrip_random_chunks(
        sizes in prop::collection::vec(1usize..3000, 0..6),
        cuts in prop::collection::vec(0usize..20000, 0..40),
        seed in any::<u8>(),
    ) {
        let records: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8 ^ seed)).collect())
            .collect();
        let (s, acct) = stream_of(&records);
        prop_assert_eq!(acct.produced(), s.len() as u64);
        let (_, got) = parse_chunks(&s, &cuts, MAX_DEVICE_DATA).unwrap();
        prop_assert_eq!(got, records);
    }

    /// Any byte string: the parser never panics, consumes all input or
    /// stops at an error, and finish() agrees with the state.
    #[test]
    fn arbitrary_bytes_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(0usize..600, 0..10),
        limit in 0u64..1000,
    ) {
        let _ = parse_chunks(&data, &cuts, limit);
    }

    /// Cutting a valid stream anywhere but at a record boundary makes
    /// finish() fail; at a boundary it succeeds.
    #[test]
    fn truncation_detected(
        sizes in prop::collection::vec(1usize..200, 1..5),
        cut_frac in 0.0f64..1.0,
    ) {
        let records: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0xab; n]).collect();
        let (s, _) = stream_of(&records);
        let cut = ((s.len() as f64) * cut_frac) as usize;
        let mut boundaries = vec![0usize];
        for r in &records {
            let last = *boundaries.last().unwrap();
            boundaries.push(last + 16 + r.len());
        }
        let res = parse_chunks(&s[..cut], &[], MAX_DEVICE_DATA);
        prop_assert_eq!(res.is_ok(), boundaries.contains(&cut));
    }

    /// The pre-copy split always adds up to what is left to read.
    #[test]
    fn precopy_split_adds_up(
        ops in prop::collection::vec((1u64..5000, 0u64..6000, any::<bool>()), 1..30),
    ) {
        let mut s = SaveStream::new();
        let mut marked = false;
        for (payload, read, mark) in ops {
            s.frame(payload).unwrap();
            if mark && !marked {
                s.mark_initial();
                marked = true;
            }
            let r = read.min(s.pending());
            s.consume(r).unwrap();
            let p = s.precopy();
            prop_assert_eq!(p.initial_bytes + p.dirty_bytes, s.pending());
        }
    }
}
