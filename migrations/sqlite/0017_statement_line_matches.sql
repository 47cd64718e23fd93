-- Lines a reconciliation run matched, kept as ranges of line numbers: a run that matches a
-- whole statement writes one row here instead of rewriting every line (a million-line
-- statement's lines are no longer rewritten to be marked). Single lines and short runs of
-- lines are still marked on the line (`statement_lines.matched_run`); a line is matched when
-- either says so.
CREATE TABLE statement_line_matches (
    client_id     TEXT NOT NULL,
    statement_id  TEXT NOT NULL REFERENCES statements(id),
    first_line    BIGINT NOT NULL,
    last_line     BIGINT NOT NULL,
    run_id        TEXT NOT NULL,
    PRIMARY KEY (statement_id, first_line)
);
CREATE INDEX statement_line_matches_client ON statement_line_matches (client_id, statement_id);
