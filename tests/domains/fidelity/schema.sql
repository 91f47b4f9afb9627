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

-- Large values (TOASTed: stored out of line) of each kind Debezium writes its
-- unavailable-value placeholder for differently, in a row whose counter is updated.
-- REPLICA IDENTITY DEFAULT: an update's WAL record leaves unchanged TOASTed values out.
CREATE TABLE fidelity.toast_default (
    id      integer PRIMARY KEY,
    counter integer NOT NULL,
    body    text,
    doc     jsonb,
    blob    bytea,
    tags    text[],
    nums    integer[],
    ids     uuid[]
);
-- REPLICA IDENTITY FULL: the old row, TOASTed values included, is in every update.
CREATE TABLE fidelity.toast_full (LIKE fidelity.toast_default INCLUDING ALL);
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
