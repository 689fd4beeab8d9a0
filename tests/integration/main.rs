//! Integration tests against the real RabbitMQ and PostgreSQL. Each test has
//! its own database and AMQP namespace, so they run in parallel.

mod cancel;
mod chaos;
mod coordinators;
mod deploy;
mod e2e;
mod lifecycle;
mod metrics;
mod poison;
mod rescue;
mod retries;
mod workflow_cli;
mod workflow_control;
mod workflow_example;
mod workflow_restart;
mod workflows;
