//! Job listings: filters, cursor pagination, page-size cap.

mod common;

use std::collections::HashSet;

use common::*;
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState::*;
use warren_store::{JobFilter, MAX_PAGE_SIZE};

fn ids(rows: &[warren_store::JobRow]) -> Vec<Uuid> {
    rows.iter().map(|r| r.id).collect()
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

    let by_state = store
        .list_jobs(&JobFilter {
            state: Some(Queued),
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&by_state).into_iter().collect::<HashSet<_>>(), queued);
    assert!(by_state.iter().all(|r| r.state() == Queued));

    let beta = store
        .list_jobs(&JobFilter {
            queue: Some("beta".into()),
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ids(&beta).into_iter().collect::<HashSet<_>>(),
        b.iter().map(|s| s.id).collect()
    );

    let alpha_pending = store
        .list_jobs(&JobFilter {
            state: Some(Pending),
            queue: Some("alpha".into()),
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    let expected: HashSet<Uuid> = a
        .iter()
        .map(|s| s.id)
        .filter(|id| !queued.contains(id))
        .collect();
    assert_eq!(
        ids(&alpha_pending).into_iter().collect::<HashSet<_>>(),
        expected
    );
    assert!(store
        .list_jobs(&JobFilter {
            state: Some(Completed),
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .is_empty());

    // Pages of 5, newest first, cursor = last id: disjoint and complete.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_jobs(&JobFilter {
                before,
                limit: 5,
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert!(page.len() <= 5);
        if page.is_empty() {
            break;
        }
        let page_ids = ids(&page);
        assert!(page_ids.windows(2).all(|w| w[0] > w[1]), "newest first");
        if let Some(prev) = seen.last() {
            assert!(page_ids[0] < *prev, "pages do not overlap");
        }
        before = page_ids.last().copied();
        seen.extend(page_ids);
    }
    assert_eq!(seen.len(), 12);
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), all);
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
    assert_eq!(page.len() as i64, MAX_PAGE_SIZE);
    let rest = store
        .list_jobs(&JobFilter {
            limit: 100_000,
            before: page.last().map(|r| r.id),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 20);
    assert_eq!(
        store
            .list_jobs(&JobFilter {
                limit: 0,
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    db.cleanup().await;
}
