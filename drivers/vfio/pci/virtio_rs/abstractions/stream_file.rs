// SPDX-License-Identifier: GPL-2.0

//! Anonymous-inode stream files with Rust read/write/ioctl callbacks.
//!
//! C headers: [`include/linux/anon_inodes.h`](srctree/include/linux/anon_inodes.h),
//! [`include/linux/fs.h`](srctree/include/linux/fs.h).
//!
//! A VFIO migration data file is an anonymous-inode file opened as a
//! stream (`stream_open()`: no position, `lseek`/`pread`/`pwrite` fail with
//! `ESPIPE` in the VFS). [`create`] makes one from an `Arc<T>` of a type
//! implementing [`StreamOps`]; the file owns one reference to it, dropped
//! when the last file reference goes (`release`). The file also holds a
//! reference to the module that defines `T` (`file_operations.owner`), so
//! the module cannot be unloaded while such a file is open.
//!
//! Stream files receive no position from the VFS; an implementation keeps
//! its own.

use core::marker::PhantomData;

use kernel::{
    ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void},
    fs::File,
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow},
    types::ForeignOwnable,
    uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter},
};

use crate::bindings;

/// Callbacks of a stream file whose private data is an `Arc<Self>`.
#[vtable]
pub trait StreamOps: Send + Sync + Sized + 'static {
    /// `read()`: copy up to `out.len()` bytes to userspace.
    fn read(_this: ArcBorrow<'_, Self>, _out: &mut UserSliceWriter) -> Result<usize> {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `write()`: consume up to `input.len()` bytes from userspace.
    fn write(_this: ArcBorrow<'_, Self>, _input: &mut UserSliceReader) -> Result<usize> {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `unlocked_ioctl()` (and `compat_ioctl()` through
    /// `compat_ptr_ioctl()`).
    fn ioctl(_this: ArcBorrow<'_, Self>, _cmd: u32, _arg: usize) -> Result<isize> {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// How the file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `O_RDONLY`: `write()` fails with `EBADF` in the VFS.
    ReadOnly,
    /// `O_WRONLY`: `read()` fails with `EBADF` in the VFS.
    WriteOnly,
}

struct Fops<T: StreamOps>(PhantomData<T>);

impl<T: StreamOps> Fops<T> {
    const TABLE: bindings::file_operations = bindings::file_operations {
        owner: kernel::module::this_module::<T::OwnerModule>().as_ptr(),
        read: if T::HAS_READ { Some(Self::read) } else { None },
        write: if T::HAS_WRITE {
            Some(Self::write)
        } else {
            None
        },
        unlocked_ioctl: if T::HAS_IOCTL {
            Some(Self::ioctl)
        } else {
            None
        },
        // `compat_ptr_ioctl` is `None` without CONFIG_COMPAT.
        compat_ioctl: if T::HAS_IOCTL {
            bindings::compat_ptr_ioctl
        } else {
            None
        },
        release: Some(Self::release),
        // SAFETY: all-zero is a valid `file_operations` (NULL callbacks).
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };

    /// # Safety
    ///
    /// `file` is a file created by [`create`] for `T`, still open.
    unsafe fn data<'a>(file: *mut bindings::file) -> ArcBorrow<'a, T> {
        // `private_data` is set in `create` and released only in `release`,
        // after every other call.
        // SAFETY: `private_data` holds the file's `Arc<T>`.
        unsafe { <Arc<T> as ForeignOwnable>::borrow((*file).private_data) }
    }

    /// # Safety
    ///
    /// Called by the VFS for a file of this table.
    unsafe extern "C" fn read(
        file: *mut bindings::file,
        buf: *mut c_char,
        len: usize,
        _ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: the VFS calls us with an open file of this table.
        let this = unsafe { Self::data(file) };
        let mut out = UserSlice::new(UserPtr::from_ptr(buf.cast::<c_void>()), len).writer();
        match T::read(this, &mut out) {
            Ok(n) => n.try_into().unwrap_or(isize::MAX),
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS for a file of this table.
    unsafe extern "C" fn write(
        file: *mut bindings::file,
        buf: *const c_char,
        len: usize,
        _ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: the VFS calls us with an open file of this table.
        let this = unsafe { Self::data(file) };
        let ptr = UserPtr::from_ptr(buf.cast_mut().cast::<c_void>());
        let mut input = UserSlice::new(ptr, len).reader();
        match T::write(this, &mut input) {
            Ok(n) => n.try_into().unwrap_or(isize::MAX),
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS for a file of this table.
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: the VFS calls us with an open file of this table.
        let this = unsafe { Self::data(file) };
        match T::ioctl(this, cmd, arg) {
            Ok(n) => n as c_long,
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS once, when the last reference to a file of this
    /// table is dropped.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // This is the last use of the file: take the reference back.
        // SAFETY: `private_data` holds the `Arc<T>` of `create`.
        drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign((*file).private_data) });
        0
    }
}

/// Create an anonymous-inode stream file named `name` whose callbacks are
/// `T`'s and whose private data is `data`.
pub fn create<T: StreamOps>(
    name: &'static CStr,
    data: Arc<T>,
    access: Access,
) -> Result<ARef<File>> {
    let flags = match access {
        Access::ReadOnly => bindings::O_RDONLY,
        Access::WriteOnly => bindings::O_WRONLY,
    };
    let table: &'static bindings::file_operations = &Fops::<T>::TABLE;
    let private = data.into_foreign();
    let name = name.as_char_ptr();
    let flags = flags as c_int;
    // On success the file owns `private`, the foreign form of an `Arc<T>`.
    // SAFETY: `name` and `table` live forever; `private` is valid.
    let file = unsafe { bindings::anon_inode_getfile(name, table, private, flags) };
    let file = match kernel::error::from_err_ptr(file) {
        Ok(f) => f,
        Err(e) => {
            // SAFETY: the file was not created: the reference is still ours.
            drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(private) });
            return Err(e);
        }
    };
    let file = file.cast::<File>();
    // We own the file's only reference from here on.
    // SAFETY: `anon_inode_getfile()` returned a new, non-NULL file.
    let file: ARef<File> = unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(file)) };
    // `stream_open()` only adjusts `f_mode` and cannot fail.
    // SAFETY: the file is new, not shared yet, and `f_inode` is its inode.
    unsafe { bindings::stream_open((*file.as_ptr()).f_inode, file.as_ptr()) };
    Ok(file)
}
