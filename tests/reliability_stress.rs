//! Many tasks at once, each with values of its own, in random interleavings of `.await`,
//! `spawn`, `spawn_blocking`, `block_on` (inside `spawn_blocking`), `merge_back`, plain joins,
//! aborts and panics, on a multi-thread runtime. Checked after every step of every task:
//!
//! * no cross-talk: each task reads its own id, its own user, its own not-inherited value;
//! * every merged change arrives exactly once: each task keeps, next to the context, the list
//!   of ids that must be in its `IDS` variable (its own, plus those of every child it merged
//!   successfully), in order; the variable must equal that list, so an id of an aborted or
//!   panicked child, a lost id or a duplicate all fail the test.
//!
//! 10,000 top-level tasks by default (a few seconds); `CONTEXTVARS_LONG=1` runs 100,000.
//! `CONTEXTVARS_SEED=n` picks another random program for every task.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use contextvars::{Context, ContextVar};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

mod support;
use support::{fault, quiet_injected_panics};

/// The number this task was given (each task, child or not, sets its own). Never flows back.
static ID: ContextVar<u64> = ContextVar::new("ID", || 0).back(false);
/// The user of the top-level task; children inherit it and never change it.
static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
/// A value that must neither reach a child nor come back from one (a transaction handle,
/// say): each task sets its own id.
static SECRET: ContextVar<u64> = ContextVar::new("SECRET", || 0).inherit(false).back(false);
/// The id of the last child whose changes were merged back; plain flow-back, child wins.
static LAST_CHILD: ContextVar<u64> = ContextVar::new("LAST_CHILD", || 0);
/// Every id produced here or merged back from a child, in order; append-only.
static IDS: ContextVar<Vec<u64>> = ContextVar::new("IDS", Vec::new).merge(append);
/// How many ids arrived: summed at every merge, so it must always equal `IDS.len()`.
static COUNT: ContextVar<u64> = ContextVar::new("COUNT", || 0).merge(sum);

/// The parent's list, then what the child appended after the fork (the child's list starts
/// with the fork's). The signature is the one `merge` takes.
#[allow(clippy::ptr_arg)]
fn append(base: &Vec<u64>, parent: &Vec<u64>, child: &Vec<u64>) -> Vec<u64> {
    assert!(child.starts_with(base), "a child's list starts with the fork's");
    let mut merged = parent.clone();
    merged.extend_from_slice(&child[base.len()..]);
    merged
}

fn sum(base: &u64, parent: &u64, child: &u64) -> u64 {
    parent + child - base
}

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static PANICS: AtomicU64 = AtomicU64::new(0);
static ABORTED: AtomicU64 = AtomicU64::new(0);
static BLOCKING: AtomicU64 = AtomicU64::new(0);
static MERGED: AtomicU64 = AtomicU64::new(0);

/// xorshift64*: a small deterministic generator, one per task.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What a task expects of its context.
struct Task {
    id: u64,
    user: String,
    /// What `IDS` must hold.
    ids: Vec<u64>,
    /// What `LAST_CHILD` must hold.
    last_child: u64,
    rng: Rng,
    depth: u32,
}

impl Task {
    /// Enters a new task (top-level or child): checks what it inherited, then sets its own.
    fn start(user: String, inherited: Vec<u64>, last_child: u64, seed: u64, depth: u32) -> Task {
        assert_eq!(USER.get().as_deref(), Some(user.as_str()).filter(|_| depth > 0), "inherited user");
        assert_eq!(SECRET.get(), 0, "a not-inherited value reached a child");
        assert_eq!(IDS.get(), inherited, "inherited ids");
        assert_eq!(LAST_CHILD.get(), last_child, "inherited last child");
        let id = NEXT_TASK.fetch_add(1, Ordering::Relaxed);
        ID.set(id);
        SECRET.set(id);
        if depth == 0 {
            USER.set(Some(user.clone()));
        }
        Task { id, user, ids: inherited, last_child, rng: Rng::new(seed ^ id), depth }
    }

    /// No cross-talk, and every merged id exactly once.
    fn check(&self) {
        assert_eq!(ID.get(), self.id, "task {} reads another task's id", self.id);
        assert_eq!(USER.get().as_deref(), Some(self.user.as_str()), "task {} reads another user", self.id);
        assert_eq!(SECRET.get(), self.id, "task {} reads another secret", self.id);
        assert_eq!(LAST_CHILD.get(), self.last_child, "task {}: last merged child", self.id);
        assert_eq!(IDS.get(), self.ids, "task {}: merged ids", self.id);
        assert_eq!(COUNT.get(), self.ids.len() as u64, "task {}: merged count", self.id);
    }

    fn produce(&mut self) {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut ids = IDS.get();
        ids.push(id);
        IDS.set(ids);
        COUNT.set(COUNT.get() + 1);
        self.ids.push(id);
    }

    /// What the child's output tells the parent to expect after a successful merge.
    fn merged(&mut self, child: Finished) {
        MERGED.fetch_add(1, Ordering::Relaxed);
        self.ids.extend_from_slice(&child.ids[child.base..]);
        self.last_child = child.id;
    }

    fn child_seed(&mut self) -> u64 {
        self.rng.below(u64::MAX)
    }

    /// The task's random program; its last step sets `LAST_CHILD` to its own id.
    fn run(mut self, base: usize) -> Pin<Box<dyn Future<Output = Finished> + Send>> {
        Box::pin(async move {
            let steps = 1 + self.rng.below(5);
            for _ in 0..steps {
                self.check();
                match self.rng.below(10) {
                    0 | 1 => tokio::task::yield_now().await,
                    2 | 3 => self.produce(),
                    4 if self.depth < 3 => self.async_child().await,
                    5 if self.depth < 3 => self.blocking_child().await,
                    6 if self.depth > 0 && self.rng.below(4) == 0 => {
                        PANICS.fetch_add(1, Ordering::Relaxed);
                        fault()
                    }
                    _ => self.produce(),
                }
            }
            self.check();
            LAST_CHILD.set(self.id);
            Finished { id: self.id, ids: self.ids, base }
        })
    }

    /// A `spawn`ed child joined by `merge_back`, by a plain `.await`, aborted, or detached.
    async fn async_child(&mut self) {
        let (user, inherited, last, seed) =
            (self.user.clone(), self.ids.clone(), self.last_child, self.child_seed());
        let depth = self.depth + 1;
        let handle = contextvars::spawn(async move {
            Task::start(user, inherited.clone(), last, seed, depth).run(inherited.len()).await
        });
        match self.rng.below(5) {
            0 | 1 => {
                if let Ok(child) = handle.merge_back().await {
                    self.merged(child);
                }
            }
            // A plain `.await` brings back nothing (the child records no `#[propagate(back)]`).
            2 => drop(handle.await),
            3 => {
                let join = handle.merge_back();
                if self.rng.below(2) == 0 {
                    tokio::task::yield_now().await;
                }
                join.abort();
                match join.await {
                    // The child won the race and finished: a finished child is merged.
                    Ok(child) => self.merged(child),
                    Err(error) if error.is_cancelled() => drop(ABORTED.fetch_add(1, Ordering::Relaxed)),
                    Err(error) => assert!(error.is_panic()),
                }
            }
            _ => drop(handle),
        }
    }

    /// A `spawn_blocking` child that runs its program through `block_on`, joined by
    /// `merge_back` (it may panic on the way).
    async fn blocking_child(&mut self) {
        BLOCKING.fetch_add(1, Ordering::Relaxed);
        let (user, inherited, last, seed) =
            (self.user.clone(), self.ids.clone(), self.last_child, self.child_seed());
        let depth = self.depth + 1;
        let handle = contextvars::spawn_blocking(move || {
            let task = Task::start(user, inherited.clone(), last, seed, depth);
            task.check();
            contextvars::block_on(task.run(inherited.len()))
        });
        if let Ok(child) = handle.merge_back().await {
            self.merged(child);
        }
    }
}

/// What a finished task hands its parent.
struct Finished {
    id: u64,
    ids: Vec<u64>,
    /// How many of `ids` the child inherited.
    base: usize,
}

fn tasks() -> u64 {
    if std::env::var_os("CONTEXTVARS_LONG").is_some() { 100_000 } else { 10_000 }
}

fn seed() -> u64 {
    std::env::var("CONTEXTVARS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7)
}

/// Runs `tasks()` top-level tasks, at most `WINDOW` at a time, each merged back into the root.
async fn root() -> (u64, HashSet<u64>) {
    const WINDOW: u64 = 256;
    let total = tasks();
    let mut running = FuturesUnordered::new();
    let mut started = 0;
    let mut arrived = HashSet::new();
    loop {
        while started < total && (running.len() as u64) < WINDOW {
            let (user, seed) = (format!("user{started}"), seed() ^ started);
            // Each top-level task starts from the empty context, like a request; its changes
            // are merged into the root all the same (against that empty fork).
            let handle = Context::new().run(|| {
                contextvars::spawn(async move {
                    let finished = Task::start(user, Vec::new(), 0, seed, 0).run(0).await;
                    // The root does not need the list; it keeps the count.
                    IDS.set(Vec::new());
                    finished
                })
            });
            running.push(handle.merge_back());
            started += 1;
        }
        let Some(finished) = running.next().await else { break };
        let finished = finished.expect("a top-level task does not panic");
        for id in finished.ids {
            assert!(arrived.insert(id), "id {id} arrived twice");
        }
        // The variables that never flow back still hold the root's own values. (`USER` does
        // flow back: it is the user of whichever top-level task was merged last.)
        assert_eq!((ID.get(), SECRET.get()), (0, 0));
    }
    (COUNT.get(), arrived)
}

#[test]
fn many_tasks_see_only_their_own_values_and_every_merged_id_arrives_once() {
    quiet_injected_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (count, arrived) = runtime.block_on(Context::new().scope(root()));
    assert_eq!(count, arrived.len() as u64, "the root's merged count is the number of distinct ids");
    let produced = NEXT_ID.load(Ordering::Relaxed) - 1;
    println!(
        "tasks: {} top-level, {} in all ({} through spawn_blocking + block_on); merges: {}; \
         injected panics: {}; aborted: {}; ids produced: {produced}, arrived at the top: {}",
        tasks(),
        NEXT_TASK.load(Ordering::Relaxed) - 1,
        BLOCKING.load(Ordering::Relaxed),
        MERGED.load(Ordering::Relaxed),
        PANICS.load(Ordering::Relaxed),
        ABORTED.load(Ordering::Relaxed),
        arrived.len(),
    );
    assert!(
        PANICS.load(Ordering::Relaxed) > 0 && ABORTED.load(Ordering::Relaxed) > 0,
        "faults were injected"
    );
    // The thread that ran the root is back to its own, empty context.
    assert!(Context::current().is_empty());
}
