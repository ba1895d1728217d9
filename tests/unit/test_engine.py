"""Engine construction: which database the settings select, and secrets kept out of sight."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from consensus_engine.db.engine import (
    create_engine_from_settings,
    create_engine_from_url,
    describe_database,
    session_factory,
)
from consensus_engine.settings import Settings, load_settings

PASSWORD = "p@ss:w/rd%?#&=secret"
ESCAPED = quote(PASSWORD, safe="")
INSTANCE = "my-project:europe-west1:consensus"


class ConnectRefusedError(Exception):
    """Raised by the fake so the engine never tries to speak pg8000 to it."""


class FakeConnector:
    """Stands in for google.cloud.sql.connector.Connector and records every request."""

    instances: list[FakeConnector] = []

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.closed = False
        FakeConnector.instances.append(self)

    def connect(self, instance_connection_string: str, driver: str, **kwargs: Any) -> Any:
        self.calls.append((instance_connection_string, driver, kwargs))
        raise ConnectRefusedError

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def _fresh_fakes() -> None:
    FakeConnector.instances = []


def settings(**overrides: Any) -> Settings:
    """Settings with every database variable explicit, whatever the environment holds."""
    values: dict[str, Any] = {
        "database_url": None,
        "use_cloud_sql_connector": False,
        "db_instance_connection_name": None,
        "db_iam_auth": False,
        "db_user": "app",
        "db_password": None,
        "db_host": "db.internal",
        "db_port": 5432,
        "db_name": "consensus",
    }
    values.update(overrides)
    return load_settings(**values)


def cloud_settings(**overrides: Any) -> Settings:
    return settings(use_cloud_sql_connector=True, db_instance_connection_name=INSTANCE, **overrides)


def connect_through_fake(config: Settings) -> FakeConnector:
    engine = create_engine_from_settings(config, connector_factory=FakeConnector)
    assert FakeConnector.instances == []  # nothing is started before the first connection
    with pytest.raises(ConnectRefusedError):
        engine.connect()
    engine.dispose()
    [connector] = FakeConnector.instances
    return connector


def test_cloud_sql_with_iam_sends_no_password() -> None:
    config = cloud_settings(db_iam_auth=True, db_user="sa@proj.iam", db_password=PASSWORD)

    connector = connect_through_fake(config)

    assert connector.calls == [
        (INSTANCE, "pg8000", {"user": "sa@proj.iam", "db": "consensus", "enable_iam_auth": True})
    ]


def test_cloud_sql_with_password_auth_sends_the_password() -> None:
    connector = connect_through_fake(cloud_settings(db_password=PASSWORD))

    [(instance, driver, options)] = connector.calls
    assert (instance, driver) == (INSTANCE, "pg8000")
    assert options == {
        "user": "app",
        "db": "consensus",
        "enable_iam_auth": False,
        "password": PASSWORD,
    }


def test_cloud_sql_engine_uses_pg8000_and_closes_the_connector_on_dispose() -> None:
    engine = create_engine_from_settings(cloud_settings(), connector_factory=FakeConnector)
    assert engine.url.drivername == "postgresql+pg8000"
    with pytest.raises(ConnectRefusedError):
        engine.connect()
    engine.dispose()
    assert FakeConnector.instances[0].closed


def test_database_url_overrides_the_parts_and_the_connector() -> None:
    config = cloud_settings(database_url="postgresql://other:pw@url-host:6543/url_db")

    engine = create_engine_from_settings(config, connector_factory=FakeConnector)

    assert (engine.url.host, engine.url.port, engine.url.database) == ("url-host", 6543, "url_db")
    assert engine.url.drivername == "postgresql+psycopg2"  # bare postgresql:// means psycopg2


def test_heroku_style_postgres_scheme_is_accepted() -> None:
    engine = create_engine_from_url("postgres://u@h/d")
    assert engine.url.drivername == "postgresql+psycopg2"


def test_url_from_parts_escapes_the_password() -> None:
    engine = create_engine_from_settings(settings(db_password=PASSWORD))

    assert engine.url.password == PASSWORD
    rendered = engine.url.render_as_string(hide_password=False)
    assert PASSWORD not in rendered  # reserved characters are percent-encoded
    assert sa.make_url(rendered).password == PASSWORD
    assert (engine.url.host, engine.url.database, engine.url.username) == (
        "db.internal",
        "consensus",
        "app",
    )


def test_pool_settings_are_applied() -> None:
    engine = create_engine_from_settings(
        settings(db_pool_size=7, db_max_overflow=3, db_pool_timeout=12)
    )
    pool = engine.pool
    assert isinstance(pool, sa.QueuePool)
    assert (pool.size(), pool.timeout()) == (7, 12)
    assert pool._pre_ping  # a dead connection is replaced, not handed to a request


def test_sqlite_urls_enforce_foreign_keys() -> None:
    engine = create_engine_from_settings(settings(database_url="sqlite://"))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sessions_keep_objects_readable_after_commit() -> None:
    factory = session_factory(create_engine_from_url("sqlite://"))
    assert factory.kw["expire_on_commit"] is False


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"database_url": f"postgresql://app:{ESCAPED}@h/d"}, id="database_url"),
        pytest.param({"db_password": PASSWORD}, id="parts"),
        pytest.param(
            {
                "use_cloud_sql_connector": True,
                "db_instance_connection_name": INSTANCE,
                "db_password": PASSWORD,
            },
            id="cloud_sql",
        ),
    ],
)
def test_password_never_shows_in_descriptions_or_reprs(config: dict[str, Any]) -> None:
    loaded = settings(**config)
    engine = create_engine_from_settings(loaded, connector_factory=FakeConnector)

    texts = (describe_database(loaded), repr(loaded), str(loaded), repr(engine), str(engine.url))
    for text in texts:
        assert "secret" not in text, text


def test_description_masks_query_string_values_too() -> None:
    loaded = settings(database_url=f"postgresql://app@h/d?sslmode=require&sslpassword={ESCAPED}")
    description = describe_database(loaded)
    assert "secret" not in description
    assert description == "postgresql+psycopg2://app@h/d?sslmode=***&sslpassword=***"


def test_descriptions_say_where_the_database_is() -> None:
    assert describe_database(settings()) == "postgresql+psycopg2://app@db.internal:5432/consensus"
    assert describe_database(settings(db_password=PASSWORD)).startswith(
        "postgresql+psycopg2://app:***@db.internal"
    )
    cloud = describe_database(cloud_settings(db_iam_auth=True))
    assert INSTANCE in cloud
    assert "IAM" in cloud
