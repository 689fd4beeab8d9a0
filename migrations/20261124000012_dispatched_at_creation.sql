-- Jobs dispatched by the statement that creates them (issue "Prove it").
--
-- Intake may insert a job directly as `queued` when its queue can take it
-- at once (see `Store::insert_and_dispatch`): that saves the claim's second
-- version of the row, its index entries and a commit per batch. The job's
-- history stays the same as if the dispatcher had claimed it: the creation
-- statement stages the skipped state in `event_from` ('pending'), and the
-- creation trigger records both moves, `→ pending` (attempt 0) and then
-- `pending → queued` (attempt 1), in that order.
--
-- The guard admits exactly that shape and nothing else: a row may start in
-- `queued` only with `event_from = 'pending'`, attempt 1, a lease and
-- `queued_at`; any other initial state still may not stage a move.

CREATE OR REPLACE FUNCTION warren_job_creation_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'queued' THEN
        IF NEW.event_from IS DISTINCT FROM 'pending' OR NEW.attempt <> 1
           OR NEW.lease IS NULL OR NEW.queued_at IS NULL THEN
            RAISE EXCEPTION 'a job created as queued must be dispatched at creation (from pending, attempt 1, with a lease)'
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.state NOT IN ('awaiting_approval', 'blocked', 'pending') THEN
        RAISE EXCEPTION 'illegal initial job state %', NEW.state
            USING ERRCODE = 'check_violation';
    ELSIF NEW.event_from IS NOT NULL THEN
        RAISE EXCEPTION 'a job created as % cannot stage a move from %', NEW.state, NEW.event_from
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

-- Ids are drawn in the sorted order, so a job's creation event always
-- precedes its dispatch.
CREATE OR REPLACE FUNCTION warren_job_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (id, job_id, from_state, to_state, attempt, worker_id, at, detail)
    SELECT nextval('job_events_id_seq'), e.job_id, e.from_state, e.to_state, e.attempt, NULL,
           e.at, e.detail
      FROM (SELECT n.id AS job_id, NULL::job_state AS from_state,
                   COALESCE(n.event_from, n.state) AS to_state,
                   CASE WHEN n.event_from IS NULL THEN n.attempt ELSE 0 END AS attempt,
                   n.created_at AS at, n.transition_note AS detail, 0 AS step
              FROM new_rows n
            UNION ALL
            SELECT n.id, n.event_from, n.state, n.attempt, n.queued_at, NULL, 1
              FROM new_rows n
             WHERE n.event_from IS NOT NULL
             ORDER BY 1, 7) e;
    RETURN NULL;
END $$;
