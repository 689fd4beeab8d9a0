//! Connecting: create the database if it is missing, open a pool, migrate.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::{Store, StoreError};

/// How long a caller waits for a free connection of any pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection idle for longer than this is pinged before it is
/// handed out; one used more recently is not (see [`pool_options`]).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Settings every connection carries in its startup packet.
///
/// `jit = off`: Warren's statements are short index-driven reads and
/// writes, and PostgreSQL compiles a statement whose estimated cost passes
/// `jit_above_cost` (100,000 by default), which estimates inflated by
/// `enable_seqscan = off` (the generic-plan pool) or by a large backlog
/// reach easily. Compiling took 100–160 ms for a statement that runs in
/// 0.1 ms (the dispatcher's due-job probe, whose one-page scan of `queues`
/// was priced at 10^10 with sequential scans off).
///
/// `idle_in_transaction_session_timeout = 60s`: no Warren transaction waits
/// on anything but the database for long (the longest, the event
/// publisher's claim, waits at most the broker's 30 s confirm timeout), so
/// one left open and idle for a minute was abandoned (see `begin.rs` for
/// how sqlx can abandon one). Its row locks would stop every other writer
/// of those rows for as long as the process lives; PostgreSQL ends such a
/// session instead, and whatever uses it next fails with a transient error
/// that its loop retries.
const SESSION_SETTINGS: [(&str, &str); 2] = [
    ("jit", "off"),
    ("idle_in_transaction_session_timeout", "60s"),
];

/// Database settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `postgres://user:pass@host:port/db`.
    pub url: String,
    /// Maximum pool connections.
    pub max_connections: u32,
}

impl StoreConfig {
    /// Settings with the default pool size.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
        }
    }
}

/// The URL with its password replaced by `***`, safe to log.
pub fn redact_database_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Creates the database if missing, connects a pool and applies migrations.
    pub async fn connect_and_migrate(config: &StoreConfig) -> Result<Store, StoreError> {
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(|_| {
                StoreError::Config(format!("cannot parse {}", redact_database_url(&config.url)))
            })?
            .log_statements(tracing::log::LevelFilter::Trace)
            .options(SESSION_SETTINGS);
        ensure_database(&options).await?;
        let pool = pool_options(config.max_connections)
            .connect_with(options)
            .await?;
        let mut migrator = sqlx::migrate!("../../migrations");
        // During a rolling upgrade a newer coordinator may already have
        // applied migrations this build does not know; they are additive, so
        // this one keeps running instead of refusing to start.
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        Ok(Store::from_pool(pool))
    }
}

/// A lazily connecting pool of up to `max_connections` to the database of
/// `pool`, with the same options (so also [`SESSION_SETTINGS`]) plus
/// `settings` in each connection's
/// startup packet (so they cost no round trip).
pub(crate) fn side_pool(pool: &PgPool, max_connections: u32, settings: &[(&str, &str)]) -> PgPool {
    let mut options = (*pool.connect_options()).clone();
    if !settings.is_empty() {
        options = options.options(settings.iter().copied());
    }
    pool_options(max_connections).connect_lazy_with(options)
}

/// Options shared by every pool.
///
/// sqlx pings a connection (a `Sync` round trip) when it goes back to the
/// pool and, by default, again before handing it out. The second ping was
/// a round trip in front of every hot-path statement (about 0.1 ms of the
/// 0.3 ms between a delivery and its INSERT or UPDATE at 100 jobs/s), to
/// check a connection checked moments before. Only connections idle for
/// longer than [`PING_IF_IDLE_FOR`] are pinged now. One that died in the
/// meantime (a database restart) fails its statement with a transient
/// error, which every consuming loop retries (`with_db_retry`), and is
/// then discarded.
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Connects to the server's `postgres` database and creates ours if absent.
async fn ensure_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another coordinator created it at the same moment.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    let _ = admin.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_database_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_database_url("postgres://u@h/db"),
            "postgres://u@h/db"
        );
        assert_eq!(redact_database_url("postgres://h/db"), "postgres://h/db");
    }
}
