// SPDX-License-Identifier: GPL-2.0

//! Pure migration protocol logic: no allocation, no `unsafe`, no panics.
//!
//! Everything that decides whether a migration is correct and that does not
//! need the kernel lives here, so that it can be proven on the host:
//!
//! - [`record`]: the 16-byte record header of the migration stream, byte for
//!   byte the format of the upstream C driver (`drivers/vfio/pci/virtio/`);
//! - [`resume`]: the push-style parser of the resuming (destination) side;
//! - [`save`]: the framing and byte accounting of the saving (source) side;
//! - [`arcs`]: the VFIO migration state arcs and the action taken on each;
//! - [`legacy`]: the config-space overlay and BAR0 decoding of a
//!   transitional VF's emulated legacy I/O BAR;
//! - [`precopy`]: the pre-copy policy (read cap and rate limit);
//! - `parts`: walking and validating virtio 1.4 device parts (tests and
//!   simulator only);
//! - `bytes`: little-endian field readers for wire structures (tests and
//!   simulator only).
//!
//! The same files are compiled into the kernel module (`mod proto`) and into
//! the host crate `tools/virtio-rs-proto` (through `#[path]`), where
//! `cargo test`, property tests and fuzz targets exercise them. They must
//! build with rustc 1.85 (the kernel's toolchain) and the host's stable
//! toolchain, with only `core`.
//!
//! What only the tests and the simulator need (the device-part walker and
//! validator, the next-hop model, expected command traces, `feed_all`,
//! getters) is compiled only with `--cfg virtio_rs_test_support`, which the
//! host crate and the simulator's Kbuild set and the driver's does not: it
//! is not in the driver's `.ko`.
//!
//! Input values are never trusted: indexing, slicing and arithmetic on them
//! are checked (the lints below turn any lapse into a build error under
//! clippy), and every malformed input is an error value, never a panic.

#![forbid(unsafe_code)]
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::as_conversions
)]

#[path = "proto/arcs.rs"]
pub mod arcs;
#[cfg(virtio_rs_test_support)]
#[path = "proto/bytes.rs"]
pub mod bytes;
#[path = "proto/legacy.rs"]
pub mod legacy;
#[cfg(virtio_rs_test_support)]
#[path = "proto/parts.rs"]
pub mod parts;
#[path = "proto/precopy.rs"]
pub mod precopy;
#[path = "proto/record.rs"]
pub mod record;
#[path = "proto/resume.rs"]
pub mod resume;
#[path = "proto/save.rs"]
pub mod save;
