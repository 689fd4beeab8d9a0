//! `warren bench`: see the warren-bench crate. Prints progress to stderr
//! and the one-line summary to stdout (JSON with --json).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use warren_bench::ceilings::CeilingsConfig;
use warren_bench::{BenchConfig, BenchReport, Channel};
use warren_store::{Store, StoreConfig};

use crate::args::{BenchArgs, Via};
use crate::context::Context;
use crate::failure::CliError;

/// Runs the benchmark; exits 1 if any job failed or was lost.
pub(crate) async fn run(ctx: &Context, args: BenchArgs) -> Result<ExitCode, CliError> {
    if args.ceilings {
        return ceilings(ctx, &args).await;
    }
    let payload = serde_json::from_str(&args.payload)
        .map_err(|e| CliError::general(format!("--payload is not JSON: {e}")))?;
    let config = BenchConfig {
        jobs: args.jobs,
        queue: args.queue,
        task_type: args.task_type,
        payload,
        batch: args.batch,
        rate: args.rate,
        stagger: args.stagger,
        deadline: args.deadline,
    };
    let store = Store::connect_and_migrate(&StoreConfig {
        url: args.database_url,
        max_connections: 2,
    })
    .await
    .map_err(|e| CliError::general(format!("cannot open the deployment's database: {e}")))?;
    let mut submitters = Vec::with_capacity(args.submitters);
    for _ in 0..args.submitters.max(1) {
        submitters.push(match args.via {
            Via::Amqp => Channel::Amqp(Box::new(ctx.submitter().await?)),
            Via::Http => Channel::Http(ctx.api()?),
        });
    }
    let report: BenchReport = warren_bench::run(&config, submitters, &store, |done, total| {
        eprint!("\r  {done}/{total} final");
        let _ = std::io::stderr().flush();
    })
    .await
    .map_err(|e| CliError::general(e.to_string()))?;
    eprintln!();
    if ctx.json() {
        println!(
            "{}",
            serde_json::json!({
                "jobs": report.jobs, "submitted_per_s": report.submitted_per_s, "completed_per_s": report.completed_per_s,
                "p50_ms": report.p50_ms, "p90_ms": report.p90_ms, "p99_ms": report.p99_ms,
                "failed": report.failed, "lost": report.lost,
            })
        );
    } else {
        println!("{report}");
    }
    Ok(if report.failed == 0 && report.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--ceilings`: the machine's broker and database, measured alone.
async fn ceilings(ctx: &Context, args: &BenchArgs) -> Result<ExitCode, CliError> {
    let config = CeilingsConfig {
        messages: args.jobs,
        publishers: args.submitters.max(1),
        connections: 16,
        db_time: Duration::from_secs(3),
    };
    eprintln!(
        "measuring the broker ({} messages) and the database ({} s each probe)",
        config.messages,
        config.db_time.as_secs()
    );
    let found = warren_bench::ceilings::measure(&config, &ctx.broker(), &args.database_url)
        .await
        .map_err(|e| CliError::general(e.to_string()))?;
    if ctx.json() {
        println!(
            "{}",
            serde_json::json!({
                "broker_confirmed_per_s": found.broker_per_s,
                "db_commits_per_s": found.commits_per_s,
                "db_rows_per_s": found.rows_per_s,
            })
        );
    } else {
        println!("{found}");
    }
    Ok(ExitCode::SUCCESS)
}
