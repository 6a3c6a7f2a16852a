// A syntax error in a default of `context_vars!` is reported once.
contextvars::context_vars! {
    static LIMIT: u32 = 10 *;
    static NAME: &str = "name";
}

fn main() {
    let _ = (LIMIT.get(), NAME.get());
}
