#!/bin/sh
# First start of the compose PostgreSQL: the roles and databases of the local
# stack (pipeline/stack/components.py), passwords from the compose secrets.
#   cdcflow   owns the example domain's database "shop"
#   debezium  the connector's login: REPLICATION, a member of cdcflow (owner
#             rights for the filtered publication), CREATE on "shop"
#   apicurio  owns "registry", the schema registry's storage
# Passwords travel as psql variables (:'name'), quoted by psql, never spliced
# into the SQL text.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v cdcflow_pw="$(cat /run/secrets/cdcflow_password)" \
  -v debezium_pw="$(cat /run/secrets/debezium_password)" \
  -v apicurio_pw="$(cat /run/secrets/apicurio_password)" <<'SQL'
CREATE ROLE cdcflow WITH LOGIN CREATEDB PASSWORD :'cdcflow_pw';
CREATE ROLE debezium WITH LOGIN REPLICATION PASSWORD :'debezium_pw';
CREATE ROLE apicurio WITH LOGIN PASSWORD :'apicurio_pw';
GRANT cdcflow TO debezium;
CREATE DATABASE shop OWNER cdcflow;
CREATE DATABASE registry OWNER apicurio;
GRANT CREATE ON DATABASE shop TO debezium;
SQL
