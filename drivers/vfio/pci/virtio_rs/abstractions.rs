// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions over the C APIs the driver needs: the code that would
//! move to `rust/kernel/` upstream.
//!
//! Every `unsafe` block of the module lives here (and in the generated
//! [`crate::bindings`]), each with the argument why it is sound; the driver
//! ([`crate::driver`], [`crate::migration`]) is compiled with
//! `#[deny(unsafe_code)]`, and the protocol core ([`crate::proto`]) with
//! `#![forbid(unsafe_code)]`.
//!
//! - [`vfio`]: VFIO PCI core devices with their ops and migration vtables,
//!   and the PCI driver registration (`include/linux/vfio_pci_core.h`);
//! - [`stream_file`]: anonymous-inode stream files with Rust
//!   read/write/ioctl (`include/linux/anon_inodes.h`);
//! - [`page_buffer`]: page-backed buffers handed to the admin queue as
//!   unmapped scatterlists (`include/linux/scatterlist.h`);
//! - [`virtio_admin`]: the virtio PCI admin commands of a VF
//!   (`include/linux/virtio_pci_admin.h`).
//!
//! They depend on each other only downwards: `virtio_admin` uses
//! `page_buffer` and `vfio::pci` (for the device being probed); nothing
//! here names the driver.

pub mod page_buffer;
pub mod stream_file;
pub mod vfio;
pub mod virtio_admin;
