//! Retention batches: bounded, oldest first, one state, older than the
//! cutoff, never workflow steps, events included, and never waiting on a
//! row another transaction holds.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState::*;
use warren_store::{CleanupBatch, Store};

const HOUR: Duration = Duration::from_secs(3600);

async fn remaining(store: &Store, ids: &[Uuid]) -> HashSet<Uuid> {
    sqlx::query_scalar("SELECT id FROM jobs WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn events_of(store: &Store, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM job_events WHERE job_id = ANY($1)")
        .bind(ids)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_takes_the_oldest_rows_of_one_state_up_to_its_limit() {
    let db = TestDb::new().await;
    let store = &db.store;
    let specs: Vec<JobSpec> = (0..8).map(|_| spec("default")).collect();
    // Jobs 0..6 complete, 6 and 7 die; ages 10h, 9h, ... so 0 is the oldest.
    let ids = finish_all(store, &specs, |i| i >= 6).await;
    for (i, id) in ids.iter().enumerate() {
        finished_ago(store, &[*id], (10 - i) as f64 * 3600.0).await;
    }
    // Job 5 finished 5 hours ago but is a workflow step.
    set_workflow(store, &[ids[5]], Uuid::now_v7()).await;
    let young = finish_all(store, &[spec("default")], |_| false).await[0];
    let waiting = submit(store, spec("default")).await;
    let events_of_oldest = events_of(store, &ids[..2]).await;
    assert!(events_of_oldest >= 8, "each job has its lifecycle events");

    let first = store.delete_finished(Completed, HOUR, 2).await.unwrap();
    assert_eq!(
        first,
        CleanupBatch {
            jobs: 2,
            events: events_of_oldest as u64
        }
    );
    assert_eq!(events_of(store, &ids[..2]).await, 0);
    let everything: Vec<Uuid> = ids.iter().copied().chain([young, waiting]).collect();
    let left = remaining(store, &everything).await;
    assert!(
        !left.contains(&ids[0]) && !left.contains(&ids[1]),
        "oldest first"
    );

    // The rest of the completed ones older than the cutoff, and no more.
    let second = store.delete_finished(Completed, HOUR, 100).await.unwrap();
    assert_eq!(second.jobs, 3, "jobs 2, 3 and 4");
    let left = remaining(store, &everything).await;
    assert_eq!(
        left,
        HashSet::from([ids[5], ids[6], ids[7], young, waiting]),
        "the workflow step, the dead, the young and the waiting job stay"
    );
    assert_eq!(
        store
            .delete_finished(Failed, Duration::from_secs(5 * 3600), 100)
            .await
            .unwrap()
            .jobs,
        0,
        "the dead jobs finished 4 and 3 hours ago"
    );
    assert_eq!(
        store
            .delete_finished(Timeout, HOUR, 100)
            .await
            .unwrap()
            .jobs,
        0
    );
    assert_eq!(
        store.delete_finished(Failed, HOUR, 100).await.unwrap().jobs,
        2
    );
    assert_eq!(
        store
            .delete_finished(Pending, Duration::ZERO, 100)
            .await
            .unwrap(),
        CleanupBatch::default(),
        "unfinished states are never deleted"
    );
    assert_eq!(
        remaining(store, &everything).await,
        HashSet::from([ids[5], young, waiting])
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_batch_skips_rows_locked_elsewhere_without_waiting() {
    let db = TestDb::new().await;
    let store = &db.store;
    let specs: Vec<JobSpec> = (0..3).map(|_| spec("default")).collect();
    let ids = finish_all(store, &specs, |_| false).await;
    finished_ago(store, &ids, 7200.0).await;

    let mut holder = store.pool().begin().await.unwrap();
    sqlx::query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(ids[0])
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = Instant::now();
    let batch = tokio::time::timeout(
        Duration::from_secs(10),
        store.delete_finished(Completed, HOUR, 100),
    )
    .await
    .expect("the batch does not wait for the lock")
    .unwrap();
    assert_eq!(batch.jobs, 2);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(remaining(store, &ids).await, HashSet::from([ids[0]]));
    holder.rollback().await.unwrap();
    assert_eq!(
        store
            .delete_finished(Completed, HOUR, 100)
            .await
            .unwrap()
            .jobs,
        1
    );
    db.cleanup().await;
}
