// SPDX-License-Identifier: GPL-2.0

//! `virtio-rs-fuzz [--seconds N] [--seed S] [--target resume|parts|all]`
//!
//! A mutation fuzzer that runs on stable Rust, for machines without
//! cargo-fuzz: it mutates well-formed seed inputs (streams written by the
//! saving-side writer, valid device-part buffers) with bit flips, byte
//! overwrites, "interesting" integers at random offsets, insertions,
//! deletions and splices, and runs the targets of this crate on them. A
//! panicking input is written to `crash-<target>-<n>.bin` and the exit
//! status is 1. Prints executions per target.

use std::panic;
use std::time::{Duration, Instant};

use virtio_rs_proto::record::{RecordHeader, FLAG_OPTIONAL};
use virtio_rs_proto::save::SaveStream;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn part(t: u16, sel: [u8; 8], value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&t.to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&sel);
    v.extend_from_slice(&(value.len() as u32).to_le_bytes());
    v.extend_from_slice(value);
    v
}

fn parts_seed(vqs: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(part(0x100, [0; 8], &[0xff; 8]));
    b.extend(part(0x101, [0; 8], &[0x0f; 8]));
    b.extend(part(0x102, [0x14, 0, 0, 0, 0, 0, 0, 0], &[0x0f]));
    b.extend(part(0x103, [0; 8], &[0x0f]));
    for q in 0..vqs {
        let mut s = [0; 8];
        s[..2].copy_from_slice(&q.to_le_bytes());
        b.extend(part(0x104, s, &[q as u8; 32]));
    }
    b.extend(part(
        0x200,
        [1, 1, 0, 0, 0, 0, 0, 0],
        &[0x52, 0x54, 0, 0x12, 0x34, 0x56],
    ));
    b
}

fn stream_seed(records: &[Vec<u8>], optional: bool) -> Vec<u8> {
    let mut s = SaveStream::new();
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&s.frame(r.len() as u64).unwrap());
        out.extend_from_slice(r);
    }
    if optional {
        let h = RecordHeader {
            size: 5,
            flags: FLAG_OPTIONAL,
            tag: 9,
        };
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(b"extra");
    }
    out
}

const INTERESTING: [u64; 10] = [0, 1, 7, 8, 15, 16, 0xff, 0xffff, 0xffff_ffff, u64::MAX];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let w = [1, 2, 4, 8][rng.below(4)];
                let i = rng.below(len);
                for (k, b) in v.iter().take(w).enumerate() {
                    if let Some(x) = input.get_mut(i + k) {
                        *x = *b;
                    }
                }
            }
            3 => {
                let i = rng.below(len + 1);
                let n = rng.below(32) + 1;
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(i..i, fill);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(len - i) + 1;
                input.drain(i..i + n.min(len - i));
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = a + rng.below(other.len() - a) + 1;
                    let i = rng.below(len + 1);
                    input.splice(i..i, other[a..b.min(other.len())].iter().copied());
                }
            }
            _ => {
                let i = rng.below(len + 1);
                input.truncate(i);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seconds: u64 = get("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = get("--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    let which = get("--target").unwrap_or_else(|| "all".into());
    type Target = (&'static str, fn(&[u8]));
    let targets: Vec<Target> = vec![
        ("resume", virtio_rs_fuzz::resume_parser),
        ("parts", virtio_rs_fuzz::parts_walker),
    ];
    panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    for (name, target) in targets {
        if which != "all" && which != name {
            continue;
        }
        let mut rng = Rng(seed);
        let mut corpus: Vec<Vec<u8>> = match name {
            "resume" => {
                let meta = |lim: u16| {
                    let mut m = lim.to_le_bytes().to_vec();
                    m.extend_from_slice(&[3, 9, 27, 81, 5, 1, 200, 17]);
                    m
                };
                let mut c = Vec::new();
                for (lim, recs, opt) in [
                    (1u16, vec![vec![1u8; 10]], false),
                    (100, vec![parts_seed(2), parts_seed(4)], true),
                    (0xffff, vec![vec![0xaa; 300], vec![1], vec![2; 2]], false),
                    (2, vec![], true),
                ] {
                    let mut s = meta(lim);
                    s.extend(stream_seed(&recs, opt));
                    c.push(s);
                }
                c
            }
            _ => vec![parts_seed(1), parts_seed(5), Vec::new()],
        };
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut execs: u64 = 0;
        let mut crashes = 0;
        while Instant::now() < deadline {
            for _ in 0..256 {
                let mut input = corpus[rng.below(corpus.len())].clone();
                mutate(&mut rng, &mut input, &corpus);
                execs += 1;
                if panic::catch_unwind(|| target(&input)).is_err() {
                    crashes += 1;
                    let file = format!("crash-{name}-{crashes}.bin");
                    let _ = std::fs::write(&file, &input);
                    eprintln!("fuzz {name}: CRASH, input saved to {file}");
                    failed = true;
                } else if corpus.len() < 4096 && rng.below(64) == 0 {
                    corpus.push(input);
                }
            }
        }
        println!(
            "fuzz {name}: {execs} executions in {seconds} s, {crashes} crash(es), corpus {}, seed {seed}",
            corpus.len()
        );
    }
    std::process::exit(i32::from(failed));
}
