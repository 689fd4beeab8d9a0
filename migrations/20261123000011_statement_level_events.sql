-- Job events written once per statement, not once per row (issue "Prove it").
--
-- The row-level triggers ran two lookups in `job_transitions` and an INSERT
-- into `job_events` for every changed row: each a separate executor run
-- through SPI. That was about 60% of the time of the hot statements (claim,
-- completion, intake). Now:
--
-- * `jobs_transition` (BEFORE UPDATE, per row, no queries) stages the move
--   on the row itself: when the state changes it sets `event_from` to the
--   old state and moves the statement's `transition_via` / `transition_note`
--   into `event_via` / `event_note`; when it does not, it clears
--   `event_from` (and refuses a `via`). Both inputs are cleared.
-- * `jobs_transitions_record` (AFTER UPDATE, per statement, reading the NEW
--   transition table) takes the rows whose `event_from` is set — exactly
--   the rows this statement moved — checks every move against
--   `job_transitions` in one query (an illegal move still raises
--   check_violation and undoes the statement), then appends all events in
--   one INSERT, per job in order: the implied move (from → via) before the
--   final one.
-- * `jobs_created` (AFTER INSERT, per statement) appends all creation events
--   in one INSERT. It is still AFTER, so an `ON CONFLICT DO NOTHING`
--   duplicate records nothing.
--
-- Staging on the row keeps the statement trigger free of a join between
-- the OLD and NEW transition tables: PL/pgSQL caches its plans, and a plan
-- made for a 5-row statement (a nested loop) would be reused for 500 rows.
-- `event_from` / `event_via` / `event_note` describe the row's latest move
-- and are never read as input by anything else. PostgreSQL merges the
-- changes of every data-modifying CTE of a statement on `jobs` into one
-- transition table, so a statement made of several CTEs still records each
-- change once.

ALTER TABLE jobs ADD COLUMN event_from job_state, ADD COLUMN event_via job_state,
                 ADD COLUMN event_note jsonb;

CREATE OR REPLACE FUNCTION warren_job_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        NEW.event_from := OLD.state;
        NEW.event_via := NEW.transition_via;
        NEW.event_note := NEW.transition_note;
    ELSIF NEW.transition_via IS NOT NULL THEN
        RAISE EXCEPTION 'transition_via % set on an update that does not change state', NEW.transition_via
            USING ERRCODE = 'check_violation';
    ELSIF NEW.event_from IS NOT NULL THEN
        NEW.event_from := NULL; -- not moved by this statement
    END IF;
    IF NEW.transition_note IS NOT NULL OR NEW.transition_via IS NOT NULL THEN
        NEW.transition_note := NULL;
        NEW.transition_via := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION warren_job_transitions_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- The first illegal move of the statement, if any: from → via (or from
    -- → state without a via), then via → state.
    SELECT CASE WHEN c.first_ok THEN c.via ELSE c.from_state END AS from_state,
           CASE WHEN c.first_ok THEN c.to_state ELSE COALESCE(c.via, c.to_state) END AS to_state
      INTO bad
      FROM (SELECT n.event_from AS from_state, n.event_via AS via, n.state AS to_state,
                   EXISTS (SELECT 1 FROM job_transitions t
                            WHERE t.from_state = n.event_from
                              AND t.to_state = COALESCE(n.event_via, n.state)) AS first_ok,
                   n.event_via IS NULL OR EXISTS (SELECT 1 FROM job_transitions t
                            WHERE t.from_state = n.event_via AND t.to_state = n.state) AS second_ok
              FROM new_rows n
             WHERE n.event_from IS NOT NULL) c
     WHERE NOT (c.first_ok AND c.second_ok)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'illegal job transition from % to %', bad.from_state, bad.to_state
            USING ERRCODE = 'check_violation';
    END IF;
    -- Ids are drawn in the sorted order, so a job's implied event always
    -- precedes its final one.
    INSERT INTO job_events (id, job_id, from_state, to_state, attempt, worker_id, detail)
    SELECT nextval('job_events_id_seq'), e.job_id, e.from_state, e.to_state, e.attempt,
           e.worker_id, e.detail
      FROM (SELECT n.id AS job_id, n.event_from AS from_state, n.event_via AS to_state, n.attempt,
                   n.worker_id, NULL::jsonb AS detail, 0 AS step
              FROM new_rows n
             WHERE n.event_from IS NOT NULL AND n.event_via IS NOT NULL
            UNION ALL
            SELECT n.id, COALESCE(n.event_via, n.event_from), n.state, n.attempt, n.worker_id,
                   NULLIF(jsonb_strip_nulls(
                       COALESCE(n.event_note, '{}'::jsonb) || jsonb_build_object(
                           'error', CASE WHEN n.state IN ('failed', 'timeout') THEN n.error END,
                           'run_at', CASE WHEN n.state = 'retrying' THEN n.run_at END)),
                       '{}'::jsonb), 1
              FROM new_rows n
             WHERE n.event_from IS NOT NULL
             ORDER BY 1, 7) e;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_transitions_record AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION warren_job_transitions_record();

CREATE OR REPLACE FUNCTION warren_job_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (job_id, from_state, to_state, attempt, worker_id, at, detail)
    SELECT n.id, NULL, n.state, n.attempt, NULL, n.created_at, n.transition_note
      FROM new_rows n;
    RETURN NULL;
END $$;

DROP TRIGGER jobs_created ON jobs;
CREATE TRIGGER jobs_created AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION warren_job_created();
