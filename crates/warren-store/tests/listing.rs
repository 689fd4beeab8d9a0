//! Job listings: filters, every sort, cursor pagination, page-size cap.

mod common;

use std::collections::HashSet;

use common::*;
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState::*;
use warren_store::{JobFilter, JobRow, JobSort, Store, MAX_PAGE_SIZE};

fn ids(rows: &[JobRow]) -> Vec<Uuid> {
    rows.iter().map(|r| r.id).collect()
}

fn set(rows: &[JobRow]) -> HashSet<Uuid> {
    rows.iter().map(|r| r.id).collect()
}

async fn list(store: &Store, filter: JobFilter) -> Vec<JobRow> {
    store.list_jobs(&filter).await.expect("list_jobs").jobs
}

/// Walks every page of `filter` with pages of `page` rows.
async fn walk(store: &Store, filter: &JobFilter, page: i64) -> Vec<JobRow> {
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let result = store
            .list_jobs(&JobFilter {
                cursor,
                limit: page,
                ..filter.clone()
            })
            .await
            .expect("list_jobs");
        assert!(result.jobs.len() as i64 <= page);
        seen.extend(result.jobs);
        match result.next {
            Some(next) => cursor = Some(next),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn list_jobs_filters_and_pages() {
    let db = TestDb::new().await;
    let store = &db.store;
    let a: Vec<JobSpec> = (0..7).map(|_| spec("alpha")).collect();
    let b: Vec<JobSpec> = (0..5).map(|_| spec("beta")).collect();
    insert(store, &a).await;
    insert(store, &b).await;
    let queued: HashSet<Uuid> = store
        .claim_for_dispatch(4, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(queued.len(), 4);
    let all: HashSet<Uuid> = a.iter().chain(&b).map(|s| s.id).collect();

    let by_state = list(
        store,
        JobFilter {
            state: Some(Queued),
            limit: 100,
            ..JobFilter::default()
        },
    )
    .await;
    assert_eq!(set(&by_state), queued);
    assert!(by_state.iter().all(|r| r.state() == Queued));

    let beta = list(
        store,
        JobFilter {
            queue: Some("beta".into()),
            limit: 100,
            ..JobFilter::default()
        },
    )
    .await;
    assert_eq!(set(&beta), b.iter().map(|s| s.id).collect());

    let alpha_pending = list(
        store,
        JobFilter {
            state: Some(Pending),
            queue: Some("alpha".into()),
            limit: 100,
            ..JobFilter::default()
        },
    )
    .await;
    let expected: HashSet<Uuid> = a
        .iter()
        .map(|s| s.id)
        .filter(|id| !queued.contains(id))
        .collect();
    assert_eq!(set(&alpha_pending), expected);
    assert!(list(
        store,
        JobFilter {
            state: Some(Completed),
            limit: 100,
            ..JobFilter::default()
        },
    )
    .await
    .is_empty());

    // Pages of 5, newest first: disjoint, complete, in order.
    let seen = ids(&walk(store, &JobFilter::default(), 5).await);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(seen.len(), 12);
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), all);
    db.cleanup().await;
}

#[tokio::test]
async fn type_workflow_and_dead_filters() {
    let db = TestDb::new().await;
    let store = &db.store;
    let specs: Vec<JobSpec> = (0..6)
        .map(|i| {
            let kind = if i % 2 == 0 { "echo" } else { "resize" };
            JobSpec::new("media", kind, serde_json::json!({}))
        })
        .collect();
    let done = finish_all(store, &specs, |i| i < 2).await;
    let waiting = submit(store, spec("media")).await;
    let workflow = Uuid::now_v7();
    set_workflow(store, &[done[3], waiting], workflow).await;

    let resize = list(
        store,
        JobFilter {
            task_type: Some("resize".into()),
            limit: 100,
            ..JobFilter::default()
        },
    )
    .await;
    assert_eq!(set(&resize), HashSet::from([done[1], done[3], done[5]]));

    let steps = list(
        store,
        JobFilter {
            workflow_id: Some(workflow),
            limit: 100,
            ..JobFilter::default()
        },
    )
    .await;
    assert_eq!(set(&steps), HashSet::from([done[3], waiting]));

    let dead = list(
        store,
        JobFilter {
            dead: true,
            limit: 100,
            ..JobFilter::default()
        },
    )
    .await;
    assert_eq!(set(&dead), HashSet::from([done[0], done[1]]));
    assert!(dead.iter().all(|r| r.state() == Failed));

    let dead_echo = list(
        store,
        JobFilter {
            dead: true,
            task_type: Some("echo".into()),
            limit: 100,
            ..JobFilter::default()
        },
    )
    .await;
    assert_eq!(ids(&dead_echo), vec![done[0]]);
    db.cleanup().await;
}

#[tokio::test]
async fn every_sort_walks_every_row_exactly_once_in_order() {
    let db = TestDb::new().await;
    let store = &db.store;
    // 12 jobs finishing together (the same finished_at: ties broken by id),
    // 9 finishing at distinct earlier times, and 4 never finishing.
    let together: Vec<JobSpec> = (0..12).map(|_| spec("default")).collect();
    let together = finish_all(store, &together, |i| i % 5 == 0).await;
    let mut apart = Vec::new();
    for i in 0..9 {
        let id = finish_all(store, &[spec("default")], |_| false).await[0];
        finished_ago(store, &[id], 100.0 - i as f64).await;
        apart.push(id);
    }
    let unfinished: Vec<JobSpec> = (0..4).map(|_| spec("default")).collect();
    insert(store, &unfinished).await;

    let all: Vec<JobRow> = list(
        store,
        JobFilter {
            limit: 100,
            ..JobFilter::default()
        },
    )
    .await;
    assert_eq!(all.len(), 25);

    for sort in [
        JobSort::CreatedDesc,
        JobSort::CreatedAsc,
        JobSort::FinishedDesc,
        JobSort::FinishedAsc,
    ] {
        let mut expected = all.clone();
        let by_finish = matches!(sort, JobSort::FinishedDesc | JobSort::FinishedAsc);
        if by_finish {
            expected.retain(|r| r.finished_at.is_some());
            expected.sort_by_key(|r| (r.finished_at, r.id));
        } else {
            expected.sort_by_key(|r| r.id);
        }
        if matches!(sort, JobSort::CreatedDesc | JobSort::FinishedDesc) {
            expected.reverse();
        }
        for page in [1, 4, 7, 100] {
            let walked = walk(
                store,
                &JobFilter {
                    sort,
                    ..JobFilter::default()
                },
                page,
            )
            .await;
            assert_eq!(
                ids(&walked),
                ids(&expected),
                "{sort:?} with pages of {page}"
            );
        }
    }

    // A sort combined with a filter pages through the filtered rows only.
    let dead = walk(
        store,
        &JobFilter {
            sort: JobSort::FinishedAsc,
            dead: true,
            ..JobFilter::default()
        },
        1,
    )
    .await;
    let mut expected: Vec<Uuid> = together
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 == 0)
        .map(|(_, id)| *id)
        .collect();
    expected.sort();
    assert_eq!(ids(&dead), expected);
    db.cleanup().await;
}

#[tokio::test]
async fn list_jobs_limit_is_capped() {
    let db = TestDb::new().await;
    let store = &db.store;
    let specs: Vec<JobSpec> = (0..MAX_PAGE_SIZE + 20).map(|_| spec("default")).collect();
    assert_eq!(insert(store, &specs).await.len() as i64, MAX_PAGE_SIZE + 20);
    let page = store
        .list_jobs(&JobFilter {
            limit: 100_000,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len() as i64, MAX_PAGE_SIZE);
    let rest = store
        .list_jobs(&JobFilter {
            limit: 100_000,
            cursor: page.next,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.jobs.len(), 20);
    assert!(rest.next.is_none(), "the last page has no next cursor");
    assert_eq!(
        list(
            store,
            JobFilter {
                limit: 0,
                ..JobFilter::default()
            }
        )
        .await
        .len(),
        1
    );
    db.cleanup().await;
}
