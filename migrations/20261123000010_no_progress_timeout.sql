-- Opt-in stall detection (DESIGN §3.6): a running attempt that reports no
-- progress for no_progress_timeout_ms (counted from its start or its last
-- progress report, `progress_at`) is timed out by the sweeper. The sweeper
-- reads running jobs through jobs_running_idx; no new index is needed.
ALTER TABLE jobs ADD COLUMN no_progress_timeout_ms bigint
    CHECK (no_progress_timeout_ms > 0);
