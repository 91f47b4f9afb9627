-- The source database of the library test domain, created in a database of each test's own.
-- Written as an application would, with PostgreSQL's defaults wherever a developer
-- would not think about CDC: most tables keep REPLICA IDENTITY DEFAULT (the
-- primary key), and only where cdcflow's preflight asks for it is FULL set.

CREATE TYPE member_status AS ENUM ('active', 'suspended', 'closed');
CREATE TYPE loan_status AS ENUM ('open', 'returned', 'lost');

-- Aggregate "member": members and their fines.
CREATE TABLE members (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email        text          NOT NULL UNIQUE,
  full_name    text          NOT NULL,
  status       member_status NOT NULL DEFAULT 'active',
  joined_on    date          NOT NULL DEFAULT current_date,
  preferences  jsonb,
  created_at   timestamptz   NOT NULL DEFAULT now()
);

-- Keyed by their own id; the member is a plain column. REPLICA IDENTITY DEFAULT:
-- a DELETE's before image carries the id only.
CREATE TABLE fines (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  member_id  bigint        NOT NULL REFERENCES members (id),
  loan_id    uuid,
  amount     numeric(10,2) NOT NULL CHECK (amount > 0),
  reason     text          NOT NULL,
  issued_at  timestamptz   NOT NULL DEFAULT now()
);

-- Aggregate "book": books and their tags.
CREATE TABLE books (
  id            uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
  isbn          text          NOT NULL,
  title         text          NOT NULL,
  authors       jsonb         NOT NULL,
  published_on  date,
  price         numeric(10,2)
);

-- No primary key: a tag is the pair. Without a key PostgreSQL refuses its UPDATE
-- and DELETE once it is published, unless the whole row identifies it.
CREATE TABLE book_tags (
  book_id  uuid NOT NULL REFERENCES books (id),
  tag      text NOT NULL
);
ALTER TABLE book_tags REPLICA IDENTITY FULL;

-- Aggregate "loan": loans and their renewals.
-- The return rule compares the old status with the new one: it needs the old row.
CREATE TABLE loans (
  id           uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
  book_id      uuid          NOT NULL REFERENCES books (id),
  member_id    bigint        NOT NULL REFERENCES members (id),
  status       loan_status   NOT NULL DEFAULT 'open',
  loaned_at    timestamptz   NOT NULL DEFAULT now(),
  due_on       date          NOT NULL,
  returned_at  timestamptz
);
ALTER TABLE loans REPLICA IDENTITY FULL;

-- A composite primary key; REPLICA IDENTITY DEFAULT.
CREATE TABLE loan_renewals (
  loan_id     uuid        NOT NULL REFERENCES loans (id),
  renewal_no  integer     NOT NULL,
  renewed_at  timestamptz NOT NULL DEFAULT now(),
  new_due_on  date        NOT NULL,
  note        text,
  PRIMARY KEY (loan_id, renewal_no)
);
