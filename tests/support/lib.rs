//! Test support for Warren's integration and end-to-end tests.
//!
//! Every [`TestEnv`] has its own PostgreSQL database and its own AMQP
//! namespace, so tests run in parallel against the one real RabbitMQ and
//! PostgreSQL without seeing each other. Coordinators and workers run either
//! in-process (through the same `serve`/`run` entry points the binaries use)
//! or as real processes of the built binaries.

mod api;
mod cli;
mod counted;
mod dispatch;
mod env;
mod events;
mod ledger;
mod metrics;
mod net;
mod processes;
mod proxy;
mod raw_api;
mod tap;
mod wait;
mod workflows;

pub use api::ApiResponse;
pub use cli::Cli;
pub use counted::counted_registry;
pub use dispatch::dispatched_by_hand;
pub use env::{TestEnv, TEST_TOKEN};
pub use events::{
    event_rows, read_n, read_stream_until, read_until, row_of, EventRow, EventsTap, TappedMessage,
};
pub use ledger::{Figures, Ledger};
pub use metrics::metric_value;
pub use net::free_port;
pub use processes::{binary, ChildGuard};
pub use proxy::Proxy;
pub use raw_api::{api_call, TEST_READ_TOKEN};
pub use tap::{RawMessage, Tap};
pub use wait::{eventually, wait_consumed, wait_healthy, DEADLINE};
pub use workflows::{api_json, step, submit_workflow, wait_workflow, workflow_view};
