-- Two legal moves in one UPDATE (issue "Prove it").
--
-- A worker that finishes an attempt within its coalescing window sends only
-- the final report; the start it implies (queued → running) used to be a
-- separate UPDATE in the same transaction, so every such job wrote two row
-- versions (and two sets of index entries) where one would do.
--
-- `transition_via`, set by an UPDATE that changes state, names the state the
-- job passes through: OLD.state → via → NEW.state. The trigger checks BOTH
-- moves against job_transitions (an illegal pair still raises
-- check_violation) and appends BOTH events, in order, so job_events still
-- holds every transition. Like `transition_note`, it is consumed and cleared
-- by the trigger, so it is always NULL at rest; it is rejected on an UPDATE
-- that does not change state.
--
-- The implied event carries the attempt and worker of the row (as the
-- separate UPDATE's event did) and no detail; the statement's
-- `transition_note` annotates the final event.

ALTER TABLE jobs ADD COLUMN transition_via job_state;

CREATE OR REPLACE FUNCTION warren_job_transition() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prior job_state := OLD.state;
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        IF NEW.transition_via IS NOT NULL THEN
            IF NOT EXISTS (SELECT 1 FROM job_transitions t
                           WHERE t.from_state = OLD.state AND t.to_state = NEW.transition_via) THEN
                RAISE EXCEPTION 'illegal job transition from % to %', OLD.state, NEW.transition_via
                    USING ERRCODE = 'check_violation';
            END IF;
            INSERT INTO job_events (job_id, from_state, to_state, attempt, worker_id, detail)
            VALUES (NEW.id, OLD.state, NEW.transition_via, NEW.attempt, NEW.worker_id, NULL);
            prior := NEW.transition_via;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM job_transitions t
                       WHERE t.from_state = prior AND t.to_state = NEW.state) THEN
            RAISE EXCEPTION 'illegal job transition from % to %', prior, NEW.state
                USING ERRCODE = 'check_violation';
        END IF;
        INSERT INTO job_events (job_id, from_state, to_state, attempt, worker_id, detail)
        VALUES (NEW.id, prior, NEW.state, NEW.attempt, NEW.worker_id,
                NULLIF(jsonb_strip_nulls(
                    COALESCE(NEW.transition_note, '{}'::jsonb) || jsonb_build_object(
                        'error', CASE WHEN NEW.state IN ('failed', 'timeout') THEN NEW.error END,
                        'run_at', CASE WHEN NEW.state = 'retrying' THEN NEW.run_at END)),
                    '{}'::jsonb));
    ELSIF NEW.transition_via IS NOT NULL THEN
        RAISE EXCEPTION 'transition_via % set on an update that does not change state', NEW.transition_via
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.transition_note := NULL;
    NEW.transition_via := NULL;
    RETURN NEW;
END $$;
