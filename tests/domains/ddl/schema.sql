-- The source tables of the ddl test domain, created in a database of each test's own.
-- Each table but ddl.steady is altered while the connector and the transformer run.
CREATE SCHEMA ddl;

-- Never altered: its rule must go on producing events whatever happens to the others.
CREATE TABLE ddl.steady (
    id    integer PRIMARY KEY,
    label text NOT NULL
);

-- ADD COLUMN note text (nullable), then ADD COLUMN tier integer NOT NULL DEFAULT 7.
CREATE TABLE ddl.added (
    id    integer PRIMARY KEY,
    label text NOT NULL
);

-- DROP COLUMN extra, which its rule reads.
CREATE TABLE ddl.dropped (
    id    integer PRIMARY KEY,
    label text NOT NULL,
    extra text
);

-- RENAME COLUMN code TO ref; its (declarative) rule reads code.
CREATE TABLE ddl.renamed (
    id    integer PRIMARY KEY,
    label text NOT NULL,
    code  text
);

-- ALTER COLUMN counter TYPE bigint, ALTER COLUMN amount TYPE numeric(12,4): the
-- event's fields hold both the old and the new type.
CREATE TABLE ddl.widened (
    id      integer PRIMARY KEY,
    counter integer NOT NULL,
    amount  numeric(10, 2) NOT NULL
);

-- ALTER COLUMN price TYPE numeric(12,4): the event's field stays numeric(10,2).
CREATE TABLE ddl.priced (
    id    integer PRIMARY KEY,
    price numeric(10, 2) NOT NULL
);
