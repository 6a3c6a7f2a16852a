// After a mistake in a `#[sync_endpoint]`, the function is still async: its callers, which
// `.await` it, get no second error.
use contextvars::sync_endpoint;

#[sync_endpoint]
fn greet(name: &str) -> usize {
    name.len()
}

struct Service;

impl Service {
    #[sync_endpoint]
    const fn size(&self) -> usize {
        1
    }
}

async fn caller() -> usize {
    greet("ada").await + Service.size().await
}

fn main() {
    drop(caller());
}
