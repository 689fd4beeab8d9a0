//! Integration tests against the real RabbitMQ and PostgreSQL. Each test has
//! its own database and AMQP namespace, so they run in parallel.

mod auth;
mod cancel;
mod chaos;
mod coordinators;
mod deploy;
mod e2e;
mod lifecycle;
mod metrics;
mod poison;
mod queue_cli;
mod queue_limits;
mod queues_api;
mod rescue;
mod retries;
