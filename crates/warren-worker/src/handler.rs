//! The handler contract: what a task implementation receives and returns,
//! and the registry mapping task types to handlers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use warren_core::protocol::RetryDecision;

use crate::context::JobContext;

/// Why a handler did not produce a result, and what should happen next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Transient: retry on the job's backoff schedule while attempts remain.
    #[error("{0}")]
    Retryable(String),
    /// Permanent: do not retry automatically.
    #[error("{0}")]
    Fatal(String),
    /// Transient, with an explicit delay before the next attempt.
    #[error("{message}")]
    RetryAfter {
        /// What went wrong.
        message: String,
        /// How long to wait before retrying.
        after: Duration,
    },
}

impl HandlerError {
    /// A transient failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    /// A permanent failure.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Fatal(message.into())
    }

    /// A transient failure with an explicit retry delay.
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        Self::RetryAfter {
            message: message.into(),
            after,
        }
    }

    /// The retry decision sent to the coordinator.
    pub fn decision(&self) -> RetryDecision {
        match self {
            Self::Retryable(_) => RetryDecision::Retryable,
            Self::Fatal(_) => RetryDecision::Fatal,
            Self::RetryAfter { after, .. } => RetryDecision::RetryAfter {
                ms: after.as_millis() as u64,
            },
        }
    }
}

/// What a handler returns.
pub type HandlerResult = Result<Value, HandlerError>;

/// The boxed future a registered handler produces.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;

/// A registered handler: called once per attempt with its context and payload.
pub type BoxedHandler = Arc<dyn Fn(JobContext, Value) -> HandlerFuture + Send + Sync>;

/// Maps task types to handlers.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, BoxedHandler>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the built-in task types (`echo`, `sleep`, `flaky`, `exec`).
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        crate::builtins::register_all(&mut registry);
        registry
    }

    /// Registers `handler` for `task_type`, replacing any earlier one.
    ///
    /// ```
    /// use warren_worker::{HandlerError, Registry};
    /// let mut registry = Registry::new();
    /// registry.register("double", |_ctx, payload| async move {
    ///     let n = payload["n"].as_i64().ok_or_else(|| HandlerError::fatal("n must be an integer"))?;
    ///     Ok(serde_json::json!({ "n": n * 2 }))
    /// });
    /// assert!(registry.get("double").is_some());
    /// ```
    pub fn register<F, Fut>(&mut self, task_type: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(JobContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let boxed: BoxedHandler = Arc::new(move |ctx, payload| Box::pin(handler(ctx, payload)));
        self.handlers.insert(task_type.into(), boxed);
        self
    }

    /// The handler for `task_type`, if any.
    pub fn get(&self, task_type: &str) -> Option<BoxedHandler> {
        self.handlers.get(task_type).cloned()
    }

    /// Registered task types, sorted.
    pub fn task_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.handlers.keys().cloned().collect();
        types.sort();
        types
    }
}
