// SPDX-License-Identifier: GPL-2.0

//! VFIO migration states, the arcs between them, and what the driver does
//! on each arc.
//!
//! The vfio core (`vfio_mig_get_next_state()`) breaks every user request
//! into single arcs; the driver performs one [`Action`] per arc. A virtio
//! device has only two modes, running and stopped, so the P2P states map
//! onto "stopped": entering a P2P state from its running counterpart stops
//! the device, and RUNNING_P2P <-> STOP are no-ops. With the flags
//! STOP_COPY | P2P | PRE_COPY (the only set this driver advertises) the
//! valid arcs are:
//!
//! | Arc                          | Action                                   |
//! |------------------------------|------------------------------------------|
//! | RUNNING_P2P -> STOP          | nothing                                  |
//! | STOP -> RUNNING_P2P          | nothing                                  |
//! | RUNNING -> RUNNING_P2P       | stop the device                          |
//! | PRE_COPY -> PRE_COPY_P2P     | stop the device                          |
//! | RUNNING_P2P -> RUNNING       | run the device                           |
//! | PRE_COPY_P2P -> PRE_COPY     | run the device                           |
//! | STOP -> STOP_COPY            | new saving session (complete)            |
//! | RUNNING -> PRE_COPY          | new saving session (pre-copy)            |
//! | RUNNING_P2P -> PRE_COPY_P2P  | new saving session (pre-copy)            |
//! | PRE_COPY_P2P -> STOP_COPY    | final capture into the saving session    |
//! | STOP -> RESUMING             | new resuming session                     |
//! | STOP_COPY -> STOP            | end the sessions                         |
//! | RESUMING -> STOP             | end the sessions (resume data must be    |
//! |                              | complete)                                |
//! | PRE_COPY -> RUNNING          | end the sessions                         |
//! | PRE_COPY_P2P -> RUNNING_P2P  | end the sessions                         |
//!
//! This is the arc table of the upstream C driver
//! (`virtiovf_pci_step_device_state_locked()`), with one deliberate
//! difference: leaving RESUMING fails when the stream ended inside a record
//! (the vfio uAPI asks for it; upstream does not check).

/// `enum vfio_device_mig_state` of `include/uapi/linux/vfio.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum MigState {
    /// The device failed a transition and needs a reset.
    Error = 0,
    /// Stopped, no data transfer.
    Stop = 1,
    /// Running normally.
    Running = 2,
    /// Stopped, final state being saved.
    StopCopy = 3,
    /// Stopped, state being loaded.
    Resuming = 4,
    /// Running without initiating P2P DMA (for virtio: stopped).
    RunningP2p = 5,
    /// Running, initial/pre-copy state being saved.
    PreCopy = 6,
    /// Pre-copy without P2P DMA (for virtio: stopped).
    PreCopyP2p = 7,
}

impl MigState {
    /// All states, in uAPI order.
    #[cfg(virtio_rs_test_support)]
    pub const ALL: [MigState; 8] = [
        MigState::Error,
        MigState::Stop,
        MigState::Running,
        MigState::StopCopy,
        MigState::Resuming,
        MigState::RunningP2p,
        MigState::PreCopy,
        MigState::PreCopyP2p,
    ];

    /// The state with uAPI value `v`, if any.
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => MigState::Error,
            1 => MigState::Stop,
            2 => MigState::Running,
            3 => MigState::StopCopy,
            4 => MigState::Resuming,
            5 => MigState::RunningP2p,
            6 => MigState::PreCopy,
            7 => MigState::PreCopyP2p,
            _ => return None,
        })
    }

    /// The uAPI value.
    pub const fn as_u32(self) -> u32 {
        match self {
            MigState::Error => 0,
            MigState::Stop => 1,
            MigState::Running => 2,
            MigState::StopCopy => 3,
            MigState::Resuming => 4,
            MigState::RunningP2p => 5,
            MigState::PreCopy => 6,
            MigState::PreCopyP2p => 7,
        }
    }

    /// The uAPI name without the `VFIO_DEVICE_STATE_` prefix.
    #[cfg(virtio_rs_test_support)]
    pub const fn name(self) -> &'static str {
        match self {
            MigState::Error => "ERROR",
            MigState::Stop => "STOP",
            MigState::Running => "RUNNING",
            MigState::StopCopy => "STOP_COPY",
            MigState::Resuming => "RESUMING",
            MigState::RunningP2p => "RUNNING_P2P",
            MigState::PreCopy => "PRE_COPY",
            MigState::PreCopyP2p => "PRE_COPY_P2P",
        }
    }

    /// Whether the virtio device is in its running mode in this state.
    #[cfg(virtio_rs_test_support)]
    pub const fn device_running(self) -> bool {
        matches!(self, MigState::Running | MigState::PreCopy)
    }
}

/// What the driver does on one arc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No device or session change.
    Nothing,
    /// `DEV_MODE_SET(STOPPED)`.
    ModeStop,
    /// `DEV_MODE_SET(0)`.
    ModeRun,
    /// Create a saving session with the first record; its file is returned
    /// to userspace. `precopy`: more records may follow.
    CreateSaving {
        /// Whether the session is a pre-copy session.
        precopy: bool,
    },
    /// Append the final record to the pre-copy session; it becomes complete.
    FinalCapture,
    /// Create a resuming session; its file is returned to userspace.
    CreateResuming,
    /// End every session (destroying their device objects). On RESUMING ->
    /// STOP the resume data must have ended on a record boundary.
    EndSessions,
}

#[cfg(virtio_rs_test_support)]
impl Action {
    /// Whether the arc returns a new migration file.
    pub const fn returns_file(self) -> bool {
        matches!(self, Action::CreateSaving { .. } | Action::CreateResuming)
    }
}

/// The action for the single arc `cur -> next`, or `None` when the arc is
/// not one the vfio core can request with STOP_COPY | P2P | PRE_COPY.
pub const fn arc_action(cur: MigState, next: MigState) -> Option<Action> {
    use MigState::*;
    Some(match (cur, next) {
        (RunningP2p, Stop) | (Stop, RunningP2p) => Action::Nothing,
        (Running, RunningP2p) | (PreCopy, PreCopyP2p) => Action::ModeStop,
        (RunningP2p, Running) | (PreCopyP2p, PreCopy) => Action::ModeRun,
        (Stop, StopCopy) => Action::CreateSaving { precopy: false },
        (Running, PreCopy) | (RunningP2p, PreCopyP2p) => Action::CreateSaving { precopy: true },
        (PreCopyP2p, StopCopy) => Action::FinalCapture,
        (Stop, Resuming) => Action::CreateResuming,
        (StopCopy, Stop) | (Resuming, Stop) | (PreCopy, Running) | (PreCopyP2p, RunningP2p) => {
            Action::EndSessions
        }
        _ => return None,
    })
}

/// Why a request has no next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg(virtio_rs_test_support)]
pub enum NextHopError {
    /// The requested state is ERROR: never a valid target.
    ErrorTarget,
    /// The current state is ERROR: only a reset leaves it.
    FromError,
    /// No path: STOP_COPY cannot go back to a pre-copy state.
    NoPath,
}

/// The next hop from `cur` towards `new`, as `vfio_mig_get_next_state()`
/// computes it for a device with STOP_COPY | P2P | PRE_COPY
/// (`vfio_from_fsm_table` of `drivers/vfio/vfio_main.c`). `cur == new`
/// yields `cur`. The driver itself asks the kernel; this model exists so
/// the host tests can check [`arc_action`] against every hop.
#[cfg(virtio_rs_test_support)]
pub const fn next_hop(cur: MigState, new: MigState) -> Result<MigState, NextHopError> {
    use MigState::*;
    if matches!(new, Error) {
        return Err(NextHopError::ErrorTarget);
    }
    if matches!(cur, Error) {
        return Err(NextHopError::FromError);
    }
    if cur.as_u32() == new.as_u32() {
        return Ok(cur);
    }
    Ok(match (cur, new) {
        (Stop, Running | RunningP2p | PreCopy | PreCopyP2p) => RunningP2p,
        (Stop, StopCopy) => StopCopy,
        (Stop, Resuming) => Resuming,
        (Running, PreCopy) => PreCopy,
        (Running, _) => RunningP2p,
        (StopCopy, PreCopy | PreCopyP2p) => return Err(NextHopError::NoPath),
        (StopCopy, _) => Stop,
        (Resuming, _) => Stop,
        (RunningP2p, Running | PreCopy) => Running,
        (RunningP2p, PreCopyP2p) => PreCopyP2p,
        (RunningP2p, _) => Stop,
        (PreCopy, StopCopy | PreCopyP2p) => PreCopyP2p,
        (PreCopy, _) => Running,
        (PreCopyP2p, StopCopy) => StopCopy,
        (PreCopyP2p, PreCopy) => PreCopy,
        (PreCopyP2p, _) => RunningP2p,
        // Unreachable: `cur == new` and ERROR were handled above.
        (_, _) => return Err(NextHopError::NoPath),
    })
}

/// Admin commands, for expected command traces in tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg(virtio_rs_test_support)]
pub enum AdminCmd {
    /// `DEV_MODE_SET`, `true` = stopped.
    ModeSet(bool),
    /// `RESOURCE_OBJ_CREATE` of a device-parts object, `true` = GET type.
    ObjCreate(bool),
    /// `RESOURCE_OBJ_DESTROY`.
    ObjDestroy,
    /// `DEV_PARTS_METADATA_GET(SIZE)`.
    MetadataGet,
    /// `DEV_PARTS_GET(ALL)`.
    PartsGet,
    /// `DEV_PARTS_SET`.
    PartsSet,
}

#[cfg(virtio_rs_test_support)]
impl Action {
    /// The admin commands this action sends, in order, when it succeeds.
    /// [`Action::EndSessions`] sends one `ObjDestroy` per live session
    /// object, which depends on the sessions: `live_objects` of them.
    pub fn commands(self, live_objects: usize) -> impl Iterator<Item = AdminCmd> {
        let fixed: &'static [AdminCmd] = match self {
            Action::Nothing | Action::EndSessions => &[],
            Action::ModeStop => &[AdminCmd::ModeSet(true)],
            Action::ModeRun => &[AdminCmd::ModeSet(false)],
            Action::CreateSaving { .. } => &[
                AdminCmd::ObjCreate(true),
                AdminCmd::MetadataGet,
                AdminCmd::PartsGet,
            ],
            Action::FinalCapture => &[AdminCmd::MetadataGet, AdminCmd::PartsGet],
            Action::CreateResuming => &[AdminCmd::ObjCreate(false)],
        };
        let destroys = if matches!(self, Action::EndSessions) {
            live_objects
        } else {
            0
        };
        fixed
            .iter()
            .copied()
            .chain(core::iter::repeat_n(AdminCmd::ObjDestroy, destroys))
    }
}
