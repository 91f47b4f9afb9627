#!/bin/sh
# Make the compose stack's passwords: random ones, in ./secrets/ (git-ignored,
# mode 0600). Existing files are kept, so running it again changes nothing.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets

new_password() {
  # 32 characters of [A-Za-z0-9]: safe in env files, JDBC and SQL alike.
  LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32
}

for name in postgres cdcflow debezium apicurio; do
  [ -s "secrets/${name}_password" ] || new_password >"secrets/${name}_password"
done
# The Java services read environment variables, not files: the same values
# as env files (docker-compose.yml: env_file).
printf 'CDCFLOW_SOURCE_DEBEZIUM_PASSWORD=%s\n' "$(cat secrets/debezium_password)" >secrets/connect.env
printf 'APICURIO_DATASOURCE_PASSWORD=%s\n' "$(cat secrets/apicurio_password)" >secrets/registry.env
echo "secrets in $(pwd)/secrets"
