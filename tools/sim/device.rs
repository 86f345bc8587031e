// SPDX-License-Identifier: GPL-2.0

//! The simulated device: admin command semantics and per-VF device state.
//!
//! Wire formats: the virtio 1.4 admin command set (`admin.tex`,
//! `admin-cmds-*.tex`, `device-parts.tex`) as `include/uapi/linux/virtio_pci.h`
//! lays it out. Every command is parsed from the bytes of its data list and
//! answered with status, qualifier and result bytes, as a device would.
//!
//! Device state of a VF: a byte string of device parts in spec order —
//! DEV_FEATURES (optional), DRV_FEATURES, two PCI_COMMON_CFG fields,
//! DEVICE_STATUS, VQ_CFG and VQ_NOTIFY_CFG per queue, net control-queue
//! parts (RX promiscuous mode, MAC address), then two simulator parts in
//! the device-specific range: a generation counter (0x5fe) and bulk state
//! (0x5ff, up to 1 MiB each) that pads the state to the configured size,
//! standing in for large device-specific state such as flow tables. The
//! defaults differ per VF (MAC, ring addresses), so a migration that loads
//! nothing is detected. While a VF runs, every parts read bumps the
//! generation and rewrites `rate` bulk bytes, so repeated pre-copy reads see
//! new data; while stopped the state is frozen. A VF function reset returns
//! the state to its defaults and the VF to running, and clears its ISR.
//!
//! Legacy interface (transitional VFs): with the `legacy_io` parameter the
//! device also offers opcodes 2..6 in LIST_QUERY. The legacy registers are
//! a view onto the device parts ([`crate::legacy`]), plus an ISR byte per
//! VF that is not a part; LEGACY_NOTIFY_INFO answers the VF's own BAR
//! (member device) at its common configuration structure (see
//! [`State::notify_info`] for why not the notify region).

use kernel::{
    alloc::KVVec,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::{
    legacy::{self, Access, Regs},
    pf::PfRef,
    proto::{
        bytes::{le16, le32, le64},
        parts::{self, types, Parts, PART_HDR_LEN},
    },
    sg::SgList,
};

/// Admin command opcodes (`VIRTIO_ADMIN_CMD_*` of
/// `include/uapi/linux/virtio_pci.h`).
pub(crate) mod op {
    use crate::bindings as b;

    // CAST: the opcodes are 16-bit values; bindgen makes them `u32`.
    pub(crate) const LIST_QUERY: u16 = b::VIRTIO_ADMIN_CMD_LIST_QUERY as u16;
    pub(crate) const LIST_USE: u16 = b::VIRTIO_ADMIN_CMD_LIST_USE as u16;
    pub(crate) const CAP_ID_LIST_QUERY: u16 = b::VIRTIO_ADMIN_CMD_CAP_ID_LIST_QUERY as u16;
    pub(crate) const DEVICE_CAP_GET: u16 = b::VIRTIO_ADMIN_CMD_DEVICE_CAP_GET as u16;
    pub(crate) const DRIVER_CAP_SET: u16 = b::VIRTIO_ADMIN_CMD_DRIVER_CAP_SET as u16;
    pub(crate) const RESOURCE_OBJ_CREATE: u16 = b::VIRTIO_ADMIN_CMD_RESOURCE_OBJ_CREATE as u16;
    pub(crate) const RESOURCE_OBJ_DESTROY: u16 = b::VIRTIO_ADMIN_CMD_RESOURCE_OBJ_DESTROY as u16;
    pub(crate) const DEV_PARTS_METADATA_GET: u16 =
        b::VIRTIO_ADMIN_CMD_DEV_PARTS_METADATA_GET as u16;
    pub(crate) const DEV_PARTS_GET: u16 = b::VIRTIO_ADMIN_CMD_DEV_PARTS_GET as u16;
    pub(crate) const DEV_PARTS_SET: u16 = b::VIRTIO_ADMIN_CMD_DEV_PARTS_SET as u16;
    pub(crate) const DEV_MODE_SET: u16 = b::VIRTIO_ADMIN_CMD_DEV_MODE_SET as u16;
    pub(crate) const LEGACY_COMMON_CFG_WRITE: u16 =
        b::VIRTIO_ADMIN_CMD_LEGACY_COMMON_CFG_WRITE as u16;
    pub(crate) const LEGACY_COMMON_CFG_READ: u16 =
        b::VIRTIO_ADMIN_CMD_LEGACY_COMMON_CFG_READ as u16;
    pub(crate) const LEGACY_DEV_CFG_WRITE: u16 = b::VIRTIO_ADMIN_CMD_LEGACY_DEV_CFG_WRITE as u16;
    pub(crate) const LEGACY_DEV_CFG_READ: u16 = b::VIRTIO_ADMIN_CMD_LEGACY_DEV_CFG_READ as u16;
    pub(crate) const LEGACY_NOTIFY_INFO: u16 = b::VIRTIO_ADMIN_CMD_LEGACY_NOTIFY_INFO as u16;
    /// Number of opcodes counted.
    pub(crate) const COUNT: usize = DEV_MODE_SET as usize + 1;
}

/// Opcodes this device always offers.
const SUPPORTED: u64 = (1 << op::LIST_QUERY)
    | (1 << op::LIST_USE)
    | (1 << op::CAP_ID_LIST_QUERY)
    | (1 << op::DEVICE_CAP_GET)
    | (1 << op::DRIVER_CAP_SET)
    | (1 << op::RESOURCE_OBJ_CREATE)
    | (1 << op::RESOURCE_OBJ_DESTROY)
    | (1 << op::DEV_PARTS_METADATA_GET)
    | (1 << op::DEV_PARTS_GET)
    | (1 << op::DEV_PARTS_SET)
    | (1 << op::DEV_MODE_SET);

/// The legacy-interface opcodes (0x2..0x6, bitmap 0x7c), offered only with
/// the `legacy_io` parameter (transitional VFs).
const LEGACY: u64 = (1 << op::LEGACY_COMMON_CFG_WRITE)
    | (1 << op::LEGACY_COMMON_CFG_READ)
    | (1 << op::LEGACY_DEV_CFG_WRITE)
    | (1 << op::LEGACY_DEV_CFG_READ)
    | (1 << op::LEGACY_NOTIFY_INFO);

/// `VIRTIO_ADMIN_CMD_NOTIFY_INFO_FLAGS_OWNER_MEM`: the member's own BAR.
const NOTIFY_INFO_MEMBER: u8 = 2;
/// Size of a LEGACY_NOTIFY_INFO result: 4 entries of 16 bytes.
const NOTIFY_INFO_LEN: usize = 64;

/// Status codes (`VIRTIO_ADMIN_STATUS_*`).
#[allow(dead_code)]
pub(crate) mod status {
    pub(crate) const OK: u16 = 0;
    pub(crate) const ENXIO: u16 = 6;
    pub(crate) const EAGAIN: u16 = 11;
    pub(crate) const ENOMEM: u16 = 12;
    pub(crate) const EBUSY: u16 = 16;
    pub(crate) const EINVAL: u16 = 22;
    pub(crate) const ENOSPC: u16 = 28;
}

/// Status qualifiers (`VIRTIO_ADMIN_STATUS_Q_*`).
pub(crate) mod qual {
    pub(crate) const OK: u16 = 0;
    pub(crate) const INVALID_COMMAND: u16 = 1;
    pub(crate) const INVALID_OPCODE: u16 = 2;
    pub(crate) const INVALID_FIELD: u16 = 3;
    pub(crate) const INVALID_GROUP: u16 = 4;
    pub(crate) const INVALID_MEMBER: u16 = 5;
    pub(crate) const NORESOURCE: u16 = 6;
}

const GROUP_SELF: u16 = 0;
const GROUP_SRIOV: u16 = 1;
const DEV_PARTS_CAP: u16 = 0;
const OBJ_DEV_PARTS: u16 = 0;

/// Simulator-specific device parts (device-specific range).
const SIM_GENERATION: u16 = 0x5fe;
const SIM_BULK: u16 = 0x5ff;
const BULK_CHUNK: usize = 1 << 20;

/// Device features of the simulated VFs: VERSION_1 (32), ACCESS_PLATFORM
/// (33), MAC (5), CTRL_VQ (17), CTRL_RX (18), STATUS (16), MRG_RXBUF (15).
pub(crate) const DEFAULT_FEATURES: u64 =
    (1 << 32) | (1 << 33) | (1 << 5) | (1 << 17) | (1 << 18) | (1 << 16) | (1 << 15);

/// Largest data a command may carry: 64 MiB of state and a margin, and the
/// 128 MiB record of the memory-cgroup test (mig_tables_charged_to_memcg).
const MAX_DATA: usize = 136 << 20;
/// Largest configurable state.
pub(crate) const MAX_STATE: usize = 64 << 20;

/// Where a command's result goes: the result scatterlist, or a buffer for
/// commands injected through debugfs.
pub(crate) trait Sink {
    /// Bytes the device may write.
    fn capacity(&self) -> usize;
    /// Write `bytes` at the start; returns bytes written.
    fn put(&mut self, bytes: &[u8]) -> usize;
    /// Descriptors this result takes on an admin queue.
    fn nents(&self) -> u32;
    /// Copy the first result bytes into `out` (for the trace); returns
    /// bytes copied.
    fn peek(&self, out: &mut [u8]) -> usize;
}

impl Sink for SgList<'_> {
    fn capacity(&self) -> usize {
        self.len()
    }
    fn put(&mut self, bytes: &[u8]) -> usize {
        self.write(0, bytes)
    }
    fn nents(&self) -> u32 {
        SgList::nents(self)
    }
    fn peek(&self, out: &mut [u8]) -> usize {
        self.read(0, out)
    }
}

/// A result buffer of fixed capacity.
pub(crate) struct BufSink {
    pub(crate) buf: KVVec<u8>,
    cap: usize,
}

impl BufSink {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            buf: KVVec::new(),
            cap,
        }
    }
}

impl Sink for BufSink {
    fn capacity(&self) -> usize {
        self.cap
    }
    fn put(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.cap);
        self.buf.clear();
        if self.buf.extend_from_slice(&bytes[..n], GFP_KERNEL).is_err() {
            return 0;
        }
        n
    }
    fn nents(&self) -> u32 {
        1
    }
    fn peek(&self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buf.len());
        if let (Some(d), Some(s)) = (out.get_mut(..n), self.buf.get(..n)) {
            d.copy_from_slice(s);
        }
        n
    }
}

/// A command header as the device reads it.
pub(crate) struct Header {
    pub(crate) opcode: u16,
    pub(crate) group: u16,
    pub(crate) member: u64,
}

/// What the device answers.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) qualifier: u16,
    pub(crate) written: usize,
}

impl Reply {
    fn ok(written: usize) -> Self {
        Self {
            status: status::OK,
            qualifier: qual::OK,
            written,
        }
    }

    fn err(status: u16, qualifier: u16) -> Self {
        Self {
            status,
            qualifier,
            written: 0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ObjKind {
    Get,
    Set,
}

struct Obj {
    id: u32,
    member: u16,
    kind: ObjKind,
}

/// Per-VF state.
struct Vf {
    stopped: bool,
    state: KVVec<u8>,
    size: usize,
    generation: u64,
    features: u64,
    /// Legacy interrupt status (read-to-clear; not a device part).
    isr: u8,
    resize_after_metadata: Option<i64>,
    parts_reads: u64,
    parts_sets: u64,
}

/// A fault to inject.
#[derive(Clone, Copy)]
pub(crate) enum FaultAction {
    /// Answer with this status (qualifier INVALID_COMMAND) and no effect.
    Status(u16),
    /// Write at most this many result bytes (and report them).
    Short(usize),
    /// Sleep this many milliseconds before executing.
    Delay(u32),
}

struct Fault {
    opcode: u16,
    /// Matching commands to let pass before this one fires (0 = next).
    skip: u32,
    action: FaultAction,
}

const TRACE_LEN: usize = 512;

#[derive(Clone, Copy, Default)]
struct TraceEntry {
    seq: u64,
    opcode: u16,
    member: u64,
    status: u16,
    written: usize,
    /// Register access of a legacy read or write.
    access: Option<Access>,
}

struct State {
    vfs: KVec<Vf>,
    objs: KVec<Obj>,
    get_limit: u8,
    set_limit: u8,
    limit: u8,
    in_use: u64,
    ok: [u64; op::COUNT],
    failed: [u64; op::COUNT],
    faults: KVec<Fault>,
    trace: KVec<TraceEntry>,
    seq: u64,
    rate: usize,
    vq_size: u32,
    queues: u16,
    /// Opcodes offered in LIST_QUERY.
    supported: u64,
    over_vq: u64,
    /// The most descriptors one command would have needed.
    max_descs: u32,
    detached: bool,
    dump_vf: u16,
    /// LEGACY_NOTIFY_INFO's answer forced by ctl `notify_at` (a device
    /// that reports a bad address), instead of the VF's capability.
    notify_at: Option<(u8, u64)>,
}

/// Reply of the last command injected through debugfs `raw`.
struct RawReply {
    bytes: KVVec<u8>,
}

/// The simulated PF admin device.
#[pin_data]
pub(crate) struct Sim {
    pf: PfRef,
    /// Commands sleeping in a `delay` fault right now (tests wait for it
    /// to know that a command is in flight).
    delaying: Atomic<u32>,
    /// Nanoseconds spent executing commands, since load (the device's
    /// share of a migration's time, for the benchmark).
    busy_ns: Atomic<u64>,
    #[pin]
    state: Mutex<State>,
    #[pin]
    raw: Mutex<RawReply>,
}

/// Simulator configuration at load.
pub(crate) struct Config {
    pub(crate) get_limit: u8,
    pub(crate) set_limit: u8,
    pub(crate) size: usize,
    pub(crate) queues: u16,
    pub(crate) vq_size: u32,
    /// Offer the legacy-interface commands (transitional VFs).
    pub(crate) legacy_io: bool,
}

fn push_part(out: &mut KVVec<u8>, t: u16, flags: u8, sel: [u8; 8], value: &[u8]) -> Result {
    let len = u32::try_from(value.len()).map_err(|_| EINVAL)?;
    out.extend_from_slice(&t.to_le_bytes(), GFP_KERNEL)?;
    out.extend_from_slice(&[flags, 0], GFP_KERNEL)?;
    out.extend_from_slice(&sel, GFP_KERNEL)?;
    out.extend_from_slice(&len.to_le_bytes(), GFP_KERNEL)?;
    out.extend_from_slice(value, GFP_KERNEL)?;
    Ok(())
}

fn sel16(v: u16) -> [u8; 8] {
    let b = v.to_le_bytes();
    [b[0], b[1], 0, 0, 0, 0, 0, 0]
}

fn sel32(v: u32) -> [u8; 8] {
    let b = v.to_le_bytes();
    [b[0], b[1], b[2], b[3], 0, 0, 0, 0]
}

/// Default state of VF `vf` (1-based) of about `size` bytes.
fn default_state(vf: u16, size: usize, queues: u16, features: u64) -> Result<KVVec<u8>> {
    let mut s = KVVec::with_capacity(size.max(512), GFP_KERNEL)?;
    push_part(
        &mut s,
        types::DEV_FEATURES,
        parts::PART_F_OPTIONAL,
        [0; 8],
        &features.to_le_bytes(),
    )?;
    push_part(
        &mut s,
        types::DRV_FEATURES,
        0,
        [0; 8],
        &(features & !(1 << 15)).to_le_bytes(),
    )?;
    // msix_config and queue_select of struct virtio_pci_common_cfg.
    push_part(
        &mut s,
        types::PCI_COMMON_CFG,
        0,
        sel32(0x10),
        &0u16.to_le_bytes(),
    )?;
    push_part(
        &mut s,
        types::PCI_COMMON_CFG,
        0,
        sel32(0x16),
        &0u16.to_le_bytes(),
    )?;
    push_part(&mut s, types::DEVICE_STATUS, 0, [0; 8], &[0x0f])?;
    let base = 0x1_0000_0000u64.saturating_mul(u64::from(vf));
    for q in 0..queues {
        let desc = base.saturating_add(u64::from(q).saturating_mul(0x10000));
        let mut v = [0u8; 32];
        v[0..2].copy_from_slice(&256u16.to_le_bytes());
        v[2..4].copy_from_slice(&q.saturating_add(1).to_le_bytes());
        v[4..6].copy_from_slice(&1u16.to_le_bytes());
        v[8..16].copy_from_slice(&desc.to_le_bytes());
        v[16..24].copy_from_slice(&desc.saturating_add(0x1000).to_le_bytes());
        v[24..32].copy_from_slice(&desc.saturating_add(0x2000).to_le_bytes());
        push_part(&mut s, types::VQ_CFG, 0, sel16(q), &v)?;
    }
    for q in 0..queues {
        let mut v = [0u8; 8];
        v[0..2].copy_from_slice(&q.to_le_bytes());
        v[2..4].copy_from_slice(&q.to_le_bytes());
        push_part(&mut s, types::VQ_NOTIFY_CFG, 0, sel16(q), &v)?;
    }
    // VIRTIO_NET_CTRL_RX (0) / PROMISC (0), VIRTIO_NET_CTRL_MAC (1) / ADDR_SET (1).
    push_part(
        &mut s,
        types::NET_CVQ_CFG,
        0,
        [0, 0, 0, 0, 0, 0, 0, 0],
        &[0],
    )?;
    let vfb = vf.to_le_bytes();
    push_part(
        &mut s,
        types::NET_CVQ_CFG,
        0,
        [1, 1, 0, 0, 0, 0, 0, 0],
        &[0x52, 0x54, 0, 0xab, vfb[1], vfb[0]],
    )?;
    push_part(&mut s, SIM_GENERATION, 0, [0; 8], &0u64.to_le_bytes())?;
    let mut index: u32 = 0;
    while size.saturating_sub(s.len()) > PART_HDR_LEN {
        let chunk = (size - s.len() - PART_HDR_LEN).min(BULK_CHUNK);
        let start = s.len().saturating_add(PART_HDR_LEN);
        push_part(&mut s, SIM_BULK, 0, sel32(index), &[])?;
        s.resize(start.saturating_add(chunk), 0, GFP_KERNEL)?;
        // Fix up the length and fill with a VF-specific pattern.
        let len = u32::try_from(chunk).map_err(|_| EINVAL)?;
        if let Some(l) = s.get_mut(start - 4..start) {
            l.copy_from_slice(&len.to_le_bytes());
        }
        if let Some(v) = s.get_mut(start..) {
            for (i, b) in v.iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(31) ^ (vf as u8) ^ (index as u8);
            }
        }
        index = index.saturating_add(1);
    }
    Ok(s)
}

/// FNV-1a 64 of the state.
fn hash(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Vf {
    fn new(vf: u16, size: usize, queues: u16) -> Result<Self> {
        Ok(Self {
            stopped: false,
            state: default_state(vf, size, queues, DEFAULT_FEATURES)?,
            size,
            generation: 0,
            features: DEFAULT_FEATURES,
            isr: 0,
            resize_after_metadata: None,
            parts_reads: 0,
            parts_sets: 0,
        })
    }

    /// The running device changes its state between reads.
    fn advance(&mut self, rate: usize) {
        self.generation = self.generation.wrapping_add(1);
        let gen = self.generation;
        let mut bulk: Option<(usize, usize)> = None;
        let mut gen_at = None;
        for p in Parts::new(&self.state).flatten() {
            let at = p.offset.saturating_add(PART_HDR_LEN);
            if p.part_type == SIM_GENERATION && p.value.len() == 8 {
                gen_at = Some(at);
            } else if p.part_type == SIM_BULK && bulk.is_none() && !p.value.is_empty() {
                bulk = Some((at, p.value.len()));
            }
        }
        if let Some(at) = gen_at {
            if let Some(v) = self.state.get_mut(at..at.saturating_add(8)) {
                v.copy_from_slice(&gen.to_le_bytes());
            }
        }
        if let Some((at, len)) = bulk {
            for k in 0..rate {
                let off = (gen as usize)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(k.wrapping_mul(4099))
                    .checked_rem(len)
                    .unwrap_or(0);
                if let Some(b) = self.state.get_mut(at.saturating_add(off)) {
                    *b ^= (gen as u8) | 1;
                }
            }
        }
    }
}

impl Sim {
    /// A simulator for `pf` with `cfg`.
    pub(crate) fn new(pf: PfRef, cfg: &Config) -> Result<Arc<Self>> {
        let total = pf.total_vfs();
        let size = cfg.size.min(MAX_STATE);
        let mut vfs = KVec::with_capacity(usize::from(total), GFP_KERNEL)?;
        for i in 1..=total {
            vfs.push(Vf::new(i, size, cfg.queues)?, GFP_KERNEL)?;
        }
        let state = State {
            vfs,
            objs: KVec::new(),
            get_limit: cfg.get_limit,
            set_limit: cfg.set_limit,
            limit: 0,
            in_use: 0,
            ok: [0; op::COUNT],
            failed: [0; op::COUNT],
            faults: KVec::new(),
            trace: KVec::from_elem(TraceEntry::default(), TRACE_LEN, GFP_KERNEL)?,
            seq: 0,
            rate: 16,
            vq_size: cfg.vq_size,
            queues: cfg.queues,
            supported: if cfg.legacy_io {
                SUPPORTED | LEGACY
            } else {
                SUPPORTED
            },
            over_vq: 0,
            max_descs: 0,
            detached: false,
            dump_vf: 1,
            notify_at: None,
        };
        Arc::pin_init(
            pin_init!(Self {
                pf,
                delaying: Atomic::new(0),
                busy_ns: Atomic::new(0),
                state <- kernel::new_mutex!(state),
                raw <- kernel::new_mutex!(RawReply { bytes: KVVec::new() }),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn pf(&self) -> &PfRef {
        &self.pf
    }

    /// The PF went away.
    pub(crate) fn detach(&self) {
        self.state.lock().detached = true;
    }

    /// VF `vf` (1-based) completed a function reset.
    pub(crate) fn vf_reset(&self, vf: u16) {
        let mut st = self.state.lock();
        let queues = st.queues;
        if let Some(v) = st.vfs.get_mut(usize::from(vf).wrapping_sub(1)) {
            let features = v.features;
            if let Ok(s) = default_state(vf, v.size, queues, features) {
                v.state = s;
            }
            v.stopped = false;
            v.generation = 0;
            v.isr = 0;
        }
    }

    /// Execute one admin command arriving through the hook.
    pub(crate) fn exec(
        &self,
        h: &Header,
        data: Option<&SgList<'_>>,
        result: Option<&mut SgList<'_>>,
    ) -> Reply {
        let start = Instant::<Monotonic>::now();
        let d = match read_data(data) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let data_nents = data.map_or(0, |d| d.nents());
        let reply = match result {
            Some(r) => self.exec_bytes(h, d, data_nents, Some(r)),
            None => self.exec_bytes(h, d, data_nents, None),
        };
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(0);
        self.busy_ns.add(ns, Relaxed);
        reply
    }

    /// Execute one admin command whose data is `d`.
    pub(crate) fn exec_bytes(
        &self,
        h: &Header,
        d: KVVec<u8>,
        data_nents: u32,
        mut result: Option<&mut (dyn Sink + '_)>,
    ) -> Reply {
        // Fault injection: pick the action for this command.
        let fault = {
            let mut st = self.state.lock();
            let mut hit = None;
            let mut i = 0;
            while i < st.faults.len() {
                let f = &mut st.faults[i];
                if f.opcode == h.opcode {
                    if f.skip == 0 {
                        hit = Some(f.action);
                        let _ = st.faults.remove(i);
                        break;
                    }
                    f.skip -= 1;
                }
                i += 1;
            }
            hit
        };
        if let Some(FaultAction::Delay(ms)) = fault {
            self.delaying.add(1u32, Relaxed);
            fsleep(Delta::from_millis(i64::from(ms)));
            let _ = self.delaying.fetch_sub(1u32, Relaxed);
        }
        let mut access = match h.opcode {
            op::LEGACY_COMMON_CFG_WRITE | op::LEGACY_DEV_CFG_WRITE => Access::of(true, &d, 0),
            op::LEGACY_COMMON_CFG_READ | op::LEGACY_DEV_CFG_READ => {
                Access::of(false, &d, result.as_ref().map_or(0, |r| r.capacity()))
            }
            _ => None,
        };
        let mut st = self.state.lock();
        let mut reply = match fault {
            Some(FaultAction::Status(s)) => Reply::err(s, qual::INVALID_COMMAND),
            _ if st.detached => Reply::err(status::ENXIO, qual::INVALID_COMMAND),
            _ => st.dispatch(h, d, result.as_deref_mut(), &self.pf),
        };
        if let (Some(FaultAction::Short(n)), Some(_)) = (fault, result.as_ref()) {
            reply.written = reply.written.min(n);
        }
        // A legacy read's register bytes, as returned.
        if let (Some(a), Some(r)) = (access.as_mut(), result.as_ref()) {
            if reply.status == status::OK && reply.written > 0 {
                let mut bytes = [0u8; 8];
                let n = reply.written.min(bytes.len());
                let n = r.peek(bytes.get_mut(..n).unwrap_or(&mut []));
                a.set_data(bytes.get(..n).unwrap_or(&[]));
            }
        }
        // Bookkeeping: counters, trace, descriptors a real queue would need.
        let idx = usize::from(h.opcode);
        if reply.status == status::OK {
            if let Some(c) = st.ok.get_mut(idx) {
                *c += 1;
            }
        } else if let Some(c) = st.failed.get_mut(idx) {
            *c += 1;
        }
        let descs = 2u32
            .saturating_add(data_nents)
            .saturating_add(result.as_ref().map_or(0, |r| r.nents()));
        if descs > st.vq_size {
            st.over_vq += 1;
        }
        st.max_descs = st.max_descs.max(descs);
        st.seq += 1;
        let seq = st.seq;
        if let Some(t) = st.trace.get_mut((seq as usize) % TRACE_LEN) {
            *t = TraceEntry {
                seq,
                opcode: h.opcode,
                member: h.member,
                status: reply.status,
                written: reply.written,
                access,
            };
        }
        reply
    }
}

/// Read a whole data list (bounded).
fn read_data(data: Option<&SgList<'_>>) -> core::result::Result<KVVec<u8>, Reply> {
    let Some(d) = data else {
        return Ok(KVVec::new());
    };
    if d.len() > MAX_DATA {
        return Err(Reply::err(status::EINVAL, qual::INVALID_FIELD));
    }
    let mut buf = KVVec::from_elem(0u8, d.len(), GFP_KERNEL)
        .map_err(|_| Reply::err(status::ENOMEM, qual::NORESOURCE))?;
    if d.read(0, &mut buf) != d.len() {
        return Err(Reply::err(status::EINVAL, qual::INVALID_FIELD));
    }
    Ok(buf)
}

/// Write a result; ENOMEM when the buffer is too small (spec: result
/// buffer too small).
fn write_result(result: Option<&mut (dyn Sink + '_)>, bytes: &[u8]) -> Reply {
    let Some(r) = result else {
        return if bytes.is_empty() {
            Reply::ok(0)
        } else {
            Reply::err(status::ENOMEM, qual::NORESOURCE)
        };
    };
    if r.capacity() < bytes.len() {
        return Reply::err(status::ENOMEM, qual::NORESOURCE);
    }
    Reply::ok(r.put(bytes))
}

impl State {
    fn vf_index(&self, h: &Header) -> core::result::Result<usize, Reply> {
        if h.group != GROUP_SRIOV {
            return Err(Reply::err(status::EINVAL, qual::INVALID_GROUP));
        }
        usize::try_from(h.member)
            .ok()
            .and_then(|m| m.checked_sub(1))
            .filter(|&i| i < self.vfs.len())
            .ok_or(Reply::err(status::EINVAL, qual::INVALID_MEMBER))
    }

    fn live_objects(&self) -> usize {
        self.objs.len()
    }

    fn dispatch(
        &mut self,
        h: &Header,
        d: KVVec<u8>,
        result: Option<&mut (dyn Sink + '_)>,
        pf: &PfRef,
    ) -> Reply {
        if h.opcode != op::LIST_QUERY && h.opcode != op::LIST_USE {
            if h.opcode >= 64 || (self.in_use & (1 << h.opcode)) == 0 {
                return Reply::err(status::EINVAL, qual::INVALID_OPCODE);
            }
        }
        match h.opcode {
            op::LIST_QUERY => {
                if h.group != GROUP_SRIOV {
                    return Reply::err(status::EINVAL, qual::INVALID_GROUP);
                }
                write_result(result, &self.supported.to_le_bytes())
            }
            op::LIST_USE => {
                if h.group != GROUP_SRIOV {
                    return Reply::err(status::EINVAL, qual::INVALID_GROUP);
                }
                let want = le64(&d, 0);
                if d.len() < 8 || want & !self.supported != 0 {
                    return Reply::err(status::EINVAL, qual::INVALID_FIELD);
                }
                self.in_use = want;
                Reply::ok(0)
            }
            op::CAP_ID_LIST_QUERY => {
                if h.group != GROUP_SELF {
                    return Reply::err(status::EINVAL, qual::INVALID_GROUP);
                }
                write_result(result, &(1u64 << DEV_PARTS_CAP).to_le_bytes())
            }
            op::DEVICE_CAP_GET => {
                if h.group != GROUP_SELF {
                    return Reply::err(status::EINVAL, qual::INVALID_GROUP);
                }
                if d.len() < 8 || le16(&d, 0) != DEV_PARTS_CAP {
                    return Reply::err(status::EINVAL, qual::INVALID_FIELD);
                }
                write_result(result, &[self.get_limit, self.set_limit])
            }
            op::DRIVER_CAP_SET => {
                if h.group != GROUP_SELF {
                    return Reply::err(status::EINVAL, qual::INVALID_GROUP);
                }
                let (g, s) = (d.get(8).copied(), d.get(9).copied());
                match (le16(&d, 0), g, s) {
                    (DEV_PARTS_CAP, Some(g), Some(s))
                        if g <= self.get_limit && s <= self.set_limit =>
                    {
                        self.limit = g.min(s);
                        Reply::ok(0)
                    }
                    _ => Reply::err(status::EINVAL, qual::INVALID_FIELD),
                }
            }
            op::RESOURCE_OBJ_CREATE => self.obj_create(h, &d),
            op::RESOURCE_OBJ_DESTROY => self.obj_destroy(h, &d),
            op::DEV_PARTS_METADATA_GET => self.metadata_get(h, &d, result),
            op::DEV_PARTS_GET => self.parts_get(h, &d, result),
            op::DEV_PARTS_SET => self.parts_set(h, d),
            op::DEV_MODE_SET => {
                let vf = match self.vf_index(h) {
                    Ok(i) => i,
                    Err(r) => return r,
                };
                if usize::from(pf.num_vfs()) <= vf {
                    return Reply::err(status::EINVAL, qual::INVALID_MEMBER);
                }
                match d.first() {
                    Some(&f) if f & !1 == 0 => {
                        self.vfs[vf].stopped = f & 1 != 0;
                        Reply::ok(0)
                    }
                    _ => Reply::err(status::EINVAL, qual::INVALID_FIELD),
                }
            }
            op::LEGACY_COMMON_CFG_WRITE | op::LEGACY_DEV_CFG_WRITE => self.legacy_write(h, &d),
            op::LEGACY_COMMON_CFG_READ | op::LEGACY_DEV_CFG_READ => self.legacy_read(h, &d, result),
            op::LEGACY_NOTIFY_INFO => self.notify_info(h, &d, result, pf),
            _ => Reply::err(status::EINVAL, qual::INVALID_OPCODE),
        }
    }

    /// The legacy registers of the member VF.
    fn regs(&mut self, h: &Header) -> core::result::Result<Regs<'_>, Reply> {
        let vf = self.vf_index(h)?;
        let v = self
            .vfs
            .get_mut(vf)
            .ok_or(Reply::err(status::EINVAL, qual::INVALID_MEMBER))?;
        Ok(Regs {
            state: &mut v.state,
            features: v.features,
            isr: &mut v.isr,
        })
    }

    /// LEGACY_COMMON_CFG_WRITE / LEGACY_DEV_CFG_WRITE: data `{u8 offset;
    /// u8 reserved[7]; u8 registers[]}`, at least one register byte; no
    /// result.
    fn legacy_write(&mut self, h: &Header, d: &[u8]) -> Reply {
        let common = h.opcode == op::LEGACY_COMMON_CFG_WRITE;
        let mut regs = match self.regs(h) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let (Some(&off), Some(bytes)) = (d.first(), d.get(8..)) else {
            return Reply::err(status::EINVAL, qual::INVALID_FIELD);
        };
        let done = if common {
            regs.common_write(off, bytes)
        } else {
            regs.device_write(off, bytes)
        };
        match done {
            Ok(()) => Reply::ok(0),
            Err(legacy::Invalid) => Reply::err(status::EINVAL, qual::INVALID_FIELD),
        }
    }

    /// LEGACY_COMMON_CFG_READ / LEGACY_DEV_CFG_READ: data `{u8 offset}`
    /// (exactly one byte); the result buffer's size is the number of bytes
    /// read, and the device writes exactly that many.
    fn legacy_read(&mut self, h: &Header, d: &[u8], result: Option<&mut (dyn Sink + '_)>) -> Reply {
        let common = h.opcode == op::LEGACY_COMMON_CFG_READ;
        let mut regs = match self.regs(h) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let (Some(&off), 1) = (d.first(), d.len()) else {
            return Reply::err(status::EINVAL, qual::INVALID_FIELD);
        };
        let len = result.as_ref().map_or(0, |r| r.capacity());
        let mut buf = [0u8; legacy::COMMON_LEN];
        let Some(out) = buf.get_mut(..len) else {
            return Reply::err(status::EINVAL, qual::INVALID_FIELD);
        };
        let done = if common {
            regs.common_read(off, out)
        } else {
            regs.device_read(off, out)
        };
        match done {
            Ok(()) => write_result(result, out),
            Err(legacy::Invalid) => Reply::err(status::EINVAL, qual::INVALID_FIELD),
        }
    }

    /// LEGACY_NOTIFY_INFO: no data; the result is 4 entries `{u8 flags; u8
    /// bar; u8 padding[6]; le64 offset}`, here one member-device entry and
    /// an END entry.
    ///
    /// The address is the VF's common configuration structure, i.e. its
    /// `device_feature_select` register, not the notify region: on QEMU a
    /// VF's notify region ignores the value written and reads as 0, so a
    /// test could not see a QUEUE_NOTIFY write arrive there, whereas
    /// `device_feature_select` is a plain 32-bit register that keeps what
    /// is written and has no other effect, so a test can read back through
    /// the VF's BAR the value the driver's 16-bit MMIO write put there.
    /// (Hardware answers with its notify region.) A VF without a virtio
    /// COMMON_CFG capability gets only the END entry; the upstream driver
    /// then fails probe with ENOENT.
    fn notify_info(
        &mut self,
        h: &Header,
        d: &[u8],
        result: Option<&mut (dyn Sink + '_)>,
        pf: &PfRef,
    ) -> Reply {
        let vf = match self.vf_index(h) {
            Ok(i) => i,
            Err(r) => return r,
        };
        if !d.is_empty() {
            return Reply::err(status::EINVAL, qual::INVALID_FIELD);
        }
        let Ok(id) = u16::try_from(vf) else {
            return Reply::err(status::EINVAL, qual::INVALID_MEMBER);
        };
        let mut out = [0u8; NOTIFY_INFO_LEN];
        if let Some((bar, offset)) = self.notify_at {
            out[0] = NOTIFY_INFO_MEMBER;
            out[1] = bar;
            out[8..16].copy_from_slice(&offset.to_le_bytes());
            return write_result(result, &out);
        }
        match pf.vf_common_cfg(id) {
            Ok(Some((bar, offset))) => {
                out[0] = NOTIFY_INFO_MEMBER;
                out[1] = bar;
                out[8..16].copy_from_slice(&u64::from(offset).to_le_bytes());
            }
            Ok(None) => {}
            Err(_) => return Reply::err(status::EINVAL, qual::INVALID_MEMBER),
        }
        write_result(result, &out)
    }

    /// Find object `id` of type device parts owned by the member.
    fn obj(&self, h: &Header, d: &[u8], kind: ObjKind) -> core::result::Result<usize, Reply> {
        let vf = self.vf_index(h)?;
        if d.len() < 8 || le16(d, 0) != OBJ_DEV_PARTS {
            return Err(Reply::err(status::EINVAL, qual::INVALID_FIELD));
        }
        let id = le32(d, 4);
        let member = u16::try_from(vf + 1).unwrap_or(0);
        match self.objs.iter().find(|o| o.id == id && o.member == member) {
            Some(o) if o.kind == kind => Ok(vf),
            _ => Err(Reply::err(status::EINVAL, qual::INVALID_FIELD)),
        }
    }

    fn obj_create(&mut self, h: &Header, d: &[u8]) -> Reply {
        let vf = match self.vf_index(h) {
            Ok(i) => i,
            Err(r) => return r,
        };
        if d.len() < 24 || le16(d, 0) != OBJ_DEV_PARTS {
            return Reply::err(status::EINVAL, qual::INVALID_FIELD);
        }
        let id = le32(d, 4);
        let kind = match d.get(16) {
            Some(0) => ObjKind::Get,
            Some(1) => ObjKind::Set,
            _ => return Reply::err(status::EINVAL, qual::INVALID_FIELD),
        };
        if id >= u32::from(self.limit) {
            return Reply::err(status::EINVAL, qual::INVALID_FIELD);
        }
        if self.objs.iter().any(|o| o.id == id) {
            return Reply::err(status::EBUSY, qual::INVALID_FIELD);
        }
        if self.live_objects() >= usize::from(self.limit) {
            return Reply::err(status::ENOSPC, qual::NORESOURCE);
        }
        let member = u16::try_from(vf + 1).unwrap_or(0);
        if self
            .objs
            .push(Obj { id, member, kind }, GFP_KERNEL)
            .is_err()
        {
            return Reply::err(status::ENOMEM, qual::NORESOURCE);
        }
        Reply::ok(0)
    }

    fn obj_destroy(&mut self, h: &Header, d: &[u8]) -> Reply {
        let vf = match self.vf_index(h) {
            Ok(i) => i,
            Err(r) => return r,
        };
        if d.len() < 8 || le16(d, 0) != OBJ_DEV_PARTS {
            return Reply::err(status::EINVAL, qual::INVALID_FIELD);
        }
        let id = le32(d, 4);
        let member = u16::try_from(vf + 1).unwrap_or(0);
        match self
            .objs
            .iter()
            .position(|o| o.id == id && o.member == member)
        {
            Some(i) => {
                let _ = self.objs.remove(i);
                Reply::ok(0)
            }
            None => Reply::err(status::EINVAL, qual::INVALID_FIELD),
        }
    }

    fn metadata_get(
        &mut self,
        h: &Header,
        d: &[u8],
        result: Option<&mut (dyn Sink + '_)>,
    ) -> Reply {
        let vf = match self.obj(h, d, ObjKind::Get) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let rate = self.rate;
        let queues = self.queues;
        let v = &mut self.vfs[vf];
        if !v.stopped {
            v.advance(rate);
        }
        let reply = match d.get(8) {
            Some(0) => {
                let size = u32::try_from(v.state.len()).unwrap_or(u32::MAX);
                let mut r = [0u8; 8];
                r[0..4].copy_from_slice(&size.to_le_bytes());
                write_result(result, &r)
            }
            Some(1) | Some(2) => {
                let mut count: u32 = 0;
                let mut list = KVVec::new();
                let mut r = [0u8; 8];
                for p in Parts::new(&v.state).flatten() {
                    count = count.saturating_add(1);
                    if d.get(8) == Some(&2) {
                        if let Some(hdr) = v.state.get(p.offset..p.offset + PART_HDR_LEN) {
                            if list.extend_from_slice(hdr, GFP_KERNEL).is_err() {
                                return Reply::err(status::ENOMEM, qual::NORESOURCE);
                            }
                        }
                    }
                }
                r[0..4].copy_from_slice(&count.to_le_bytes());
                let mut all = KVVec::new();
                if all.extend_from_slice(&r, GFP_KERNEL).is_err()
                    || all.extend_from_slice(&list, GFP_KERNEL).is_err()
                {
                    return Reply::err(status::ENOMEM, qual::NORESOURCE);
                }
                write_result(result, &all)
            }
            _ => Reply::err(status::EINVAL, qual::INVALID_FIELD),
        };
        // Fault injection: the size changes between METADATA_GET and
        // PARTS_GET.
        if let Some(delta) = v.resize_after_metadata.take() {
            let new = if delta >= 0 {
                v.state.len().saturating_add(delta as usize)
            } else {
                v.state.len().saturating_sub(delta.unsigned_abs() as usize)
            };
            let vf_no = u16::try_from(vf + 1).unwrap_or(0);
            if let Ok(s) = default_state(vf_no, new.min(MAX_STATE), queues, v.features) {
                v.state = s;
            }
        }
        reply
    }

    fn parts_get(&mut self, h: &Header, d: &[u8], result: Option<&mut (dyn Sink + '_)>) -> Reply {
        let vf = match self.obj(h, d, ObjKind::Get) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let rate = self.rate;
        let v = &mut self.vfs[vf];
        v.parts_reads += 1;
        if !v.stopped {
            v.advance(rate);
        }
        match d.get(8) {
            Some(1) => write_result(result, &v.state),
            Some(0) => {
                // SELECTED: the requested part headers follow at offset 16.
                let mut out = KVVec::new();
                for p in Parts::new(&v.state).flatten() {
                    let wanted = d
                        .get(16..)
                        .unwrap_or(&[])
                        .chunks_exact(PART_HDR_LEN)
                        .any(|req| {
                            le16(req, 0) == p.part_type
                                && (matches!(
                                    p.part_type,
                                    types::DEV_FEATURES
                                        | types::DRV_FEATURES
                                        | types::DEVICE_STATUS
                                ) || req.get(4..12) == Some(&p.selector[..]))
                        });
                    if wanted {
                        let end = p.offset + PART_HDR_LEN + p.value.len();
                        if let Some(bytes) = v.state.get(p.offset..end) {
                            if out.extend_from_slice(bytes, GFP_KERNEL).is_err() {
                                return Reply::err(status::ENOMEM, qual::NORESOURCE);
                            }
                        }
                    }
                }
                write_result(result, &out)
            }
            _ => Reply::err(status::EINVAL, qual::INVALID_FIELD),
        }
    }

    fn parts_set(&mut self, h: &Header, d: KVVec<u8>) -> Reply {
        let vf = match self.obj(h, &d, ObjKind::Set) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let v = &mut self.vfs[vf];
        if !v.stopped {
            return Reply::err(status::EBUSY, qual::INVALID_COMMAND);
        }
        let Some(parts_bytes) = d.get(8..) else {
            return Reply::err(status::EINVAL, qual::INVALID_FIELD);
        };
        if parts_bytes.is_empty() || parts::validate(parts_bytes).is_err() {
            return Reply::err(status::EINVAL, qual::INVALID_FIELD);
        }
        // DEV_FEATURES is verified, not applied.
        for p in Parts::new(parts_bytes).flatten() {
            if p.part_type == types::DEV_FEATURES && le64(p.value, 0) != v.features {
                return Reply::err(status::EINVAL, qual::INVALID_FIELD);
            }
        }
        let mut new = match KVVec::with_capacity(parts_bytes.len(), GFP_KERNEL) {
            Ok(n) => n,
            Err(_) => return Reply::err(status::ENOMEM, qual::NORESOURCE),
        };
        if new.extend_from_slice(parts_bytes, GFP_KERNEL).is_err() {
            return Reply::err(status::ENOMEM, qual::NORESOURCE);
        }
        v.state = new;
        v.parts_sets += 1;
        Reply::ok(0)
    }
}

/// Control operations (debugfs `ctl`).
impl Sim {
    pub(crate) fn set_size(&self, vf: u16, size: usize) -> Result {
        let mut st = self.state.lock();
        let queues = st.queues;
        let v = st
            .vfs
            .get_mut(usize::from(vf).wrapping_sub(1))
            .ok_or(EINVAL)?;
        if size > MAX_STATE {
            return Err(EINVAL);
        }
        v.size = size;
        v.state = default_state(vf, size, queues, v.features)?;
        v.generation = 0;
        Ok(())
    }

    pub(crate) fn set_features(&self, vf: u16, features: u64) -> Result {
        let mut st = self.state.lock();
        let v = st
            .vfs
            .get_mut(usize::from(vf).wrapping_sub(1))
            .ok_or(EINVAL)?;
        v.features = features;
        Ok(())
    }

    /// Set the legacy ISR byte of VF `vf` (what a device's interrupt
    /// would set), for tests of its read-to-clear behaviour.
    pub(crate) fn set_isr(&self, vf: u16, isr: u8) -> Result {
        let mut st = self.state.lock();
        let v = st
            .vfs
            .get_mut(usize::from(vf).wrapping_sub(1))
            .ok_or(EINVAL)?;
        v.isr = isr;
        Ok(())
    }

    /// Answer LEGACY_NOTIFY_INFO with `bar`/`offset` for every VF (`None`:
    /// the VF's common configuration again).
    pub(crate) fn set_notify_at(&self, at: Option<(u8, u64)>) {
        self.state.lock().notify_at = at;
    }

    pub(crate) fn resize_after_metadata(&self, vf: u16, delta: i64) -> Result {
        let mut st = self.state.lock();
        let v = st
            .vfs
            .get_mut(usize::from(vf).wrapping_sub(1))
            .ok_or(EINVAL)?;
        v.resize_after_metadata = Some(delta);
        Ok(())
    }

    pub(crate) fn add_fault(&self, opcode: u16, nth: u32, action: FaultAction) -> Result {
        if nth == 0 {
            return Err(EINVAL);
        }
        let mut st = self.state.lock();
        st.faults.push(
            Fault {
                opcode,
                skip: nth - 1,
                action,
            },
            GFP_KERNEL,
        )?;
        Ok(())
    }

    pub(crate) fn set_vq_size(&self, n: u32) {
        self.state.lock().vq_size = n;
    }

    pub(crate) fn set_rate(&self, rate: usize) {
        self.state.lock().rate = rate;
    }

    pub(crate) fn set_dump_vf(&self, vf: u16) -> Result {
        let mut st = self.state.lock();
        if usize::from(vf) == 0 || usize::from(vf) > st.vfs.len() {
            return Err(EINVAL);
        }
        st.dump_vf = vf;
        Ok(())
    }

    pub(crate) fn clear(&self) {
        let mut st = self.state.lock();
        st.ok = [0; op::COUNT];
        st.failed = [0; op::COUNT];
        for t in st.trace.iter_mut() {
            *t = TraceEntry::default();
        }
        st.over_vq = 0;
        st.max_descs = 0;
        st.faults.clear();
        for v in st.vfs.iter_mut() {
            v.parts_reads = 0;
            v.parts_sets = 0;
        }
    }

    /// `state`: one line per VF.
    pub(crate) fn show_state(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let st = self.state.lock();
        for (i, v) in st.vfs.iter().enumerate() {
            writeln!(
                f,
                "vf {} mode {} size {} generation {} hash {:016x} reads {} sets {} valid {}",
                i + 1,
                if v.stopped { "stopped" } else { "running" },
                v.state.len(),
                v.generation,
                hash(&v.state),
                v.parts_reads,
                v.parts_sets,
                parts::validate(&v.state).is_ok()
            )?;
        }
        Ok(())
    }

    /// `stats`: counters.
    pub(crate) fn show_stats(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let st = self.state.lock();
        writeln!(f, "objects {}", st.live_objects())?;
        writeln!(
            f,
            "limit {} get_limit {} set_limit {}",
            st.limit, st.get_limit, st.set_limit
        )?;
        writeln!(f, "in_use {:#x}", st.in_use)?;
        writeln!(f, "over_vq_size {} vq_size {}", st.over_vq, st.vq_size)?;
        writeln!(f, "max_descs {}", st.max_descs)?;
        writeln!(f, "detached {}", st.detached)?;
        writeln!(f, "faults_pending {}", st.faults.len())?;
        writeln!(f, "delaying {}", self.delaying.load(Relaxed))?;
        writeln!(f, "busy_ns {}", self.busy_ns.load(Relaxed))?;
        for (i, (ok, failed)) in st.ok.iter().zip(st.failed.iter()).enumerate() {
            if *ok != 0 || *failed != 0 {
                writeln!(f, "op {:#x} ok {} failed {}", i, ok, failed)?;
            }
        }
        Ok(())
    }

    /// `trace`: the last commands, oldest first. Line format:
    /// `<seq> op <opcode hex> member <n> status <n> written <n>`, and for
    /// legacy reads and writes (opcodes 0x2..0x5) with data the suffix
    /// ` off <offset> len <n> data <hex>`: decimal register offset and
    /// access length, then the first (at most 8) register bytes written, or
    /// returned by a successful read, in lowercase hex (`-` for none).
    pub(crate) fn show_trace(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let st = self.state.lock();
        let first = st.seq.saturating_sub(TRACE_LEN as u64 - 1).max(1);
        for seq in first..=st.seq {
            let Some(e) = st.trace.get((seq as usize) % TRACE_LEN) else {
                continue;
            };
            if e.seq == seq {
                write!(
                    f,
                    "{} op {:#x} member {} status {} written {}",
                    e.seq, e.opcode, e.member, e.status, e.written
                )?;
                if let Some(a) = &e.access {
                    write!(f, " off {} len {} data ", a.offset, a.len)?;
                    if a.data().is_empty() {
                        write!(f, "-")?;
                    }
                    for b in a.data() {
                        write!(f, "{:02x}", b)?;
                    }
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }

    /// `dump`: the selected VF's state bytes, read at `offset`.
    pub(crate) fn dump(
        &self,
        writer: &mut kernel::uaccess::UserSliceWriter,
        offset: &mut kernel::fs::file::Offset,
    ) -> Result<usize> {
        // Copy the window out under the lock and write it to userspace
        // after: a user copy may fault on a VFIO BAR mapping, whose fault
        // handler takes vfio-pci's memory_lock, under which a reset sends
        // admin commands into this device (lockdep saw that cycle).
        let start = usize::try_from(*offset).map_err(|_| EINVAL)?;
        let chunk = {
            let st = self.state.lock();
            let v = st
                .vfs
                .get(usize::from(st.dump_vf).wrapping_sub(1))
                .ok_or(EINVAL)?;
            let end = v
                .state
                .len()
                .min(start.saturating_add(writer.len().min(BULK_CHUNK)));
            let mut chunk = KVVec::new();
            chunk.extend_from_slice(v.state.get(start..end).unwrap_or(&[]), GFP_KERNEL)?;
            chunk
        };
        writer.write_slice(&chunk)?;
        *offset = offset.saturating_add(i64::try_from(chunk.len()).map_err(|_| EINVAL)?);
        Ok(chunk.len())
    }

    /// `raw` write: execute a command given as bytes — `le32 result
    /// capacity`, the 24-byte command header, then the data — as if it
    /// came from the admin queue. Tests use it to check the device's
    /// answers to commands no driver would send.
    pub(crate) fn raw_exec(&self, input: &[u8]) -> Result {
        if input.len() < 28 {
            return Err(EINVAL);
        }
        let cap = usize::try_from(le32(input, 0)).map_err(|_| EINVAL)?;
        if cap > MAX_DATA {
            return Err(EINVAL);
        }
        let h = Header {
            opcode: le16(input, 4),
            group: le16(input, 6),
            member: le64(input, 20),
        };
        let mut data = KVVec::new();
        data.extend_from_slice(input.get(28..).unwrap_or(&[]), GFP_KERNEL)?;
        let mut sink = BufSink::new(cap);
        let r = if cap == 0 {
            self.exec_bytes(&h, data, 1, None)
        } else {
            self.exec_bytes(&h, data, 1, Some(&mut sink))
        };
        let mut out = KVVec::new();
        out.extend_from_slice(&r.status.to_le_bytes(), GFP_KERNEL)?;
        out.extend_from_slice(&r.qualifier.to_le_bytes(), GFP_KERNEL)?;
        let written = u32::try_from(r.written).map_err(|_| EINVAL)?;
        out.extend_from_slice(&written.to_le_bytes(), GFP_KERNEL)?;
        let n = r.written.min(sink.buf.len());
        out.extend_from_slice(&sink.buf[..n], GFP_KERNEL)?;
        self.raw.lock().bytes = out;
        Ok(())
    }

    /// `raw` read: `le16 status, le16 qualifier, le32 written`, result.
    pub(crate) fn raw_read(
        &self,
        writer: &mut kernel::uaccess::UserSliceWriter,
        offset: &mut kernel::fs::file::Offset,
    ) -> Result<usize> {
        writer.write_slice_file(&self.raw.lock().bytes, offset)
    }
}
