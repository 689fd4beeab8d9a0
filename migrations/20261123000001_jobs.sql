-- Warren core schema: jobs, their lifecycle (enforced here as well as in
-- warren-core), the append-only event log, and live workers.
-- Migrations are append-only: never edit this file once it has landed.

CREATE TYPE job_state AS ENUM (
    'awaiting_approval', 'blocked', 'pending', 'queued', 'running',
    'failed', 'timeout', 'retrying', 'completed', 'cancelled', 'skipped'
);

-- The legal moves; mirrors warren_core::JobState::successors (a test checks).
CREATE TABLE job_transitions (
    from_state job_state NOT NULL,
    to_state   job_state NOT NULL,
    PRIMARY KEY (from_state, to_state)
);

INSERT INTO job_transitions (from_state, to_state) VALUES
    ('awaiting_approval', 'pending'), ('awaiting_approval', 'cancelled'),
    ('blocked', 'pending'), ('blocked', 'skipped'), ('blocked', 'cancelled'),
    ('pending', 'queued'), ('pending', 'cancelled'),
    ('queued', 'running'), ('queued', 'pending'), ('queued', 'cancelled'),
    ('running', 'completed'), ('running', 'failed'), ('running', 'timeout'), ('running', 'cancelled'),
    ('failed', 'retrying'), ('failed', 'cancelled'),
    ('timeout', 'retrying'), ('timeout', 'cancelled'),
    ('retrying', 'queued'), ('retrying', 'cancelled');

CREATE TABLE jobs (
    id                uuid PRIMARY KEY,
    queue             text NOT NULL,
    task_type         text NOT NULL,
    payload           jsonb NOT NULL DEFAULT 'null',
    state             job_state NOT NULL,
    priority          smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    attempt           integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer NOT NULL CHECK (max_attempts >= 1),
    retry_base_ms     bigint NOT NULL CHECK (retry_base_ms >= 0),
    retry_factor      double precision NOT NULL CHECK (retry_factor >= 1),
    retry_max_ms      bigint NOT NULL CHECK (retry_max_ms >= 0),
    retry_jitter      double precision NOT NULL CHECK (retry_jitter BETWEEN 0 AND 1),
    timeout_ms        bigint CHECK (timeout_ms > 0),
    run_at            timestamptz NOT NULL DEFAULT now(),
    lease             uuid,
    worker_id         text,
    progress          real,
    stage             text,
    checkpoint        jsonb,
    result            jsonb,
    error             text,
    idempotency_key   text,
    requires_approval boolean NOT NULL DEFAULT false,
    workflow_id       uuid,
    step_name         text,
    depends_on        text[],
    metadata          jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    queued_at         timestamptz,
    started_at        timestamptz,
    finished_at       timestamptz,
    progress_at       timestamptz,
    -- Set by an UPDATE that changes state to annotate its event (who, why);
    -- consumed and cleared by the trigger, so it is always NULL at rest.
    transition_note   jsonb
);

-- Dispatch: the hot set only (pending + retrying), in dispatch order.
CREATE INDEX jobs_dispatch_idx ON jobs (priority DESC, run_at)
    WHERE state IN ('pending', 'retrying');
-- Sweeper: messages lost between commit and publish.
CREATE INDEX jobs_queued_idx ON jobs (queued_at) WHERE state = 'queued';
-- Sweeper: running jobs by worker (lost heartbeats) and by start (deadlines).
CREATE INDEX jobs_running_idx ON jobs (worker_id, started_at) WHERE state = 'running';
-- Idempotency keys are unique per queue.
CREATE UNIQUE INDEX jobs_idempotency_idx ON jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Listings by queue and state, newest first.
CREATE INDEX jobs_queue_state_idx ON jobs (queue, state, id DESC);
CREATE INDEX jobs_state_idx ON jobs (state, id DESC);
-- Retention cleanup of terminal jobs.
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Append-only audit log; `id` is the event cursor (SSE Last-Event-ID).
CREATE TABLE job_events (
    id         bigserial PRIMARY KEY,
    job_id     uuid NOT NULL,
    from_state job_state,
    to_state   job_state NOT NULL,
    attempt    integer NOT NULL,
    worker_id  text,
    at         timestamptz NOT NULL DEFAULT now(),
    detail     jsonb
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

-- The creation of a job is its first event.
CREATE FUNCTION warren_job_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (job_id, from_state, to_state, attempt, worker_id, at, detail)
    VALUES (NEW.id, NULL, NEW.state, NEW.attempt, NULL, NEW.created_at, NEW.transition_note);
    RETURN NULL;
END $$;

-- New rows may only start in an initial state.
CREATE FUNCTION warren_job_creation_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state NOT IN ('awaiting_approval', 'blocked', 'pending') THEN
        RAISE EXCEPTION 'illegal initial job state %', NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

-- Every state change must be in job_transitions, from any SQL path; each
-- legal one appends its event in the same statement.
CREATE FUNCTION warren_job_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        IF NOT EXISTS (SELECT 1 FROM job_transitions
                       WHERE from_state = OLD.state AND to_state = NEW.state) THEN
            RAISE EXCEPTION 'illegal job transition from % to %', OLD.state, NEW.state
                USING ERRCODE = 'check_violation';
        END IF;
        INSERT INTO job_events (job_id, from_state, to_state, attempt, worker_id, detail)
        VALUES (NEW.id, OLD.state, NEW.state, NEW.attempt, NEW.worker_id,
                NULLIF(jsonb_strip_nulls(
                    COALESCE(NEW.transition_note, '{}'::jsonb) || jsonb_build_object(
                        'error', CASE WHEN NEW.state IN ('failed', 'timeout') THEN NEW.error END,
                        'run_at', CASE WHEN NEW.state = 'retrying' THEN NEW.run_at END)),
                    '{}'::jsonb));
    END IF;
    NEW.transition_note := NULL;
    RETURN NEW;
END $$;

CREATE TRIGGER jobs_creation_guard BEFORE INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION warren_job_creation_guard();
-- AFTER, so an INSERT ... ON CONFLICT DO NOTHING duplicate records nothing.
CREATE TRIGGER jobs_created AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION warren_job_created();
CREATE TRIGGER jobs_transition BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION warren_job_transition();

-- Live workers; id = hostname + a fresh UUID per process.
CREATE TABLE workers (
    id                text PRIMARY KEY,
    queues            text[] NOT NULL,
    concurrency       integer NOT NULL,
    running           integer NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Per-queue controls (pause, concurrency cap, rate limit).
CREATE TABLE queues (
    name          text PRIMARY KEY,
    paused        boolean NOT NULL DEFAULT false,
    max_in_flight integer CHECK (max_in_flight > 0),
    rate_limit    double precision CHECK (rate_limit > 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
