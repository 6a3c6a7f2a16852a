use contextvars::context_var;

#[context_var(baggage = "user id")]
static USER: Option<String>;

#[context_var(back_from_remote = true)]
static ROWS: u64;

fn main() {}
