use contextvars::context_var;

#[context_var(baggage = "user id")]
static USER: Option<String>;

#[context_var(back_from_remote = true)]
static ROWS: u64;

#[context_var(baggage = "cache.hit", back = false, back_from_remote = true)]
static CACHE_HIT: bool;

fn main() {}
