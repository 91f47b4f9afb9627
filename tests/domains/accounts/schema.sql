-- Two tables of one aggregate, each keyed by its own id, as an application
-- would write them. accounts keeps PostgreSQL's default replica identity (its
-- rules read no old value, and it is routed by its key); account_limits is
-- FULL, since limit_changed compares the old and new amount.
CREATE TABLE accounts (
  id     bigint PRIMARY KEY,
  owner  text   NOT NULL
);

CREATE TABLE account_limits (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id  bigint  NOT NULL REFERENCES accounts (id),
  amount      integer NOT NULL
);
ALTER TABLE account_limits REPLICA IDENTITY FULL;
