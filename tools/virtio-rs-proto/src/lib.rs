// SPDX-License-Identifier: GPL-2.0

//! Host build of the pure protocol core of `virtio_vfio_pci_rs`.
//!
//! The sources are the kernel module's own files
//! (`drivers/vfio/pci/virtio_rs/proto.rs` and `proto/`), included unchanged,
//! so what `cargo test` proves here is what the module runs.

#![no_std]

#[path = "../../../drivers/vfio/pci/virtio_rs/proto.rs"]
mod proto;

pub use proto::*;
