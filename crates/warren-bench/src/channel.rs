//! How a submitter hands its envelopes to the deployment: published to the
//! submit queue over AMQP (accepted once the broker confirms them), or
//! posted to `POST /v1/jobs` (accepted once the coordinator committed them).

use uuid::Uuid;
use warren_client::{ApiClient, ClientError, Submitter};
use warren_core::protocol::JobSpec;

/// One submitter's connection.
pub enum Channel {
    /// A broker connection publishing to `<ns>.submit`.
    Amqp(Box<Submitter>),
    /// An HTTP client of one coordinator's API.
    Http(ApiClient),
}

impl Channel {
    /// Submits one envelope of `specs`; returns their ids once accepted.
    pub(crate) async fn submit_batch(&self, specs: Vec<JobSpec>) -> Result<Vec<Uuid>, ClientError> {
        match self {
            Channel::Amqp(submitter) => submitter.submit_batch(specs).await,
            Channel::Http(api) => Ok(api.submit_http(specs).await?.ids),
        }
    }

    /// Closes the connection, if it has one to close.
    pub(crate) async fn close(self) {
        if let Channel::Amqp(submitter) = self {
            submitter.close().await;
        }
    }
}
