-- An attempt whose task message was found lost three times without the
-- attempt starting fails as undeliverable (queued -> failed) instead of
-- being dispatched again forever: a worker that refuses the message (too
-- large for its WARREN_MAX_PAYLOAD_BYTES, a protocol version it does not
-- read) dead-letters it every time, and the job would otherwise never reach
-- a state at rest. The retry policy then applies as to any failed attempt.
INSERT INTO job_transitions (from_state, to_state) VALUES ('queued', 'failed');
