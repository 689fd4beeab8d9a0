-- Retention cleanup of old terminal jobs (issue: operating Warren).
--
-- Each retention class (completed; failed and timeout; cancelled and
-- skipped) is deleted oldest first with
--   WHERE state = $s AND finished_at < $cutoff ORDER BY finished_at LIMIT n,
-- which this index serves as one range scan per state: a batch never walks
-- over rows of another state that are kept longer.
--
-- Workflow steps are left to workflow retention (they go with their
-- workflow), so they are not in this index at all and a batch never walks
-- over them either.
--
-- Cost on the hot path: a row enters the index only in a version that is
-- finished (finished_at is set once, by the move to a terminal or dead
-- state), so it is one index insertion per finished job, not one per
-- transition.
CREATE INDEX jobs_retention_idx ON jobs (state, finished_at)
    WHERE finished_at IS NOT NULL AND workflow_id IS NULL;
