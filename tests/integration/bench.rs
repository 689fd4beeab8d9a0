//! `warren bench` drives a deployment over AMQP and over HTTP and reports
//! what it measured; `--ceilings` measures the broker and the database on
//! their own and leaves nothing behind.

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

#[tokio::test]
async fn bench_submits_over_amqp_and_http_and_reports_every_job() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["bench"]);
    let store = env.store().await;
    let cli = Cli {
        env: &env,
        api_url: coordinator.api_url.clone(),
    };
    for via in ["amqp", "http"] {
        let report = cli
            .json(&[
                "bench",
                "--jobs",
                "200",
                "--rate",
                "1000",
                "--submitters",
                "2",
                "--via",
                via,
                "--database-url",
                &env.db_url,
                "--json",
            ])
            .await;
        assert_eq!(report["jobs"], 200, "{via}: {report}");
        assert_eq!(
            (report["failed"].as_u64(), report["lost"].as_u64()),
            (Some(0), Some(0)),
            "{via}: {report}"
        );
        let p50 = report["p50_ms"].as_f64().unwrap_or_default();
        assert!(
            p50 > 0.0 && p50 <= report["p99_ms"].as_f64().unwrap_or_default(),
            "{via}: {report}"
        );
    }
    // Over HTTP the jobs go to the API named, not to the broker.
    let nowhere = Cli {
        env: &env,
        api_url: "http://127.0.0.1:9".into(),
    };
    let refused = nowhere
        .run(&[
            "bench",
            "--jobs",
            "10",
            "--via",
            "http",
            "--database-url",
            &env.db_url,
        ])
        .await;
    assert!(!refused.status.success(), "no API, no HTTP submissions");
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE queue = 'bench' AND state = 'completed'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(completed, 400, "both runs' jobs completed");
    env.cleanup(&["bench"]).await;
}
