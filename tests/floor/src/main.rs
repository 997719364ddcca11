//! The floor `make bench` measures the functions against: a bare
//! `lambda_runtime` echo, with the functions' runtime (Tokio's current-thread
//! scheduler), release profile and link. Whatever a function's init takes
//! beyond this one's is the function's own.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<Value, Error>(event.payload) })).await
}
