-- What Migrate knows about the installation: the schema of the River tables
-- that hold its delivery jobs. A client configured with another RiverSchema
-- would see none of those jobs, and must not take them for gone; Reconcile
-- compares and refuses. One row at most; a host that applies these files
-- with its own tool may insert it (INSERT INTO installation (river_schema)
-- VALUES ('...')), and without it Reconcile trusts the client's setting.
CREATE TABLE installation (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    river_schema text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
