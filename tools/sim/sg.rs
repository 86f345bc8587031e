// SPDX-License-Identifier: GPL-2.0

//! Borrowed scatterlists of an admin command.
//!
//! C header: [`include/linux/scatterlist.h`](srctree/include/linux/scatterlist.h).
//!
//! The PF layer passes the caller's data and result lists as they are; the
//! device side reads and writes them up to their end mark, walking with
//! `sg_next()` (never by a table's entry count: the upstream driver
//! end-marks its last used entry only for the duration of the command).

use core::marker::PhantomData;

use crate::bindings;

/// A scatterlist borrowed for the duration of one admin command.
///
/// # Invariants
///
/// `sg` is the head of a valid, end-marked scatterlist of `nents` entries
/// and `len` bytes, usable by us (and only us) for lifetime `'a`.
pub(crate) struct SgList<'a> {
    sg: *mut bindings::scatterlist,
    nents: u32,
    len: usize,
    _p: PhantomData<&'a mut bindings::scatterlist>,
}

impl SgList<'_> {
    /// Borrow `sg` (NULL: no list).
    ///
    /// # Safety
    ///
    /// `sg` must be NULL or the head of a valid, end-marked scatterlist that
    /// stays valid, and is not accessed by anyone else, for the returned
    /// lifetime.
    pub(crate) unsafe fn from_raw(sg: *mut bindings::scatterlist) -> Option<Self> {
        if sg.is_null() {
            return None;
        }
        let mut nents: u32 = 0;
        let mut len: usize = 0;
        let mut cur = sg;
        while !cur.is_null() {
            // SAFETY:
            // - `cur` is an entry of the list: `sg` is the head of a valid,
            //   end-marked scatterlist (safety requirement of this
            //   function), and `cur` is `sg` or what `sg_next()` returned
            //   for the previous entry, checked non-NULL; so reading its
            //   `length` is valid;
            // - `sg_next()` needs a valid entry and returns the next one
            //   (following chain links), or NULL after the end mark.
            unsafe {
                len = len.saturating_add((*cur).length as usize);
                cur = bindings::sg_next(cur);
            }
            nents = nents.saturating_add(1);
        }
        // INVARIANT: walked to the end mark above.
        Some(Self {
            sg,
            nents,
            len,
            _p: PhantomData,
        })
    }

    /// Total bytes of the list.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Number of entries.
    pub(crate) fn nents(&self) -> u32 {
        self.nents
    }

    /// Copy list bytes from offset `skip` into `out`; returns bytes copied.
    pub(crate) fn read(&self, skip: usize, out: &mut [u8]) -> usize {
        let Ok(skip) = isize::try_from(skip) else {
            return 0;
        };
        // SAFETY: `sg_pcopy_to_buffer()` needs a valid list of `nents`
        // entries and a buffer writable for `buflen` bytes:
        // - `sg` is the head of a valid, end-marked list of `self.nents`
        //   entries, which we may use for `'a` (type invariant);
        // - `out` is a `&mut [u8]` of `out.len()` bytes, so nothing else
        //   accesses it meanwhile;
        // - `skip` is non-negative (converted from `usize`).
        unsafe {
            bindings::sg_pcopy_to_buffer(
                self.sg,
                self.nents,
                out.as_mut_ptr().cast(),
                out.len(),
                skip,
            )
        }
    }

    /// Copy `src` into the list at offset `skip`; returns bytes copied.
    pub(crate) fn write(&self, skip: usize, src: &[u8]) -> usize {
        let Ok(skip) = isize::try_from(skip) else {
            return 0;
        };
        // SAFETY: `sg_pcopy_from_buffer()` needs a valid list of `nents`
        // entries that may be written and a buffer readable for `buflen`
        // bytes:
        // - `sg` is the head of a valid, end-marked list of `self.nents`
        //   entries, usable by us and only us for `'a` (type invariant), so
        //   writing its pages races with no one;
        // - `src` is a `&[u8]` of `src.len()` bytes;
        // - `skip` is non-negative (converted from `usize`).
        unsafe {
            bindings::sg_pcopy_from_buffer(
                self.sg,
                self.nents,
                src.as_ptr().cast(),
                src.len(),
                skip,
            )
        }
    }
}
