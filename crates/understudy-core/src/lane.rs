//! Lanes: which serving thread the current code runs on.
//!
//! A server that runs one single-threaded runtime per core gives each of
//! its threads a lane number ([`enter`]); state kept per lane — an upstream
//! connection pool above all — is then only ever touched by one thread, so a
//! request and the upstream connection it uses are driven by the same
//! thread and wake no other. Code outside such a server runs in lane 0.
//!
//! # Example
//!
//! ```
//! use understudy_core::lane;
//!
//! assert_eq!(lane::current(), 0);
//! std::thread::spawn(|| {
//!     lane::enter(3);
//!     assert_eq!(lane::current(), 3);
//! })
//! .join()
//! .unwrap();
//! assert_eq!(lane::current(), 0);
//! ```

use std::cell::Cell;

thread_local! {
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// The lane of the current thread: 0 unless [`enter`] set another.
pub fn current() -> usize {
    LANE.with(Cell::get)
}

/// Makes `lane` the current thread's lane, for the rest of its life.
pub fn enter(lane: usize) {
    LANE.with(|cell| cell.set(lane));
}
