"""NexthinkClient against the HTTPS fake: token, NQL execute and export, errors and retries."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from reclaim.adapters.http_retry import RetryPolicy
from reclaim.adapters.nexthink.client import NexthinkClient
from reclaim.adapters.nexthink.nql import ExportPolling
from reclaim.errors import ConfigurationError, SourceError, TransientError
from tests.fakes.nexthink import SECRET_NAME, FakeNexthink, secrets_for, settings_for

EXECUTE = "POST /api/v2/nql/execute"
STATUS = "GET /api/v1/nql/status/{exportId}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def nx() -> Iterator[FakeNexthink]:
    with FakeNexthink() as fake:
        fake.add_query(
            "#apps", ["user.sid", "focus_time"], [["S-1-5-21-1", 42], ["S-1-5-21-2", None]]
        )
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


def client(
    fake: FakeNexthink, clock: Clock, secret: str | None = None, **options: Any
) -> NexthinkClient:
    return NexthinkClient.from_settings(
        settings_for(fake),
        secrets_for(fake, secret),
        sleep=clock.sleep,
        clock=clock,
        **options,
    )


# ---- token ---------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_reused(nx: FakeNexthink, clock: Clock) -> None:
    c = client(nx, clock)
    for _ in range(3):
        assert c.execute("#apps", {}) == [
            {"user.sid": "S-1-5-21-1", "focus_time": 42},
            {"user.sid": "S-1-5-21-2", "focus_time": None},
        ]
    assert nx.tokens_issued == 1
    assert nx.count(EXECUTE) == 3


def test_token_is_refreshed_120_seconds_before_it_expires(nx: FakeNexthink, clock: Clock) -> None:
    c = client(nx, clock)
    first = c.token()
    clock.now += 900 - 121
    assert c.token() == first
    clock.now += 2
    assert c.token() != first
    assert nx.tokens_issued == 2


def test_a_short_expires_in_is_honoured(clock: Clock) -> None:
    with FakeNexthink(token_lifetime=130) as fake:
        c = client(fake, clock)
        first = c.token()
        clock.now += 11
        assert c.token() != first


def test_threads_share_one_token_fetch(nx: FakeNexthink, clock: Clock) -> None:
    nx.slow("/oauth2/", 0.3)  # every thread arrives while the first fetch is under way
    c = client(nx, clock)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            c.execute("#apps", {})
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert nx.tokens_issued == 1
    assert nx.count(EXECUTE) == 8


def test_wrong_secret_is_a_configuration_error_that_names_the_secret_not_its_value(
    nx: FakeNexthink, clock: Clock
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        client(nx, clock, secret="wrong-value").execute("#apps", {})
    message = str(caught.value)
    assert "invalid_client" in message
    assert SECRET_NAME in message
    assert "wrong-value" not in message and nx.client_secret not in message
    assert nx.count(EXECUTE) == 0


def test_a_revoked_token_is_replaced_once(nx: FakeNexthink, clock: Clock) -> None:
    c = client(nx, clock)
    c.execute("#apps", {})
    nx.revoke_tokens()
    assert len(c.execute("#apps", {})) == 2
    assert nx.tokens_issued == 2


def test_401_with_a_fresh_token_is_a_configuration_error(nx: FakeNexthink, clock: Clock) -> None:
    nx.fail("/api/v2/nql/execute", 401, times=2)
    with pytest.raises(ConfigurationError, match="401"):
        client(nx, clock).execute("#apps", {})
    assert nx.tokens_issued == 2


def test_missing_settings_are_listed(nx: FakeNexthink) -> None:
    settings = settings_for(nx, RECLAIM_NEXTHINK_BASE_URL="", RECLAIM_NEXTHINK_CLIENT_ID="")
    with pytest.raises(ConfigurationError) as caught:
        NexthinkClient.from_settings(settings, secrets_for(nx))
    assert "RECLAIM_NEXTHINK_BASE_URL" in str(caught.value)
    assert "RECLAIM_NEXTHINK_CLIENT_ID" in str(caught.value)


def test_the_machine_ca_bundle_does_not_override_the_configured_one(
    nx: FakeNexthink, clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    empty = tmp_path / "other-ca.pem"
    empty.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(empty))
    assert client(nx, clock).execute("#apps", {})


def test_an_untrusted_certificate_is_a_configuration_error(nx: FakeNexthink, clock: Clock) -> None:
    settings = settings_for(nx, RECLAIM_CA_BUNDLE="")  # system CAs do not trust the test CA
    c = NexthinkClient.from_settings(settings, secrets_for(nx), sleep=clock.sleep)
    with pytest.raises(ConfigurationError, match="RECLAIM_CA_BUNDLE"):
        c.execute("#apps", {})


# ---- NQL execute -------------------------------------------------------------------------------


def test_the_fake_serves_v1_row_arrays_with_headers(nx: FakeNexthink, clock: Clock) -> None:
    body = (
        client(nx, clock)
        .call("POST", "/api/v1/nql/execute", what="v1", body={"queryId": "#apps", "parameters": {}})
        .json()
    )
    assert body["headers"] == ["user.sid", "focus_time"]
    assert body["data"] == [["S-1-5-21-1", 42], ["S-1-5-21-2", None]]
    assert set(body["executionDateTime"]) == {"year", "month", "day", "hour", "minute", "second"}


def test_execute_sends_the_parameters_and_asks_for_utc(nx: FakeNexthink, clock: Clock) -> None:
    nx.add_query("#apps", ["user.sid"], [], parameters=["application"])
    c = client(nx, clock)
    c.execute("#apps", {"application": "Visio"})
    assert nx.bodies[EXECUTE] == [{"queryId": "#apps", "parameters": {"application": "Visio"}}]


def test_unknown_query_id_is_a_configuration_error_naming_it(
    nx: FakeNexthink, clock: Clock
) -> None:
    with pytest.raises(ConfigurationError, match=r"#missing_query.*NQL API queries"):
        client(nx, clock).execute("#missing_query", {})


def test_403_says_which_permission_is_missing(nx: FakeNexthink, clock: Clock) -> None:
    nx.forbid("/api/v2/nql/")
    with pytest.raises(ConfigurationError, match=r"403.*permission"):
        client(nx, clock).execute("#apps", {})


def test_429_is_retried_after_the_retry_after_seconds(nx: FakeNexthink, clock: Clock) -> None:
    nx.fail("/api/v2/nql/execute", 429, times=2, retry_after="1")
    assert len(client(nx, clock).execute("#apps", {})) == 2
    assert clock.sleeps == [1.0, 1.0]
    assert nx.count(EXECUTE) == 3


def test_a_retry_after_http_date_is_understood(nx: FakeNexthink, clock: Clock) -> None:
    nx.fail("/api/v2/nql/execute", 503, retry_after="Thu, 01 Jan 1970 00:00:00 GMT")
    client(nx, clock).execute("#apps", {})
    assert clock.sleeps == [0.0]  # a date in the past: try again at once


def test_503_backs_off_then_becomes_transient(nx: FakeNexthink, clock: Clock) -> None:
    nx.fail("/api/v2/nql/execute", 503, times=10)
    with pytest.raises(TransientError, match="HTTP 503 after 5 attempts"):
        client(nx, clock).execute("#apps", {})
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert nx.count(EXECUTE) == 5


def test_a_long_retry_after_is_handed_to_the_caller(nx: FakeNexthink, clock: Clock) -> None:
    nx.fail("/api/v2/nql/execute", 429, retry_after="3600")
    with pytest.raises(TransientError) as caught:
        client(nx, clock).execute("#apps", {})
    assert caught.value.retry_after == 3600
    assert clock.sleeps == []
    assert nx.count(EXECUTE) == 1


def test_a_slow_answer_within_the_timeout_is_awaited(nx: FakeNexthink, clock: Clock) -> None:
    nx.slow("/api/v2/nql/execute", 0.3)
    assert len(client(nx, clock, timeout=(5.0, 2.0)).execute("#apps", {})) == 2


def test_a_read_timeout_on_a_query_is_retried_then_transient(
    nx: FakeNexthink, clock: Clock
) -> None:
    nx.slow("/api/v2/nql/execute", 0.6, times=2)
    fast = RetryPolicy(attempts=2)
    with pytest.raises(TransientError, match="ReadTimeout after 2 attempts"):
        client(nx, clock, timeout=(5.0, 0.2), retry=fast).execute("#apps", {})
    assert nx.count(EXECUTE) == 2


def test_execute_then_export_when_the_row_cap_is_reached(nx: FakeNexthink, clock: Clock) -> None:
    nx.add_query("#big", ["n"], [[i] for i in range(1500)])
    rows = list(client(nx, clock).query_rows("#big", {}).rows)
    assert [int(r["n"]) for r in rows] == list(range(1500))
    assert nx.count("POST /api/v1/nql/export") == 1

    nx.add_query("#small", ["n"], [[i] for i in range(999)])
    assert len(list(client(nx, clock).query_rows("#small", {}).rows)) == 999
    assert nx.count("POST /api/v1/nql/export") == 1


# ---- NQL export ----------------------------------------------------------------------------------


def test_export_polls_with_growing_pauses_and_downloads_gzip(
    nx: FakeNexthink, clock: Clock
) -> None:
    nx.add_query(
        "#apps",
        ["user.sid", "focus_time"],
        [["S-1-5-21-1", 42], ["S-1-5-21-2", None]],
        parameters=["application"],
    )
    nx.export_polls_needed = 3
    finished = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    result = client(nx, clock, utcnow=lambda: finished).export("#apps", {"application": "Visio"})
    assert result.completed_at == finished
    assert list(result.lines()) == [
        "user.sid,focus_time\r\n",
        "S-1-5-21-1,42\r\n",
        "S-1-5-21-2,\r\n",
    ]
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert nx.count(STATUS) == 4
    assert nx.bodies["POST /api/v1/nql/export"] == [
        {"queryId": "#apps", "parameters": {"application": "Visio"}, "compression": "GZIP"}
    ]
    exported = next(iter(nx.exports.values()))
    assert exported.file is not None
    with gzip.open(exported.file) as stored:
        assert stored.read(9) == b"user.sid,"


def test_the_results_link_is_fetched_without_our_token(nx: FakeNexthink, clock: Clock) -> None:
    list(client(nx, clock).export("#apps", {}).lines())
    assert nx.count("GET /s3/results") == 1
    assert "Authorization" not in nx.download_headers[0]


def test_a_plain_csv_results_file_is_read_too(nx: FakeNexthink, clock: Clock) -> None:
    nx.ignore_compression = True
    rows = list(client(nx, clock).export("#apps", {}).dict_rows())
    assert rows == [
        {"user.sid": "S-1-5-21-1", "focus_time": "42"},
        {"user.sid": "S-1-5-21-2", "focus_time": ""},
    ]
    exported = next(iter(nx.exports.values()))
    assert exported.file is not None and exported.file.suffix == ".csv"


def test_export_error_is_a_source_error_with_nexthinks_reason(
    nx: FakeNexthink, clock: Clock
) -> None:
    nx.export_error = "Query timed out"
    with pytest.raises(SourceError, match="Query timed out"):
        client(nx, clock).export("#apps", {})


def test_truncated_export_fails_closed(nx: FakeNexthink, clock: Clock) -> None:
    nx.export_truncated = True
    with pytest.raises(SourceError, match="truncated"):
        client(nx, clock).export("#apps", {})


def test_daily_limit_429_on_status_is_waited_out(nx: FakeNexthink, clock: Clock) -> None:
    nx.fail("/api/v1/nql/status/", 429, retry_after="1")
    assert len(list(client(nx, clock).export("#apps", {}).lines())) == 3
    assert 1.0 in clock.sleeps


def test_an_export_that_never_completes_becomes_transient(nx: FakeNexthink, clock: Clock) -> None:
    nx.export_polls_needed = 10_000
    polling = ExportPolling(first_pause=1.0, longest_pause=10.0, give_up_after=60.0)
    with pytest.raises(TransientError, match="still IN_PROGRESS after 60s"):
        client(nx, clock, polling=polling).export("#apps", {})
    assert sum(clock.sleeps) <= 60.0


def test_an_expired_results_link_is_transient(nx: FakeNexthink, clock: Clock) -> None:
    nx.results_link_expired = True
    with pytest.raises(TransientError, match="expired"):
        client(nx, clock).export("#apps", {})


def test_a_corrupt_gzip_file_is_a_source_error(nx: FakeNexthink, clock: Clock) -> None:
    result = client(nx, clock).export("#apps", {})
    data = result.file.read()
    result.file.seek(0)
    result.file.truncate()
    result.file.write(data[: len(data) // 2])  # cut in the middle of the gzip stream
    result.file.seek(0)
    with pytest.raises(SourceError, match="unreadable"):
        list(result.lines())
