-- Job events written once per statement, not once per row (issue "Prove it").
--
-- The row-level triggers ran two lookups in `job_transitions` and an INSERT
-- into `job_events` for every changed row: each a separate executor run
-- through SPI. That was about 60% of the time of the hot statements (claim,
-- completion, intake). Now:
--
-- * `jobs_transition` (BEFORE UPDATE, per row) only moves the statement's
--   `transition_via` / `transition_note` into `event_via` / `event_note` when
--   the state changes, refuses a `via` on an update that does not change
--   state, and clears both inputs. No queries, so it costs little.
-- * `jobs_transitions_record` (AFTER UPDATE, per statement, with transition
--   tables) checks every state change of the statement against
--   `job_transitions` in one query (an illegal move still raises
--   check_violation and undoes the statement), then appends all events in
--   one INSERT, per job in order: the implied move (OLD → via) before the
--   final one.
-- * `jobs_created` (AFTER INSERT, per statement) appends all creation events
--   in one INSERT. It is still AFTER, so an `ON CONFLICT DO NOTHING`
--   duplicate records nothing.
--
-- `event_via` / `event_note` therefore describe the row's latest state
-- change; they are overwritten by the next one and never read as input.
-- PostgreSQL merges the changes of every data-modifying CTE of a statement
-- on `jobs` into one pair of transition tables, so a statement made of
-- several CTEs still records each change once.

ALTER TABLE jobs ADD COLUMN event_via job_state, ADD COLUMN event_note jsonb;

CREATE OR REPLACE FUNCTION warren_job_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        NEW.event_via := NEW.transition_via;
        NEW.event_note := NEW.transition_note;
    ELSIF NEW.transition_via IS NOT NULL THEN
        RAISE EXCEPTION 'transition_via % set on an update that does not change state', NEW.transition_via
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.transition_note := NULL;
    NEW.transition_via := NULL;
    RETURN NEW;
END $$;

CREATE FUNCTION warren_job_transitions_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- The first illegal move of the statement, if any: OLD → via (or OLD →
    -- NEW without a via), then via → NEW.
    SELECT CASE WHEN c.first_ok THEN c.via ELSE c.old_state END AS from_state,
           CASE WHEN c.first_ok THEN c.new_state ELSE COALESCE(c.via, c.new_state) END AS to_state
      INTO bad
      FROM (SELECT o.state AS old_state, n.event_via AS via, n.state AS new_state,
                   EXISTS (SELECT 1 FROM job_transitions t
                            WHERE t.from_state = o.state
                              AND t.to_state = COALESCE(n.event_via, n.state)) AS first_ok,
                   n.event_via IS NULL OR EXISTS (SELECT 1 FROM job_transitions t
                            WHERE t.from_state = n.event_via AND t.to_state = n.state) AS second_ok
              FROM old_rows o JOIN new_rows n ON n.id = o.id
             WHERE n.state IS DISTINCT FROM o.state) c
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
      FROM (SELECT n.id AS job_id, o.state AS from_state, n.event_via AS to_state, n.attempt,
                   n.worker_id, NULL::jsonb AS detail, 0 AS step
              FROM old_rows o JOIN new_rows n ON n.id = o.id
             WHERE n.state IS DISTINCT FROM o.state AND n.event_via IS NOT NULL
            UNION ALL
            SELECT n.id, COALESCE(n.event_via, o.state), n.state, n.attempt, n.worker_id,
                   NULLIF(jsonb_strip_nulls(
                       COALESCE(n.event_note, '{}'::jsonb) || jsonb_build_object(
                           'error', CASE WHEN n.state IN ('failed', 'timeout') THEN n.error END,
                           'run_at', CASE WHEN n.state = 'retrying' THEN n.run_at END)),
                       '{}'::jsonb), 1
              FROM old_rows o JOIN new_rows n ON n.id = o.id
             WHERE n.state IS DISTINCT FROM o.state
             ORDER BY 1, 7) e;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_transitions_record AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
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
