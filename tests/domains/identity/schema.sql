-- The source tables of the identity test domain, created in a database of each test's own.
CREATE SCHEMA ident;

-- REPLICA IDENTITY DEFAULT, as a user leaves it: the WAL's old row of a DELETE
-- (and of an UPDATE that changes the key) carries the primary key only. Debezium
-- still writes every column: NOT NULL ones with their type's default (0, '',
-- false), nullable ones as null.
CREATE TABLE ident.accounts (
    id            bigint PRIMARY KEY,
    customer_ref  integer NOT NULL,
    owner         text NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    note          text
);

-- REPLICA IDENTITY FULL: old rows carry every column.
CREATE TABLE ident.ledgers (
    id            bigint PRIMARY KEY,
    customer_ref  integer NOT NULL,
    owner         text NOT NULL,
    note          text
);
ALTER TABLE ident.ledgers REPLICA IDENTITY FULL;

-- REPLICA IDENTITY USING INDEX: old rows carry the index's column (code) only.
CREATE TABLE ident.badges (
    id     bigint PRIMARY KEY,
    code   text NOT NULL,
    label  text NOT NULL
);
CREATE UNIQUE INDEX badges_code ON ident.badges (code);
ALTER TABLE ident.badges REPLICA IDENTITY USING INDEX badges_code;
