// SPDX-License-Identifier: GPL-2.0

//! Fuzz targets for the protocol core.
//!
//! Each target takes arbitrary bytes and checks properties that must hold
//! for every input, panicking when one does not (the fuzzer reports the
//! panic and saves the input). The targets are shared by the cargo-fuzz
//! project in `tools/fuzz/` (libFuzzer, coverage guided) and by the
//! stable-Rust harness `virtio-rs-fuzz` of this crate.

use virtio_rs_proto::parts::{self, Parts, PART_HDR_LEN};
use virtio_rs_proto::record::{RecordHeader, HEADER_LEN};
use virtio_rs_proto::resume::{Error, Event, Parser};

/// What one complete parse observed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Per record: header and (device data) payload bytes.
    records: Vec<(RecordHeader, Vec<u8>)>,
    /// The first error, from feeding or from finish().
    error: Option<Error>,
    position: u64,
}

fn parse(data: &[u8], cuts: &[usize], limit: u64) -> Outcome {
    let mut p = Parser::new(limit);
    let mut records: Vec<(RecordHeader, Vec<u8>)> = Vec::new();
    let mut last = 0;
    let mut error = None;
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c % (data.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.push(data.len());
    for b in bounds {
        let chunk = &data[last..b];
        last = b;
        let r = p.feed_all(chunk, |ev, bytes| -> Result<(), Error> {
            match ev {
                Event::Header { header, .. } => records.push((header, Vec::new())),
                Event::Payload { offset, len } => {
                    let rec = records.last_mut().expect("payload after a header");
                    assert_eq!(offset as usize, rec.1.len(), "payload offsets contiguous");
                    assert_eq!(len, bytes.len());
                    assert!(len > 0, "no empty payload events");
                    rec.1.extend_from_slice(bytes);
                }
                Event::Complete { header } | Event::Skipped { header } => {
                    let rec = records.last().expect("completion after a header");
                    assert_eq!(rec.0, header);
                    if matches!(ev, Event::Complete { .. }) {
                        assert_eq!(rec.1.len() as u64, header.size);
                    } else {
                        assert!(rec.1.is_empty(), "skipped records are not buffered");
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            error = Some(e);
            break;
        }
    }
    if error.is_none() {
        error = p.finish().err();
    }
    assert!(p.position() <= data.len() as u64);
    Outcome {
        records,
        error,
        position: p.position(),
    }
}

/// The resume parser on arbitrary bytes: the first 2 bytes pick a limit,
/// the next 8 pick cut points, the rest is the stream. Properties: no
/// panic; the result does not depend on how the stream is split; a stream
/// accepted completely re-encodes to exactly the input.
pub fn resume_parser(input: &[u8]) {
    if input.len() < 10 {
        return;
    }
    let (meta, data) = input.split_at(10);
    let limit = u64::from(u16::from_le_bytes([meta[0], meta[1]])) * 64;
    let cuts: Vec<usize> = meta[2..]
        .iter()
        .scan(0usize, |acc, &b| {
            *acc = acc.wrapping_mul(31).wrapping_add(usize::from(b) * 7 + 1);
            Some(*acc)
        })
        .collect();
    let whole = parse(data, &[], limit);
    let split = parse(data, &cuts, limit);
    assert_eq!(whole, split, "result depends on the chunking");
    let bytes1 = parse(data, &(0..data.len()).collect::<Vec<_>>(), limit);
    assert_eq!(whole, bytes1, "byte-by-byte feeding differs");
    if whole.error.is_none() {
        assert_eq!(whole.position, data.len() as u64);
        let mut re = Vec::new();
        let mut skipped_bytes = 0u64;
        for (h, payload) in &whole.records {
            re.extend_from_slice(&h.encode());
            if h.is_device_data() {
                re.extend_from_slice(payload);
            } else {
                // Skipped payload is not kept: compare it in place.
                let start = re.len();
                re.extend_from_slice(&data[start..start + h.size as usize]);
                skipped_bytes += h.size;
            }
        }
        assert_eq!(re, data, "accepted stream does not re-encode to the input");
        let _ = skipped_bytes;
    } else if let Some(e) = whole.error {
        assert!(e.offset <= data.len() as u64);
        assert!(e.offset + HEADER_LEN as u64 <= data.len() as u64 + HEADER_LEN as u64);
    }
}

/// The device-part walker and validator on arbitrary bytes. Properties:
/// no panic; walked parts tile the buffer exactly when no error; a buffer
/// that validates also walks without error.
pub fn parts_walker(data: &[u8]) {
    let mut covered = 0usize;
    let mut walk_ok = true;
    for p in Parts::new(data) {
        match p {
            Ok(p) => {
                assert_eq!(p.offset, covered);
                covered = p.offset + PART_HDR_LEN + p.value.len();
                let _ = (p.name(), p.vq_index(), p.cfg_offset(), p.value_u64());
            }
            Err(e) => {
                assert_eq!(e.offset, covered);
                walk_ok = false;
            }
        }
    }
    if walk_ok {
        assert_eq!(covered, data.len());
    }
    match parts::validate(data) {
        Ok(s) => {
            assert!(walk_ok);
            assert!(s.value_bytes + s.parts * PART_HDR_LEN == data.len());
        }
        Err(e) => assert!(e.offset <= data.len()),
    }
}
