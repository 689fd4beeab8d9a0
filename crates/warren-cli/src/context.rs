//! What every command needs from the global options: an API client (with
//! the token checked up front) or an AMQP submitter, and the output mode.

use warren_client::{ApiClient, BrokerConfig, Submitter};

use crate::args::Global;
use crate::failure::CliError;

/// The global options of this invocation.
pub(crate) struct Context {
    global: Global,
}

impl Context {
    /// Wraps the parsed global options.
    pub(crate) fn new(global: Global) -> Context {
        Context { global }
    }

    /// Whether to print JSON.
    pub(crate) fn json(&self) -> bool {
        self.global.json
    }

    /// An API client for `/v1`; fails clearly when no token is configured.
    pub(crate) fn api(&self) -> Result<ApiClient, CliError> {
        let token = self
            .global
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CliError::general(
                    "no API token: set WARREN_API_TOKEN (or pass --token) to the coordinator's token",
                )
            })?;
        Ok(ApiClient::new(&self.global.api_url, token)?)
    }

    /// An API client for the open endpoints (`/health`); sends the token if any.
    pub(crate) fn open_api(&self) -> Result<ApiClient, CliError> {
        let token = self.global.token.clone().unwrap_or_default();
        Ok(ApiClient::new(&self.global.api_url, token)?)
    }

    /// The broker settings of the global options.
    pub(crate) fn broker(&self) -> BrokerConfig {
        let mut config = BrokerConfig::new(&self.global.amqp_url, &self.global.namespace);
        config.queue_type = self.global.queue_type;
        config.queue_expires = self.global.queue_expires;
        config
    }

    /// Connects a submitter to the broker.
    pub(crate) async fn submitter(&self) -> Result<Submitter, CliError> {
        Ok(Submitter::connect_with(self.broker()).await?)
    }
}
