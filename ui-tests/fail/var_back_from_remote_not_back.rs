use contextvars::ContextVar;

// The builder form of `#[context_var(back = false, back_from_remote = true)]`: a value sent
// back would never land.
static CACHE_HIT: ContextVar<bool> =
    ContextVar::new("CACHE_HIT", || false).baggage("cache.hit").back(false).back_from_remote(true);

fn main() {
    let _ = CACHE_HIT.get();
}
