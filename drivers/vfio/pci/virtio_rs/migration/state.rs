// SPDX-License-Identifier: GPL-2.0

//! The migration state, its mutex, the deferred-reset protocol and the VFIO
//! migration callbacks.
//!
//! # Deferred reset
//!
//! `reset_done` runs with `vfio_pci_core`'s `memory_lock` held; a thread
//! holding the state mutex may be in an admin command, so `reset_done` never
//! blocks on it: it sets the flag and only *tries* the mutex; whoever holds
//! it does the work when unlocking ([`StateGuard`]'s `Drop`): state RUNNING,
//! every session ended, and the device made to run if a stop may have
//! reached it after the function reset ([`MigInner::after_reset`]). The
//! guard releases the mutex while holding the spinlock, so a reset cannot
//! slip in between. Ending a session on this path never waits for a stream
//! lock (it marks the session dead and frees its buffers where it can; a
//! dead session frees the rest on its next use).

use kernel::{
    fs::File,
    new_mutex, new_spinlock,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex, MutexGuard, SpinLock, SpinLockGuard},
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use super::{inc, mig_of, resume::Resuming, save::Saving, Dev, MigStats, Slot};
use crate::{
    abstractions::{
        vfio::migration::{MigState, MigrationOps},
        virtio_admin::{PartsObject, PartsOp, Vf},
    },
    driver::VirtioVfioPci,
    proto::{
        arcs::{arc_action, Action},
        precopy::ReadBudget,
        record::HEADER_LEN,
    },
};

/// The longest a stop-copy read waits for the read budget, in ms.
const MAX_READ_WAIT_MS: u64 = 1000;

/// Migration state of one VF.
#[pin_data]
pub(crate) struct MigDevice {
    /// The state mutex.
    #[pin]
    state: Mutex<MigInner>,
    /// "A reset happened": set by `reset_done`, handled by the holder of
    /// the state mutex (see the module docs).
    #[pin]
    reset: SpinLock<bool>,
}

/// What the state mutex protects.
pub(crate) struct MigInner {
    pub(super) vf: VfCtx,
    pub(super) mig_state: MigState,
    pub(super) saving: Option<Slot<Saving>>,
    pub(super) resuming: Option<Slot<Resuming>>,
}

/// The VF and what the driver knows about its device.
pub(crate) struct VfCtx {
    pub(super) vf: Vf,
    pub(super) stats: Arc<MigStats>,
    /// A `DEV_MODE_SET(stopped)` was sent and no `DEV_MODE_SET(running)`
    /// succeeded since: the device may be stopped, whatever the migration
    /// state says after a reset (a stop in flight can reach the device after
    /// the function reset that restarted it).
    maybe_stopped: bool,
    /// Time base of `budget` and `size`.
    clock: Instant<Monotonic>,
    pub(super) budget: ReadBudget,
    /// `precopy_interval_ms`: how long `size` answers `MIG_DATA_SIZE`.
    interval_ms: u64,
    /// The device-context size the last capture or query saw, and when.
    pub(super) size: Option<(u64, u32)>,
}

/// The state mutex, held. Unlocking runs the deferred reset work.
///
/// # Invariants
///
/// `reset_held` is declared after `guard`, and Rust drops fields in
/// declaration order: when `drop()` returns with `reset_held` set, the state
/// mutex is released while the reset spinlock is still held, so a
/// `reset_done()` that found the mutex busy (its flag is set under the
/// spinlock) cannot have set its flag after our last look at it.
pub(crate) struct StateGuard<'a> {
    guard: MutexGuard<'a, MigInner>,
    reset_held: Option<SpinLockGuard<'a, bool>>,
    mig: &'a MigDevice,
}

impl core::ops::Deref for StateGuard<'_> {
    type Target = MigInner;

    fn deref(&self) -> &MigInner {
        &self.guard
    }
}

impl core::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut MigInner {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        loop {
            let mut reset = self.mig.reset.lock();
            if !*reset {
                // INVARIANT: kept until the mutex is released (see the type).
                self.reset_held = Some(reset);
                return;
            }
            *reset = false;
            drop(reset);
            // A reset happened while we held the mutex: do its work.
            inc(&self.guard.vf.stats.resets_deferred, 1);
            self.guard.after_reset();
        }
    }
}

impl MigDevice {
    /// Migration state for `vf`, RUNNING, counting into `stats`.
    pub(crate) fn new(vf: Vf, stats: Arc<MigStats>) -> impl PinInit<Self> {
        let (_, interval_ms) = crate::precopy_params();
        let clock = Instant::now();
        pin_init!(Self {
            state <- new_mutex!(MigInner {
                vf: VfCtx {
                    vf,
                    stats,
                    maybe_stopped: false,
                    clock,
                    budget: ReadBudget::new(crate::device_read_burst(), interval_ms, 0),
                    interval_ms,
                    size: None,
                },
                mig_state: MigState::Running,
                saving: None,
                resuming: None,
            }),
            reset <- new_spinlock!(false),
        })
    }

    /// Take the state mutex.
    pub(super) fn lock(&self) -> StateGuard<'_> {
        StateGuard {
            guard: self.state.lock(),
            reset_held: None,
            mig: self,
        }
    }

    /// `err_handler->reset_done`: the function was reset.
    pub(crate) fn reset_done(&self) {
        let mut reset = self.reset.lock();
        *reset = true;
        let Some(g) = self.state.try_lock() else {
            // The holder of the state mutex does the work when unlocking.
            return;
        };
        *reset = false;
        drop(reset);
        let mut st = StateGuard {
            guard: g,
            reset_held: None,
            mig: self,
        };
        st.after_reset();
        // Unlocking handles a reset that came in meanwhile.
        drop(st);
    }

    /// The device was opened: it runs. The open path resets the function
    /// when it can; when it could not and the last user left the device
    /// stopped, make it run.
    pub(crate) fn open(&self) {
        let mut st = self.lock();
        st.mig_state = MigState::Running;
        st.vf.run_if_stopped();
    }

    /// The device is being closed: end every session, under the state
    /// mutex (upstream does this without the lock).
    pub(crate) fn close(&self) {
        self.lock().end_sessions();
    }

    /// The binding ends (the device is closed). A migration file may keep
    /// this state alive, but no admin command may be sent any more: the PF
    /// layer reaches the PF only while a driver is bound to the VF.
    ///
    /// The VF goes back to the host (libvirt's managed mode re-probes its
    /// host driver right after): if the last user left it stopped (the
    /// source of a completed migration always does), make it run first.
    /// Closing reset the function already, so the device runs with default
    /// parts and nothing of the guest's. Upstream leaves it stopped.
    pub(crate) fn unbind(&self) {
        let mut st = self.lock();
        st.end_sessions();
        st.vf.run_if_stopped();
        st.vf.vf.revoke();
    }
}

impl VfCtx {
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(0)
    }

    /// `DEV_MODE_SET(stopped)`. When it fails the state stays running, so
    /// make sure the device does too.
    fn mode_stop(&mut self) -> Result {
        // Before sending: a failed or interrupted command may still have
        // stopped the device.
        self.maybe_stopped = true;
        let r = self.vf.mode_set(true);
        if r.is_err() {
            let _ = self.mode_run();
        }
        r
    }

    /// `DEV_MODE_SET(running)`.
    fn mode_run(&mut self) -> Result {
        self.vf.mode_set(false)?;
        self.maybe_stopped = false;
        Ok(())
    }

    /// Make the device run if a stop may have reached it.
    fn run_if_stopped(&mut self) {
        if !self.maybe_stopped {
            return;
        }
        inc(&self.stats.runs_after_reset, 1);
        if let Err(e) = self.mode_run() {
            inc(&self.stats.failed_requests, 1);
            pr_warn!("cannot make the stopped device run: {:?}\n", e);
        }
    }

    /// Take a pre-copy read from the budget, if one is left.
    pub(super) fn reserve_read(&mut self) -> bool {
        let now = self.now_ms();
        if self.budget.try_take(now) {
            return true;
        }
        inc(&self.stats.reads_skipped, 1);
        false
    }

    /// Take a stop-copy read from the budget, waiting for it if needed. The
    /// wait holds the state mutex, so it is capped at [`MAX_READ_WAIT_MS`]
    /// whatever the interval; the read then happens anyway: a stop-copy read
    /// is never refused.
    pub(super) fn wait_read(&mut self) {
        let now = self.now_ms();
        if self.budget.try_take(now) {
            return;
        }
        inc(&self.stats.read_waits, 1);
        let wait = self.budget.wait(now).min(MAX_READ_WAIT_MS);
        fsleep(Delta::from_millis(i64::try_from(wait).unwrap_or(0)));
        // Take the token that came in, if it did.
        let now = self.now_ms();
        let _ = self.budget.try_take(now);
    }

    /// The device-context size for `MIG_DATA_SIZE`: the last one seen if it
    /// is less than an interval old, else asked through `live` (the saving
    /// session's object) or a temporary object.
    fn data_size(&mut self, live: Option<&PartsObject>) -> Result<u32> {
        let now = self.now_ms();
        if let Some((at, size)) = self.size {
            if now.saturating_sub(at) < self.interval_ms {
                return Ok(size);
            }
        }
        inc(&self.stats.size_queries, 1);
        let size = match live {
            Some(obj) => self.vf.parts_size(obj)?,
            None => {
                let obj = self.vf.create_parts(PartsOp::Get)?;
                let r = self.vf.parts_size(&obj);
                self.vf.destroy_parts(obj);
                r?
            }
        };
        self.size = Some((now, size));
        Ok(size)
    }
}

impl MigInner {
    /// The function was reset: state RUNNING, every session ended, the
    /// device running.
    fn after_reset(&mut self) {
        inc(&self.vf.stats.resets, 1);
        self.mig_state = MigState::Running;
        self.end_sessions();
        self.vf.size = None;
        // The reset restarted the device, but a stop sent before it by the
        // holder of the state mutex (or while `reset_done` waited for the
        // PCI core) may have reached the device after it.
        self.vf.run_if_stopped();
    }

    /// End every session: their files answer `ENODEV` from now on and
    /// their device objects are destroyed.
    fn end_sessions(&mut self) {
        if let Some(slot) = self.resuming.take() {
            slot.end(&mut self.vf.vf);
        }
        if let Some(slot) = self.saving.take() {
            slot.end(&mut self.vf.vf);
        }
    }

    /// Perform the single arc from the current state to `next`.
    fn step(&mut self, dev: &Dev, next: MigState) -> Result<Option<ARef<File>>> {
        let action = arc_action(self.mig_state, next).ok_or(EINVAL)?;
        match action {
            Action::Nothing => Ok(None),
            Action::ModeStop => self.vf.mode_stop().map(|()| None),
            Action::ModeRun => self.vf.mode_run().map(|()| None),
            Action::CreateSaving { precopy } => self.create_saving(dev, precopy).map(Some),
            Action::FinalCapture => self.final_capture().map(|()| None),
            Action::CreateResuming => self.create_resuming(dev).map(Some),
            Action::EndSessions => {
                if self.mig_state == MigState::Resuming {
                    if let Some(slot) = &self.resuming {
                        slot.session.stream.check_complete()?;
                    }
                }
                self.end_sessions();
                Ok(None)
            }
        }
    }
}

/// The VFIO migration callbacks of a migratable VF: the migration state
/// machine.
pub(crate) struct MigrationStateMachine;

impl MigrationOps for MigrationStateMachine {
    type Driver = VirtioVfioPci;

    fn set_state(dev: &Dev, new: MigState) -> Result<Option<ARef<File>>> {
        let mig = mig_of(dev).ok_or(ENOTTY)?;
        let mut st = mig.lock();
        let tracing = st.vf.vf.tracing();
        if tracing {
            st.vf
                .vf
                .trace_state_request(st.mig_state.as_u32(), new.as_u32());
        }
        let mut file = None;
        while st.mig_state != new {
            let next = dev.mig_next_state(st.mig_state, new)?;
            let t0 = tracing.then(Instant::<Monotonic>::now);
            let r = st.step(dev, next);
            if let Some(t0) = t0 {
                let from = st.mig_state.as_u32();
                let done = r.as_ref().map(|_| ()).map_err(|e| *e);
                st.vf
                    .vf
                    .trace_arc(from, next.as_u32(), t0.elapsed().as_nanos(), &done);
            }
            let f = match r {
                Ok(f) => f,
                Err(e) => {
                    inc(&st.vf.stats.failed_requests, 1);
                    return Err(e);
                }
            };
            st.mig_state = next;
            if let Some(f) = f {
                if next != new {
                    // The core's path table never does this.
                    return Err(EINVAL);
                }
                file = Some(f);
            }
        }
        Ok(file)
    }

    fn get_state(dev: &Dev) -> Result<MigState> {
        let mig = mig_of(dev).ok_or(ENOTTY)?;
        let st = mig.lock();
        Ok(st.mig_state)
    }

    fn get_data_size(dev: &Dev) -> Result<usize> {
        let mig = mig_of(dev).ok_or(ENOTTY)?;
        let mut st = mig.lock();
        let MigInner { vf, saving, .. } = &mut *st;
        let size = vf.data_size(saving.as_ref().and_then(|s| s.obj.as_ref()))?;
        // One record: header + payload.
        Ok((size as usize).saturating_add(HEADER_LEN))
    }
}
