//! The fault-injection suite: real binaries as processes against the real
//! RabbitMQ and PostgreSQL, each fault checked against an execution ledger
//! ([`warren_tests::Ledger::check`]), each test printing its figures. Some
//! restart the machine's RabbitMQ or PostgreSQL, and several are timing
//! sensitive, so they run one at a time: `make test-faults`, or
//! `cargo test -p warren-tests --test faults -- --test-threads=1 --show-output`.

mod drain;
mod http_kills;
mod kills;
mod poison;
mod reports;
mod restarts;
