// A syntax error in the body is reported once, by the compiler, as without the attribute.
use contextvars::propagate;

#[propagate(back)]
fn authenticate() -> u32 {
    let id = ;
    id
}

#[propagate(none)]
async fn dry_run() -> u32 {
    1 +
}

fn main() {
    let _ = (authenticate(), dry_run());
}
