"""StorageQueue against real Azurite, and where the storage account comes from."""

from __future__ import annotations

import base64
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from reclaim.adapters.queues import StorageQueue
from reclaim.adapters.storage import StorageAccount, storage_from_env
from reclaim.domain.model import User
from reclaim.domain.records import RemovalMessage
from reclaim.errors import ConfigurationError, TransientError
from reclaim.settings import Settings

if TYPE_CHECKING:  # imported by pytest as a plugin, so that its asserts are rewritten
    from tests.support.azurite import Azurite


MESSAGE = RemovalMessage(
    "req-1", "run-1", "salesforce", "SF", User(upn="ada@contoso.test", object_id="0001"), "no-ask"
)


def raw(queue: StorageQueue, poison: bool = False):
    """A client that shows messages as stored (no decoding)."""
    return queue.account.queue_client(
        queue.name + ("-poison" if poison else ""), message_decode_policy=None
    )


@pytest.fixture
def queue(storage_env: dict[str, str]) -> StorageQueue:
    return StorageQueue.from_settings(Settings.from_env(storage_env), env=storage_env)


@pytest.mark.azurite
def test_messages_are_base64_json_as_the_queue_trigger_expects(queue: StorageQueue) -> None:
    queue.enqueue(MESSAGE)  # the queue does not exist yet: created on first use
    (stored,) = raw(queue).peek_messages(max_messages=5)
    text = base64.b64decode(stored.content, validate=True).decode()
    assert RemovalMessage.from_json(text) == MESSAGE


@pytest.mark.azurite
def test_a_delay_keeps_the_message_invisible_until_due(queue: StorageQueue) -> None:
    queue.enqueue(MESSAGE, delay=timedelta(milliseconds=300))  # rounded up, never early
    queue.enqueue(MESSAGE, delay=timedelta(minutes=15))
    assert raw(queue).peek_messages(max_messages=5) == []
    assert queue.client.get_queue_properties().approximate_message_count == 2
    time.sleep(1.2)
    assert len(raw(queue).peek_messages(max_messages=5)) == 1


@pytest.mark.azurite
def test_poison_puts_the_original_text_into_the_poison_queue(
    queue: StorageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue.create()
    queue.poison('{"not": "a removal"}', "malformed: missing request_id")
    (stored,) = raw(queue, poison=True).peek_messages()
    assert base64.b64decode(stored.content).decode() == '{"not": "a removal"}'
    assert raw(queue).peek_messages() == []
    assert "malformed: missing request_id" in caplog.text


@pytest.mark.azurite
def test_a_storage_outage_is_a_transient_error_and_the_queue_comes_back(
    azurite: Azurite, storage_env: dict[str, str]
) -> None:
    account = StorageAccount(connection_string=azurite.connection_string)
    queue = StorageQueue(account, storage_env["RECLAIM_REMOVAL_QUEUE"], retry_total=0)
    queue.enqueue(MESSAGE)
    azurite.stop()
    try:
        started = time.monotonic()
        with pytest.raises(TransientError, match="could not send removal req-1") as caught:
            queue.enqueue(MESSAGE)
        assert time.monotonic() - started < 5
        assert "AccountKey" not in str(caught.value)  # never the connection string
    finally:
        azurite.start()  # in memory: every queue is gone, as after losing the account's data
    queue.enqueue(MESSAGE)  # the missing queue is created again on send
    assert len(raw(queue).peek_messages()) == 1


# ---- where the account comes from -------------------------------------------------------------


def test_a_connection_string_wins() -> None:
    account = storage_from_env(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "AzureWebJobsStorage__accountName": "x",
        }
    )
    assert account == StorageAccount(connection_string="UseDevelopmentStorage=true")
    assert "UseDevelopmentStorage" not in account.describe()


def test_identity_based_service_uris() -> None:
    account = storage_from_env(
        {
            "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.usgovcloudapi.net/",
            "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.usgovcloudapi.net",
        }
    )
    assert account.queue_service_uri == "https://acct.queue.core.usgovcloudapi.net"
    client = account.queue_client("reclaim-removals")
    assert client.url == "https://acct.queue.core.usgovcloudapi.net/reclaim-removals"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set AzureWebJobsStorage"),
        ({"AzureWebJobsStorage": "  "}, "set AzureWebJobsStorage"),
        (
            {"AzureWebJobsStorage__queueServiceUri": "http://acct.queue.core.windows.net"},
            "expected an https:// address",
        ),
    ],
)
def test_missing_or_wrong_storage_settings_say_what_to_set(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        storage_from_env(env)


def test_identity_based_without_a_table_uri_names_the_variable() -> None:
    account = storage_from_env(
        {"AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net"}
    )
    with pytest.raises(ConfigurationError, match="AzureWebJobsStorage__tableServiceUri"):
        account.table_service()
