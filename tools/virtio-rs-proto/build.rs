// SPDX-License-Identifier: GPL-2.0

//! The host crate compiles the protocol core with its test support (see
//! `drivers/vfio/pci/virtio_rs/proto.rs`): the part walker and validator,
//! the next-hop model, command traces, `feed_all`. The driver's build does
//! not set this, so none of it is in the driver's `.ko`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(virtio_rs_test_support)");
    println!("cargo::rustc-cfg=virtio_rs_test_support");
}
