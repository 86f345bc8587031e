// SPDX-License-Identifier: GPL-2.0

//! A growable byte buffer made of pages, handed to the virtio admin queue as
//! an unmapped scatterlist.
//!
//! C header: [`include/linux/scatterlist.h`](srctree/include/linux/scatterlist.h).
//!
//! Migration data can be many megabytes; it is kept in pages (no vmalloc),
//! charged to the caller's memory cgroup, and so are the page array and the
//! scatterlist table built for each command. The pages come in physically
//! contiguous runs of up to [`MAX_RUN_ORDER`] (2 MiB), split into order-0
//! pages (`split_page()`), falling back to smaller runs, down to single
//! pages, when memory is fragmented: a run costs one scatterlist entry, and
//! a command may have only so many (see below). The virtio PCI admin API
//! takes a CPU-side scatterlist and DMA-maps it itself with the PF, so the
//! table must not be DMA-mapped here (`kernel::scatterlist` only builds
//! mapped tables).
//!
//! For each command, [`PageBuffer::with_sg`] builds a list covering
//! exactly the first `len` bytes (last entry trimmed and end-marked), runs
//! the command and drops the list. That avoids keeping a long-lived table
//! whose end mark must be moved around, which is where the C driver's
//! zero-length-record bug lives. A list of at most [`INLINE_PAGES`] pages
//! (64 KiB: real device contexts are a few KiB) is an array on the stack,
//! so a small command allocates nothing; a longer one is a table from
//! `sg_alloc_table_from_pages_segment()` (contiguous pages merged) over a
//! page-pointer array, two allocations per command, which moves at least
//! 64 KiB. (`alloc_pages_bulk()`, which the C driver calls for its pages,
//! would not batch: it does not charge memory cgroups, and with
//! `__GFP_ACCOUNT` it falls back to one page per call.)
//!
//! A list is refused with `E2BIG`, before the device sees it, when it has
//! more entries than the caller allows. Linux's virtio ring puts a whole
//! admin command in one indirect descriptor table; the spec bounds a
//! descriptor chain by the queue size, QEMU by 1024 descriptors
//! (`VIRTQUEUE_MAX_SIZE`), and a device that finds a longer chain stops
//! (`NEEDS_RESET`), while Linux waits for its answer forever: one VF's
//! command would hang the PF's admin queue for every VF. The upstream C
//! driver sends any length (Documentation/simulated-device.rst, "Large
//! device parts").

use core::ptr::NonNull;

use kernel::{
    alloc::{flags::GFP_KERNEL_ACCOUNT, AllocError, KVVec},
    page::{BorrowedPage, Page, PAGE_SIZE},
    prelude::*,
    uaccess::{UserSliceReader, UserSliceWriter},
};

use crate::bindings;

/// Scatterlists of at most this many pages are built on the stack (32 bytes
/// an entry on 64-bit: 512 bytes of stack).
pub const INLINE_PAGES: usize = 16;

/// The largest run of physically contiguous pages allocated at once: order
/// 9, 2 MiB with 4 KiB pages (a huge page on x86).
pub const MAX_RUN_ORDER: u32 = 9;

/// One order-0 page that the buffer owns: a page of a run split by
/// `split_page()` (or a single page), freed on its own.
///
/// # Invariants
///
/// `0` points to a valid order-0 page that this value owns: nothing else
/// frees it.
struct OwnedPage(NonNull<bindings::page>);

// SAFETY: an owned page is memory, with no tie to a thread: it may be used
// and freed from any thread.
unsafe impl Send for OwnedPage {}

// SAFETY: `&OwnedPage` only gives out the page's address and a
// `BorrowedPage`, whose methods that touch the memory are `unsafe` and make
// their callers exclude races.
unsafe impl Sync for OwnedPage {}

impl OwnedPage {
    /// The page, for as long as `self` is borrowed.
    fn page(&self) -> BorrowedPage<'_> {
        // SAFETY: `BorrowedPage::from_raw()` needs a valid page that stays
        // valid for the borrow: `self.0` is valid and owned by `self` (type
        // invariant), and it is freed only when `self` is dropped, which the
        // borrow prevents.
        unsafe { BorrowedPage::from_raw(self.0) }
    }

    fn as_ptr(&self) -> *mut bindings::page {
        self.0.as_ptr()
    }
}

impl Drop for OwnedPage {
    fn drop(&mut self) {
        // SAFETY: `__free_pages()` needs a page allocation of that order that
        // nothing uses any more: `self.0` is an order-0 page owned by `self`
        // (type invariant): a page of `alloc_pages(.., 0)`, or one of a run
        // that `split_page()` made into order-0 pages, each freed on its
        // own. Nothing borrows `self` while it drops.
        unsafe { bindings::__free_pages(self.0.as_ptr(), 0) };
    }
}

/// Pages holding bytes `0..capacity()`.
///
/// # Invariants
///
/// `pages.len() * PAGE_SIZE` does not overflow (it is at most the memory
/// we could allocate).
pub struct PageBuffer {
    pages: KVVec<OwnedPage>,
}

/// A scatterlist over a buffer borrowed shared for the duration of one
/// command: the device may only read through it.
pub struct SgRef<'a> {
    sgl: *mut bindings::scatterlist,
    _p: core::marker::PhantomData<&'a PageBuffer>,
}

impl SgRef<'_> {
    /// The head of the end-marked list.
    pub(crate) fn as_raw(&self) -> *mut bindings::scatterlist {
        self.sgl
    }
}

/// A scatterlist over a buffer borrowed exclusively for the duration of one
/// command: the device may write through it.
pub struct SgMut<'a> {
    sgl: *mut bindings::scatterlist,
    _p: core::marker::PhantomData<&'a mut PageBuffer>,
}

impl SgMut<'_> {
    /// The head of the end-marked list.
    pub(crate) fn as_raw(&self) -> *mut bindings::scatterlist {
        self.sgl
    }
}

impl PageBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self {
            pages: KVVec::new(),
        }
    }

    /// Bytes of pages attached.
    pub fn capacity(&self) -> usize {
        self.pages.len().saturating_mul(PAGE_SIZE)
    }

    /// Grow to at least `len` bytes. Never shrinks.
    pub fn reserve(&mut self, len: usize) -> Result {
        self.reserve_ahead(len, len)
    }

    /// Grow to at least `len` bytes, in runs sized for a buffer that will
    /// grow on to `upto` bytes: a buffer filled piece by piece (a record
    /// written in small `write()`s) still gets long runs, so few
    /// scatterlist entries. Holds at most one run (2 MiB) more than `len`,
    /// and never more than `upto` (or `len` if larger) rounded up to a
    /// page. Never shrinks.
    pub fn reserve_ahead(&mut self, len: usize, upto: usize) -> Result {
        let want = len.div_ceil(PAGE_SIZE);
        if want <= self.pages.len() {
            return Ok(());
        }
        let target = upto.div_ceil(PAGE_SIZE).max(want);
        let more = want - self.pages.len();
        self.pages.reserve(more, GFP_KERNEL_ACCOUNT)?;
        let mut order = MAX_RUN_ORDER;
        while self.pages.len() < want {
            // The largest run that is not more than what is missing of
            // `target` (`target > pages.len()` here, as `want` is).
            let left = target - self.pages.len();
            order = order.min(left.checked_ilog2().unwrap_or(0));
            let (first, got) = alloc_run(order)?;
            // A smaller run next time too: memory this fragmented will
            // not give a larger one a moment later.
            order = got;
            // Every page of the run gets an owner: the buffer, or, should
            // a push fail (growing the page array beyond the room made for
            // `want` pages above), a local that frees it.
            let mut pushed = Ok(());
            for i in 0..1usize << got {
                // SAFETY: `alloc_run()` returned `first` of a run of `1 <<
                // got` physically contiguous order-0 pages, each its own
                // allocation now; their `struct page`s are consecutive in
                // the memory map (one buddy block of at most
                // `MAX_PAGE_ORDER`), so `first + i` for `i < 1 << got` is
                // the `i`-th of them.
                let p = unsafe { first.add(i) };
                // INVARIANT: `p` is one of the run's order-0 pages, owned by
                // nothing else: each is handed over exactly once here.
                let page = OwnedPage(p);
                if pushed.is_ok() {
                    pushed = self.pages.push(page, GFP_KERNEL_ACCOUNT);
                }
            }
            pushed?;
        }
        Ok(())
    }

    /// Make room to track the pages of `len` bytes without allocating the
    /// pages: a buffer that will grow to `len` then grows its page array
    /// once, to its final size, instead of by doubling.
    pub fn reserve_index(&mut self, len: usize) -> Result {
        let want = len.div_ceil(PAGE_SIZE);
        let more = want.saturating_sub(self.pages.len());
        self.pages.reserve(more, GFP_KERNEL_ACCOUNT)?;
        Ok(())
    }

    /// Free every page.
    pub fn clear(&mut self) {
        self.pages.clear();
    }

    /// Visit the pieces of bytes `off..off + len`, page by page, as
    /// (page, offset in page, length).
    fn pieces(
        &self,
        off: usize,
        len: usize,
        mut f: impl FnMut(&Page, usize, usize) -> Result,
    ) -> Result {
        let end = off.checked_add(len).ok_or(EINVAL)?;
        if end > self.capacity() {
            return Err(EINVAL);
        }
        let mut pos = off;
        while pos < end {
            let page = self.pages.get(pos / PAGE_SIZE).ok_or(EINVAL)?.page();
            let in_page = pos % PAGE_SIZE;
            let n = (PAGE_SIZE - in_page).min(end - pos);
            f(&page, in_page, n)?;
            pos += n;
        }
        Ok(())
    }

    /// Copy `src` to bytes `off..off + src.len()`.
    pub fn write_bytes(&mut self, off: usize, src: &[u8]) -> Result {
        let mut done = 0usize;
        self.pieces(off, src.len(), |page, in_page, n| {
            let chunk = src.get(done..done + n).ok_or(EINVAL)?;
            // SAFETY: `Page::write_raw()` requires:
            // - `src` valid for reading `n` bytes: `chunk` is a `&[u8]` of
            //   exactly `n` bytes (`done..done + n`), and it is not in the
            //   page, since nothing hands out references into the buffer's
            //   pages;
            // - no concurrent read or write of the same page: the page
            //   belongs to `self.pages`, and `&mut self` excludes every
            //   other access to it, including the device's through a
            //   scatterlist of `with_sg` or `with_sg_mut`, which borrow
            //   `self`.
            // `write_raw()` checks `in_page + n <= PAGE_SIZE` itself.
            unsafe { page.write_raw(chunk.as_ptr(), in_page, n)? };
            done += n;
            Ok(())
        })
    }

    /// Copy `len` bytes from userspace to bytes `off..off + len`. Returns
    /// the bytes copied: less than `len` when a page piece faulted (the
    /// reader then stands right after the last byte copied) or when the
    /// range exceeds the capacity (nothing copied).
    pub fn copy_from_user(
        &mut self,
        off: usize,
        reader: &mut UserSliceReader,
        len: usize,
    ) -> usize {
        let mut done = 0usize;
        let _ = self.pieces(off, len, |page, in_page, n| {
            // The reader advances only when the whole piece was copied.
            // SAFETY: `Page::copy_from_user_slice_raw()` requires that no
            // read or write of the same page runs concurrently: the page
            // belongs to `self.pages`, and `&mut self` excludes every other
            // access to it, including the device's through a scatterlist of
            // `with_sg` or `with_sg_mut`, which borrow `self`. It checks
            // `in_page + n <= PAGE_SIZE` itself.
            unsafe { page.copy_from_user_slice_raw(reader, in_page, n)? };
            done += n;
            Ok(())
        });
        done
    }

    /// Copy bytes `off..off + len` to userspace. Returns the bytes copied,
    /// which is less than `len` only when a page piece faulted (then at
    /// least one byte was not copied and `EFAULT` is the caller's answer
    /// if nothing was copied).
    pub fn copy_to_user(&self, off: usize, writer: &mut UserSliceWriter, len: usize) -> usize {
        let mut done = 0usize;
        let _ = self.pieces(off, len, |page, in_page, n| {
            // SAFETY: `kmap_local_page()` needs a valid page, and its mapping
            // must be released in the same context, in the reverse order of
            // nested local mappings: `page` is a live page of `self.pages`
            // (borrowed with `self`), and `addr` is unmapped below, on this
            // thread, before the closure returns, after every mapping made
            // in between was released.
            let addr = unsafe { bindings::kmap_local_page(page.as_ptr()) };
            let start = addr.cast::<u8>().cast_const();
            // SAFETY: `slice::from_raw_parts()` needs `n` bytes readable at
            // `start + in_page`, not written while `bytes` is used:
            // - the mapping covers the whole page, `PAGE_SIZE` bytes from
            //   `start`, and `pieces` gives `in_page + n <= PAGE_SIZE`;
            // - everything that writes the pages needs `&mut self`, which
            //   `&self` excludes: `write_bytes`, `copy_from_user`, and a
            //   device writing through a list of `with_sg_mut` (a list of
            //   `with_sg` is only read by the device).
            let bytes = unsafe { core::slice::from_raw_parts(start.add(in_page), n) };
            let r = writer.write_slice(bytes);
            // SAFETY: `kunmap_local()` needs the address of the latest local
            // mapping of this context still in place: `addr` came from
            // `kmap_local_page()` above on this thread, every mapping made
            // since was released, and this is its only unmapping, after
            // `bytes`, its last user.
            unsafe { bindings::kunmap_local(addr) };
            r?;
            done += n;
            Ok(())
        });
        done
    }

    /// Run `f` with a scatterlist over bytes `0..len` of the buffer, for a
    /// command whose device only reads them (`DEV_PARTS_SET` data). `EINVAL`
    /// when `len` is 0 or larger than the capacity, `E2BIG` when the list
    /// needs more than `max_ents` entries (`f` is not run).
    pub fn with_sg<R>(
        &self,
        len: usize,
        max_ents: usize,
        f: impl FnOnce(SgRef<'_>) -> R,
    ) -> Result<R> {
        self.build_sg(len, max_ents, |sgl| {
            f(SgRef {
                sgl,
                _p: core::marker::PhantomData,
            })
        })
    }

    /// Run `f` with a scatterlist over bytes `0..len` of the buffer, for a
    /// command whose device writes them (a `DEV_PARTS_GET` result): the
    /// buffer is borrowed exclusively for the command, so nothing reads the
    /// pages while the device writes them. `EINVAL` when `len` is 0 or
    /// larger than the capacity, `E2BIG` when the list needs more than
    /// `max_ents` entries (`f` is not run).
    pub fn with_sg_mut<R>(
        &mut self,
        len: usize,
        max_ents: usize,
        f: impl FnOnce(SgMut<'_>) -> R,
    ) -> Result<R> {
        self.build_sg(len, max_ents, |sgl| {
            f(SgMut {
                sgl,
                _p: core::marker::PhantomData,
            })
        })
    }

    /// Build a scatterlist over bytes `0..len`, run `f` with its head and
    /// free it. The caller chooses how the list may be used by how it
    /// borrows the buffer ([`Self::with_sg`], [`Self::with_sg_mut`]).
    fn build_sg<R>(
        &self,
        len: usize,
        max_ents: usize,
        f: impl FnOnce(*mut bindings::scatterlist) -> R,
    ) -> Result<R> {
        if len == 0 || len > self.capacity() {
            return Err(EINVAL);
        }
        let npages = len.div_ceil(PAGE_SIZE);
        // The inline list has an entry per page; a table merges contiguous
        // pages, so a list the inline one would make too long may fit.
        if npages <= INLINE_PAGES && npages <= max_ents {
            return self.inline_sg(len, npages, f);
        }
        // Userspace decides the size of a record, so the page array and the
        // table are charged to its memory cgroup like the pages themselves.
        let mut ptrs: KVVec<*mut bindings::page> =
            KVVec::with_capacity(npages, GFP_KERNEL_ACCOUNT)?;
        for page in self.pages.iter().take(npages) {
            ptrs.push(page.as_ptr(), GFP_KERNEL_ACCOUNT)?;
        }
        let npages_c = u32::try_from(npages).map_err(|_| EINVAL)?;
        let mut sgt = bindings::sg_table::default();
        let pages = ptrs.as_mut_ptr();
        // SAFETY: `sg_alloc_table_from_pages_segment()` needs:
        // - `sgt`, a table header to fill: a local, valid for writes, which
        //   it overwrites only on success;
        // - `pages`, an array of `npages_c` page pointers: `ptrs` holds
        //   exactly `npages` of them (`len <= capacity()`, so the buffer has
        //   at least `npages` pages), each a live page of `self.pages`,
        //   which stays borrowed, so allocated, until the table is freed
        //   below;
        // - `len` bytes from offset 0 that the pages hold:
        //   `len <= npages * PAGE_SIZE`;
        // - a maximum segment of at least `PAGE_SIZE`: `u32::MAX`, which it
        //   rounds down to a multiple of `PAGE_SIZE`.
        let ret = unsafe {
            bindings::sg_alloc_table_from_pages_segment(
                &mut sgt,
                pages,
                npages_c,
                0,
                len,
                u32::MAX,
                bindings::GFP_KERNEL_ACCOUNT,
            )
        };
        kernel::error::to_result(ret)?;
        // A chain longer than the device takes would stop its admin queue
        // (see the module's docs): refuse it before the device sees it.
        let r = if (sgt.orig_nents as usize) <= max_ents {
            Ok(f(sgt.sgl))
        } else {
            Err(E2BIG)
        };
        // SAFETY: `sg_free_table()` needs a table that the `sg_alloc_*()`
        // functions allocated, not freed yet and no longer in use:
        // - `sgt` was filled by the successful call above (on failure we
        //   returned) and is freed only here;
        // - `f` has returned, or was not run, and nothing kept the list:
        //   `with_sg` and `with_sg_mut`, the only callers, hand it out as
        //   an `SgRef` or `SgMut` borrowed for the call, which `R` cannot
        //   name.
        unsafe { bindings::sg_free_table(&mut sgt) };
        r
    }
}

impl PageBuffer {
    /// [`Self::build_sg`] for `npages <= INLINE_PAGES` pages: the list is a
    /// local array, one entry per page.
    fn inline_sg<R>(
        &self,
        len: usize,
        npages: usize,
        f: impl FnOnce(*mut bindings::scatterlist) -> R,
    ) -> Result<R> {
        let mut sgl: [bindings::scatterlist; INLINE_PAGES] = Default::default();
        let pages = self.pages.get(..npages).ok_or(EINVAL)?;
        // `npages <= INLINE_PAGES`, so this cannot truncate.
        let nents = npages as u32;
        // SAFETY: `sg_init_table()` needs `nents` entries to initialise:
        // `sgl` is a local array of `INLINE_PAGES >= npages` entries. It
        // zeroes them and end-marks entry `nents - 1`.
        unsafe { bindings::sg_init_table(sgl.as_mut_ptr(), nents) };
        let mut left = len;
        for (sg, page) in sgl.iter_mut().zip(pages) {
            let n = left.min(PAGE_SIZE);
            // SAFETY: `sg_set_page()` needs an initialised entry and a page
            // the list may point to for as long as it is used:
            // - `sg` is an entry of `sgl`, initialised above; setting the
            //   page keeps its end mark;
            // - `page` is a page of `self.pages`, which stays borrowed, so
            //   allocated, until the list is dropped at the end of this
            //   function, after `f` returned;
            // - `n <= PAGE_SIZE` bytes from offset 0 lie within the page.
            unsafe { bindings::virtio_rs_helper_sg_set_page(sg, page.as_ptr(), n as u32, 0) };
            left -= n;
        }
        // `f` gets the list only for the call: `with_sg` and `with_sg_mut`,
        // the only callers of `build_sg`, hand it out as an `SgRef` or
        // `SgMut` borrowed for the call, which `R` cannot name.
        Ok(f(sgl.as_mut_ptr()))
    }
}

/// Allocate a run of `1 << order` physically contiguous pages, or, when
/// memory is too fragmented for it, a smaller one (order 9, 6, 3, then
/// single pages), and split it into order-0 pages. Returns the first page
/// and the order of the run; each of its pages is then its own allocation,
/// owned by the caller. A run larger than a page is asked for without
/// retries and warnings: failing is the fragmented case, which the next
/// smaller order answers.
fn alloc_run(mut order: u32) -> Result<(NonNull<bindings::page>, u32)> {
    let noretry: bindings::gfp_t = 1 << bindings::___GFP_NORETRY_BIT;
    loop {
        let gfp = if order == 0 {
            bindings::GFP_KERNEL_ACCOUNT
        } else {
            bindings::GFP_KERNEL_ACCOUNT | bindings::__GFP_NOWARN | noretry
        };
        // SAFETY: `alloc_pages()` may sleep with `GFP_KERNEL_ACCOUNT`, which
        // `reserve`'s callers allow (process context, no spinlock held: the
        // same as the `Page::alloc_page(GFP_KERNEL_ACCOUNT)` it replaces);
        // any order up to `MAX_RUN_ORDER` (9) is valid (below
        // `MAX_PAGE_ORDER`, 10 on every architecture with 4 KiB pages).
        let p = unsafe { bindings::alloc_pages(gfp, order) };
        if let Some(p) = NonNull::new(p) {
            if order > 0 {
                // SAFETY: `split_page()` needs a non-compound allocation of
                // `order` that nothing uses yet: `p` was just allocated at
                // that order without `__GFP_COMP`. After it, each page is an
                // order-0 allocation, freed on its own (`OwnedPage`).
                unsafe { bindings::split_page(p.as_ptr(), order) };
            }
            return Ok((p, order));
        }
        if order == 0 {
            return Err(AllocError.into());
        }
        order = order.saturating_sub(3);
    }
}

impl Default for PageBuffer {
    fn default() -> Self {
        Self::new()
    }
}
