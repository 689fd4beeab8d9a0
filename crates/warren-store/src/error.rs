//! The store's error type. Database text is kept for logs but the variants
//! let callers (the HTTP API) answer with the right status without leaking it.

use uuid::Uuid;
use warren_core::IllegalTransition;

/// Everything a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No job with this id.
    #[error("job {0} not found")]
    NotFound(Uuid),
    /// The requested move is not allowed from the job's current state.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The database failed (connection lost, constraint, ...).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The configuration is unusable (bad URL, ...).
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// The workflow's status does not allow the requested move.
    #[error(transparent)]
    IllegalWorkflowTransition(#[from] warren_core::workflow::IllegalWorkflowTransition),
    /// Something other than a job does not exist (a workflow, a step, a
    /// template); the message names it.
    #[error("{0}")]
    Missing(String),
    /// The request contradicts the current state of a workflow or template
    /// (an illegal workflow transition, recovery attempts exhausted, a
    /// template version that is not newer); the message says which.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is invalid (e.g. names a step the workflow lacks).
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// True when retrying later may succeed: connection loss, a restarting
    /// server, deadlocks, exhausted resources. Errors caused by the data itself
    /// (bad values, constraint or lifecycle violations) are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                let class = e.code().map(|c| c.chars().take(2).collect::<String>());
                !matches!(class.as_deref(), Some("22" | "23" | "42" | "P0" | "2B"))
            }
            StoreError::Database(
                sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::Decode(_)
                | sqlx::Error::Encode(_)
                | sqlx::Error::TypeNotFound { .. }
                | sqlx::Error::ColumnNotFound(_)
                | sqlx::Error::ColumnIndexOutOfBounds { .. }
                | sqlx::Error::RowNotFound
                | sqlx::Error::Configuration(_),
            ) => false,
            StoreError::Database(_) | StoreError::Migrate(_) => true,
            StoreError::NotFound(_)
            | StoreError::IllegalTransition(_)
            | StoreError::Config(_)
            | StoreError::IllegalWorkflowTransition(_)
            | StoreError::Missing(_)
            | StoreError::Conflict(_)
            | StoreError::Invalid(_) => false,
        }
    }
}
