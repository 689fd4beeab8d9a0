//! Each queue's cap on tasks per task message: its own `task_batch` where
//! it sets one, else `WARREN_TASK_BATCH`. Read from the `queues` table by
//! the gauge refresh (every few seconds, so a change made through another
//! coordinator applies here within one refresh) and at once when this
//! coordinator's API changes it.

use std::collections::HashMap;
use std::sync::RwLock;

/// The queues that set their own `task_batch`, and the default for the rest.
#[derive(Debug)]
pub(crate) struct TaskBatches {
    default: usize,
    by_queue: RwLock<HashMap<String, usize>>,
}

impl TaskBatches {
    /// Every queue at `default` until [`TaskBatches::replace`] says otherwise.
    pub(crate) fn new(default: usize) -> Self {
        TaskBatches {
            default,
            by_queue: RwLock::new(HashMap::new()),
        }
    }

    /// The queues' own settings, replacing what was known.
    pub(crate) fn replace(&self, settings: impl IntoIterator<Item = (String, i32)>) {
        let fresh = settings
            .into_iter()
            .map(|(queue, batch)| (queue, cap(batch)))
            .collect();
        *self.by_queue.write().expect("task batches poisoned") = fresh;
    }

    /// One queue's setting changed (`None`: back to the default).
    pub(crate) fn set(&self, queue: &str, batch: Option<i32>) {
        let mut by_queue = self.by_queue.write().expect("task batches poisoned");
        match batch {
            Some(batch) => by_queue.insert(queue.to_owned(), cap(batch)),
            None => by_queue.remove(queue),
        };
    }

    /// Calls `f` with the cap of each queue.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&dyn Fn(&str) -> usize) -> T) -> T {
        let by_queue = self.by_queue.read().expect("task batches poisoned");
        f(&|queue| by_queue.get(queue).copied().unwrap_or(self.default))
    }
}

/// A stored `task_batch` as a cap (the column allows 1 to 1000).
fn cap(batch: i32) -> usize {
    batch.max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_s_own_setting_wins_until_it_is_cleared() {
        let batches = TaskBatches::new(16);
        batches.replace([("long".to_owned(), 1)]);
        assert_eq!(batches.with(|cap| (cap("long"), cap("other"))), (1, 16));
        batches.set("other", Some(64));
        batches.set("long", None);
        assert_eq!(batches.with(|cap| (cap("long"), cap("other"))), (16, 64));
        batches.replace([]);
        assert_eq!(batches.with(|cap| cap("other")), 16);
    }
}
