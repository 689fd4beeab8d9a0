//! Every exchange and queue name, derived from the namespace in one place.
//!
//! Producers and consumers in other crates never format names themselves; they
//! ask [`Names`], so a rename here renames it everywhere.

use lapin::types::ShortString;

use crate::error::BrokerError;

/// Routing key of submissions on the submit exchange.
pub const SUBMIT_ROUTING_KEY: &str = "submit";
/// Routing key of worker reports on the reports exchange.
pub const REPORT_ROUTING_KEY: &str = "report";

/// Names of all exchanges and queues of one namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Names {
    ns: String,
}

impl Names {
    /// Names for namespace `ns`.
    pub fn new(ns: impl Into<String>) -> Self {
        Names { ns: ns.into() }
    }

    /// The namespace itself.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    fn with(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.ns)
    }

    /// `<ns>.submit`: direct exchange clients publish submissions to.
    pub fn submit_exchange(&self) -> String {
        self.with("submit")
    }

    /// `<ns>.submit`: queue the coordinator consumes submissions from, bound
    /// with [`SUBMIT_ROUTING_KEY`].
    pub fn submit_queue(&self) -> String {
        self.with("submit")
    }

    /// `<ns>.tasks`: direct exchange of dispatched jobs; routing key = job queue name.
    pub fn tasks_exchange(&self) -> String {
        self.with("tasks")
    }

    /// `<ns>.q.<queue>`: the task queue workers of job queue `queue` consume.
    pub fn task_queue(&self, queue: &str) -> String {
        self.with(&format!("q.{queue}"))
    }

    /// `<ns>.reports`: direct exchange workers publish reports to, with
    /// [`REPORT_ROUTING_KEY`].
    pub fn reports_exchange(&self) -> String {
        self.with("reports")
    }

    /// `<ns>.reports`: queue the coordinator consumes reports from.
    pub fn reports_queue(&self) -> String {
        self.with("reports")
    }

    /// `<ns>.dead`: fanout dead-letter exchange of every queue of the namespace.
    pub fn dead_exchange(&self) -> String {
        self.with("dead")
    }

    /// `<ns>.dead`: durable queue holding dead-lettered (rejected, poison or
    /// over-delivered) messages.
    pub fn dead_queue(&self) -> String {
        self.with("dead")
    }

    /// `<ns>.ctl.<worker_id>`: a worker's exclusive control queue (cancel requests).
    pub fn control_queue(&self, worker_id: &str) -> String {
        self.with(&format!("ctl.{worker_id}"))
    }

    /// `<ns>.events`: topic exchange for job events.
    pub fn events_exchange(&self) -> String {
        self.with("events")
    }
}

/// Converts a name to an AMQP short string, refusing (instead of panicking on)
/// names longer than 255 bytes.
pub(crate) fn short(name: &str) -> Result<ShortString, BrokerError> {
    ShortString::try_new(name).map_err(|_| BrokerError::NameTooLong(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let n = Names::new("ns");
        assert_eq!(n.submit_exchange(), "ns.submit");
        assert_eq!(n.submit_queue(), "ns.submit");
        assert_eq!(n.tasks_exchange(), "ns.tasks");
        assert_eq!(n.task_queue("emails"), "ns.q.emails");
        assert_eq!(n.reports_exchange(), "ns.reports");
        assert_eq!(n.reports_queue(), "ns.reports");
        assert_eq!(n.dead_exchange(), "ns.dead");
        assert_eq!(n.dead_queue(), "ns.dead");
        assert_eq!(n.control_queue("w1"), "ns.ctl.w1");
        assert_eq!(n.events_exchange(), "ns.events");
    }

    #[test]
    fn overlong_names_are_an_error_not_a_panic() {
        assert!(short("ok").is_ok());
        assert!(matches!(
            short(&"x".repeat(256)),
            Err(BrokerError::NameTooLong(_))
        ));
    }
}
