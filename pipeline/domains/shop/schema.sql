-- The source database of the bundled example domain: a small online shop.
-- Debezium captures these tables; cdcflow turns their row changes into the
-- Customer, Order and Product domain events (pipeline/domains/shop).
-- Idempotent: safe to run on every `stack up` / `demo`.

DO $$ BEGIN
  CREATE TYPE order_status AS ENUM ('placed', 'paid', 'shipped', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE TABLE IF NOT EXISTS customers (
  id          bigserial PRIMARY KEY,
  email       text        NOT NULL UNIQUE,
  full_name   text        NOT NULL,
  country     char(2)     NOT NULL DEFAULT 'DE',
  status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS products (
  id          bigserial PRIMARY KEY,
  sku         text          NOT NULL UNIQUE,
  name        text          NOT NULL,
  description text,
  price       numeric(12,2) NOT NULL CHECK (price >= 0),
  currency    char(3)       NOT NULL DEFAULT 'EUR',
  active      boolean       NOT NULL DEFAULT true,
  updated_at  timestamptz   NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
  id               uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id      bigint        NOT NULL REFERENCES customers (id),
  status           order_status  NOT NULL DEFAULT 'placed',
  total            numeric(12,2) NOT NULL DEFAULT 0,
  currency         char(3)       NOT NULL DEFAULT 'EUR',
  shipping_address jsonb,
  placed_at        timestamptz   NOT NULL DEFAULT now(),
  paid_at          timestamptz,
  shipped_at       timestamptz,
  tracking_number  text,
  cancelled_at     timestamptz,
  cancel_reason    text,
  updated_at       timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_customer_idx ON orders (customer_id);

CREATE TABLE IF NOT EXISTS order_lines (
  order_id    uuid          NOT NULL REFERENCES orders (id),
  line_no     integer       NOT NULL,
  product_id  bigint        NOT NULL REFERENCES products (id),
  quantity    integer       NOT NULL CHECK (quantity > 0),
  unit_price  numeric(12,2) NOT NULL,
  PRIMARY KEY (order_id, line_no)
);

CREATE TABLE IF NOT EXISTS payments (
  id          bigserial     PRIMARY KEY,
  order_id    uuid          NOT NULL REFERENCES orders (id),
  amount      numeric(12,2) NOT NULL,
  method      text          NOT NULL CHECK (method IN ('card', 'paypal', 'invoice')),
  paid_at     timestamptz   NOT NULL DEFAULT now()
);

-- Old values in every update/delete event: the mappings compare before and
-- after (a changed price, a status that moved), and TOASTed columns arrive
-- complete instead of as Debezium's "unavailable value" placeholder.
ALTER TABLE customers REPLICA IDENTITY FULL;
ALTER TABLE products  REPLICA IDENTITY FULL;
ALTER TABLE orders    REPLICA IDENTITY FULL;

-- Written by the connector's heartbeat.action.query so the replication slot
-- advances while the captured tables are quiet.
CREATE TABLE IF NOT EXISTS cdcflow_heartbeat (
  id  integer PRIMARY KEY,
  ts  timestamptz NOT NULL
);

-- Debezium's signal table (connector setting signal.data.collection): a backfill
-- (`cdcflow connectors snapshot`) is a row here, and the connector writes each
-- chunk's watermarks here.
CREATE TABLE IF NOT EXISTS cdcflow_signal (
  id    varchar(42) PRIMARY KEY,
  type  varchar(32) NOT NULL,
  data  varchar(2048)
);
