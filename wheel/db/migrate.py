"""Creating the database and running the Alembic migrations, for `wheelctl migrate` and tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]

DATABASE_EXISTS = text("SELECT 1 FROM pg_database WHERE datname = :name")


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def ensure_database(database_url: str) -> bool:
    """Create the database named in the URL if it does not exist; True when it was created."""
    url = make_url(database_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(DATABASE_EXISTS, {"name": url.database}).scalar()
            if exists:
                return False
            # A database name is an identifier, which no parameter can carry: psycopg quotes it.
            create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database))
            connection.exec_driver_sql(create.as_string(connection.connection.dbapi_connection))
            return True
    finally:
        admin.dispose()


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise when the models and the migrations disagree (alembic check)."""
    command.check(alembic_config(database_url))
