// SPDX-License-Identifier: GPL-2.0

//! Legacy I/O of transitional VFs: the config-space overlay, the shadow
//! registers and BAR0 decoding against a model written the way upstream's
//! `legacy_io.c` does it (a 256-byte config space, whole-register values
//! copied through `vfio_pci_core_range_intersect_range()`).

use proptest::prelude::*;
use virtio_rs_proto::legacy::{
    bar0_in_range, config_off, decode_bar0, overlay_config_read, Bar0Error, Bar0Target, Shadow,
    BAR0_SIZE, QUEUE_NOTIFY,
};

/// `vfio_pci_core_range_intersect_range()` as the C code computes it.
fn c_intersect(pos: u64, cnt: u64, reg: u64, reg_cnt: u64) -> Option<(u64, u64, u64)> {
    let buf_end = pos + cnt - 1;
    let reg_end = reg + reg_cnt - 1;
    if buf_end < reg || pos > reg_end {
        return None;
    }
    if pos <= reg {
        Some((reg - pos, (reg_cnt).min(buf_end - reg + 1), 0))
    } else {
        Some((0, (reg_end - pos + 1).min(cnt), pos - reg))
    }
}

/// Upstream's `virtiovf_pci_read_config()` after the core read filled
/// `user` (the bytes at `pos`).
fn c_read_config(user: &mut [u8], pos: u64, cmd: u16, bar0: u32) {
    let cnt = user.len() as u64;
    fn put(user: &mut [u8], pos: u64, cnt: u64, reg: u64, val: &[u8]) {
        if let Some((co, cc, ro)) = c_intersect(pos, cnt, reg, val.len() as u64) {
            for i in 0..cc {
                user[(co + i) as usize] = val[(ro + i) as usize];
            }
        }
    }
    put(user, pos, cnt, 0x02, &0x1000u16.to_le_bytes());
    if cmd & 1 != 0 {
        if let Some((co, cc, ro)) = c_intersect(pos, cnt, 0x04, 2) {
            // copy_from_user into val16 at ro, OR the IO bit, copy back.
            let mut val = [0u8; 2];
            for i in 0..cc {
                val[(ro + i) as usize] = user[(co + i) as usize];
            }
            val[0] |= 1;
            for i in 0..cc {
                user[(co + i) as usize] = val[(ro + i) as usize];
            }
        }
    }
    put(user, pos, cnt, 0x08, &[0]);
    put(
        user,
        pos,
        cnt,
        0x10,
        &(((bar0) & !(32 - 1)) | 1).to_le_bytes(),
    );
    put(user, pos, cnt, 0x2e, &1u16.to_le_bytes());
    put(user, pos, cnt, 0x2c, &0x1af4u16.to_le_bytes());
}

/// Upstream's `virtiovf_pci_write_config()` shadow updates.
fn c_write_config(data: &[u8], pos: u64, cmd: &mut u16, bar0: &mut u32) {
    let cnt = data.len() as u64;
    if let Some((co, cc, ro)) = c_intersect(pos, cnt, 0x04, 2) {
        let mut v = cmd.to_le_bytes();
        for i in 0..cc {
            v[(ro + i) as usize] = data[(co + i) as usize];
        }
        *cmd = u16::from_le_bytes(v);
    }
    if let Some((co, cc, ro)) = c_intersect(pos, cnt, 0x10, 4) {
        let mut v = bar0.to_le_bytes();
        for i in 0..cc {
            v[(ro + i) as usize] = data[(co + i) as usize];
        }
        *bar0 = u32::from_le_bytes(v);
    }
}

proptest! {
    #[test]
    fn config_read_matches_upstream(
        pos in 0u64..0x40,
        len in 1usize..0x40,
        fill in any::<u8>(),
        cmd in any::<u16>(),
        bar0 in any::<u32>(),
    ) {
        let mut ours = vec![fill; len];
        let mut theirs = ours.clone();
        overlay_config_read(&mut ours, pos, &Shadow { cmd, bar0 });
        c_read_config(&mut theirs, pos, cmd, bar0);
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn config_write_matches_upstream(
        writes in proptest::collection::vec((0u64..0x20, proptest::collection::vec(any::<u8>(), 1..8)), 1..8),
    ) {
        let mut s = Shadow::default();
        let (mut cmd, mut bar0) = (0u16, 0u32);
        for (pos, data) in &writes {
            s.config_write(*pos, data);
            c_write_config(data, *pos, &mut cmd, &mut bar0);
            prop_assert_eq!(s, Shadow { cmd, bar0 });
        }
    }

    #[test]
    fn bar0_decode_matches_upstream(pos in 0u64..40, count in 1usize..40, msix in any::<bool>()) {
        // Upstream: pos + count > size -> EINVAL; pos == 16 needs count 2;
        // else common below VIRTIO_PCI_CONFIG_OFF(msix), device above.
        let r = decode_bar0(pos, count, msix);
        if pos + count as u64 > 32 {
            prop_assert_eq!(r, Err(Bar0Error::OutOfRange));
            prop_assert!(!bar0_in_range(pos, count));
        } else if pos == 16 {
            prop_assert_eq!(r, if count == 2 { Ok(Bar0Target::Notify) } else { Err(Bar0Error::NotifyWidth) });
        } else if pos < if msix { 24 } else { 20 } {
            prop_assert_eq!(r, Ok(Bar0Target::Common(pos as u8)));
        } else {
            prop_assert_eq!(r, Ok(Bar0Target::Device((pos - if msix { 24 } else { 20 }) as u8)));
        }
    }
}

#[test]
fn fixed_values() {
    assert_eq!(BAR0_SIZE, 32);
    assert_eq!(QUEUE_NOTIFY, 16);
    assert_eq!((config_off(true), config_off(false)), (24, 20));
    // A config read of the first 0x30 bytes with IO enabled and BAR0 at
    // 0xc040 (low bits written as 1s).
    let mut b = [0xffu8; 0x30];
    overlay_config_read(
        &mut b,
        0,
        &Shadow {
            cmd: 0x1,
            bar0: 0xc05f,
        },
    );
    assert_eq!(&b[2..4], &[0x00, 0x10]);
    assert_eq!(b[8], 0);
    assert_eq!(&b[0x10..0x14], &[0x41, 0xc0, 0, 0]);
    assert_eq!(&b[0x2c..0x30], &[0xf4, 0x1a, 0x01, 0x00]);
    // Huge offsets and lengths neither panic nor patch.
    let mut b = [7u8; 4];
    overlay_config_read(&mut b, u64::MAX - 1, &Shadow { cmd: 1, bar0: 0 });
    assert_eq!(b, [7; 4]);
    assert!(!bar0_in_range(u64::MAX, 2));
    assert_eq!(decode_bar0(u64::MAX, 1, true), Err(Bar0Error::OutOfRange));
}

/// Every short access around the patched registers, with the IO bit on
/// and off and two fill patterns (proptest might miss the single-byte
/// edges).
#[test]
fn config_read_exhaustive_short_accesses() {
    for pos in 0u64..0x34 {
        for len in 1usize..=8 {
            for cmd in [0u16, 1, 0xfffe, 0xffff] {
                for fill in [0u8, 0xfe, 0xff] {
                    let bar0 = 0x1234_5678;
                    let mut ours = vec![fill; len];
                    let mut theirs = ours.clone();
                    overlay_config_read(&mut ours, pos, &Shadow { cmd, bar0 });
                    c_read_config(&mut theirs, pos, cmd, bar0);
                    assert_eq!(
                        ours, theirs,
                        "pos {pos:#x} len {len} cmd {cmd:#x} fill {fill:#x}"
                    );
                }
            }
        }
    }
}
