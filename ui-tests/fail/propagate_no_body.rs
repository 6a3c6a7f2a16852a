use contextvars::propagate;

trait Handler {
    #[propagate(back)]
    fn handle(&self);
}

fn main() {}
