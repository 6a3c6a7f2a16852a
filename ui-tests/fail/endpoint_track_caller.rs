use contextvars::sync_endpoint;

#[track_caller]
#[sync_endpoint]
fn size(id: u32) -> u32 {
    id
}

async fn caller() -> u32 {
    size(1).await
}

fn main() {
    drop(caller());
}
