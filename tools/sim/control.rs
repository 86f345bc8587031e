// SPDX-License-Identifier: GPL-2.0

//! Test control through debugfs: `/sys/kernel/debug/virtio_rs_sim/`.
//!
//! - `state` (read): one line per VF — mode, state size, generation, state
//!   hash, parts reads and sets, whether the state validates;
//! - `stats` (read): live objects, negotiated limits, commands sleeping in
//!   a `delay` fault (`delaying`), commands that a real
//!   admin queue of `vq_size` descriptors could not take, the most
//!   descriptors one command needed (`max_descs`), counters by opcode;
//! - `trace` (read): the last 512 commands (opcode, member, status, bytes;
//!   legacy reads and writes add ` off <offset> len <n> data <hex>`, see
//!   [`Sim::show_trace`]);
//! - `dump` (read): the state bytes of the VF selected with `dump <vf>`;
//! - `raw` (write, then read): execute one command given as bytes
//!   (`le32 result capacity`, 24-byte header, data) and read the answer
//!   (`le16 status, le16 qualifier, le32 written`, result), for tests of
//!   commands no driver sends;
//! - `ctl` (write), one command per write:
//!   `size <vf> <bytes>` (resets the VF's state to defaults of that size),
//!   `features <vf> <hex>` (device features DEV_FEATURES is checked against),
//!   `rate <bytes>` (state bytes changed per read while running),
//!   `fail <opcode> <nth> <status>`, `short <opcode> <nth> <bytes>`,
//!   `delay <opcode> <nth> <ms>` (fault injection on the nth next command of
//!   that opcode), `resize <vf> <delta>` (the state changes size right after
//!   the next METADATA_GET), `dump <vf>`, `notify_at <bar> <offset>`
//!   (LEGACY_NOTIFY_INFO answers that address, a misbehaving device;
//!   `notify_at auto` restores the VF's own), `vq_size <n>` (descriptors of the
//!   virtual admin queue), `isr <vf> <value>` (the legacy ISR byte, as a
//!   device interrupt would set it), `clear` (counters, trace, faults).

use kernel::{
    alloc::KVVec,
    debugfs::{BinaryReader, BinaryWriter, Dir, File},
    fmt,
    prelude::*,
    sync::Arc,
    uaccess::{UserSliceReader, UserSliceWriter},
};

use crate::device::{FaultAction, Sim};

/// The debugfs directory and its files.
#[pin_data]
pub(crate) struct Control {
    _dir: Dir,
    #[pin]
    _state: File<Arc<Sim>>,
    #[pin]
    _stats: File<Arc<Sim>>,
    #[pin]
    _trace: File<Arc<Sim>>,
    #[pin]
    _ctl: File<Arc<Sim>>,
    #[pin]
    _dump: File<Dump>,
    #[pin]
    _raw: File<Raw>,
}

/// `raw` file: write a command, read the device's answer.
pub(crate) struct Raw(Arc<Sim>);

impl BinaryWriter for Raw {
    fn write_to_slice(
        &self,
        writer: &mut UserSliceWriter,
        offset: &mut kernel::fs::file::Offset,
    ) -> Result<usize> {
        self.0.raw_read(writer, offset)
    }
}

impl BinaryReader for Raw {
    fn read_from_slice(
        &self,
        reader: &mut UserSliceReader,
        offset: &mut kernel::fs::file::Offset,
    ) -> Result<usize> {
        // One command per write, from the start of the file.
        if *offset != 0 {
            return Err(EINVAL);
        }
        let n = reader.len();
        if n > (1 << 20) {
            return Err(EINVAL);
        }
        let mut buf = KVVec::from_elem(0u8, n, GFP_KERNEL)?;
        reader.read_slice(&mut buf)?;
        self.0.raw_exec(&buf)?;
        Ok(n)
    }
}

/// `dump` file contents.
pub(crate) struct Dump(Arc<Sim>);

impl BinaryWriter for Dump {
    fn write_to_slice(
        &self,
        writer: &mut UserSliceWriter,
        offset: &mut kernel::fs::file::Offset,
    ) -> Result<usize> {
        self.0.dump(writer, offset)
    }
}

fn state(sim: &Arc<Sim>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    sim.show_state(f)
}

fn stats(sim: &Arc<Sim>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    sim.show_stats(f)
}

fn trace(sim: &Arc<Sim>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    sim.show_trace(f)
}

fn num<T: TryFrom<u64>>(s: Option<&str>) -> Result<T> {
    let s = s.ok_or(EINVAL)?;
    let v = if let Some(hex) = s.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        s.parse::<u64>()
    }
    .map_err(|_| EINVAL)?;
    T::try_from(v).map_err(|_| EINVAL)
}

fn ctl(sim: &Arc<Sim>, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 128];
    let n = reader.len();
    if n > buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..n])?;
    let text = core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?;
    let mut w = text.split_whitespace();
    match w.next() {
        Some("size") => sim.set_size(num(w.next())?, num(w.next())?),
        Some("features") => sim.set_features(num(w.next())?, num(w.next())?),
        Some("rate") => {
            sim.set_rate(num(w.next())?);
            Ok(())
        }
        Some(kind @ ("fail" | "short" | "delay")) => {
            let opcode = num(w.next())?;
            let nth = num(w.next())?;
            let arg: u64 = num(w.next())?;
            let action = match kind {
                "fail" => FaultAction::Status(u16::try_from(arg).map_err(|_| EINVAL)?),
                "short" => FaultAction::Short(usize::try_from(arg).map_err(|_| EINVAL)?),
                _ => FaultAction::Delay(u32::try_from(arg).map_err(|_| EINVAL)?),
            };
            sim.add_fault(opcode, nth, action)
        }
        Some("resize") => {
            let vf = num(w.next())?;
            let delta = w.next().ok_or(EINVAL)?.parse::<i64>().map_err(|_| EINVAL)?;
            sim.resize_after_metadata(vf, delta)
        }
        Some("dump") => sim.set_dump_vf(num(w.next())?),
        Some("isr") => sim.set_isr(num(w.next())?, num(w.next())?),
        Some("notify_at") => match w.next() {
            Some("auto") => {
                sim.set_notify_at(None);
                Ok(())
            }
            bar => {
                sim.set_notify_at(Some((num(bar)?, num(w.next())?)));
                Ok(())
            }
        },
        Some("vq_size") => {
            sim.set_vq_size(num(w.next())?);
            Ok(())
        }
        Some("clear") => {
            sim.clear();
            Ok(())
        }
        _ => Err(EINVAL),
    }
}

impl Control {
    pub(crate) fn new(sim: Arc<Sim>) -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"virtio_rs_sim");
        try_pin_init!(Self {
            _state <- dir.read_callback_file(c"state", sim.clone(), &state),
            _stats <- dir.read_callback_file(c"stats", sim.clone(), &stats),
            _trace <- dir.read_callback_file(c"trace", sim.clone(), &trace),
            _ctl <- dir.write_callback_file(c"ctl", sim.clone(), &ctl),
            _dump <- dir.read_binary_file(c"dump", Dump(sim.clone())),
            _raw <- dir.read_write_binary_file(c"raw", Raw(sim.clone())),
            _dir: dir,
        })
    }
}
