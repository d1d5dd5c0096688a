#!/bin/sh
# Run once by the postgres image when its data directory is new (/docker-entrypoint-initdb.d):
# Wheel's own login role, not a superuser, owning the wheel database (so `wheelctl migrate` can
# build the schema in it). Its password comes from WHEEL_DB_PASSWORD, passed as a psql variable
# so that no quoting in it can change the statement.
set -eu
echo "CREATE ROLE wheel LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
ALTER DATABASE \"$POSTGRES_DB\" OWNER TO wheel;" |
  psql -v ON_ERROR_STOP=1 -v password="$WHEEL_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB"
