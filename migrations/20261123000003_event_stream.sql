-- The durable event stream: job transitions (rows of job_events) are
-- published to the topic exchange <ns>.events by exactly one coordinator at
-- a time. That coordinator claims this single row with
-- SELECT ... FOR UPDATE SKIP LOCKED in a short transaction spanning
-- "read a batch, publish, await confirms, advance cursor", so a crash between
-- publishing and committing republishes (at-least-once; event ids let
-- consumers deduplicate).
--
-- `cursor` is the highest event id published such that every lower id is
-- settled (published, or known to be permanently missing: an aborted
-- transaction or a skipped sequence value). A new database starts at 0 and
-- publishes everything. A database that already holds events starts at NULL:
-- the first publisher sets it to the newest event id once every transaction
-- that could hold an older id has finished, so the events recorded before
-- this upgrade are history (served over SSE), not published.
CREATE TABLE event_publication (
    id           smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    cursor       bigint CHECK (cursor >= 0),
    published_at timestamptz
);

INSERT INTO event_publication (id, cursor)
VALUES (1, CASE WHEN EXISTS (SELECT 1 FROM job_events) THEN NULL ELSE 0 END);
