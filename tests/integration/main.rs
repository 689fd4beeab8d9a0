//! Integration tests against the real RabbitMQ and PostgreSQL. Each test has
//! its own database and AMQP namespace, so they run in parallel.

mod approval;
mod cancel;
mod chaos;
mod cleanup;
mod cli_json;
mod coordinators;
mod dashboard;
mod deploy;
mod e2e;
mod lifecycle;
mod listing;
mod metrics;
mod poison;
mod rescue;
mod retries;
mod stats;
