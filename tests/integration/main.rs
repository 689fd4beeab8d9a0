//! Integration tests against the real RabbitMQ and PostgreSQL. Each test has
//! its own database and AMQP namespace, so they run in parallel.

mod cancel;
mod chaos;
mod coordinators;
mod deploy;
mod e2e;
mod event_stream;
mod events;
mod lifecycle;
mod metrics;
mod poison;
mod rescue;
mod restarts;
mod retries;
