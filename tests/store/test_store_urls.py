"""Database URLs in messages never show the password."""

from __future__ import annotations

import pytest

from rbl.errors import ConfigError, StoreError
from rbl.store.database import open_engine
from rbl.store.reader import ListingReader, hide_password
from tests.support.ports import closed_port


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://rbl:s3cr%40t@db.example.net:5432/rbl?sslmode=require",
            "postgresql+psycopg://rbl:***@db.example.net:5432/rbl?sslmode=require",
        ),
        ("postgresql://:pw@h/db", "postgresql://:***@h/db"),
        ("postgresql://rbl@h/db", "postgresql://rbl@h/db"),
        ("sqlite:///var/rbl.sqlite", "sqlite:///var/rbl.sqlite"),
    ],
)
def test_hide_password(url: str, shown: str) -> None:
    assert hide_password(url) == shown


def test_a_failed_connection_names_the_database_but_not_the_password() -> None:
    url = f"postgresql+psycopg://rbl:TopSecret@127.0.0.1:{closed_port()}/rbl"
    with pytest.raises(StoreError) as failed:
        open_engine(url)
    assert "127.0.0.1" in str(failed.value) and "TopSecret" not in str(failed.value)


def test_a_bad_port_names_the_database_but_not_the_password() -> None:
    with pytest.raises(ConfigError) as failed:
        ListingReader("postgresql+psycopg://rbl:TopSecret@db.example.net:99999999/rbl")
    assert "db.example.net" in str(failed.value) and "TopSecret" not in str(failed.value)
