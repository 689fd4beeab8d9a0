-- Events carry their job's queue, task type, workflow and step (issue
-- "Prove it").
--
-- Every reader of the log (the exchange publisher, Server-Sent Events, the
-- history pages) needs those four columns with each event, and read them by
-- looking up the event's job by primary key: in a throughput run that was
-- about 70% of a 5,000-event read (one `jobs_pkey` probe per event, several
-- buffers each through the job's dead row versions). The statement triggers
-- have the job rows at hand, and the four columns never change after
-- creation, so they now write them into each event.
--
-- Events written before this migration keep NULL there; readers fall back
-- to the job row for exactly those (`COALESCE(e.queue, j.queue)` with the
-- lookup gated on `e.queue IS NULL`), so no backfill rewrites the log.

ALTER TABLE job_events ADD COLUMN queue text, ADD COLUMN task_type text,
                       ADD COLUMN workflow_id uuid, ADD COLUMN step_name text;

-- As in 20261124000012, with the job's columns.
CREATE OR REPLACE FUNCTION warren_job_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (id, job_id, from_state, to_state, attempt, worker_id, at, detail,
                            queue, task_type, workflow_id, step_name)
    SELECT nextval('job_events_id_seq'), e.job_id, e.from_state, e.to_state, e.attempt, NULL,
           e.at, e.detail, e.queue, e.task_type, e.workflow_id, e.step_name
      FROM (SELECT n.id AS job_id, NULL::job_state AS from_state,
                   COALESCE(n.event_from, n.state) AS to_state,
                   CASE WHEN n.event_from IS NULL THEN n.attempt ELSE 0 END AS attempt,
                   n.created_at AS at, n.transition_note AS detail, 0 AS step,
                   n.queue, n.task_type, n.workflow_id, n.step_name
              FROM new_rows n
            UNION ALL
            SELECT n.id, n.event_from, n.state, n.attempt, n.queued_at, NULL, 1,
                   n.queue, n.task_type, n.workflow_id, n.step_name
              FROM new_rows n
             WHERE n.event_from IS NOT NULL
             ORDER BY 1, 7) e;
    RETURN NULL;
END $$;

-- As in 20261123000011, with the job's columns.
CREATE OR REPLACE FUNCTION warren_job_transitions_record() RETURNS trigger LANGUAGE plpgsql AS $$
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
    INSERT INTO job_events (id, job_id, from_state, to_state, attempt, worker_id, detail,
                            queue, task_type, workflow_id, step_name)
    SELECT nextval('job_events_id_seq'), e.job_id, e.from_state, e.to_state, e.attempt,
           e.worker_id, e.detail, e.queue, e.task_type, e.workflow_id, e.step_name
      FROM (SELECT n.id AS job_id, n.event_from AS from_state, n.event_via AS to_state, n.attempt,
                   n.worker_id, NULL::jsonb AS detail, 0 AS step,
                   n.queue, n.task_type, n.workflow_id, n.step_name
              FROM new_rows n
             WHERE n.event_from IS NOT NULL AND n.event_via IS NOT NULL
            UNION ALL
            SELECT n.id, COALESCE(n.event_via, n.event_from), n.state, n.attempt, n.worker_id,
                   NULLIF(jsonb_strip_nulls(
                       COALESCE(n.event_note, '{}'::jsonb) || jsonb_build_object(
                           'error', CASE WHEN n.state IN ('failed', 'timeout') THEN n.error END,
                           'run_at', CASE WHEN n.state = 'retrying' THEN n.run_at END)),
                       '{}'::jsonb), 1,
                   n.queue, n.task_type, n.workflow_id, n.step_name
              FROM new_rows n
             WHERE n.event_from IS NOT NULL
             ORDER BY 1, 7) e;
    RETURN NULL;
END $$;
