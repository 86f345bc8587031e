// SPDX-License-Identifier: GPL-2.0

//! State arcs (exhaustive), pre-copy policy, device-part validation.

use virtio_rs_proto::arcs::{arc_action, next_hop, Action, AdminCmd, MigState, NextHopError};
use virtio_rs_proto::parts::{self, types, PartErrorKind, Parts};
use virtio_rs_proto::precopy::{Decision, PrecopyPolicy, ReadBudget, DEFAULT_MAX_READS};

use proptest::prelude::*;
use MigState::*;

/// The next-hop table of upstream-c-driver-behaviour.md section 4.3 (all
/// flags), rows = current state, columns = requested state, in the order
/// STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P.
/// `None` = ERROR in the table (no path) or the diagonal.
const TABLE: [(MigState, [Option<MigState>; 7]); 7] = [
    (
        Stop,
        [
            None,
            Some(RunningP2p),
            Some(StopCopy),
            Some(Resuming),
            Some(RunningP2p),
            Some(RunningP2p),
            Some(RunningP2p),
        ],
    ),
    (
        Running,
        [
            Some(RunningP2p),
            None,
            Some(RunningP2p),
            Some(RunningP2p),
            Some(RunningP2p),
            Some(PreCopy),
            Some(RunningP2p),
        ],
    ),
    (
        StopCopy,
        [
            Some(Stop),
            Some(Stop),
            None,
            Some(Stop),
            Some(Stop),
            None,
            None,
        ],
    ),
    (
        Resuming,
        [
            Some(Stop),
            Some(Stop),
            Some(Stop),
            None,
            Some(Stop),
            Some(Stop),
            Some(Stop),
        ],
    ),
    (
        RunningP2p,
        [
            Some(Stop),
            Some(Running),
            Some(Stop),
            Some(Stop),
            None,
            Some(Running),
            Some(PreCopyP2p),
        ],
    ),
    (
        PreCopy,
        [
            Some(Running),
            Some(Running),
            Some(PreCopyP2p),
            Some(Running),
            Some(Running),
            None,
            Some(PreCopyP2p),
        ],
    ),
    (
        PreCopyP2p,
        [
            Some(RunningP2p),
            Some(RunningP2p),
            Some(StopCopy),
            Some(RunningP2p),
            Some(RunningP2p),
            Some(PreCopy),
            None,
        ],
    ),
];
const COLS: [MigState; 7] = [
    Stop, Running, StopCopy, Resuming, RunningP2p, PreCopy, PreCopyP2p,
];

/// The arc table of section 4.4: (from, to, action).
const ARCS: [(MigState, MigState, Action); 15] = [
    (RunningP2p, Stop, Action::Nothing),
    (Stop, RunningP2p, Action::Nothing),
    (Running, RunningP2p, Action::ModeStop),
    (PreCopy, PreCopyP2p, Action::ModeStop),
    (RunningP2p, Running, Action::ModeRun),
    (PreCopyP2p, PreCopy, Action::ModeRun),
    (Stop, StopCopy, Action::CreateSaving { precopy: false }),
    (StopCopy, Stop, Action::EndSessions),
    (PreCopy, Running, Action::EndSessions),
    (PreCopyP2p, RunningP2p, Action::EndSessions),
    (Stop, Resuming, Action::CreateResuming),
    (Resuming, Stop, Action::EndSessions),
    (Running, PreCopy, Action::CreateSaving { precopy: true }),
    (
        RunningP2p,
        PreCopyP2p,
        Action::CreateSaving { precopy: true },
    ),
    (PreCopyP2p, StopCopy, Action::FinalCapture),
];

#[test]
fn next_hop_matches_reference_table_all_64_pairs() {
    let mut checked = 0;
    for cur in MigState::ALL {
        for new in MigState::ALL {
            let got = next_hop(cur, new);
            if cur == Error {
                let want = if new == Error {
                    NextHopError::ErrorTarget
                } else {
                    NextHopError::FromError
                };
                assert_eq!(got, Err(want), "{cur:?} -> {new:?}");
            } else if new == Error {
                assert_eq!(got, Err(NextHopError::ErrorTarget), "{cur:?} -> {new:?}");
            } else if cur == new {
                assert_eq!(got, Ok(cur));
            } else {
                let row = TABLE.iter().find(|(s, _)| *s == cur).unwrap().1;
                let col = COLS.iter().position(|s| *s == new).unwrap();
                match row[col] {
                    Some(hop) => assert_eq!(got, Ok(hop), "{cur:?} -> {new:?}"),
                    None => assert_eq!(got, Err(NextHopError::NoPath), "{cur:?} -> {new:?}"),
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 64);
}

#[test]
fn arc_actions_match_reference_and_nothing_else_is_valid() {
    let mut valid = 0;
    for cur in MigState::ALL {
        for next in MigState::ALL {
            let want = ARCS
                .iter()
                .find(|(a, b, _)| *a == cur && *b == next)
                .map(|x| x.2);
            assert_eq!(arc_action(cur, next), want, "{cur:?} -> {next:?}");
            valid += usize::from(want.is_some());
        }
    }
    assert_eq!(valid, 15);
}

#[test]
fn every_hop_of_every_request_has_an_action_and_paths_terminate() {
    for cur in MigState::ALL.into_iter().filter(|s| *s != Error) {
        for new in MigState::ALL.into_iter().filter(|s| *s != Error) {
            let mut s = cur;
            let mut files = 0;
            for _ in 0..8 {
                if s == new {
                    break;
                }
                let Ok(hop) = next_hop(s, new) else { break };
                let action = arc_action(s, hop).unwrap_or_else(|| {
                    panic!("hop {s:?} -> {hop:?} (request {cur:?} -> {new:?}) has no action")
                });
                if action.returns_file() {
                    files += 1;
                    // A file is only returned on the last hop (the vfio core
                    // cannot return it otherwise).
                    assert_eq!(hop, new, "file returned mid-path {cur:?} -> {new:?}");
                }
                s = hop;
            }
            let reachable = next_hop(cur, new).is_ok();
            assert_eq!(s == new, reachable, "{cur:?} -> {new:?}");
            assert!(files <= 1);
        }
    }
}

#[test]
fn composite_paths_match_reference_sequences() {
    let path = |from: MigState, to: MigState| {
        let mut s = from;
        let mut cmds = Vec::new();
        while s != to {
            let hop = next_hop(s, to).unwrap();
            cmds.extend(arc_action(s, hop).unwrap().commands(1));
            s = hop;
        }
        cmds
    };
    use AdminCmd::*;
    // RUNNING -> STOP_COPY: stop, nop, capture.
    assert_eq!(
        path(Running, StopCopy),
        vec![ModeSet(true), ObjCreate(true), MetadataGet, PartsGet]
    );
    // RUNNING -> RESUMING: stop, nop, SET object.
    assert_eq!(
        path(Running, Resuming),
        vec![ModeSet(true), ObjCreate(false)]
    );
    // RESUMING -> RUNNING: destroy, nop, run.
    assert_eq!(path(Resuming, Running), vec![ObjDestroy, ModeSet(false)]);
    // STOP -> PRE_COPY: nop, run, capture.
    assert_eq!(
        path(Stop, PreCopy),
        vec![ModeSet(false), ObjCreate(true), MetadataGet, PartsGet]
    );
    // PRE_COPY -> STOP_COPY: stop, final capture.
    assert_eq!(
        path(PreCopy, StopCopy),
        vec![ModeSet(true), MetadataGet, PartsGet]
    );
    // PRE_COPY -> STOP: end sessions, stop, nop.
    assert_eq!(path(PreCopy, Stop), vec![ObjDestroy, ModeSet(true)]);
}

#[test]
fn mig_state_values_are_the_uapi_ones() {
    for (i, s) in MigState::ALL.iter().enumerate() {
        assert_eq!(s.as_u32(), i as u32);
        assert_eq!(MigState::from_u32(i as u32), Some(*s));
    }
    assert_eq!(MigState::from_u32(8), None);
    assert_eq!(MigState::from_u32(u32::MAX), None);
    assert!(Running.device_running() && PreCopy.device_running());
    assert!(!RunningP2p.device_running() && !Stop.device_running());
}

#[test]
fn precopy_cap_is_exactly_128_reads() {
    let mut p = PrecopyPolicy::new(DEFAULT_MAX_READS, 0);
    p.initial_read(0);
    let mut allowed = 1;
    for t in 0..1000 {
        match p.query(t) {
            Decision::Allowed => allowed += 1,
            Decision::CapReached => {}
            Decision::RateLimited => panic!("interval 0 never rate-limits"),
        }
    }
    assert_eq!(allowed, 128);
    assert!(p.capped());
    assert_eq!(p.reads(), 128);
    // Same timestamp, interval 0: still allowed until the cap.
    let mut q = PrecopyPolicy::new(3, 0);
    q.initial_read(5);
    assert_eq!(q.query(5), Decision::Allowed);
    assert_eq!(q.query(5), Decision::Allowed);
    assert_eq!(q.query(5), Decision::CapReached);
}

#[test]
fn precopy_rate_limit_one_query_per_interval() {
    let hz = 1000;
    let mut p = PrecopyPolicy::new(DEFAULT_MAX_READS, hz);
    p.initial_read(100);
    // Inside the first window (opened by the initial read): refused.
    for t in 100..1100 {
        assert_eq!(p.query(t), Decision::RateLimited, "t={t}");
    }
    assert_eq!(p.query(1100), Decision::Allowed);
    // At most one per window from then on.
    let mut allowed = 0;
    for t in 1100..5100 {
        if p.query(t) == Decision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "windows opened at 2100, 3100 and 4100");
    // Time going backwards never allows extra queries.
    assert_eq!(p.query(0), Decision::RateLimited);
    assert_eq!(p.reads(), 1 + 1 + 3);
}

#[test]
fn precopy_zero_cap_never_queries() {
    let mut p = PrecopyPolicy::new(0, 0);
    assert_eq!(p.query(10), Decision::CapReached);
}

#[test]
fn read_budget_burst_then_one_per_interval() {
    let mut b = ReadBudget::new(8, 1000, 0);
    for i in 0..8 {
        assert!(b.try_take(0), "read {i} of the burst");
    }
    assert!(!b.try_take(0));
    assert!(!b.try_take(999));
    assert_eq!(b.wait(999), 1);
    assert!(b.try_take(1000));
    assert!(!b.try_take(1500));
    assert_eq!(b.wait(1500), 500);
    // A long idle time refills to the burst, not beyond.
    assert_eq!(b.tokens(1_000_000), 8);
    for _ in 0..8 {
        assert!(b.try_take(1_000_000));
    }
    assert!(!b.try_take(1_000_000));
}

#[test]
fn read_budget_disabled() {
    for mut b in [ReadBudget::new(0, 1000, 0), ReadBudget::new(8, 0, 0)] {
        assert!(!b.enabled());
        for _ in 0..10_000 {
            assert!(b.try_take(5));
        }
        assert_eq!(b.wait(5), 0);
    }
}

#[test]
fn read_budget_time_going_backwards_is_harmless() {
    let mut b = ReadBudget::new(2, 100, 1000);
    assert!(b.try_take(1000));
    assert!(b.try_take(1000));
    assert!(!b.try_take(10));
    assert!(b.try_take(1100));
}

proptest! {
    /// Over any sequence of requests at non-decreasing times, the reads
    /// granted never exceed burst + elapsed / interval.
    #[test]
    fn read_budget_bound(burst in 1u32..20, interval in 1u64..500,
                         steps in proptest::collection::vec(0u64..300, 1..400)) {
        let mut b = ReadBudget::new(burst, interval, 0);
        let (mut now, mut granted) = (0u64, 0u64);
        for s in steps {
            now += s;
            if b.try_take(now) {
                granted += 1;
            }
            prop_assert!(granted <= u64::from(burst) + now / interval);
        }
    }

    /// A caller that waits as told is always granted its read.
    #[test]
    fn read_budget_wait_is_enough(burst in 1u32..5, interval in 1u64..500,
                                  n in 1usize..50) {
        let mut b = ReadBudget::new(burst, interval, 0);
        let mut now = 0u64;
        for _ in 0..n {
            now += b.wait(now);
            prop_assert!(b.try_take(now));
        }
    }
}

fn part(t: u16, flags: u8, sel: [u8; 8], value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&t.to_le_bytes());
    v.push(flags);
    v.push(0);
    v.extend_from_slice(&sel);
    v.extend_from_slice(&(value.len() as u32).to_le_bytes());
    v.extend_from_slice(value);
    v
}

fn sel16(i: u16) -> [u8; 8] {
    let mut s = [0; 8];
    s[..2].copy_from_slice(&i.to_le_bytes());
    s
}

fn sel32(o: u32) -> [u8; 8] {
    let mut s = [0; 8];
    s[..4].copy_from_slice(&o.to_le_bytes());
    s
}

fn good_parts() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(part(types::DEV_FEATURES, 1, [0; 8], &[0xff; 16]));
    b.extend(part(types::DRV_FEATURES, 0, [0; 8], &[0x0f; 16]));
    b.extend(part(types::PCI_COMMON_CFG, 0, sel32(0x10), &[1, 0]));
    b.extend(part(types::PCI_COMMON_CFG, 0, sel32(0x14), &[0x0f]));
    b.extend(part(types::DEVICE_STATUS, 0, [0; 8], &[0x0f]));
    for q in 0..3 {
        b.extend(part(types::VQ_CFG, 0, sel16(q), &[q as u8; 32]));
    }
    for q in 0..3 {
        b.extend(part(types::VQ_NOTIFY_CFG, 0, sel16(q), &[0; 8]));
    }
    b.extend(part(
        types::NET_CVQ_CFG,
        0,
        [1, 1, 0, 0, 0, 0, 0, 0],
        &[0; 8],
    ));
    b
}

#[test]
fn parts_walk_and_validate() {
    let b = good_parts();
    let s = parts::validate(&b).unwrap();
    assert_eq!(s.parts, 12);
    assert_eq!(s.vqs, 3);
    assert_eq!(s.device_specific, 1);
    let names: Vec<_> = Parts::new(&b).map(|p| p.unwrap().name()).collect();
    assert_eq!(names[0], "DEV_FEATURES");
    assert_eq!(names[5], "VQ_CFG");
    let p = Parts::new(&b).nth(2).unwrap().unwrap();
    assert_eq!((p.cfg_offset(), p.value_u64()), (0x10, Some(1)));
    assert!(parts::validate(&[]).is_ok());
}

#[test]
fn parts_errors() {
    let b = good_parts();
    let kind = |buf: &[u8]| parts::validate(buf).unwrap_err().kind;
    // Truncations.
    assert_eq!(kind(&b[..10]), PartErrorKind::TruncatedHeader);
    assert!(matches!(
        kind(&b[..20]),
        PartErrorKind::TruncatedValue { length: 16 }
    ));
    // Out of order: status before features.
    let mut o = part(types::DEVICE_STATUS, 0, [0; 8], &[1]);
    o.extend(part(types::DRV_FEATURES, 0, [0; 8], &[0; 8]));
    assert_eq!(kind(&o), PartErrorKind::OutOfOrder);
    // Duplicates.
    let mut d = part(types::DEVICE_STATUS, 0, [0; 8], &[1]);
    d.extend(part(types::DEVICE_STATUS, 0, [0; 8], &[1]));
    assert_eq!(kind(&d), PartErrorKind::Duplicate);
    let mut v = part(types::VQ_CFG, 0, sel16(1), &[0; 32]);
    v.extend(part(types::VQ_CFG, 0, sel16(1), &[0; 32]));
    assert_eq!(kind(&v), PartErrorKind::Duplicate);
    // Lengths.
    assert_eq!(
        kind(&part(types::VQ_CFG, 0, sel16(0), &[0; 31])),
        PartErrorKind::BadLength
    );
    assert_eq!(
        kind(&part(types::DEVICE_STATUS, 0, [0; 8], &[0; 2])),
        PartErrorKind::BadLength
    );
    assert_eq!(
        kind(&part(types::DRV_FEATURES, 0, [0; 8], &[0; 7])),
        PartErrorKind::BadLength
    );
    assert_eq!(
        kind(&part(types::PCI_COMMON_CFG, 0, sel32(0), &[0; 3])),
        PartErrorKind::BadLength
    );
    // Selectors.
    assert_eq!(
        kind(&part(types::PCI_COMMON_CFG, 0, sel32(63), &[0; 2])),
        PartErrorKind::BadSelector
    );
    assert_eq!(
        kind(&part(types::VQ_CFG, 0, [0, 0, 1, 0, 0, 0, 0, 0], &[0; 32])),
        PartErrorKind::BadSelector
    );
    // Unknown types: only when optional.
    assert_eq!(
        kind(&part(0x0042, 0, [0; 8], &[])),
        PartErrorKind::UnknownType
    );
    assert_eq!(
        kind(&part(0x0600, 0, [0; 8], &[])),
        PartErrorKind::UnknownType
    );
    assert!(parts::validate(&part(0x0600, 1, [0; 8], &[1, 2])).is_ok());
    // Reserved byte.
    let mut r = part(types::DEVICE_STATUS, 0, [0; 8], &[1]);
    r[3] = 1;
    assert_eq!(kind(&r), PartErrorKind::Reserved);
    // Length that overflows usize arithmetic.
    let mut huge = part(types::NET_CVQ_CFG, 0, [0; 8], &[]);
    huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(kind(&huge), PartErrorKind::TruncatedValue { .. }));
}
