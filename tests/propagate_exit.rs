//! The exit of a `#[propagate(back)]` function at its edges: bodies that enter other
//! contexts, panic, hold tokens, write past the list of recent writes; marks past the inline
//! few; identities across threads.

use std::panic::{AssertUnwindSafe, catch_unwind};

use contextvars::{AnyVar, Context, ContextVar, propagate_back};

static A: ContextVar<u32> = ContextVar::new("A", || 0);
static B: ContextVar<u32> = ContextVar::new("B", || 0);
static V: [ContextVar<u32>; 12] = [const { ContextVar::new("V", || 0) }; 12];

fn sum(base: &u32, parent: &u32, child: &u32) -> u32 {
    parent + child - base
}
static S: ContextVar<u32> = ContextVar::new("S", || 0).merge(sum);

#[test]
fn body_entering_other_contexts() {
    let mut other = Context::new();
    propagate_back(None, || {
        A.set(1);
        other.run(|| {
            A.set(2);
            B.set(2);
        });
        propagate_back(None, || B.set(5));
        Context::current().run(|| A.set(9));
        assert_eq!((A.get(), B.get()), (1, 5));
    });
    assert_eq!((A.get(), B.get()), (1, 5));
    assert_eq!(other.get(&A), 2);
}

#[test]
fn panic_after_set_lands_nothing_and_tokens_reset() {
    let token = A.set(3);
    let r = catch_unwind(AssertUnwindSafe(|| {
        propagate_back(None, || {
            A.set(4);
            B.set(4);
            for v in &V {
                v.set(1);
            }
            panic!("boom");
        })
    }));
    assert!(r.is_err());
    assert_eq!((A.get(), B.get(), V[11].get()), (3, 0, 0));
    A.reset(token).unwrap();
    assert_eq!(A.get(), 0);
}

#[test]
fn resetting_callers_token_inside_is_refused() {
    let token = A.set(3);
    propagate_back(None, || {
        A.set(4);
        // The caller's token belongs to the caller's context, not the copy.
        assert!(A.reset(token).is_err());
    });
    assert_eq!(A.get(), 4);
}

#[test]
fn callers_token_resets_after_many_writes() {
    for n in [0usize, 1, 4, 5, 7, 8, 9, 12] {
        let _snap = Context::current();
        let token = A.set(3);
        propagate_back(None, || {
            for v in &V[..n] {
                v.set(7);
            }
            A.set(4);
        });
        for v in &V[..n] {
            assert_eq!(v.get(), 7, "n = {n}");
        }
        assert_eq!(A.get(), 4);
        A.reset(token).unwrap();
        assert_eq!(A.get(), 0, "n = {n}");
        for v in &V[..n] {
            v.set(0);
        }
    }
}

#[test]
fn writes_at_and_past_the_list_boundary_with_a_snapshot() {
    for n in 1..=12usize {
        for pre in 0..=9usize {
            let mut ctx = Context::new();
            ctx.run(|| {
                for v in &V[..pre.min(12)] {
                    v.set(1);
                }
                let snap = Context::current();
                S.set(10);
                propagate_back(None, || {
                    for v in &V[..n] {
                        v.set(v.get() + 100);
                    }
                    S.set(S.get() + 1);
                });
                for (i, v) in V.iter().enumerate() {
                    let want = if i < n { 100 } else { 0 } + if i < pre { 1 } else { 0 };
                    assert_eq!(v.get(), want, "n = {n}, pre = {pre}, i = {i}");
                }
                assert_eq!(S.get(), 11);
                for (i, v) in V.iter().enumerate() {
                    assert_eq!(snap.get(v), if i < pre { 1 } else { 0 });
                }
            });
        }
    }
}

struct SetsOnDrop(u32);
impl Clone for SetsOnDrop {
    fn clone(&self) -> Self {
        SetsOnDrop(self.0)
    }
}
static DROPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
impl Drop for SetsOnDrop {
    fn drop(&mut self) {
        if self.0 == 99 {
            DROPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        B.set(B.get() + 1);
    }
}
static D: ContextVar<Option<std::sync::Arc<SetsOnDrop>>> = ContextVar::new("D", || None);

#[test]
fn a_drop_that_sets_during_the_exit() {
    let mut ctx = Context::new();
    ctx.run(|| {
        D.set(Some(std::sync::Arc::new(SetsOnDrop(1))));
        propagate_back(None, || {
            D.set(Some(std::sync::Arc::new(SetsOnDrop(2))));
        });
        assert_eq!(D.get().unwrap().0, 2);
        // The value the write shadowed may stay until the key is written again.
        assert!(B.get() <= 1);
        D.set(None);
    });
}

#[test]
fn a_drop_that_sets_during_a_panicking_exit() {
    let mut ctx = Context::new();
    ctx.run(|| {
        let r = catch_unwind(AssertUnwindSafe(|| {
            propagate_back(None, || {
                D.set(Some(std::sync::Arc::new(SetsOnDrop(99))));
                panic!("boom");
            })
        }));
        assert!(r.is_err());
        assert!(D.get().is_none());
        // The value the body set was dropped, and what its `Drop` set did not land either.
        assert!(DROPS.load(std::sync::atomic::Ordering::Relaxed) >= 1);
        assert_eq!(B.get(), 0);
    });
}

static ONLY_A: [&dyn AnyVar; 1] = [&A];

#[test]
fn listed_vars_with_many_writes() {
    let mut ctx = Context::new();
    ctx.run(|| {
        propagate_back(Some(&ONLY_A), || {
            for v in &V {
                v.set(5);
            }
            A.set(1);
        });
        assert_eq!(A.get(), 1);
        assert!(V.iter().all(|v| v.get() == 0));
    });
}

/// Sets five variables (more than the inline marks) in a propagate(back) function.
fn mark_five(n: u32) {
    propagate_back(None, || {
        for v in &V[..5] {
            v.set(n);
        }
    })
}

#[tokio::test]
async fn marks_past_the_inline_four_flow_up_a_chain_of_plain_awaits() {
    contextvars::spawn(async {
        contextvars::spawn(async {
            contextvars::spawn(async {
                mark_five(7);
                tokio::task::yield_now().await;
            })
            .await
            .unwrap();
            assert!(V[..5].iter().all(|v| v.get() == 7));
        })
        .await
        .unwrap();
        assert!(V[..5].iter().all(|v| v.get() == 7));
    })
    .await
    .unwrap();
    assert!(V[..5].iter().all(|v| v.get() == 7));
    // A fresh spawn starts with no marks: its plain await delivers nothing it did not mark.
    contextvars::spawn(async {
        V[0].set(1);
    })
    .await
    .unwrap();
    assert_eq!(V[0].get(), 7);
}

#[tokio::test]
async fn joinset_with_marks() {
    let mut set = contextvars::JoinSet::new();
    for i in 1..=3u32 {
        set.spawn(async move {
            propagate_back(None, || S.set(S.get() + i));
            for v in &V[..6] {
                propagate_back(None, || v.set(i));
            }
        });
    }
    while set.join_next().await.is_some() {}
    assert_eq!(S.get(), 6);
    assert!((1..=3).contains(&V[5].get()));
}

#[tokio::test]
async fn merge_back_with_marks_then_plain_await() {
    contextvars::spawn(async {
        contextvars::spawn(async { mark_five(3) }).merge_back().await.unwrap();
        assert_eq!(V[4].get(), 3);
    })
    .await
    .unwrap();
    // merge_back marks what it received, so it flows on up through the plain await.
    assert_eq!(V[4].get(), 3);
}

#[test]
fn tokens_against_contexts_made_on_other_threads() {
    // Both threads exhaust several blocks of identities; no token may reset elsewhere.
    let make = || {
        std::thread::spawn(|| {
            let mut out = Vec::new();
            for i in 0..3000u32 {
                let mut ctx = Context::new();
                let token = ctx.run(|| A.set(i));
                out.push((ctx, token));
            }
            out
        })
    };
    let (a, b) = (make(), make());
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let mut refused = 0;
    for ((mut ctx_a, tok_a), (mut ctx_b, tok_b)) in a.into_iter().zip(b) {
        refused += usize::from(ctx_b.run(|| A.reset(tok_a)).is_err());
        refused += usize::from(ctx_a.run(|| A.reset(tok_b)).is_err());
    }
    assert_eq!(refused, 6000);
}

#[test]
fn a_cloned_context_on_another_thread_refuses_the_original_token() {
    let mut ctx = Context::new();
    let token = ctx.run(|| A.set(1));
    let clone = ctx.clone();
    let (mut clone, token) = std::thread::spawn(move || {
        let mut clone = clone;
        clone.run(|| A.set(2));
        (clone, token)
    })
    .join()
    .unwrap();
    assert!(clone.run(|| A.reset(token)).is_err());
    let token = ctx.run(|| A.set(5));
    let mut moved = std::thread::spawn(move || {
        let mut other = Context::new();
        other.run(|| A.set(9));
        assert!(other.run(|| A.reset(token)).is_err());
        other
    })
    .join()
    .unwrap();
    assert_eq!(moved.run(|| A.get()), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_sync_body_that_block_ons_inside_spawn_blocking() {
    contextvars::spawn_blocking(|| {
        let token = A.set(1);
        propagate_back(None, || {
            contextvars::block_on(async {
                B.set(2);
                contextvars::spawn(async { mark_five(4) }).await.unwrap();
            });
            // A Scope polled here runs in its own context: nothing of it lands.
            contextvars::block_on(Context::new().scope(async { A.set(9) }));
            S.set(1);
        });
        assert_eq!((A.get(), B.get(), S.get(), V[4].get()), (1, 2, 1, 4));
        A.reset(token).unwrap();
    })
    .await
    .unwrap();
    // Everything the body changed was marked by its exit: the plain await delivers it.
    assert_eq!((A.get(), B.get(), S.get(), V[4].get()), (0, 2, 1, 4));
}

#[test]
fn a_nested_panic_caught_inside_the_body() {
    let mut ctx = Context::new();
    ctx.run(|| {
        propagate_back(None, || {
            let token = A.set(1);
            let caught = catch_unwind(AssertUnwindSafe(|| {
                propagate_back(None, || {
                    B.set(1);
                    panic!("inner");
                })
            }));
            assert!(caught.is_err());
            assert_eq!(B.get(), 0);
            propagate_back(None, || B.set(2));
            A.reset(token).unwrap();
        });
        assert_eq!((A.get(), B.get()), (0, 2));
    });
}

#[tokio::test]
async fn async_bodies_joined_with_sync_ones_inside() {
    async fn hit(n: u32) {
        contextvars::propagate_back_async(None, async move {
            tokio::task::yield_now().await;
            propagate_back(None, || S.set(S.get() + n));
            for v in &V[..6] {
                propagate_back(None, || v.set(v.get() + n));
            }
            tokio::task::yield_now().await;
        })
        .await
    }
    let token = S.set(100);
    tokio::join!(hit(1), hit(2), hit(3));
    assert_eq!(S.get(), 106);
    S.reset(token).unwrap();
    assert_eq!(S.get(), 0);
}

#[test]
fn root_contexts_of_two_threads_have_their_own_identities() {
    let token = std::thread::spawn(|| A.set(1)).join().unwrap();
    let refused = std::thread::spawn(move || {
        A.set(2);
        A.reset(token).is_err()
    })
    .join()
    .unwrap();
    assert!(refused);
}

#[test]
fn a_context_moved_to_another_thread_keeps_its_identity() {
    let mut ctx = Context::new();
    let token = ctx.run(|| A.set(1));
    let ctx = std::thread::spawn(move || {
        let mut ctx = ctx;
        // Exhaust this thread's first block: new identities may not reach the moved one.
        for _ in 0..2000 {
            Context::new().run(|| A.set(0));
        }
        ctx.run(|| A.reset(token)).unwrap();
        ctx
    })
    .join()
    .unwrap();
    assert_eq!(ctx.get(&A), 0);
}

#[test]
fn a_token_made_inside_and_taken_out_is_refused_in_the_caller() {
    let mut ctx = Context::new();
    ctx.run(|| {
        let mut inner = None;
        propagate_back(None, || inner = Some(A.set(1)));
        assert_eq!(A.get(), 1);
        assert!(A.reset(inner.unwrap()).is_err());
        assert_eq!(A.get(), 1);
    });
}

static NOBACK: ContextVar<u32> = ContextVar::new("NOBACK", || 0).back(false);
static LOCAL: ContextVar<u32> = ContextVar::new("LOCAL", || 0).inherit(false);

#[test]
fn every_caller_shape_and_body_shape_lands_what_it_should() {
    for pre in 0..=10usize {
        for keep_snapshot in [false, true] {
            for n in 0..=10usize {
                for extra in 0..4 {
                    let mut ctx = Context::new();
                    ctx.run(|| {
                        let snap = Context::current();
                        for v in &V[..pre] {
                            v.set(1);
                        }
                        let token = A.set(1);
                        if !keep_snapshot {
                            drop(snap);
                        }
                        propagate_back(None, || {
                            for v in &V[..n] {
                                v.set(v.get() + 10);
                            }
                            match extra {
                                1 => drop(NOBACK.set(5)),
                                2 => drop(LOCAL.set(5)),
                                3 => {
                                    let t = A.set(7);
                                    A.reset(t).unwrap();
                                }
                                _ => {}
                            }
                        });
                        let what = format!("pre {pre} keep {keep_snapshot} n {n} extra {extra}");
                        for (i, v) in V.iter().enumerate() {
                            let want = u32::from(i < pre) + if i < n { 10 } else { 0 };
                            assert_eq!(v.get(), want, "{what} i {i}");
                        }
                        assert_eq!(NOBACK.get(), 0, "{what}");
                        assert_eq!(LOCAL.get(), if extra == 2 { 5 } else { 0 }, "{what}");
                        A.reset(token).unwrap();
                        assert_eq!(A.get(), 0, "{what}");
                    });
                }
            }
        }
    }
}

#[tokio::test]
async fn an_inherit_false_variable_put_back_delivers_nothing_with_marks_in_nodes() {
    LOCAL.set(3);
    contextvars::spawn(async {
        assert_eq!(LOCAL.get(), 0);
        let token = LOCAL.set(5);
        mark_five(2);
        propagate_back(None, || LOCAL.set(6));
        contextvars::spawn(async { mark_five(8) }).await.unwrap();
        LOCAL.reset(token).unwrap();
    })
    .await
    .unwrap();
    assert_eq!(LOCAL.get(), 3);
    assert!(V[..5].iter().all(|v| v.get() == 8));
}
