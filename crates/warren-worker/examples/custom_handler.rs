//! A worker with your own task type, next to the built-in ones.
//!
//! ```sh
//! WARREN_NAMESPACE=warren cargo run -p warren-worker --example custom_handler
//! warren submit --queue reports --type word_count --payload '{"text": "to be or not to be"}' --wait
//! ```
//!
//! The handler reports progress, saves a checkpoint a retried attempt would
//! resume from, honours cancellation, and classifies its errors so the
//! coordinator knows whether to retry. The end-to-end tests run this example.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use warren_broker::BrokerConfig;
use warren_worker::{run, HandlerError, JobContext, Registry, WorkerConfig};

/// Counts words, one line at a time, checkpointing as it goes.
async fn word_count(
    ctx: JobContext,
    payload: serde_json::Value,
) -> Result<serde_json::Value, HandlerError> {
    let text = payload["text"]
        .as_str()
        .ok_or_else(|| HandlerError::fatal("payload.text must be a string"))?;
    let lines: Vec<&str> = text.lines().collect();
    // Resume from an earlier attempt's checkpoint, if any.
    let start = ctx
        .checkpoint()
        .and_then(|c| c["line"].as_u64())
        .unwrap_or(0) as usize;
    let mut counts: BTreeMap<String, u64> = ctx
        .checkpoint()
        .and_then(|c| serde_json::from_value(c["counts"].clone()).ok())
        .unwrap_or_default();
    for (i, line) in lines.iter().enumerate().skip(start) {
        if ctx.is_cancelled() {
            return Err(HandlerError::retryable("cancelled"));
        }
        for word in line.split_whitespace() {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
        let done = i + 1;
        ctx.progress(
            100.0 * done as f32 / lines.len() as f32,
            format!("line {done}/{}", lines.len()),
        );
        ctx.save_checkpoint(json!({ "line": done, "counts": counts }));
    }
    if counts.is_empty() {
        // Nothing to count is not worth retrying.
        return Err(HandlerError::fatal("no words"));
    }
    Ok(json!({ "words": counts.values().sum::<u64>(), "counts": counts }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let env = |key: &str, default: &str| std::env::var(key).unwrap_or_else(|_| default.to_owned());
    let mut broker = BrokerConfig::new(
        env("WARREN_AMQP_URL", warren_broker::DEFAULT_AMQP_URL),
        env("WARREN_NAMESPACE", "warren"),
    );
    if let Ok(expires) = std::env::var("WARREN_QUEUE_EXPIRES") {
        broker.queue_expires = Some(warren_core::parse_duration(&expires)?);
    }
    let mut config = WorkerConfig::new(broker, vec![env("WARREN_QUEUES", "reports")]);
    config.heartbeat_interval = Duration::from_millis(500);

    let mut registry = Registry::with_builtins();
    registry.register("word_count", word_count);

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let on_term = shutdown.clone();
    tokio::spawn(async move {
        term.recv().await;
        on_term.cancel();
    });
    run(config, registry, shutdown).await?;
    Ok(())
}
