//! A cache of the queues' task defaults, for intake and `POST /v1/jobs`.
//!
//! Reading them was a query per batch: a round trip and a plan on the path
//! of every submission. PostgreSQL announces every change to them at commit
//! (migration `…13_task_defaults_notify`), and [`listen`] drops the whole
//! cache on each announcement, so a change made through any coordinator
//! applies within milliseconds everywhere, and at once on the coordinator
//! that made it (its API drops its own cache after the commit).
//!
//! The cache is only used while the listener is known to be listening:
//! before it first connects, and from a lost connection until it listens
//! again, every lookup goes to the database as before. A lookup that read
//! the database while an announcement arrived uses what it read but does
//! not keep it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warren_core::queue::TaskDefaultsByType;
use warren_store::{DefaultsNews, StoreError};

use crate::shared::Shared;

/// Queues remembered at most; past that the cache starts over, so a flood
/// of one-off queue names cannot grow it without bound.
const MAX_CACHED_QUEUES: usize = 10_000;
/// Longest pause between attempts to listen again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// See the module docs.
#[derive(Default)]
pub(crate) struct DefaultsCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Whether announcements are being heard (else the cache is bypassed).
    listening: bool,
    /// Bumped by every drop, so a read that raced one is not kept.
    generation: u64,
    /// Per queue: its defaults, or `None` for a queue that has none.
    by_queue: HashMap<String, Option<TaskDefaultsByType>>,
}

/// What the cache holds for a set of queues.
pub(crate) struct Lookup<'a> {
    /// The generation to hand back to [`DefaultsCache::keep`].
    pub(crate) generation: Option<u64>,
    /// Cached queues that have defaults.
    pub(crate) found: HashMap<String, TaskDefaultsByType>,
    /// Queues to read from the database.
    pub(crate) missing: Vec<&'a str>,
}

impl DefaultsCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections cannot panic halfway; a poisoned lock still
        // holds a consistent map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the cache knows of `queues`; all of them are missing while the
    /// cache is not in use.
    pub(crate) fn lookup<'a>(&self, queues: &BTreeSet<&'a str>) -> Lookup<'a> {
        let inner = self.lock();
        if !inner.listening {
            return Lookup {
                generation: None,
                found: HashMap::new(),
                missing: queues.iter().copied().collect(),
            };
        }
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for &queue in queues {
            match inner.by_queue.get(queue) {
                Some(Some(defaults)) => {
                    found.insert(queue.to_owned(), defaults.clone());
                }
                Some(None) => {}
                None => missing.push(queue),
            }
        }
        Lookup {
            generation: Some(inner.generation),
            found,
            missing,
        }
    }

    /// Keeps what was read for `missing` (`read` holds those with defaults),
    /// unless the cache was dropped since `generation` was handed out.
    pub(crate) fn keep(
        &self,
        generation: Option<u64>,
        missing: &[&str],
        read: &HashMap<String, TaskDefaultsByType>,
    ) {
        let mut inner = self.lock();
        if !inner.listening || generation != Some(inner.generation) {
            return;
        }
        if inner.by_queue.len() + missing.len() > MAX_CACHED_QUEUES {
            inner.by_queue.clear();
        }
        for &queue in missing {
            inner
                .by_queue
                .insert(queue.to_owned(), read.get(queue).cloned());
        }
    }

    /// Drops everything cached (a change was announced or made here).
    pub(crate) fn invalidate(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.by_queue.clear();
    }

    /// Starts or stops using the cache; either way it starts empty.
    fn set_listening(&self, listening: bool) {
        let mut inner = self.lock();
        inner.listening = listening;
        inner.generation += 1;
        inner.by_queue.clear();
    }
}

/// Listens for announced changes until shutdown, dropping the cache on each
/// one and whenever announcements may have been missed.
pub(crate) async fn listen(shared: Arc<Shared>, token: CancellationToken) {
    let cache = &shared.defaults_cache;
    let mut delay = Duration::from_millis(100);
    while !token.is_cancelled() {
        let failure = match shared.store.listen_for_task_defaults().await {
            Ok(mut listener) => {
                cache.set_listening(true);
                delay = Duration::from_millis(100);
                loop {
                    let news = tokio::select! {
                        _ = token.cancelled() => break None,
                        news = listener.next() => news,
                    };
                    match news {
                        Ok(DefaultsNews::Changed) | Ok(DefaultsNews::Reconnected) => {
                            cache.invalidate()
                        }
                        Err(e) => break Some(e),
                    }
                }
            }
            Err(e) => Some(e),
        };
        cache.set_listening(false);
        let Some(e) = failure else { return };
        note_failure(&shared, &e, delay);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

fn note_failure(shared: &Shared, e: &StoreError, delay: Duration) {
    shared
        .metrics
        .database_errors
        .with_label_values(&["task_defaults_listener"])
        .inc();
    tracing::warn!(error = %e, retry_in = ?delay, "not hearing task-default changes; reading them per batch");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
        names.iter().copied().collect()
    }

    fn defaults() -> TaskDefaultsByType {
        serde_json::from_value(serde_json::json!({"send": {"timeout_ms": 5000}}))
            .expect("valid defaults")
    }

    #[test]
    fn bypassed_until_listening() {
        let cache = DefaultsCache::default();
        let lookup = cache.lookup(&queues(&["a"]));
        assert_eq!(lookup.generation, None);
        cache.keep(lookup.generation, &lookup.missing, &HashMap::new());
        assert_eq!(cache.lookup(&queues(&["a"])).missing, vec!["a"]);
    }

    #[test]
    fn keeps_queues_with_and_without_defaults() {
        let cache = DefaultsCache::default();
        cache.set_listening(true);
        let lookup = cache.lookup(&queues(&["a", "b"]));
        assert_eq!(lookup.missing, vec!["a", "b"]);
        let read = HashMap::from([("a".to_owned(), defaults())]);
        cache.keep(lookup.generation, &lookup.missing, &read);
        let again = cache.lookup(&queues(&["a", "b"]));
        assert!(again.missing.is_empty());
        assert_eq!(again.found.len(), 1);
        assert_eq!(again.found["a"], defaults());
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let cache = DefaultsCache::default();
        cache.set_listening(true);
        let lookup = cache.lookup(&queues(&["a"]));
        cache.invalidate();
        cache.keep(lookup.generation, &lookup.missing, &HashMap::new());
        assert_eq!(cache.lookup(&queues(&["a"])).missing, vec!["a"]);
    }

    #[test]
    fn losing_the_listener_empties_and_bypasses_the_cache() {
        let cache = DefaultsCache::default();
        cache.set_listening(true);
        let lookup = cache.lookup(&queues(&["a"]));
        cache.keep(lookup.generation, &lookup.missing, &HashMap::new());
        cache.set_listening(false);
        let lookup = cache.lookup(&queues(&["a"]));
        assert_eq!((lookup.generation, lookup.missing), (None, vec!["a"]));
        cache.set_listening(true);
        assert_eq!(cache.lookup(&queues(&["a"])).missing, vec!["a"]);
    }
}
