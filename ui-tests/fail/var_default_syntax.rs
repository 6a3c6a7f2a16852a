// A syntax error in the default is reported once, by the compiler, as without the attribute.
use contextvars::context_var;

#[context_var]
static LIMIT: u32 = 10 +;

fn main() {
    let _ = LIMIT.get();
}
