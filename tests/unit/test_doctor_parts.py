"""Parts of `wheelctl doctor` and of the one-line service errors that need no running service:
the settings checks, the OMS queues on IBM MQ (over the stand-in of IBM's library, which cannot be
installed here) and which errors count as a service being down."""

from __future__ import annotations

import psycopg
import pytest
import redis

from bridge.transports.ibmmq import IbmMqConnectionBroken, IbmMqTransport
from tests.unit import ibmmq_standin as standin
from wheel.services.doctor import FAIL, OK, WARN
from wheel.settings import Settings
from workers.checks import HOW_TO_START, service_down
from workers.doctor import oms_queues, settings_checks

PASSWORD = "s3cr3t-Pa55"
URL = f"ibmmq://app:{PASSWORD}@localhost:1414/QM1?channel=DEV.APP.SVRCONN"
DEFINED = ["OMS.RANGING", "OMS.DERANGING", "OMS.INVENTORY", "OMS.PRICING", "OMS.BACKOUT", "OMS.ORDERS"]


@pytest.fixture
def queue_manager():
    server = standin.listen(standin.QueueManagerServer("QM1", DEFINED, users={"app": PASSWORD}), "localhost(1414)")
    yield server
    standin.reset()


def by_name(rows):
    return {row.name: row for row in rows}


def test_a_flower_without_password_off_loopback_fails_with_the_settings_to_change():
    rows = by_name(settings_checks(Settings(flower_address="0.0.0.0"), {}))
    assert rows["Flower"].status == FAIL and "WHEEL_FLOWER_BASIC_AUTH" in rows["Flower"].fix
    assert by_name(settings_checks(Settings(flower_address="127.0.0.1"), {}))["Flower"].status == OK


def test_a_wheel_variable_that_is_no_setting_is_a_warning():
    rows = by_name(settings_checks(Settings(), {"WHEEL_REDIS_ULR": "x", "WHEEL_SECRET_TATACLIQ_UA": "t",
                                                "WHEEL_TEST_REDIS_URL": "y", "WHEEL_REDIS_URL": "redis://h/0"}))
    assert rows["setting WHEEL_REDIS_ULR"].status == WARN
    assert {name for name in rows if name.startswith("setting ")} == {"setting WHEEL_REDIS_ULR"}


def test_ibm_mq_queues_are_opened_for_inquire_and_a_missing_one_names_the_definition(queue_manager):
    settings = Settings(oms_url=URL)
    rows = by_name(oms_queues(settings, IbmMqTransport(URL, mq=standin)))
    assert rows["OMS transport (IBM MQ)"].status == OK and PASSWORD not in rows["OMS transport (IBM MQ)"].detail
    assert all(rows[f"queue {q}"].status == OK for q in DEFINED)
    missing = rows["queue OMS.CANCELLATIONS"]
    assert missing.status == FAIL and "DEFINE QLOCAL(OMS.CANCELLATIONS)" in missing.fix
    assert all(queue_manager.bodies(q) == [] for q in DEFINED)  # nothing put


def test_an_ibm_mq_queue_manager_that_does_not_answer_says_how_to_start_it(queue_manager):
    queue_manager.refuse_connections()
    [row] = oms_queues(Settings(oms_url=URL), IbmMqTransport(URL, mq=standin))
    assert row.status == FAIL and row.fix == HOW_TO_START["IBM MQ"] and PASSWORD not in row.detail


def test_a_lost_ibm_mq_connection_is_one_line_naming_ibm_mq(queue_manager):
    queue_manager.refuse_connections()
    with pytest.raises(IbmMqConnectionBroken) as caught:
        IbmMqTransport(URL, mq=standin).connect()
    line = service_down(caught.value, Settings(oms_url=URL), IbmMqTransport.connection_errors)
    assert line.startswith("IBM MQ at ibmmq://app:***@localhost:1414/QM1") and HOW_TO_START["IBM MQ"] in line
    assert PASSWORD not in line


def test_a_query_error_is_not_a_service_down_but_a_refused_connection_is():
    settings = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:5432/wheel")
    assert service_down(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), settings) is None
    assert service_down(ValueError("no"), settings) is None
    line = service_down(psycopg.OperationalError("connection failed: Connection refused"), settings)
    assert line.startswith("Postgres at postgresql+psycopg://postgres@127.0.0.1:5432/wheel does not answer")


def test_an_error_raised_from_a_service_error_is_traced_back_to_it():
    try:
        try:
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")
        except redis.exceptions.ConnectionError as exc:
            raise RuntimeError("could not count") from exc
    except RuntimeError as outer:
        line = service_down(outer, Settings(redis_url="redis://:pw@127.0.0.1:6390/0"))
    assert line.startswith("Redis at redis://:***@127.0.0.1:6390/0 does not answer (Error 111")
