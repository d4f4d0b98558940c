"""Webhook fuzzing: thousands of malformed, forged, replayed and oversized requests to the campaign
webhook (reclaim/functions/webhook.py), called as the host calls it: the registered function's
user function with a func.HttpRequest. Every one must be answered 4xx, never 5xx, and change
nothing: the state store (every table of the SQLite file), the removal queue.

The app context is real (reclaim.functions.app_context.AppContext, install()ed) over a SqliteStore
so thousands of requests take seconds; the Table store keeps the same contract
(tests/adapters/test_store_contract.py) and the webhook's own tests run it on Azurite.
Hypothesis runs derandomized: the same cases on every run, so CI is reproducible.
"""

from __future__ import annotations

import json
import sqlite3
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.harness import DelayQueue
from reclaim import signing, usecases
from reclaim.adapters.environment import EnvironmentSecrets, variable_for
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import Member, UsageRow, User
from reclaim.functions import app_context
from reclaim.settings import Settings
from tests.conftest import NOW, asking_policy
from tests.support.functions import call_http, json_body, signed
from tests.support.memory import MemoryAdapters, MemoryCampaign, MemoryDirectory, MemoryUsage

NAME = "campaign_responses"
SECRET_NAME = "fuzz-webhook-secret"
SECRET = "fuzz-webhook-signing-secret-value"
MAX_BYTES = 65536  # RECLAIM_WEBHOOK_MAX_BYTES, the default
TOLERANCE = timedelta(minutes=5)
USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com", sid=f"S-1-5-21-{i}") for i in range(8)]
USAGE = [UsageRow(u.upn, 1.0) for u in USERS]  # everyone idle: everyone asked
FUZZ = settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Target:
    app: app_context.AppContext
    store: SqliteStore
    queue: DelayQueue
    policy: str
    open_ids: list[str]  # PENDING requests: a valid answer to one would change state
    answered_body: bytes  # an answer accepted during setup (its replays must change nothing)

    def post(self, body: bytes, headers: dict[str, str]) -> Any:
        return call_http(NAME, body, headers=headers)

    def fingerprint(self) -> tuple[int, ...]:
        """Cheap, per request: anything recorded moves one of these."""
        db = sqlite3.connect(self.store.path)
        try:
            answers, ledger, versions = db.execute(
                "SELECT (SELECT COUNT(*) FROM answers), (SELECT COUNT(*) FROM ledger), "
                "(SELECT COALESCE(SUM(version), 0) FROM requests)"
            ).fetchone()
        finally:
            db.close()
        return answers, ledger, versions, self.queue.sent

    def snapshot(self) -> list[str]:
        """Everything: every row of every table."""
        db = sqlite3.connect(self.store.path)
        try:
            return list(db.iterdump())
        finally:
            db.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    policy = asking_policy()
    store = SqliteStore(tmp_path_factory.mktemp("fuzz") / "state.sqlite3")
    queue = DelayQueue()
    adapters = MemoryAdapters(
        MemoryDirectory({"SF": [Member(u) for u in USERS]}),
        MemoryUsage(USAGE, NOW),
        MemoryCampaign(),
    )
    ctx = usecases.Context(store, queue, adapters, {policy.name: policy})
    assert usecases.run_policy(ctx, policy, NOW).run.asked == len(USERS)
    env = {
        "RECLAIM_SECRETS_SOURCE": "env",
        "RECLAIM_WEBHOOK_SECRET_NAME": SECRET_NAME,
        "RECLAIM_WEBHOOK_MAX_BYTES": str(MAX_BYTES),
        "RECLAIM_WEBHOOK_TOLERANCE": "5m",
    }
    app = app_context.AppContext(
        Settings.from_env(env),
        ctx,
        queue,
        secrets=lambda: EnvironmentSecrets({variable_for(SECRET_NAME): SECRET}),
        queue_options=app_context.QueueOptions(),
        clock=lambda: NOW,
    )
    app_context.install(app)
    try:
        requests = store.requests(policy.name, [RequestState.PENDING])
        target = Target(app, store, queue, policy.name, [r.id for r in requests[2:]], b"")
        # Two real answers first, a "yes" (KEPT) and a "no" (DUE: the next expiry tick releases
        # it): the harness sees an accepted request, and what it changes.
        for request, answer in zip(requests[:2], ("yes", "no"), strict=True):
            before = target.fingerprint()
            body = json.dumps({"request_id": request.id, "answer": answer}).encode()
            response = call_http(NAME, body, headers=signed(SECRET, body, NOW))
            assert response.status_code == 202, json_body(response)
            assert target.fingerprint() != before
        assert store.get_request(requests[0].id).state is RequestState.KEPT
        assert store.get_request(requests[1].id).state is RequestState.DUE and queue.sent == 0
        target.answered_body = body
        yield target
    finally:
        app_context.install(None)


def assert_refused(target: Target, body: bytes, headers: dict[str, str]) -> int:
    before = target.fingerprint()
    response = target.post(body, headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.get_body()[:300])
    assert json_body(response)["error"]["code"]
    assert target.fingerprint() == before
    return response.status_code


def unchanged(target: Target, run: Callable[[], None]) -> None:
    """Run a whole fuzz session; nothing at all may differ afterwards."""
    before = target.snapshot()
    run()
    assert target.snapshot() == before


# ---- strategies ---------------------------------------------------------------------------------

timestamps_now = st.integers(-int(TOLERANCE.total_seconds()), int(TOLERANCE.total_seconds())).map(
    lambda skew: str(int(NOW.timestamp()) + skew)
)
bad_timestamps = st.one_of(
    st.just(""),
    st.text(max_size=40),
    st.text(alphabet=string.digits, min_size=11, max_size=40),  # far in the future
    st.integers(20, 6000).map(lambda digits: "9" * digits),  # numbers no clock can hold
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["  ", "+1700000000", "1e9", "١٢٣٤٥٦٧٨٩٠", "0x6553f100", "NaN"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


@st.composite
def valid_answer(draw: st.DrawFn, target: Target) -> dict[str, Any]:
    """An answer that would be accepted (and change state) if nothing were wrong with it."""
    answer = draw(st.sampled_from(["yes", "no", "YES", "No"]))
    if draw(st.booleans()):
        item: dict[str, Any] = {"request_id": draw(st.sampled_from(target.open_ids))}
    else:
        user = draw(st.sampled_from(USERS[2:]))
        item = {"policy": target.policy, "user": draw(st.sampled_from([user.upn, user.sid]))}
    item["answer"] = answer
    if draw(st.booleans()):
        item["answered_at"] = NOW.isoformat()
    return item


out_of_range_times = st.one_of(
    st.builds(
        lambda year, hours: f"{year:04d}-01-01T00:00:00{hours:+03d}:00",
        st.one_of(st.integers(1, 1999), st.integers(2028, 9999)),
        st.integers(-14, 14),
    ),
    st.sampled_from(["0001-01-01T00:00:00-01:00", "0001-01-01T00:00:00+01:00",
                     "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999999-14:00"]),
)  # fmt: skip
unstorable_ids = st.one_of(
    st.builds(lambda a, b: a + chr(b) + a, st.text(max_size=5), st.integers(0xD800, 0xDFFF)),
    st.builds(lambda a, b: a + chr(b), st.text(max_size=5), st.integers(0, 31)),
    st.integers(257, 30_000).map(lambda n: "x" * n),
)
CORRUPTIONS: list[tuple[str, Any]] = [
    ("answer", st.sampled_from(["maybe", "", " ", "y", "oui", "yes!", "nope"])),
    ("answer", st.one_of(st.integers(), st.booleans(), st.lists(st.text()), st.none())),
    ("request_id", st.uuids().map(str)),  # unknown
    ("request_id", st.one_of(st.integers(), st.just(""), st.just("   "), st.lists(st.text()))),
    ("answered_at", st.sampled_from(["2026-11-28T10:00:00", "2026-11-28", "yesterday", "2999"])),
    ("answered_at", st.just((NOW + TOLERANCE + timedelta(seconds=1)).isoformat())),  # future
    ("answered_at", st.one_of(st.integers(), st.floats(), st.text(alphabet=string.ascii_letters))),
    # Values no store keeps or reads back: each was once answered 503 "retry later", which a
    # caller honouring Retry-After retries for ever. They must be 4xx saying what to fix.
    ("answered_at", out_of_range_times),
    ("request_id", unstorable_ids),
    ("user", unstorable_ids),
    ("policy", unstorable_ids),
]


@st.composite
def invalid_answers(draw: st.DrawFn, target: Target) -> Any:
    """A body that passes the signature and must fail validation: one corruption, always."""
    kind = draw(st.sampled_from(["corrupted", "unknown-policy", "no-key", "list", "not-answers"]))
    if kind == "not-answers":
        return draw(json_values.filter(lambda v: not isinstance(v, (dict, list)) or v in ({}, [])))
    item = draw(valid_answer(target))
    if kind == "unknown-policy":
        item.pop("request_id", None)
        item["policy"] = draw(st.text(min_size=1).filter(lambda p: p.strip() != target.policy))
        item["user"] = item.get("user") or USERS[3].upn
        return item
    if kind == "no-key":
        for key in ("request_id", "policy", "user"):
            item.pop(key, None)
        return item
    field, values = draw(st.sampled_from(CORRUPTIONS))
    if field == "request_id":
        item.pop("policy", None)
        item.pop("user", None)
    elif field in ("policy", "user"):
        item.pop("request_id", None)
        item.setdefault("policy", target.policy)
        item.setdefault("user", USERS[3].upn)
    item[field] = draw(values)
    if kind == "list":  # one bad answer among good ones: the whole list is refused
        good = draw(st.lists(valid_answer(target), max_size=4))
        position = draw(st.integers(0, len(good)))
        return [*good[:position], item, *good[position:]]
    return item


def forged_signatures(body: bytes, timestamp: str) -> st.SearchStrategy[str]:
    other = signing.sign(SECRET, timestamp, body + b" ")
    short_number = timestamp.isascii() and timestamp.isdigit() and len(timestamp) < 16
    next_second = str(int(timestamp) + 1) if short_number else "1"
    return st.one_of(
        st.just(""),
        st.text(max_size=80),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256=" + h),
        st.just(signing.sign("not-the-secret", timestamp, body)),
        st.just(other),  # a signature of another body
        st.just(signing.sign(SECRET, next_second, body)),  # signed for another second
        st.just(signing.sign(SECRET, timestamp, body).replace("sha256=", "sha1=")),
        st.just(signing.sign(SECRET, timestamp, body)[:-1]),
        st.just(signing.sign(SECRET, timestamp, body) + "0"),
    )


# ---- the fuzz runs ------------------------------------------------------------------------------


def test_forged_and_unsigned_requests_are_refused(target: Target) -> None:
    @FUZZ
    @given(data=st.data())
    def forged(data: st.DataObject) -> None:
        body = data.draw(
            st.one_of(
                valid_answer(target).map(json_bytes),  # what an attacker wants accepted
                st.lists(valid_answer(target), min_size=1, max_size=3).map(json_bytes),
                st.binary(max_size=300),
            )
        )
        timestamp = data.draw(st.one_of(timestamps_now, bad_timestamps))
        headers = {"Content-Type": "application/json"}
        if data.draw(st.booleans()):
            headers[signing.TIMESTAMP_HEADER] = timestamp
        if data.draw(st.booleans()):
            headers[signing.SIGNATURE_HEADER] = data.draw(forged_signatures(body, timestamp))
        elif headers.get(signing.TIMESTAMP_HEADER) and data.draw(st.booleans()):
            # the right signature for this body and timestamp, but the timestamp is bad
            if timestamp in {str(int(NOW.timestamp()) + s) for s in range(-300, 301)}:
                timestamp = str(int(NOW.timestamp()) - 3600)
                headers[signing.TIMESTAMP_HEADER] = timestamp
            headers[signing.SIGNATURE_HEADER] = signing.sign(SECRET, timestamp, body)
        assert assert_refused(target, body, headers) in (400, 401, 413)

    unchanged(target, forged)


def test_signed_but_malformed_requests_are_refused(target: Target) -> None:
    @FUZZ
    @given(data=st.data())
    def malformed(data: st.DataObject) -> None:
        body = data.draw(
            st.one_of(
                invalid_answers(target).map(json_bytes),
                st.binary(max_size=400),
                st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                st.sampled_from([b"", b"null", b"{", b'{"answer": "yes"', b"\xff\xfe{}", b"[]"]),
                # nested deeper than the interpreter's recursion limit (Hypothesis raises it by
                # 2,000 frames while it runs a test: go beyond that too)
                st.integers(500, MAX_BYTES // 2).map(lambda n: b"[" * n + b"]" * n),
                st.integers(500, MAX_BYTES // 7).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
            )
        )
        headers = signed(SECRET, body, NOW)
        headers["Content-Type"] = data.draw(
            st.sampled_from(
                [
                    *("application/json", "application/json; charset=utf-8", "application/x+json"),
                    *("text/plain", "", "application/xml", "multipart/form-data"),
                ]
            )
        )
        if data.draw(st.booleans()):
            headers["Content-Length"] = data.draw(
                st.sampled_from(
                    [
                        str(len(body)),
                        "",
                        "abc",
                        "-1",
                        "1e3",
                        str(10**20),
                        " 12 ",
                        "²",
                        "١٢٣",
                        "\uff11\uff12",  # fullwidth digits
                    ]
                )
            )
        assert_refused(target, body, headers)

    unchanged(target, malformed)


def test_replays_outside_the_window_are_refused_and_inside_change_nothing(target: Target) -> None:
    body = target.answered_body

    @settings(FUZZ, max_examples=600)
    @given(
        skew=st.one_of(st.integers(301, 10**9), st.integers(-(10**9), -301)),
        late=st.booleans(),
    )
    def replayed(skew: int, late: bool) -> None:
        # A captured request sent again later (or with a forward-dated timestamp): its own valid
        # signature, a timestamp outside the tolerance.
        timestamp = int(NOW.timestamp()) - skew if late else int(NOW.timestamp()) + skew
        headers = signed(SECRET, body, NOW)
        headers[signing.TIMESTAMP_HEADER] = str(timestamp)
        headers[signing.SIGNATURE_HEADER] = signing.sign(SECRET, timestamp, body)
        assert assert_refused(target, body, headers) == 401

    @settings(FUZZ, max_examples=200)
    @given(skew=st.integers(-300, 300))
    def within_window(skew: int) -> None:
        # Inside the window a replay cannot be told from a retry: it is accepted as a duplicate.
        before = target.fingerprint()
        when = NOW + timedelta(seconds=skew)
        response = target.post(body, signed(SECRET, body, when))
        assert response.status_code == 202
        assert json_body(response)["duplicate"] == 1
        assert target.fingerprint() == before

    unchanged(target, replayed)
    unchanged(target, within_window)


def test_oversized_requests_are_refused(target: Target) -> None:
    @settings(FUZZ, max_examples=300)
    @given(
        size=st.integers(MAX_BYTES + 1, MAX_BYTES * 4),
        signature=st.booleans(),
        length=st.sampled_from(["true", "absent", "small", "huge"]),
    )
    def oversized(size: int, signature: bool, length: str) -> None:
        answer = json.dumps({"request_id": target.open_ids[0], "answer": "no", "pad": ""})
        body = (answer[:-2] + "x" * max(0, size - len(answer)) + '"}').encode()
        headers = signed(SECRET, body, NOW) if signature else {"Content-Type": "application/json"}
        match length:
            case "absent":
                headers.pop("Content-Length", None)
            case "small":
                headers["Content-Length"] = "10"  # lies: the real size still counts
            case "huge":
                headers["Content-Length"] = str(10**12)
            case _:
                headers["Content-Length"] = str(len(body))
        assert assert_refused(target, body, headers) == 413

    unchanged(target, oversized)
