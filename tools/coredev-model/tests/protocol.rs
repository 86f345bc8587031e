// SPDX-License-Identifier: GPL-2.0

//! The `CoreDevice` protocol, for `cargo test` and `cargo miri test`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use coredev_model::{c, CoreDevice};

/// Driver data that counts its drops, and mutates behind `&` as the
/// driver's mutexes do.
struct Data {
    drops: Arc<AtomicUsize>,
    state: Mutex<u64>,
    bytes: Vec<u8>,
}

impl Drop for Data {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn data(drops: &Arc<AtomicUsize>) -> impl FnOnce(*mut Data) -> Result<(), ()> + '_ {
    move |slot| {
        // pin-init writes the value in place.
        // SAFETY: `slot` is valid for writes of a `Data`.
        unsafe {
            slot.write(Data {
                drops: drops.clone(),
                state: Mutex::new(7),
                bytes: vec![1, 2, 3],
            })
        };
        Ok(())
    }
}

// The tests share the model's allocation registry: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn create_use_release() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let drops = Arc::new(AtomicUsize::new(0));
    let dev = CoreDevice::create(data(&drops)).expect("init");
    assert_eq!(dev.pdev(), 0x1000);
    assert_eq!(dev.data().bytes, [1, 2, 3]);
    *dev.data().state.lock().unwrap() += 1;
    // The vfio core's view: a raw pointer back to the device.
    // SAFETY: `dev` keeps the device alive.
    let same = unsafe { CoreDevice::<Data>::from_vdev(dev.vdev()) };
    assert_eq!(*same.data().state.lock().unwrap(), 8);
    let more = dev.clone();
    drop(dev);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(more);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "data dropped exactly once");
    assert_eq!(c::live_allocations(), 0);
}

#[test]
fn failed_init_is_never_dropped() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = CoreDevice::<Data>::create(|_slot| Err::<(), _>("ENOMEM"));
    assert!(r.is_err());
    assert_eq!(c::live_allocations(), 0, "released at once");
}

#[test]
fn references_from_many_threads() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let drops = Arc::new(AtomicUsize::new(0));
    let dev = CoreDevice::create(data(&drops)).expect("init");
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let d = dev.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let e = d.clone();
                    *e.data().state.lock().unwrap() += i;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*dev.data().state.lock().unwrap(), 7 + 10 * 6);
    drop(dev);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(c::live_allocations(), 0);
}
