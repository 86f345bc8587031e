// SPDX-License-Identifier: GPL-2.0

//! `virtio-rs-inspect [--json] FILE`: decode a saved migration stream.
//!
//! Prints every record (stream offset, size, flags, tag) and the device
//! parts inside device-data records (type, selector, length, a short value
//! summary). A malformed stream ends with an error naming the byte offset;
//! the exit status is then 1 (2 for usage or I/O errors).

use std::fmt::Write as _;
use std::process::ExitCode;

use virtio_rs_proto::parts::{self, Part, Parts};
use virtio_rs_proto::record::{RecordHeader, HEADER_LEN_U64, TAG_DEVICE_DATA};
use virtio_rs_proto::resume::{Error as ParseError, ErrorKind, Event, Parser};

struct PartOut {
    offset: u64,
    part_type: u16,
    name: &'static str,
    flags: u8,
    selector: String,
    length: usize,
    summary: String,
}

struct RecordOut {
    offset: u64,
    header: RecordHeader,
    parts: Vec<PartOut>,
    parts_error: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn selector(p: &Part<'_>) -> String {
    match p.part_type {
        parts::types::PCI_COMMON_CFG => format!("offset={}", p.cfg_offset()),
        parts::types::VQ_CFG | parts::types::VQ_NOTIFY_CFG => format!("vq={}", p.vq_index()),
        parts::types::NET_CVQ_CFG => {
            format!("class={} cmd={}", p.selector[0], p.selector[1])
        }
        _ if p.selector == [0; 8] => String::new(),
        _ => format!("raw={}", hex(&p.selector)),
    }
}

fn summary(p: &Part<'_>) -> String {
    let v = p.value;
    let u16_at = |i: usize| u16::from_le_bytes([v[i], v[i + 1]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&v[i..i + 8]);
        u64::from_le_bytes(b)
    };
    match p.part_type {
        parts::types::VQ_CFG if v.len() == parts::VQ_CFG_LEN => format!(
            "size={} vector={} enabled={} desc=0x{:x} driver=0x{:x} device=0x{:x}",
            u16_at(0),
            u16_at(2),
            u16_at(4),
            u64_at(8),
            u64_at(16),
            u64_at(24)
        ),
        parts::types::DEV_FEATURES | parts::types::DRV_FEATURES if v.len() % 8 == 0 => v
            .chunks(8)
            .enumerate()
            .map(|(i, c)| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                format!("[{i}]=0x{:016x}", u64::from_le_bytes(b))
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => match p.value_u64() {
            Some(x) => format!("0x{x:x}"),
            None if v.len() <= 16 => hex(v),
            None => format!("{}... ({} bytes)", hex(&v[..16]), v.len()),
        },
    }
}

fn describe(e: &ParseError) -> String {
    match e.kind {
        ErrorKind::TooLarge { size, limit } => {
            format!("record size {size} exceeds the limit {limit}")
        }
        ErrorKind::UnknownMandatoryTag { tag, flags } => {
            format!("unknown tag {tag} without the optional flag (flags 0x{flags:x})")
        }
        ErrorKind::TruncatedHeader { have } => {
            format!("stream ends inside a record header ({have} of 16 bytes)")
        }
        ErrorKind::TruncatedPayload { have, size } => {
            format!("stream ends inside a record payload ({have} of {size} bytes)")
        }
        ErrorKind::Misuse => "internal parser misuse".into(),
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let files: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [file] = files.as_slice() else {
        eprintln!("usage: virtio-rs-inspect [--json] FILE");
        return ExitCode::from(2);
    };
    let data = match std::fs::read(file) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("virtio-rs-inspect: {file}: {e}");
            return ExitCode::from(2);
        }
    };

    let mut parser = Parser::new(u64::MAX);
    let mut records: Vec<RecordOut> = Vec::new();
    let mut payload: Vec<u8> = Vec::new();
    let result = parser.feed_all(&data, |ev, chunk| -> Result<(), ParseError> {
        match ev {
            Event::Header { header, offset } => {
                payload.clear();
                records.push(RecordOut {
                    offset,
                    header,
                    parts: Vec::new(),
                    parts_error: None,
                });
            }
            Event::Payload { .. } => payload.extend_from_slice(chunk),
            Event::Complete { .. } => {
                let rec = records.last_mut().expect("header precedes completion");
                let base = rec.offset + HEADER_LEN_U64;
                for p in Parts::new(&payload) {
                    match p {
                        Ok(p) => rec.parts.push(PartOut {
                            offset: base + p.offset as u64,
                            part_type: p.part_type,
                            name: p.name(),
                            flags: p.flags,
                            selector: selector(&p),
                            length: p.value.len(),
                            summary: summary(&p),
                        }),
                        Err(e) => {
                            rec.parts_error = Some(format!(
                                "malformed device part at byte offset {}: {:?}",
                                base + e.offset as u64,
                                e.kind
                            ));
                        }
                    }
                }
                if rec.parts_error.is_none() {
                    if let Err(e) = parts::validate(&payload) {
                        rec.parts_error = Some(format!(
                            "device parts violate the specification at byte offset {}: {:?}",
                            base + e.offset as u64,
                            e.kind
                        ));
                    }
                }
            }
            Event::Skipped { .. } => {}
        }
        Ok(())
    });
    let error = result.and_then(|()| parser.finish()).err().map(|e| {
        let at = match e.kind {
            ErrorKind::TruncatedHeader { .. } | ErrorKind::TruncatedPayload { .. } => {
                data.len() as u64
            }
            _ => e.offset,
        };
        (at, describe(&e))
    });

    if json {
        let mut o = String::from("{\"records\":[");
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let kind = if r.header.tag == TAG_DEVICE_DATA {
                "device-data"
            } else {
                "skipped"
            };
            let _ = write!(
                o,
                "{{\"offset\":{},\"size\":{},\"flags\":{},\"tag\":{},\"kind\":\"{kind}\",\"parts\":[",
                r.offset, r.header.size, r.header.flags, r.header.tag
            );
            for (j, p) in r.parts.iter().enumerate() {
                if j > 0 {
                    o.push(',');
                }
                let _ = write!(
                    o,
                    "{{\"offset\":{},\"type\":{},\"name\":{},\"flags\":{},\"selector\":{},\"length\":{},\"summary\":{}}}",
                    p.offset,
                    p.part_type,
                    json_str(p.name),
                    p.flags,
                    json_str(&p.selector),
                    p.length,
                    json_str(&p.summary)
                );
            }
            o.push(']');
            if let Some(e) = &r.parts_error {
                let _ = write!(o, ",\"parts_error\":{}", json_str(e));
            }
            o.push('}');
        }
        let _ = write!(o, "],\"bytes\":{}", data.len());
        match &error {
            Some((at, msg)) => {
                let _ = write!(
                    o,
                    ",\"error\":{{\"offset\":{at},\"message\":{}}}}}",
                    json_str(msg)
                );
            }
            None => o.push_str(",\"error\":null}"),
        }
        println!("{o}");
    } else {
        for (i, r) in records.iter().enumerate() {
            let kind = if r.header.tag == TAG_DEVICE_DATA {
                "device data"
            } else {
                "unknown optional tag, skipped"
            };
            println!(
                "record {i} @ {}: size {} flags 0x{:x} tag {} ({kind})",
                r.offset, r.header.size, r.header.flags, r.header.tag
            );
            for p in &r.parts {
                println!(
                    "  part @ {:>8}: {:<15} 0x{:03x} flags 0x{:x} {:<16} len {:>6}  {}",
                    p.offset, p.name, p.part_type, p.flags, p.selector, p.length, p.summary
                );
            }
            if let Some(e) = &r.parts_error {
                println!("  warning: {e}");
            }
        }
        println!("{} record(s), {} bytes", records.len(), data.len());
        if let Some((at, msg)) = &error {
            eprintln!("error at byte offset {at}: {msg}");
        }
    }
    if error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
