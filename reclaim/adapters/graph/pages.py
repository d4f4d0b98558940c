"""Reading a Graph collection page by page for the usage sources: the first page fetched before
the export is handed over (so a refusal stops the run up front), the rest streamed by nextLink."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from reclaim.errors import PermanentError, SourceError, TransientError

if TYPE_CHECKING:
    from reclaim.adapters.graph.client import GraphClient


def fetch_page(client: GraphClient, path: str, *, permission: str, what: str) -> dict[str, Any]:
    """One page of a collection; anything but a 200 with a value list is a SourceError."""
    reply = client.call("GET", path, permission=permission, what=what)
    if reply.status != 200 or not isinstance(reply.body, dict):
        raise SourceError(f"Graph {what}: unexpected {reply.describe()}")
    if not isinstance(reply.body.get("value"), list):
        raise SourceError(f"Graph {what}: a page without a value list")
    return reply.body


def page_items(
    first: dict[str, Any], fetch: Callable[[str], dict[str, Any]], what: str
) -> Iterator[dict[str, Any]]:
    """The objects of `first` and of every page after it; a failure part-way raises
    SourceError, so a run never acts on part of the data."""
    page = first
    try:
        while True:
            yield from (item for item in page["value"] if isinstance(item, dict))
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = fetch(link)
    except (TransientError, PermanentError) as error:
        raise SourceError(f"{what} failed part-way, the run stops: {error}") from error
