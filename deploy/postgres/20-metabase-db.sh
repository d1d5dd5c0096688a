#!/bin/sh
# Run once by the postgres image when its data directory is new (/docker-entrypoint-initdb.d):
# Metabase's own application database and login role (docker-compose.yml, service metabase), so
# that its questions and dashboards survive a new container. The password comes from
# METABASE_DB_PASSWORD as a psql variable, so that no quoting in it can change the statement.
set -eu
echo "CREATE ROLE metabase LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';" |
  psql -v ON_ERROR_STOP=1 -v password="$METABASE_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -c 'CREATE DATABASE metabase OWNER metabase'
