// SPDX-License-Identifier: GPL-2.0

//! Bindings for the vfio, vfio_pci_core and virtio PCI admin headers.
//!
//! Generated at build time by the bindgen run in this directory's `Kbuild`
//! over `include/virtio_rs_bindings.h`. Only items of those headers are
//! generated; every type they refer to (`pci_dev`, `mutex`, `file`, ...) is
//! the one of [`kernel::bindings`], brought in by the glob import below.

#![allow(
    dead_code,
    improper_ctypes,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::cast_lossless,
    clippy::as_underscore
)]

pub(crate) use kernel::bindings::*;
use kernel::ffi;

include!("bindings_generated.rs");

// SAFETY: `AsBytes` requires no uninitialised bytes and no interior
// mutability: `struct vfio_precopy_info` is two `__u32` and two `__u64`, in
// that order, so it has no padding (24 bytes, checked below), and plain
// integers are always initialised and have no interior mutability.
unsafe impl kernel::transmute::AsBytes for vfio_precopy_info {}
const _: () = assert!(core::mem::size_of::<vfio_precopy_info>() == 24);

// SAFETY: `AsBytes` requires no uninitialised bytes and no interior
// mutability: `struct virtio_admin_cmd_resource_obj_cmd_hdr` is a `__le16`,
// two `__u8` and a `__le32`, in that order, so it has no padding (8 bytes,
// checked below), and plain integers are always initialised and have no
// interior mutability.
unsafe impl kernel::transmute::AsBytes for virtio_admin_cmd_resource_obj_cmd_hdr {}
const _: () = assert!(core::mem::size_of::<virtio_admin_cmd_resource_obj_cmd_hdr>() == 8);
