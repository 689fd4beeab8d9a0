-- Fewer index writes per job (issue "Prove it").
--
-- A state change is never a HOT update (`state` is indexed and appears in
-- partial-index predicates), so every row version of a job gets an entry in
-- every index whose predicate it matches. `jobs_state_idx (state, id DESC)`
-- took one per version, and — since `completed` rows are kept for days —
-- grew with the retained history (a million entries at modest load).
--
-- Its users (listings filtered by state without a queue, and the by-type
-- sample of the counted states in /v1/stats) need it for the sparse states
-- only: a listing of `completed` jobs in id order walks the primary key
-- backwards and keeps nearly every row it meets (completed is the bulk of
-- the table), and a listing of one queue's completed jobs uses
-- `jobs_queue_state_idx (queue, state, id)`. So the index now leaves
-- completed rows out: a job's completion no longer writes an entry, and the
-- index holds only the live set and the rarer terminal states.

DROP INDEX jobs_state_idx;
CREATE INDEX jobs_state_idx ON jobs (state, id DESC) WHERE state <> 'completed';
