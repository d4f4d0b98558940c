"""NQL API: saved queries through v2 execute (small, instant) or export (bulk: submit, poll the
status, download the results file from its pre-signed link)."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import IO, Any

import requests
import urllib3

from reclaim.adapters.http_retry import RetryPolicy, send_with_retries
from reclaim.adapters.nexthink.rows import json_object
from reclaim.errors import SourceError, TransientError

log = logging.getLogger(__name__)

EXECUTE_ROW_LIMIT = 1000  # v2 execute returns at most this many rows

_GZIP_MAGIC = b"\x1f\x8b"
_DOWNLOAD_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportPolling:
    """How the status of an export is polled: growing pauses, and a limit on the whole wait."""

    first_pause: float = 1.0
    longest_pause: float = 15.0
    give_up_after: float = 1800.0


@dataclass
class QueryRows:
    """Rows of a saved query, and the zone their times without an offset are written in: UTC
    from execute (asked with x-utc-times), the configured export zone from an export."""

    rows: Iterator[dict[str, Any]]
    zone: tzinfo


def unknown_query(query_id: str) -> str:
    return (
        f"Nexthink has no NQL API query with id {query_id}: save it under "
        "Administration > Content management > NQL API queries"
    )


class NqlQueries:
    """The NQL operations of NexthinkClient (reclaim.adapters.nexthink.client), which provides
    the authenticated `call` and the connection settings declared here."""

    session: requests.Session
    retry: RetryPolicy
    polling: ExportPolling
    timeout: tuple[float, float]
    export_zone: tzinfo
    _sleep: Callable[[float], None]
    _clock: Callable[[], float]
    _utcnow: Callable[[], datetime]

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        not_found: str = "",
        rejected: str = "",
    ) -> requests.Response:
        raise NotImplementedError

    def execute(self, query_id: str, parameters: Mapping[str, str]) -> list[dict[str, Any]]:
        """Rows of a saved query through v2 execute (at most EXECUTE_ROW_LIMIT of them)."""
        response = self.call(
            "POST",
            "/api/v2/nql/execute",
            what=f"NQL query {query_id}",
            body={"queryId": query_id, "parameters": dict(parameters)},
            not_found=unknown_query(query_id),
        )
        data = json_object(response).get("data")
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise SourceError(f"NQL query {query_id}: the answer has no list of rows in 'data'")
        return data

    def export(self, query_id: str, parameters: Mapping[str, str]) -> ExportedResult:
        """Run a saved query as an export, wait for it, and download its file."""
        what = f"NQL export of {query_id}"
        started = self.call(
            "POST",
            "/api/v1/nql/export",
            what=what,
            body={"queryId": query_id, "parameters": dict(parameters), "compression": "GZIP"},
            not_found=unknown_query(query_id),
        )
        export_id = json_object(started).get("exportId")
        if not export_id:
            raise SourceError(f"{what}: the answer has no exportId")
        results_url, completed_at = self._wait_for_export(str(export_id), what)
        return ExportedResult(completed_at, self._download(results_url, what))

    def query_rows(self, query_id: str, parameters: Mapping[str, str]) -> QueryRows:
        """Rows of a saved query as dicts: execute, or export when execute may have cut them."""
        rows = self.execute(query_id, parameters)
        if len(rows) < EXECUTE_ROW_LIMIT:
            return QueryRows(iter(rows), UTC)
        log.info("NQL query %s hit the execute limit of %d rows; exporting", query_id, len(rows))
        return QueryRows(self.export(query_id, parameters).dict_rows(), self.export_zone)

    def _wait_for_export(self, export_id: str, what: str) -> tuple[str, datetime]:
        deadline = self._clock() + self.polling.give_up_after
        pause = self.polling.first_pause
        while True:
            response = self.call(
                "GET",
                f"/api/v1/nql/status/{export_id}",
                what=what,
                not_found=f"Nexthink no longer knows export {export_id}",
            )
            status = json_object(response)
            state = str(status.get("status", ""))
            if response.status_code == 206:
                # Fail closed: users cut from the result would look as if never observed.
                raise SourceError(
                    f"{what}: Nexthink truncated the results at the licence's maximum number "
                    "of results; narrow the query"
                )
            if state == "COMPLETED":
                url = status.get("resultsFileUrl")
                if not url:
                    raise SourceError(f"{what}: COMPLETED without a resultsFileUrl")
                return str(url), self._utcnow()
            if state == "ERROR":
                raise SourceError(
                    f"{what} failed in Nexthink: {status.get('errorDescription') or 'no reason'}"
                )
            if state not in ("SUBMITTED", "IN_PROGRESS"):
                raise SourceError(f"{what}: unexpected export status {state!r}")
            if self._clock() + pause > deadline:
                raise TransientError(
                    f"{what}: still {state} after {self.polling.give_up_after:.0f}s",
                    retry_after=self.polling.longest_pause,
                )
            self._sleep(pause)
            pause = min(pause * 2, self.polling.longest_pause)

    def _download(self, url: str, what: str) -> IO[bytes]:
        """The results file in an anonymous temporary file (gone from disk once closed).

        The link is pre-signed (S3): it is fetched without our bearer token.
        """
        response = send_with_retries(
            lambda: self.session.get(url, stream=True, timeout=self.timeout),
            what=f"{what}: download",
            policy=self.retry,
            sleep=self._sleep,
        )
        with response:
            if response.status_code == 403:
                raise TransientError(f"{what}: the results link was refused (expired?)")
            if response.status_code != 200:
                raise SourceError(
                    f"{what}: downloading the results failed (HTTP {response.status_code})"
                )
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by whoever reads the rows
            try:
                response.raw.decode_content = False  # the stored bytes; gzip is detected later
                shutil.copyfileobj(response.raw, spool, _DOWNLOAD_CHUNK)
            except (OSError, urllib3.exceptions.HTTPError) as error:
                spool.close()
                raise TransientError(
                    f"{what}: the download broke off ({type(error).__name__})"
                ) from error
        spool.seek(0)
        return spool


@dataclass
class ExportedResult:
    """A downloaded export: when it completed, and its file (plain or gzip CSV), read once."""

    completed_at: datetime
    file: IO[bytes]

    def lines(self) -> Iterator[str]:
        """The file's text, line by line, read lazily; the file is closed when they run out."""
        spool = self.file
        try:
            gzipped = spool.read(2) == _GZIP_MAGIC
            spool.seek(0)
            binary: IO[bytes] | gzip.GzipFile = (
                gzip.GzipFile(fileobj=spool, mode="rb") if gzipped else spool
            )
            try:
                yield from io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
            except (OSError, EOFError, UnicodeDecodeError) as error:
                raise SourceError(f"the exported results file is unreadable: {error}") from error
        finally:
            spool.close()

    def dict_rows(self) -> Iterator[dict[str, str]]:
        reader = csv.reader(self.lines())
        try:
            header = next(reader, None)
            if header is None:
                return
            for row in reader:
                if row:
                    yield dict(zip(header, row, strict=False))
        except csv.Error as error:
            raise SourceError(f"the exported results file is not valid CSV: {error}") from error
