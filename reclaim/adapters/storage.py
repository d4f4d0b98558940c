"""Which Azure Storage account the function app uses, read the way the Functions host reads it.

One place for both storage adapters (tables, queues) and the local host, so the app's state and
its removal queue always live in the account the queue trigger listens to:

- `AzureWebJobsStorage`: a connection string (Azurite: `UseDevelopmentStorage=true`, or one with
  custom endpoints), or
- identity-based (no key anywhere): `AzureWebJobsStorage__queueServiceUri` and
  `AzureWebJobsStorage__tableServiceUri`, or `AzureWebJobsStorage__accountName` for the public
  cloud's endpoints, with DefaultAzureCredential (the app's managed identity in Azure);
  `AzureWebJobsStorage__clientId` picks a user-assigned identity.

These are host conventions, not RECLAIM_* settings: the queue trigger binding reads the same
variables, and keeping one definition means the trigger and the producers cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reclaim.errors import ConfigurationError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueClient

CONNECTION = "AzureWebJobsStorage"  # the queue trigger's `connection`
QUEUE_URI = f"{CONNECTION}__queueServiceUri"
TABLE_URI = f"{CONNECTION}__tableServiceUri"
ACCOUNT_NAME = f"{CONNECTION}__accountName"
CLIENT_ID = f"{CONNECTION}__clientId"
ENVIRONMENT_NAMES = (CONNECTION, QUEUE_URI, TABLE_URI, ACCOUNT_NAME, CLIENT_ID)

# Short network timeouts and a bounded number of retries: a storage outage should fail a call in
# seconds (the queue retries the message), not hang an invocation for minutes.
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 30, "retry_total": 3}


@dataclass(frozen=True)
class StorageAccount:
    """Where the queues and tables are, and how to authenticate (connection string or identity)."""

    connection_string: str = ""
    queue_service_uri: str = ""
    table_service_uri: str = ""
    client_id: str = ""  # user-assigned managed identity; empty: system-assigned or developer

    def describe(self) -> str:
        """For messages and logs: never the connection string (it holds the account key)."""
        if self.connection_string:
            return f"the account in {CONNECTION} (connection string)"
        return f"{self.queue_service_uri or self.table_service_uri} (identity-based)"

    def credential(self) -> TokenCredential:
        from azure.identity import DefaultAzureCredential

        if self.client_id:
            return DefaultAzureCredential(managed_identity_client_id=self.client_id)
        return DefaultAzureCredential()

    def table_service(self, **options: Any) -> TableServiceClient:
        from azure.data.tables import TableServiceClient

        options = {**CLIENT_OPTIONS, **options}
        if self.connection_string:
            return TableServiceClient.from_connection_string(self.connection_string, **options)
        if not self.table_service_uri:
            raise ConfigurationError(
                f"Table storage needs {TABLE_URI} or {ACCOUNT_NAME} (or a {CONNECTION} "
                "connection string)"
            )
        return TableServiceClient(
            endpoint=self.table_service_uri, credential=self.credential(), **options
        )

    def queue_client(self, name: str, **options: Any) -> QueueClient:
        """A client for one queue; messages are base64 text, as the queue trigger expects."""
        from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

        options = {
            **CLIENT_OPTIONS,
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
            **options,
        }
        if self.connection_string:
            return QueueClient.from_connection_string(self.connection_string, name, **options)
        if not self.queue_service_uri:
            raise ConfigurationError(
                f"Queue storage needs {QUEUE_URI} or {ACCOUNT_NAME} (or a {CONNECTION} "
                "connection string)"
            )
        return QueueClient(self.queue_service_uri, name, credential=self.credential(), **options)


def storage_from_env(env: Mapping[str, str] | None = None) -> StorageAccount:
    """The storage account from the host's variables; ConfigurationError says what to set."""
    env = os.environ if env is None else env
    connection_string = env.get(CONNECTION, "").strip()
    if connection_string:
        return StorageAccount(connection_string=connection_string)
    account = env.get(ACCOUNT_NAME, "").strip()
    queue_uri = env.get(QUEUE_URI, "").strip() or (
        f"https://{account}.queue.core.windows.net" if account else ""
    )
    table_uri = env.get(TABLE_URI, "").strip() or (
        f"https://{account}.table.core.windows.net" if account else ""
    )
    if not (queue_uri or table_uri):
        raise ConfigurationError(
            f"no storage account: set {CONNECTION} to a connection string "
            f"(UseDevelopmentStorage=true for Azurite), or {QUEUE_URI} and {TABLE_URI} "
            f"(or {ACCOUNT_NAME}) for identity-based access"
        )
    for variable, uri in ((QUEUE_URI, queue_uri), (TABLE_URI, table_uri)):
        if uri and not uri.startswith("https://"):
            raise ConfigurationError(f"{variable}: expected an https:// address, got {uri!r}")
    return StorageAccount(
        queue_service_uri=queue_uri.rstrip("/"),
        table_service_uri=table_uri.rstrip("/"),
        client_id=env.get(CLIENT_ID, "").strip(),
    )
