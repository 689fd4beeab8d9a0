//! What `warren-coordinator` and `warren-worker` do around their own work:
//! log to stderr, build the async runtime (`WARREN_RUNTIME_THREADS`), run
//! until SIGTERM or SIGINT cancels the shutdown token, and turn the outcome
//! into the exit code.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

/// Logs to stderr at the level of `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// Runs `work` on a runtime of `threads` threads (1: the current thread
/// only, 0: one per core) with a token that the first SIGTERM or SIGINT
/// cancels (logging `on_signal`). Exits 0 when `work` returns `Ok`, 1
/// when it fails (logged as "`name` failed") or the runtime cannot start.
pub fn serve<F, Fut, E>(threads: usize, name: &str, on_signal: &'static str, work: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let runtime = match runtime(threads) {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    runtime.block_on(async move {
        tokio::spawn(stop_on_signal(shutdown.clone(), on_signal));
        match work(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "{name} failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// The async runtime: one thread, or `threads` (0: one per core).
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if threads > 1 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
async fn stop_on_signal(shutdown: CancellationToken, on_signal: &'static str) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("{on_signal}");
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcome_of_the_work_is_the_exit_code() {
        for threads in [0, 1, 2] {
            let ok = serve(threads, "test", "stop", |_| async { Ok::<(), String>(()) });
            assert_eq!(ok, ExitCode::SUCCESS);
            let failed = serve(threads, "test", "stop", |_| async {
                Err("broken".to_owned())
            });
            assert_eq!(failed, ExitCode::FAILURE);
        }
    }

    #[test]
    fn one_thread_is_the_current_thread_and_more_are_a_pool() {
        use tokio::runtime::RuntimeFlavor::{CurrentThread, MultiThread};
        assert_eq!(runtime_of(1), CurrentThread);
        assert_eq!(runtime_of(0), MultiThread);
        assert_eq!(runtime_of(2), MultiThread);
    }

    fn runtime_of(threads: usize) -> tokio::runtime::RuntimeFlavor {
        runtime(threads)
            .unwrap()
            .block_on(async { tokio::runtime::Handle::current().runtime_flavor() })
    }
}
