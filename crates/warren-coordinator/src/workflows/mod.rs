//! The workflow engine's loop and what intake and the API share about
//! workflows: turning a submission into a concrete, validated workflow
//! ([`prepare`]) and the progress view of one ([`progress`]).
//!
//! The loop needs PostgreSQL only. It takes workflows with pending wakeups
//! (written in the same transaction as the step transition that calls for
//! them, so nothing is lost when a coordinator dies) and evaluates each in
//! its own transaction (`warren_store::Store::evaluate_workflow`), which
//! locks the workflow with `SKIP LOCKED`: any number of coordinators may run
//! the loop, and never evaluate one workflow twice at once. It runs when
//! woken (a report batch, a submission, an operator's action) and otherwise
//! every `WARREN_POLL_INTERVAL`.

mod engine;
mod prepare;
pub(crate) mod progress;

pub(crate) use engine::run;
pub(crate) use prepare::prepare;
