-- The source of the redrive test domain: items whose label decides how the rules fare.
DROP SCHEMA IF EXISTS redrive CASCADE;
CREATE SCHEMA redrive;

CREATE TABLE redrive.items (
    id integer PRIMARY KEY,
    label text NOT NULL,
    quantity integer NOT NULL
);

-- A table neither version of the rules declares: its changes stay dead-lettered.
CREATE TABLE redrive.notes (
    id integer PRIMARY KEY,
    body text NOT NULL
);
