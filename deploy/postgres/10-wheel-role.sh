#!/bin/sh
# Run once by the postgres image when its data directory is new (/docker-entrypoint-initdb.d):
# Wheel's own login role, not a superuser, owning the wheel database (so `wheelctl migrate` can
# build the schema in it). Its password comes from WHEEL_DB_PASSWORD, passed as a psql variable
# so that no quoting in it can change the statement.
# Also the reports' read-only role (`wheel` may not create roles; the migration that makes the
# views in schema `reports` grants them to it) and Metabase's login in it, with WHEEL_REPORTS_PASSWORD
# (README, "Reports (Metabase)").
set -eu
echo "CREATE ROLE wheel LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
CREATE ROLE wheel_reports NOLOGIN;
CREATE ROLE metabase LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'reports_password' IN ROLE wheel_reports;
ALTER DATABASE \"$POSTGRES_DB\" OWNER TO wheel;" |
  psql -v ON_ERROR_STOP=1 -v password="$WHEEL_DB_PASSWORD" -v reports_password="$WHEEL_REPORTS_PASSWORD" \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB"
