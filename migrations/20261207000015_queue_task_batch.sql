-- A queue's own cap on tasks per task message (issue "Prove it"). NULL
-- leaves it to the coordinators' WARREN_TASK_BATCH. A queue of long tasks
-- over few worker slots sets 1, so that no worker's prefetch holds a
-- message of several tasks while another worker has room.
ALTER TABLE queues ADD COLUMN task_batch integer
    CHECK (task_batch BETWEEN 1 AND 1000);
