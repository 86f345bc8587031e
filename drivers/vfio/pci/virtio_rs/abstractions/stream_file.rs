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
        // SAFETY: every field of `struct file_operations` is a raw pointer,
        // an integer (`fop_flags`) or an `Option` of a function pointer, for
        // which all-zero bytes are a valid value (NULL, 0, `None`), so the
        // zeroed value is initialised; the VFS treats NULL callbacks as
        // absent.
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };

    /// # Safety
    ///
    /// `file` is a file created by [`create`] for `T`, still open.
    unsafe fn data<'a>(file: *mut bindings::file) -> ArcBorrow<'a, T> {
        // SAFETY: `borrow()` needs a pointer returned by `into_foreign()`
        // that is not passed to `from_foreign()` before the borrow ends:
        // - `file` is an open file created by `create` for `T` (safety
        //   requirement of this function), so it is valid and its
        //   `private_data` is the `Arc<T>::into_foreign()` that `create`
        //   gave `anon_inode_getfile()`; nothing changes it afterwards;
        // - only `release` passes it to `from_foreign()`, and the VFS calls
        //   `release` only after every other callback on the file returned;
        //   the callers (`read`, `write`, `ioctl`) drop the borrow before
        //   they return.
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
        // SAFETY: `Self::data()` needs an open file created by `create` for
        // `T`:
        // - the VFS calls `read` only for a file whose `f_op` is this
        //   table, which only `create::<T>` installs;
        // - it holds a reference to the file for the whole call, so the
        //   file is open and `release` cannot run before `this`, dropped
        //   when this call returns, is gone.
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
        // SAFETY: `Self::data()` needs an open file created by `create` for
        // `T`:
        // - the VFS calls `write` only for a file whose `f_op` is this
        //   table, which only `create::<T>` installs;
        // - it holds a reference to the file for the whole call, so the
        //   file is open and `release` cannot run before `this`, dropped
        //   when this call returns, is gone.
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
        // SAFETY: `Self::data()` needs an open file created by `create` for
        // `T`:
        // - the VFS calls `unlocked_ioctl` (directly or through
        //   `compat_ptr_ioctl()`) only for a file whose `f_op` is this
        //   table, which only `create::<T>` installs;
        // - it holds a reference to the file for the whole call, so the
        //   file is open and `release` cannot run before `this`, dropped
        //   when this call returns, is gone.
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
        // SAFETY: `from_foreign()` needs a pointer returned by
        // `into_foreign()` that is passed to it only once:
        // - the `private_data` of a file of this table is the
        //   `Arc<T>::into_foreign()` of `create`, and `file` is valid for
        //   this call;
        // - the VFS calls `release` once, when the last reference to the
        //   file is dropped, after every other callback returned (so no
        //   `borrow()` of it is alive): this is the last use of the file,
        //   and the only `from_foreign()` of the pointer (`create` calls it
        //   only when no file was made).
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
    // SAFETY: `anon_inode_getfile()` needs a NUL-terminated name and a
    // file operations table that outlive the file; it stores `private` as
    // the file's `private_data` only if it succeeds:
    // - `name` is a `&'static CStr` and `table` a `&'static` (a promoted
    //   constant), and its `owner` keeps the module that defines `T`
    //   loaded while the file is open;
    // - `private` is the `into_foreign()` of an `Arc<T>`, as every callback
    //   of `Fops<T>` expects; on success the file owns it (given back by
    //   `Fops::<T>::release`), on failure it is still ours (below).
    let file = unsafe { bindings::anon_inode_getfile(name, table, private, flags) };
    let file = match kernel::error::from_err_ptr(file) {
        Ok(f) => f,
        Err(e) => {
            // SAFETY: `from_foreign()` needs a pointer returned by
            // `into_foreign()` that is passed to it only once: `private`
            // comes from `data.into_foreign()` above, and
            // `anon_inode_getfile()` failed, so no file holds it and no
            // `release` will ever see it: this is its only `from_foreign()`.
            drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(private) });
            return Err(e);
        }
    };
    let file = file.cast::<File>();
    // SAFETY: `ARef::from_raw()` needs a non-NULL pointer to a `File` whose
    // reference we own and give up:
    // - `anon_inode_getfile()` returned a new file (not an error pointer,
    //   checked above, and never NULL) with one reference, which is ours;
    // - `File` is `#[repr(transparent)]` over `struct file`, and the file
    //   meets its invariants: it is counted by `f_count` and, being in no
    //   fd table yet, has no `fdget_pos()` user;
    // - the raw `file` is not used to drop that reference later.
    let file: ARef<File> = unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(file)) };
    // SAFETY: `stream_open()` needs a valid file (and its inode, which it
    // does not use); it only adjusts `f_mode` and cannot fail:
    // - we hold the only reference to the new file, so it and its
    //   `f_inode` (set by `anon_inode_getfile()`) are valid to read;
    // - the file is in no fd table and no other thread has a pointer to
    //   it, so nothing reads or writes `f_mode` meanwhile.
    unsafe { bindings::stream_open((*file.as_ptr()).f_inode, file.as_ptr()) };
    Ok(file)
}
