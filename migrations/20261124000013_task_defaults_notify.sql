-- Coordinators cache each queue's task defaults (issue "Prove it"): intake
-- read them with a query per batch, a round trip and a plan on the path of
-- every submission. A change to them is announced on the channel
-- `warren_task_defaults` (delivered at commit, to every coordinator of this
-- database), and each coordinator drops its cache when it hears one. The
-- payload is the queue's name; coordinators drop the whole cache anyway.
--
-- New queues are registered with empty defaults by intake on every batch
-- that names one, so an insert only announces itself when it brings some.

CREATE FUNCTION warren_task_defaults_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('warren_task_defaults',
                      CASE WHEN TG_OP = 'DELETE' THEN OLD.name ELSE NEW.name END);
    RETURN NULL;
END $$;

CREATE TRIGGER queues_task_defaults_updated AFTER UPDATE OF task_defaults ON queues
    FOR EACH ROW WHEN (OLD.task_defaults IS DISTINCT FROM NEW.task_defaults)
    EXECUTE FUNCTION warren_task_defaults_changed();

CREATE TRIGGER queues_task_defaults_inserted AFTER INSERT ON queues
    FOR EACH ROW WHEN (NEW.task_defaults <> '{}'::jsonb)
    EXECUTE FUNCTION warren_task_defaults_changed();

CREATE TRIGGER queues_deleted AFTER DELETE ON queues
    FOR EACH ROW EXECUTE FUNCTION warren_task_defaults_changed();
