-- Dead letter for jobs. A job whose run keeps failing (its handler errors: a rail no longer
-- configured, a payload this build cannot read) is given up on after `[dispatch]
-- dead_letter_after` failures in a row: `dead_at` is set and the job is never claimed again
-- until an operator requeues it. `failures` counts the failures in a row (a run that goes
-- through sets it back to none); `tries` still counts every claim.

ALTER TABLE jobs ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN dead_at BIGINT;

-- Claims look at live jobs only; the dead are listed by id.
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (run_at) WHERE dead_at IS NULL;
CREATE INDEX jobs_dead ON jobs (id) WHERE dead_at IS NOT NULL;
