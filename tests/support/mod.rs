//! Helpers that several test files share: `mod support;` in a test file brings them in.
//!
//! * injected panics, kept out of the output: [`FAULT`], [`fault`], [`is_fault`],
//!   [`quiet_injected_panics`];
//! * the library's own panics, recorded with their location and kept out of the output:
//!   [`record_library_panics`], [`library_panics`];
//! * [`Counted`]: a value that counts its live copies, to see when the last context that
//!   holds it goes;
//! * [`poll_once`]: one poll without a runtime;
//! * [`Counting`]: a global allocator that counts; each binary that wants it declares its own
//!   `#[global_allocator]` static of this type;
//! * [`LogBuffer`]: where a tracing subscriber writes its lines, for a test to read back.

// Every test file is a crate of its own and uses only some of these helpers: the rest would
// be reported as dead code in each of them.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context as TaskContext, Poll, Waker};

// ---------------------------------------------------------------------------------------
// Injected panics.

/// The payload of every injected panic.
pub const FAULT: &str = "injected fault";

/// Panics with [`FAULT`].
pub fn fault() -> ! {
    std::panic::panic_any(FAULT)
}

/// Whether `result` is the panic of an injected [`fault`].
pub fn is_fault<T>(result: std::thread::Result<T>) -> bool {
    matches!(result, Err(payload) if payload.downcast_ref::<&str>() == Some(&FAULT))
}

/// Injected panics are expected, by the thousand in some tests: the panic hook reports
/// every other panic as usual and keeps these out of the output.
pub fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&FAULT) {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------
// The library's panics.

/// A panic of the library (its message starts with `contextvars:`), where it was reported.
#[derive(Clone, Debug)]
pub struct LibraryPanic {
    pub message: String,
    pub file: String,
    pub line: u32,
}

thread_local! {
    /// The library's panics on this thread, not yet taken by [`library_panics`].
    static LIBRARY_PANICS: RefCell<Vec<LibraryPanic>> = const { RefCell::new(Vec::new()) };
}

/// From now on, each panic of the library is recorded on the thread it happens on (a task
/// of a current-thread runtime runs on the thread that drives it) and kept out of the
/// output; every other panic is reported as usual.
pub fn record_library_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            let (Some(location), true) = (info.location(), message.starts_with("contextvars:")) else {
                return default(info);
            };
            let panic = LibraryPanic {
                message: message.to_owned(),
                file: location.file().to_owned(),
                line: location.line(),
            };
            let _ = LIBRARY_PANICS.try_with(|panics| panics.borrow_mut().push(panic));
        }));
    });
}

/// The library's panics recorded on this thread since the last call, in order.
pub fn library_panics() -> Vec<LibraryPanic> {
    LIBRARY_PANICS.with(|panics| std::mem::take(&mut *panics.borrow_mut()))
}

// ---------------------------------------------------------------------------------------
// Counted values.

/// How many [`Counted`] values are alive, and a wake-up when that reaches zero.
#[derive(Debug, Default)]
pub struct Live {
    count: AtomicUsize,
    zero: tokio::sync::Notify,
}

impl Live {
    /// A counter at zero, to share between the test and the values it counts.
    pub fn new() -> Arc<Live> {
        Arc::default()
    }

    /// How many values are alive now.
    pub fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until no value is alive (a detached task may still hold one for a while).
    pub async fn until_zero(&self) {
        loop {
            let zero = self.zero.notified();
            if self.get() == 0 {
                return;
            }
            zero.await;
        }
    }
}

/// A value that counts its live copies (clones included) in a [`Live`].
#[derive(Debug)]
pub struct Counted(Arc<Live>);

impl Counted {
    pub fn new(live: &Arc<Live>) -> Counted {
        live.count.fetch_add(1, Ordering::SeqCst);
        Counted(live.clone())
    }
}

impl Clone for Counted {
    fn clone(&self) -> Counted {
        Counted::new(&self.0)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Futures without a runtime.

/// Polls `future` once with a waker that does nothing.
pub fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut TaskContext::from_waker(Waker::noop()))
}

// ---------------------------------------------------------------------------------------
// Counting allocator.

/// A global allocator that forwards to `System` and counts: the allocations of each thread
/// ([`allocations`]), and the bytes and blocks alive in the whole process ([`live_bytes`],
/// [`live_blocks`]).
///
/// A binary that counts declares `#[global_allocator] static GLOBAL: Counting = Counting;`,
/// and holds only the tests that can live with it.
pub struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// One allocation (or reallocation) more on this thread; nothing while the thread is torn
/// down and its counter is gone.
fn count_allocation() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards every call to `System` unchanged; it only counts on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// How many allocations `f` made on this thread (reallocations included).
pub fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// Bytes allocated and not yet freed, by every thread.
pub fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::SeqCst)
}

/// Blocks allocated and not yet freed, by every thread.
pub fn live_blocks() -> isize {
    LIVE_BLOCKS.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------------------
// A log to read back.

/// Every line a tracing subscriber wrote through a clone of it (`.with_writer(move ||
/// log.clone())`).
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// All that was written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(bytes)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
