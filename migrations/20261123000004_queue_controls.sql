-- Queue controls: per-task-type defaults applied at intake, and the token
-- bucket that enforces `rate_limit` across every coordinator. The bucket
-- lives in the queue's row: dispatch locks the row, refills the bucket from
-- the database clock, spends one token per job it claims and writes the
-- result back, all in the claiming transaction.

ALTER TABLE queues
    -- {task_type: {timeout_ms, max_attempts, base_delay_ms, factor,
    -- max_delay_ms, jitter}}: filled into jobs that do not set them.
    ADD COLUMN task_defaults    jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(task_defaults) = 'object'),
    -- Tokens left at `rate_refilled_at`; NULL means a full bucket.
    ADD COLUMN rate_tokens      double precision,
    ADD COLUMN rate_refilled_at timestamptz;

-- The bucket's content at `at`: what was left at `refilled_at` plus `rate`
-- tokens per second since, capped at the burst size max(1, rate). NULL for
-- a queue without a rate limit. Dispatch and the throttling check share it.
CREATE FUNCTION warren_rate_tokens(rate double precision, tokens double precision,
                                   refilled_at timestamptz, at timestamptz)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN rate IS NULL THEN NULL ELSE
        LEAST(GREATEST(1, rate),
              COALESCE(tokens, GREATEST(1, rate))
              + rate * GREATEST(0, EXTRACT(EPOCH FROM at - COALESCE(refilled_at, at)))::float8)
    END
$$;
