"""Microsoft's own Graph client (msgraph-sdk, v1.0) makes the calls reclaim makes against the Graph
fake, and accepts every answer: its request builders are the contract for paths and bodies, its
models for answers. An answer property the SDK's model does not know lands in `additional_data`,
which must stay empty; an error must parse into ODataError with Graph's code and message.

The SDK talks to the fake as to Graph: a TokenCredential (azure-identity) against the fake's token
endpoint, HTTPS trusting the fake's CA only, the fake's base URL. One test per call, so another
call is one more test (`with sdk(graph) as client: ...`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import pytest

from reclaim.adapters.graph.licences import FIELDS as LICENCE_FIELDS
from reclaim.adapters.graph.managers import FIELDS as MANAGER_FIELDS
from reclaim.adapters.graph.paths import GROUP_FIELDS, MEMBERS_PAGE, USER_FIELDS
from tests.fakes import graph_mail
from tests.fakes.graph import FakeGraph, fake_graph
from tests.support.components import in_ci

__all__ = ["fake_graph"]  # the fixture, imported for pytest

try:
    import httpx
    from azure.identity import ClientSecretCredential
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_abstractions.serialization import Parsable
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.models.reference_create import ReferenceCreate
    from msgraph.generated.models.user import User as SdkUser
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import (
        SendMailPostRequestBody,
    )
    from msgraph_core import GraphClientFactory
except ImportError:  # the test lock installs it: missing in CI is a failure, never a skip
    if in_ci():
        raise
    pytest.skip(
        "msgraph-sdk is not installed: install tests/requirements.txt", allow_module_level=True
    )

T = TypeVar("T")


def run(graph: FakeGraph, call: Callable[[GraphServiceClient], Awaitable[T]]) -> T:
    """`call(client)` with a fresh SDK client on its own event loop."""

    async def go() -> T:
        context = ssl.create_default_context(cafile=str(graph.ca_file))
        async with httpx.AsyncClient(verify=context, trust_env=False) as http:
            credential = ClientSecretCredential(
                graph.tenant_id,
                graph.client_id,
                graph.client_secret,
                authority=graph.authority_host,
                disable_instance_discovery=True,
                connection_verify=str(graph.ca_file),
            )
            auth = AzureIdentityAuthenticationProvider(
                credential, scopes=[f"{graph.base_url}/.default"], allowed_hosts=["127.0.0.1"]
            )
            adapter = GraphRequestAdapter(
                auth, client=GraphClientFactory.create_with_default_middleware(client=http)
            )
            adapter.base_url = graph.url
            return await call(GraphServiceClient(request_adapter=adapter))

    return asyncio.run(go())


def unknown_properties(model: Any, where: str = "") -> list[str]:
    """Answer properties the SDK's models did not recognise, at any depth."""
    if isinstance(model, list):
        return [
            p for i, item in enumerate(model) for p in unknown_properties(item, f"{where}[{i}]")
        ]
    if not isinstance(model, Parsable):
        return []
    found = [
        f"{where}.{key}"
        for key in (getattr(model, "additional_data", None) or {})
        if key != "@odata.context"  # the collection's metadata URL, an annotation
    ]
    for name, value in vars(model).items():
        if name != "additional_data" and value is not None:
            found.extend(unknown_properties(value, f"{where}.{name}"))
    return found


def _select(fields: str) -> list[str]:
    return fields.split(",")


def test_lists_members_page_by_page(fake_graph: FakeGraph) -> None:
    fake_graph.page_size = 2
    group = fake_graph.add_group("Salesforce users")
    users = fake_graph.add_users(5)
    fake_graph.add_member(group, *users)

    async def call(client: GraphServiceClient) -> list[Any]:
        members = client.groups.by_group_id(group).members.graph_user
        config = RequestConfiguration(
            query_parameters=members.GraphUserRequestBuilderGetQueryParameters(
                select=_select(USER_FIELDS), top=MEMBERS_PAGE
            )
        )
        page = await members.get(request_configuration=config)
        pages = [page]
        while page is not None and page.odata_next_link:
            page = await members.with_url(page.odata_next_link).get()
            pages.append(page)
        return pages

    pages = run(fake_graph, call)
    assert len(pages) == 3
    assert not unknown_properties(pages)
    listed = [user for page in pages for user in page.value]
    assert [u.id for u in listed] == users
    assert {u.odata_type for u in listed} == {"#microsoft.graph.user"}
    assert listed[0].user_principal_name == fake_graph.users[users[0]].upn
    # the SDK casts with the namespace alias: the fake takes it, as Graph does
    assert {r.path for r in fake_graph.requests} == {f"/groups/{group}/members/graph.user"}


def test_reads_a_group(fake_graph: FakeGraph) -> None:
    sku = fake_graph.new_sku()
    group = fake_graph.add_group("Salesforce users", licences=[sku])

    async def call(client: GraphServiceClient) -> Any:
        item = client.groups.by_group_id(group)
        config = RequestConfiguration(
            query_parameters=item.GroupItemRequestBuilderGetQueryParameters(
                select=_select(GROUP_FIELDS)
            )
        )
        return await item.get(request_configuration=config)

    found = run(fake_graph, call)
    assert not unknown_properties(found)
    assert (found.display_name, found.group_types, found.security_enabled) == (
        "Salesforce users",
        [],
        True,
    )
    assert [licence.sku_id for licence in found.assigned_licenses] == [UUID(sku)]


def test_removes_a_member_by_reference(fake_graph: FakeGraph) -> None:
    group = fake_graph.add_group("g")
    user = fake_graph.add_user("ada@contoso.test")
    fake_graph.add_member(group, user)

    async def call(client: GraphServiceClient) -> None:
        await client.groups.by_group_id(group).members.by_directory_object_id(user).ref.delete()

    run(fake_graph, call)
    assert not fake_graph.is_member(group, user) and user in fake_graph.users
    assert [(r.method, r.path, r.status) for r in fake_graph.requests] == [
        ("DELETE", f"/groups/{group}/members/{user}/$ref", 204)
    ]


def _add(
    group: str, user: str, graph: FakeGraph
) -> Callable[[GraphServiceClient], Awaitable[None]]:
    async def call(client: GraphServiceClient) -> None:
        body = ReferenceCreate(odata_id=f"{graph.url}/directoryObjects/{user}")
        await client.groups.by_group_id(group).members.ref.post(body)

    return call


def test_adds_a_member_by_reference(fake_graph: FakeGraph) -> None:
    group = fake_graph.add_group("g")
    user = fake_graph.add_user("ada@contoso.test")
    run(fake_graph, _add(group, user, fake_graph))
    assert fake_graph.is_member(group, user)
    (request,) = fake_graph.requests
    assert (request.method, request.path, request.status) == (
        "POST",
        f"/groups/{group}/members/$ref",
        204,
    )


def test_a_duplicate_add_is_graphs_error(fake_graph: FakeGraph) -> None:
    group = fake_graph.add_group("g")
    user = fake_graph.add_user("ada@contoso.test")
    fake_graph.add_member(group, user)
    with pytest.raises(ODataError) as caught:
        run(fake_graph, _add(group, user, fake_graph))
    error = caught.value.error
    assert caught.value.response_status_code == 400
    assert error.code == "Request_BadRequest" and "already exist" in error.message
    assert error.inner_error is not None and error.inner_error.request_id


def test_reads_licence_states(fake_graph: FakeGraph) -> None:
    direct, inherited = fake_graph.new_sku(), fake_graph.new_sku()
    group = fake_graph.add_group("g", licences=[inherited])
    user = fake_graph.add_user("ada@contoso.test", direct_licences=[direct])
    fake_graph.add_member(group, user)

    async def call(client: GraphServiceClient) -> Any:
        item = client.users.by_user_id(user)
        config = RequestConfiguration(
            query_parameters=item.UserItemRequestBuilderGetQueryParameters(
                select=_select(LICENCE_FIELDS)
            )
        )
        return await item.get(request_configuration=config)

    found = run(fake_graph, call)
    assert not unknown_properties(found)
    states = {(s.sku_id, s.assigned_by_group, s.state) for s in found.license_assignment_states}
    assert states == {(UUID(direct), None, "Active"), (UUID(inherited), group, "Active")}
    assert {a.sku_id for a in found.assigned_licenses} == {UUID(direct), UUID(inherited)}


def test_finds_a_user_by_upn(fake_graph: FakeGraph) -> None:
    user = fake_graph.add_user("o'brien@contoso.test", sam_account_name="obrien")

    async def call(client: GraphServiceClient) -> Any:
        users = client.users
        config = RequestConfiguration(
            query_parameters=users.UsersRequestBuilderGetQueryParameters(
                filter="userPrincipalName eq 'o''brien@contoso.test' or "
                "mail eq 'o''brien@contoso.test'",
                select=_select(USER_FIELDS),
            )
        )
        return await users.get(request_configuration=config)

    found = run(fake_graph, call)
    assert not unknown_properties(found)
    assert [(u.id, u.on_premises_sam_account_name) for u in found.value] == [(user, "obrien")]


def test_reads_sign_ins(fake_graph: FakeGraph) -> None:
    app = "0d1f5a44-9b6b-4f5e-8a0e-4c9f4d1c2b3a"
    user = fake_graph.add_user("ada@contoso.test")
    at = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    fake_graph.add_sign_in(user, app, at)

    async def call(client: GraphServiceClient) -> Any:
        sign_ins = client.audit_logs.sign_ins
        config = RequestConfiguration(
            query_parameters=sign_ins.SignInsRequestBuilderGetQueryParameters(
                filter=f"appId eq '{app}' and createdDateTime ge 2026-11-01T00:00:00Z", top=1000
            )
        )
        return await sign_ins.get(request_configuration=config)

    found = run(fake_graph, call)
    assert not unknown_properties(found)
    (row,) = found.value
    assert (row.user_id, row.user_principal_name, row.app_id) == (user, "ada@contoso.test", app)
    assert row.created_date_time == at


def test_reads_who_was_added_to_a_group(fake_graph: FakeGraph) -> None:
    group = fake_graph.add_group("g")
    user = fake_graph.add_user("ada@contoso.test")
    at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    fake_graph.add_member(group, user, at=at)

    async def call(client: GraphServiceClient) -> Any:
        audits = client.audit_logs.directory_audits
        config = RequestConfiguration(
            query_parameters=audits.DirectoryAuditsRequestBuilderGetQueryParameters(
                filter="activityDisplayName eq 'Add member to group' and "
                f"targetResources/any(t: t/id eq '{group}')"
            )
        )
        return await audits.get(request_configuration=config)

    found = run(fake_graph, call)
    assert not unknown_properties(found)
    (entry,) = found.value
    assert entry.activity_date_time == at
    assert {t.id for t in entry.target_resources} == {user, group}


def _send_mail(sender: str) -> Callable[[GraphServiceClient], Awaitable[None]]:
    async def call(client: GraphServiceClient) -> None:
        body = SendMailPostRequestBody(
            message=Message(
                subject="Do you still need Microsoft Visio?",
                body=ItemBody(content_type=BodyType.Html, content="<p>Keep it?</p>"),
                to_recipients=[Recipient(email_address=EmailAddress(address="ada@contoso.test"))],
            ),
            save_to_sent_items=False,
        )
        await client.users.by_user_id(sender).send_mail.post(body)

    return call


def test_sends_mail_from_a_mailbox(fake_graph: FakeGraph) -> None:
    graph_mail.enable(fake_graph, fake_graph.add_user("licences@contoso.test"))
    run(fake_graph, _send_mail("licences@contoso.test"))  # 202 with no body: None
    (mail,) = fake_graph.mail.sent
    assert (mail.sender, mail.to, mail.content_type) == (
        "licences@contoso.test",
        ["ada@contoso.test"],
        "html",
    )
    assert (mail.content, mail.save_to_sent_items) == ("<p>Keep it?</p>", False)
    (request,) = fake_graph.requests
    assert (request.method, request.status) == ("POST", 202)
    assert request.headers["content-type"].startswith("application/json")


def test_send_mail_from_an_unknown_sender_is_graphs_error(fake_graph: FakeGraph) -> None:
    fake_graph.granted.add("Mail.Send")
    with pytest.raises(ODataError) as caught:
        run(fake_graph, _send_mail("nobody@contoso.test"))
    assert caught.value.response_status_code == 404
    assert caught.value.error.code == "ErrorInvalidUser"


def test_reads_a_users_manager(fake_graph: FakeGraph) -> None:
    """The manager comes back as a directoryObject that the SDK casts by its @odata.type."""
    boss = fake_graph.add_user("grace@contoso.test", display_name="Grace Hopper")
    user = fake_graph.add_user("ada@contoso.test")
    fake_graph.set_manager(user, boss)

    async def call(client: GraphServiceClient) -> Any:
        manager = client.users.by_user_id(user).manager
        config = RequestConfiguration(
            query_parameters=manager.ManagerRequestBuilderGetQueryParameters(
                select=_select(MANAGER_FIELDS)
            )
        )
        return await manager.get(request_configuration=config)

    found = run(fake_graph, call)
    assert not unknown_properties(found)
    assert isinstance(found, SdkUser)
    assert (found.id, found.user_principal_name, found.display_name) == (
        boss,
        "grace@contoso.test",
        "Grace Hopper",
    )


def test_a_missing_manager_is_graphs_not_found(fake_graph: FakeGraph) -> None:
    user = fake_graph.add_user("ada@contoso.test")

    async def call(client: GraphServiceClient) -> Any:
        return await client.users.by_user_id(user).manager.get()

    with pytest.raises(ODataError) as raised:
        run(fake_graph, call)
    error = raised.value.error
    assert raised.value.response_status_code == 404
    assert error is not None and error.code == "Request_ResourceNotFound"
    assert error.message and "'manager'" in error.message
