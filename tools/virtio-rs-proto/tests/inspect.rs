// SPDX-License-Identifier: GPL-2.0

//! The stream inspector decodes streams written by the saving-side writer
//! and names the byte offset of malformed input.

use std::process::Command;

use virtio_rs_proto::parts::types;
use virtio_rs_proto::record::{RecordHeader, FLAG_OPTIONAL};
use virtio_rs_proto::save::SaveStream;

fn part(t: u16, sel: [u8; 8], value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&t.to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&sel);
    v.extend_from_slice(&(value.len() as u32).to_le_bytes());
    v.extend_from_slice(value);
    v
}

fn device_parts() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(part(
        types::DRV_FEATURES,
        [0; 8],
        &0x1_0000_0020u64.to_le_bytes(),
    ));
    b.extend(part(
        types::PCI_COMMON_CFG,
        [0x14, 0, 0, 0, 0, 0, 0, 0],
        &[0x0f],
    ));
    b.extend(part(types::DEVICE_STATUS, [0; 8], &[0x0f]));
    let mut vq = [0u8; 32];
    vq[0] = 0; // size 256 = 0x100
    vq[1] = 1;
    vq[4] = 1; // enabled
    vq[8..16].copy_from_slice(&0x1234_5000u64.to_le_bytes());
    b.extend(part(types::VQ_CFG, [0; 8], &vq));
    b.extend(part(
        types::NET_CVQ_CFG,
        [1, 1, 0, 0, 0, 0, 0, 0],
        &[0x52, 0x54, 0, 1, 2, 3],
    ));
    b
}

fn write_stream(path: &std::path::Path, extra: &[u8]) -> Vec<u8> {
    let mut s = SaveStream::new();
    let mut out = Vec::new();
    let parts = device_parts();
    out.extend_from_slice(&s.frame(parts.len() as u64).unwrap());
    out.extend_from_slice(&parts);
    let opt = RecordHeader {
        size: 3,
        flags: FLAG_OPTIONAL,
        tag: 77,
    };
    out.extend_from_slice(&opt.encode());
    out.extend_from_slice(b"xyz");
    out.extend_from_slice(&s.frame(parts.len() as u64).unwrap());
    out.extend_from_slice(&parts);
    out.extend_from_slice(extra);
    std::fs::write(path, &out).unwrap();
    out
}

fn inspect(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_virtio-rs-inspect"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    let mut p = std::env::temp_dir();
    p.push(format!("virtio-rs-inspect-{}-{name}", std::process::id()));
    p
}

#[test]
fn decodes_writer_stream() {
    let path = tmp("good");
    let data = write_stream(&path, &[]);
    let (code, out, err) = inspect(&[path.to_str().unwrap()]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        out.contains("record 0 @ 0: size 128 flags 0x0 tag 0 (device data)"),
        "{out}"
    );
    assert!(
        out.contains("record 1 @ 144: size 3 flags 0x1 tag 77 (unknown optional tag, skipped)"),
        "{out}"
    );
    assert!(out.contains("record 2 @ 163:"), "{out}");
    assert!(out.contains("DRV_FEATURES"), "{out}");
    assert!(
        out.contains("VQ_CFG") && out.contains("size=256") && out.contains("desc=0x12345000"),
        "{out}"
    );
    assert!(
        out.contains("NET_CVQ_CFG") && out.contains("class=1 cmd=1"),
        "{out}"
    );
    assert!(
        out.contains(&format!("3 record(s), {} bytes", data.len())),
        "{out}"
    );
    assert!(!out.contains("warning"), "{out}");
    std::fs::remove_file(path).ok();
}

#[test]
fn json_output() {
    let path = tmp("json");
    write_stream(&path, &[]);
    let (code, out, _) = inspect(&["--json", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("{\"records\":[{\"offset\":0,\"size\":128,\"flags\":0,\"tag\":0,\"kind\":\"device-data\""), "{out}");
    assert!(out.contains("\"name\":\"DEVICE_STATUS\""), "{out}");
    assert!(out.trim_end().ends_with("\"error\":null}"), "{out}");
    std::fs::remove_file(path).ok();
}

#[test]
fn malformed_streams_name_the_offset() {
    // Truncated inside the last record's payload.
    let path = tmp("trunc");
    let data = write_stream(&path, &[]);
    std::fs::write(&path, &data[..data.len() - 5]).unwrap();
    let (code, _, err) = inspect(&[path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("error at byte offset {}", data.len() - 5)),
        "{err}"
    );
    assert!(err.contains("inside a record payload"), "{err}");

    // An unknown mandatory record after the valid ones.
    let bad = RecordHeader {
        size: 1,
        flags: 0,
        tag: 9,
    }
    .encode();
    let data = write_stream(&path, &bad);
    let (code, out, err) = inspect(&["--json", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    let at = data.len() - 16;
    assert!(
        out.contains(&format!("\"error\":{{\"offset\":{at},")),
        "{out}"
    );
    assert!(err.is_empty() || !err.contains("panicked"));

    // Parts that violate the specification are reported, the stream is fine.
    let mut s = SaveStream::new();
    let mut parts = part(types::DEVICE_STATUS, [0; 8], &[1]);
    parts.extend(part(types::DRV_FEATURES, [0; 8], &[0; 8]));
    let mut out_bytes = s.frame(parts.len() as u64).unwrap().to_vec();
    out_bytes.extend_from_slice(&parts);
    std::fs::write(&path, &out_bytes).unwrap();
    let (code, out, _) = inspect(&[path.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "warning: device parts violate the specification at byte offset 33: OutOfOrder"
        ),
        "{out}"
    );
    std::fs::remove_file(path).ok();
}
