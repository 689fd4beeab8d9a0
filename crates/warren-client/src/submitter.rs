//! Submitting jobs over AMQP: one `Submit` envelope per batch (or several for
//! big batches) published to `<ns>.submit`, each awaited until the broker
//! confirms it.
//!
//! A confirm means the broker holds the message durably; the coordinator
//! inserts the jobs shortly after (intake is asynchronous), so a job may not
//! be visible over HTTP for a moment. Ids are chosen here, which makes a
//! re-submission of the same specs after an error harmless.

use uuid::Uuid;
use warren_broker::{redact_url, BrokerConfig, Publisher, Session, SUBMIT_ROUTING_KEY};
use warren_core::protocol::{encode, JobSpec, SubmitEnvelope, WorkflowSource, WorkflowSubmission};

use crate::batch::{encode_envelopes, MAX_ENVELOPE_BYTES, MAX_JOBS_PER_ENVELOPE};
use crate::error::ClientError;

/// A connection to the broker with a confirm-mode publisher on the namespace's
/// submit exchange.
#[derive(Debug)]
pub struct Submitter {
    session: Session,
    publisher: Publisher,
    exchange: String,
}

impl Submitter {
    /// Connects to `amqp_url` (a single attempt), declares the namespace's
    /// core topology (so the submit exchange and queue exist even before a
    /// coordinator ever ran) and opens a confirm-mode publisher.
    pub async fn connect(amqp_url: &str, namespace: &str) -> Result<Submitter, ClientError> {
        Self::connect_with(BrokerConfig::new(amqp_url, namespace)).await
    }

    /// Like [`Submitter::connect`] with full broker settings (e.g. a classic
    /// queue type, which must match the coordinator's).
    pub async fn connect_with(config: BrokerConfig) -> Result<Submitter, ClientError> {
        config.validate()?;
        let session =
            Session::connect(&config)
                .await
                .map_err(|source| ClientError::BrokerConnect {
                    url: redact_url(&config.url),
                    source,
                })?;
        session.declare_core().await?;
        let publisher = session.publisher().await?;
        let exchange = session.names().submit_exchange();
        Ok(Submitter {
            session,
            publisher,
            exchange,
        })
    }

    /// Submits one job; returns its id once the broker confirmed it.
    pub async fn submit(&self, spec: JobSpec) -> Result<Uuid, ClientError> {
        let id = spec.id;
        self.submit_batch(vec![spec]).await?;
        Ok(id)
    }

    /// Submits many jobs, in order, and returns their ids once every envelope
    /// is confirmed. Every spec is validated first; an invalid one fails the
    /// whole call before anything is published.
    ///
    /// Batches over [`MAX_JOBS_PER_ENVELOPE`] jobs or [`MAX_ENVELOPE_BYTES`]
    /// bytes go out as several envelopes with pipelined confirms. On an error
    /// some envelopes may have been taken: submitting the same specs again is
    /// safe (the ids deduplicate them).
    pub async fn submit_batch(&self, specs: Vec<JobSpec>) -> Result<Vec<Uuid>, ClientError> {
        for spec in &specs {
            spec.validate()?;
        }
        let envelopes = encode_envelopes(&specs, MAX_JOBS_PER_ENVELOPE, MAX_ENVELOPE_BYTES)?;
        match envelopes.as_slice() {
            [] => {}
            [only] => {
                self.publisher
                    .publish_confirmed(&self.exchange, SUBMIT_ROUTING_KEY, only)
                    .await?;
            }
            _ => {
                let items: Vec<(String, Vec<u8>)> = envelopes
                    .into_iter()
                    .map(|body| (SUBMIT_ROUTING_KEY.to_owned(), body))
                    .collect();
                let results = self.publisher.publish_batch(&self.exchange, &items).await;
                results.into_iter().collect::<Result<Vec<()>, _>>()?;
            }
        }
        Ok(specs.iter().map(|spec| spec.id).collect())
    }

    /// Submits workflows (definitions or stored templates with variables),
    /// one envelope each, and returns their ids once every envelope is
    /// confirmed. A submission without an id gets a fresh one; definitions
    /// are validated first (an invalid one fails the call before anything
    /// is published). Templates are instantiated by the coordinator, which
    /// dead-letters a submission with bad variables: use
    /// [`crate::ApiClient::submit_workflow`] to get that error back.
    pub async fn submit_workflows(
        &self,
        mut workflows: Vec<WorkflowSubmission>,
    ) -> Result<Vec<Uuid>, ClientError> {
        let mut ids = Vec::with_capacity(workflows.len());
        let mut items = Vec::with_capacity(workflows.len());
        for workflow in &mut workflows {
            let id = *workflow.id.get_or_insert_with(warren_core::new_job_id);
            if let WorkflowSource::Spec(spec) = &workflow.source {
                spec.validate()
                    .map_err(|e| ClientError::InvalidWorkflow(e.to_string()))?;
            }
            let body = encode(&SubmitEnvelope::with_workflows(vec![workflow.clone()]));
            if body.len() > MAX_ENVELOPE_BYTES {
                return Err(ClientError::TooLarge {
                    id,
                    size: body.len(),
                    limit: MAX_ENVELOPE_BYTES,
                });
            }
            ids.push(id);
            items.push((SUBMIT_ROUTING_KEY.to_owned(), body));
        }
        let results = self.publisher.publish_batch(&self.exchange, &items).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(ids)
    }

    /// Closes the connection (errors on an already broken one are ignored).
    pub async fn close(self) {
        self.session.close().await;
    }
}
