// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions for VFIO PCI variant drivers.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h).
//!
//! The 7.3 tree has no VFIO abstractions, and `kernel::pci::Driver` cannot
//! host a variant driver (it owns the device's driver data, which
//! `vfio_pci_core` needs for itself, and it cannot set `err_handler` or
//! `driver_managed_dma`). This module provides what a variant driver needs,
//! written so that it could move to `rust/kernel/vfio/` unchanged:
//!
//! - [`pci::CoreDevice`]: a `struct vfio_pci_core_device` allocated by the
//!   vfio core with the driver's data embedded after it;
//! - [`pci::DeviceOps`]: a `struct vfio_device_ops` built from a trait
//!   whose defaults are the `vfio_pci_core_*` functions;
//! - [`pci::Registration`]: a hand-registered `struct pci_driver` with error
//!   handlers, `driver_managed_dma` and driver_override-only ids;
//! - [`migration::MigrationOps`]: a `struct vfio_migration_ops` from a
//!   trait, kCFI-safe through C trampolines.
//!
//! Its `unsafe` code is argued block by block; the driver that uses it has
//! none (see [`crate::abstractions`]).

pub mod migration;
pub mod pci;
