-- The source tables of the fidelity test domain, created in a database of each test's own.
CREATE SCHEMA fidelity;

CREATE TYPE fidelity.mood AS ENUM ('sad', 'ok', 'happy');

-- One column of each common PostgreSQL type; every column but the key may be NULL.
CREATE TABLE fidelity.typed (
    id              integer PRIMARY KEY,
    c_smallint      smallint,
    c_integer       integer,
    c_bigint        bigint,
    c_numeric       numeric(20, 6),
    c_numeric_any   numeric,
    c_real          real,
    c_double        double precision,
    c_boolean       boolean,
    c_text          text,
    c_varchar       varchar(32),
    c_char          char(8),
    c_uuid          uuid,
    c_date          date,
    c_time          time,
    c_timetz        timetz,
    c_timestamp     timestamp,
    c_timestamptz   timestamptz,
    c_interval      interval,
    c_json          json,
    c_jsonb         jsonb,
    c_bytea         bytea,
    c_text_array    text[],
    c_int_array     integer[],
    c_mood          fidelity.mood,
    c_inet          inet,
    c_money         money
);

-- A large text column (TOASTed out of line) in a row whose other column is updated.
-- REPLICA IDENTITY DEFAULT: an update's WAL record leaves the unchanged TOASTed value out.
CREATE TABLE fidelity.toast_default (
    id      integer PRIMARY KEY,
    counter integer NOT NULL,
    body    text
);
-- REPLICA IDENTITY FULL: the old row, TOASTed values included, is in every update.
CREATE TABLE fidelity.toast_full (
    id      integer PRIMARY KEY,
    counter integer NOT NULL,
    body    text
);
ALTER TABLE fidelity.toast_full REPLICA IDENTITY FULL;

-- Rows that become ProbeRecorded events, or poison on purpose (see the dead-letter test).
CREATE TABLE fidelity.probes (
    id       integer PRIMARY KEY,
    label    text NOT NULL,
    quantity numeric NOT NULL,
    amount   numeric(8, 2) NOT NULL
);

-- Captured by the connector, unknown to the domain's rules.
CREATE TABLE fidelity.unmapped (
    id   integer PRIMARY KEY,
    note text
);
