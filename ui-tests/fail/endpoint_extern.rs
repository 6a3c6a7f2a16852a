use contextvars::sync_endpoint;

#[sync_endpoint]
extern "C" fn size(id: u32) -> u32 {
    id
}

async fn caller() -> u32 {
    size(1).await
}

fn main() {
    drop(caller());
}
