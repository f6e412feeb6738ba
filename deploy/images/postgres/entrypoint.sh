#!/bin/bash
# initdb on first start; then every database of PG_DATABASES (comma-separated) with a role of
# the same name owning it (a development server: trust on every connection, as deploy/local's
# Unix socket is). PG_MAX_CONNECTIONS as deploy/local pins it (150).
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    {
        echo "listen_addresses = '*'"
        echo "max_connections = ${PG_MAX_CONNECTIONS:-150}"
        echo "unix_socket_directories = '/tmp'"
    } >> "$PGDATA/postgresql.conf"
    echo "host all all all trust" >> "$PGDATA/pg_hba.conf"
fi
pg_ctl -D "$PGDATA" -o "-p ${PG_PORT} -c listen_addresses=127.0.0.1" -w start >/dev/null
IFS=, read -r -a databases <<< "${PG_DATABASES:-}"
for db in "${databases[@]}"; do
    [ -n "$db" ] || continue
    psql -h /tmp -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$db') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$db')\gexec
SELECT format('CREATE DATABASE %I OWNER %I', '$db', '$db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\gexec
SQL
done
pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
exec postgres -D "$PGDATA" -p "$PG_PORT"
