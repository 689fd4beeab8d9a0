//! Disruptive tests (restarting RabbitMQ or PostgreSQL). Run one at a time:
//! `cargo test -p warren-tests --test faults -- --test-threads=1`.

mod restarts;
