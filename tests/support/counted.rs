//! A handler that counts its runs, for tests of how often a job executes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use warren_worker::{HandlerError, Registry};

/// The built-in handlers plus `counted`, which counts each run as it
/// starts, then sleeps `run` and returns `"ran"`; with the count.
pub fn counted_registry(run: Duration) -> (Registry, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::with_builtins();
    let counted = runs.clone();
    registry.register("counted", move |_ctx, _payload| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(run).await;
            Ok::<_, HandlerError>(json!("ran"))
        }
    });
    (registry, runs)
}
