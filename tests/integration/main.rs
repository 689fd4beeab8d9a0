//! Integration tests against the real RabbitMQ and PostgreSQL. Each test has
//! its own database and AMQP namespace, so they run in parallel.

mod approval;
mod auth;
mod bench;
mod cancel;
mod cleanup;
mod cli_json;
mod coordinators;
mod dashboard;
mod deploy;
mod e2e;
mod event_stream;
mod events;
mod hand_back;
mod intake_failure;
mod lifecycle;
mod listing;
mod metrics;
mod progress;
mod queue_cli;
mod queue_limits;
mod queues_api;
mod redelivery;
mod rescue;
mod restarts;
mod retries;
mod stats;
mod task_batches;
mod unconfirmed;
mod unroutable;
mod workflow_cli;
mod workflow_control;
mod workflow_events;
mod workflow_example;
mod workflow_restart;
mod workflows;
