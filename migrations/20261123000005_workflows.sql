-- Workflows: DAGs of steps, each step a row in `jobs`. The workflow's own
-- lifecycle is enforced here as well as in warren-core
-- (warren_core::workflow::WorkflowStatus), like the job's (a test checks the
-- two tables agree). Migrations are append-only: never edit this file once it
-- has landed.

CREATE TYPE workflow_status AS ENUM (
    'pending', 'running', 'paused', 'completed', 'failed', 'cancelled', 'recovering'
);

-- The legal moves; mirrors WorkflowStatus::successors.
CREATE TABLE workflow_transitions (
    from_status workflow_status NOT NULL,
    to_status   workflow_status NOT NULL,
    PRIMARY KEY (from_status, to_status)
);

INSERT INTO workflow_transitions (from_status, to_status) VALUES
    ('pending', 'running'), ('pending', 'cancelled'), ('pending', 'failed'),
    ('running', 'paused'), ('running', 'completed'), ('running', 'failed'), ('running', 'cancelled'),
    ('paused', 'running'), ('paused', 'cancelled'), ('paused', 'completed'), ('paused', 'failed'),
    ('failed', 'recovering'),
    ('recovering', 'running'), ('recovering', 'failed'), ('recovering', 'cancelled');

CREATE TABLE workflows (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    status                workflow_status NOT NULL,
    -- The concrete, validated WorkflowSpec (a template already instantiated).
    spec                  jsonb NOT NULL,
    metadata              jsonb NOT NULL DEFAULT '{}',
    max_recovery_attempts integer NOT NULL CHECK (max_recovery_attempts >= 0),
    recovery_attempts     integer NOT NULL DEFAULT 0 CHECK (recovery_attempts >= 0),
    template_name         text,
    template_version      integer,
    created_at            timestamptz NOT NULL DEFAULT now(),
    started_at            timestamptz,
    finished_at           timestamptz,
    -- Like jobs.transition_note: who or why, consumed by the trigger.
    transition_note       jsonb
);

-- Listings: active, failed, recoverable, by status, by name, by metadata.
CREATE INDEX workflows_active_idx ON workflows (id DESC)
    WHERE status IN ('pending', 'running', 'paused', 'recovering');
CREATE INDEX workflows_status_idx ON workflows (status, id DESC);
CREATE INDEX workflows_recoverable_idx ON workflows (id DESC)
    WHERE status = 'failed' AND recovery_attempts < max_recovery_attempts;
CREATE INDEX workflows_name_idx ON workflows (name, id DESC);
CREATE INDEX workflows_metadata_idx ON workflows USING GIN (metadata jsonb_path_ops);

-- Append-only history of workflow status changes. Its ids come from the
-- same sequence as job_events, so one cursor orders both logs.
CREATE TABLE workflow_events (
    id          bigint PRIMARY KEY DEFAULT nextval('job_events_id_seq'),
    workflow_id uuid NOT NULL,
    from_status workflow_status,
    to_status   workflow_status NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    detail      jsonb
);
CREATE INDEX workflow_events_workflow_idx ON workflow_events (workflow_id, id);

CREATE FUNCTION warren_workflow_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO workflow_events (workflow_id, from_status, to_status, at, detail)
    VALUES (NEW.id, NULL, NEW.status, NEW.created_at, NEW.transition_note);
    RETURN NULL;
END $$;

CREATE FUNCTION warren_workflow_creation_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'pending' THEN
        RAISE EXCEPTION 'illegal initial workflow status %', NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION warren_workflow_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT EXISTS (SELECT 1 FROM workflow_transitions
                       WHERE from_status = OLD.status AND to_status = NEW.status) THEN
            RAISE EXCEPTION 'illegal workflow transition from % to %', OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        INSERT INTO workflow_events (workflow_id, from_status, to_status, detail)
        VALUES (NEW.id, OLD.status, NEW.status,
                NULLIF(jsonb_strip_nulls(
                    COALESCE(NEW.transition_note, '{}'::jsonb) || jsonb_build_object(
                        'recovery_attempts', CASE WHEN NEW.status = 'recovering'
                                                  THEN NEW.recovery_attempts END)),
                    '{}'::jsonb));
    END IF;
    NEW.transition_note := NULL;
    RETURN NEW;
END $$;

CREATE TRIGGER workflows_creation_guard BEFORE INSERT ON workflows
    FOR EACH ROW EXECUTE FUNCTION warren_workflow_creation_guard();
CREATE TRIGGER workflows_created AFTER INSERT ON workflows
    FOR EACH ROW EXECUTE FUNCTION warren_workflow_created();
CREATE TRIGGER workflows_transition BEFORE UPDATE ON workflows
    FOR EACH ROW EXECUTE FUNCTION warren_workflow_transition();

-- Named, versioned templates; `spec` is the whole Template document.
CREATE TABLE workflow_templates (
    name        text NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    description text NOT NULL DEFAULT '',
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- Steps are jobs. New nullable columns only (no table rewrite):
--   step_index     position of the step in the spec;
--   inputs         its parents' results by step name, sent with the task;
--   superseded_at  set when recovery replaced this row by a fresh one for the
--                  same step (the old row stays as history).
ALTER TABLE jobs ADD COLUMN step_index integer;
ALTER TABLE jobs ADD COLUMN inputs jsonb;
ALTER TABLE jobs ADD COLUMN superseded_at timestamptz;

-- One current row per step; the engine reads a workflow's steps through it.
CREATE UNIQUE INDEX jobs_workflow_step_idx ON jobs (workflow_id, step_name)
    WHERE workflow_id IS NOT NULL AND superseded_at IS NULL;
-- Every row of a workflow, history included.
CREATE INDEX jobs_workflow_idx ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;

-- A step whose payload cannot be built (a `${steps.X.result...}` reference
-- into a result that lacks it) fails without running.
INSERT INTO job_transitions (from_state, to_state) VALUES ('blocked', 'failed');

-- Workflows the engine must look at. A row is added in the same transaction
-- as the step transition that calls for it, so a coordinator killed at any
-- moment loses nothing; the engine deletes the rows it has handled in its
-- own evaluation transaction. An append-only table rather than a flag on
-- `workflows`: the trigger then never waits for a workflow's row lock (held
-- by the engine or an operator's cancel), so report batches never queue
-- behind, or deadlock with, workflow operations.
CREATE TABLE workflow_wakeups (
    id          bigserial PRIMARY KEY,
    workflow_id uuid NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_wakeups_workflow_idx ON workflow_wakeups (workflow_id);

-- A step that ended (terminal, or failed / timed out) wakes its workflow.
-- The engine's own moves set `warren.workflow_engine` and need no wakeup:
-- it evaluates the whole workflow to a fixed point in one pass.
CREATE FUNCTION warren_workflow_step_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('warren.workflow_engine', true) IS DISTINCT FROM 'on' THEN
        INSERT INTO workflow_wakeups (workflow_id) VALUES (NEW.workflow_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_workflow_step_ended AFTER UPDATE OF state ON jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NOT NULL AND NEW.state IS DISTINCT FROM OLD.state
          AND NEW.state IN ('completed', 'failed', 'timeout', 'cancelled', 'skipped'))
    EXECUTE FUNCTION warren_workflow_step_ended();
