//! The exit of `#[propagate(back)]` in the unit tests: its path of [`Few`](super::Few)
//! against the general one.

use std::cell::Cell;

mod against_general;

thread_local! {
    /// Whether exits on this thread may take the path of `Few`.
    static FEW_PATH: Cell<bool> = const { Cell::new(true) };
    /// How many exits took it, with a change to land.
    static TAKEN: Cell<u32> = const { Cell::new(0) };
}

pub(super) fn few_path() -> bool {
    FEW_PATH.get()
}

pub(super) fn taken() {
    TAKEN.set(TAKEN.get() + 1);
}
