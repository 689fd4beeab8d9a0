-- Dispatch by queue with an in-flight window: the claim walks each queue's
-- own due jobs, so a queue whose window is full (or that is paused) costs
-- nothing however large its backlog. Every queue that has jobs is listed in
-- `queues` (intake registers new names).

INSERT INTO queues (name) SELECT DISTINCT queue FROM jobs ON CONFLICT DO NOTHING;

CREATE INDEX jobs_queue_dispatch_idx ON jobs (queue, priority DESC, run_at)
    WHERE state IN ('pending', 'retrying');

DROP INDEX jobs_dispatch_idx;

-- Counting a queue's jobs in flight must stay cheap although every
-- transition leaves a dead entry in the indexes on `state`: this partial
-- index only ever holds the small in-flight set.
CREATE INDEX jobs_in_flight_idx ON jobs (queue) WHERE state IN ('queued', 'running');
