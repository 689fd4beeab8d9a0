//! `warren bench --ceilings` measures the broker and the database on their
//! own and leaves nothing behind.

use warren_tests::{Cli, TestEnv};

#[tokio::test]
async fn ceilings_measure_broker_and_database_and_clean_up() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let cli = Cli {
        env: &env,
        // No coordinator: the probe talks to RabbitMQ and PostgreSQL only.
        api_url: "http://127.0.0.1:9".into(),
    };

    let found = cli
        .json(&[
            "bench",
            "--ceilings",
            "--jobs",
            "2000",
            "--submitters",
            "2",
            "--database-url",
            &env.db_url,
            "--json",
        ])
        .await;
    for figure in [
        "broker_confirmed_per_s",
        "db_commits_per_s",
        "db_rows_per_s",
    ] {
        let value = found[figure].as_f64().unwrap_or_default();
        assert!(value > 0.0, "{figure} measured: {found}");
    }
    let scratch: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'warren_ceiling_%'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(scratch, 0, "the scratch table was dropped");
    env.cleanup(&[]).await;
}
