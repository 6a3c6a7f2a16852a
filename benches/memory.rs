//! Memory per live task: 100,000 tasks parked at once, each with one change over a shared
//! 64-variable context, next to 100,000 plain `tokio::spawn` tasks.
//!
//! `cargo bench -p contextvars-benches --bench memory`
//!
//! Method: each variant runs in a fresh child process (so that one variant's freed memory,
//! kept by the allocator, does not hide the other's). It reads the resident set size
//! (`VmRSS` in `/proc/self/status`) after building the runtime and the parent context, then
//! again once every task has started and is parked; the difference, divided by the number
//! of tasks, is the cost of one live task. Linux only.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use contextvars::ContextVar;
use tokio::sync::{Notify, watch};

const TASKS: usize = 100_000;

static VARS: [ContextVar<u64>; 64] = [const { ContextVar::new("v", || 0) }; 64];

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Spawns `TASKS` tasks with `spawn_one`, waits until all are parked, returns the growth of
/// the resident set, then lets them finish.
async fn measure(spawn_one: impl Fn(usize, watch::Receiver<bool>, Arc<AtomicUsize>, Arc<Notify>)) -> usize {
    for (i, var) in VARS.iter().enumerate() {
        var.set(i as u64);
    }
    let (release, parked) = watch::channel(false);
    let started = Arc::new(AtomicUsize::new(0));
    let all_started = Arc::new(Notify::new());
    let before = rss_bytes();
    for i in 0..TASKS {
        spawn_one(i, parked.clone(), Arc::clone(&started), Arc::clone(&all_started));
    }
    while started.load(Ordering::SeqCst) < TASKS {
        all_started.notified().await;
    }
    let grown = rss_bytes().saturating_sub(before);
    release.send(true).unwrap();
    grown
}

/// Counts the task in, then waits for the release.
async fn park(mut parked: watch::Receiver<bool>, started: Arc<AtomicUsize>, all_started: Arc<Notify>) {
    if started.fetch_add(1, Ordering::SeqCst) + 1 == TASKS {
        all_started.notify_one();
    }
    let _ = parked.wait_for(|released| *released).await;
}

fn child(variant: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    // Every variant runs the same task body, so that only the context differs: whether it
    // changes a variable (`set`) or only reads one (`get`), and who spawned it.
    let grown = rt.block_on(async {
        match variant {
            "tokio" => {
                measure(|i, parked, started, all| {
                    tokio::spawn(async move {
                        black_box(VARS[i % 64].get());
                        park(parked, started, all).await;
                    });
                })
                .await
            }
            "contextvars-no-change" => {
                measure(|i, parked, started, all| {
                    contextvars::spawn(async move {
                        black_box(VARS[i % 64].get());
                        park(parked, started, all).await;
                    });
                })
                .await
            }
            _ => {
                measure(|i, parked, started, all| {
                    contextvars::spawn(async move {
                        black_box(VARS[i % 64].set(i as u64));
                        park(parked, started, all).await;
                    });
                })
                .await
            }
        }
    });
    println!("{grown}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--variant") {
        return child(&args[pos + 1]);
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let run = |variant: &str| -> usize {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--variant", variant])
            .output()
            .expect("run the measuring child");
        String::from_utf8(out.stdout).unwrap().trim().parse().expect("a byte count")
    };
    let tokio = run("tokio");
    let unchanged = run("contextvars-no-change");
    let ours = run("contextvars");
    let per = |bytes: usize| bytes as f64 / TASKS as f64;
    println!("memory/{TASKS} parked tasks, resident set growth per task:");
    println!("  tokio::spawn                      {:>8.0} B", per(tokio));
    println!("  contextvars::spawn, no change     {:>8.0} B", per(unchanged));
    println!("  contextvars::spawn + 1 change/64  {:>8.0} B", per(ours));
    println!("  difference                        {:>8.0} B", per(ours) - per(tokio));
}
