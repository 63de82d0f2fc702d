"""Walk an endpoint's pages in order: sequentially, or several at once when the total is known."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from typing import Any

from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.sources.http.client import HttpSource, Page
from dataproc_dagster.sources.http.pagination import OffsetPaginator
from dataproc_dagster.sources.http.record_path import select_records
from dataproc_dagster.sources.http.walker import PageRequest, PageWalker


def iter_pages(
    source: HttpSource,
    walker: PageWalker,
    *,
    records_path: str | None,
    concurrency: int = 1,
) -> Iterator[tuple[Page, list[Any]]]:
    """Yield ``(page, records)`` for every page, in page order.

    For ``page_number`` and ``offset`` paging whose first response tells the total, up to
    ``concurrency`` later pages are in flight at once (httpx async client); at most that many
    pages are held in memory. Every other style goes one page after the other.
    """
    with source.client() as client:
        request = walker.first()
        page = source.get(client, request.url, request.params)
        records = select_records(page.payload, records_path, where=page.url)
        yield page, records
        planned = walker.planned(page) if records and concurrency > 1 else None
        if planned is not None:
            yield from _parallel(source, walker, planned, records_path, concurrency, len(records))
            return
        while True:
            following = walker.next(request, page, len(records))
            if following is None:
                return
            request = following
            page = source.get(client, request.url, request.params)
            records = select_records(page.payload, records_path, where=page.url)
            yield page, records


def _parallel(
    source: HttpSource,
    walker: PageWalker,
    planned: list[PageRequest],
    records_path: str | None,
    concurrency: int,
    first_count: int,
) -> Iterator[tuple[Page, list[Any]]]:
    # A private event loop driven from this thread: the requests progress while we wait for
    # the next page in order, and the generator stays an ordinary iterator for the caller.
    loop = asyncio.new_event_loop()
    client = source.async_client(connections=concurrency)
    pending: deque[asyncio.Task[Page]] = deque()
    queue = iter(planned)
    paginator = walker.paginator
    # Pages are scheduled up to twice the concurrency ahead of the one delivered next, while
    # the semaphore keeps ``concurrency`` requests in flight: a slow page then does not leave
    # connections idle, and at most 2 x concurrency pages wait in memory.
    slots = asyncio.Semaphore(concurrency)

    async def fetch(url: str, params: dict[str, Any]) -> Page:
        async with slots:
            return await source.aget(client, url, params)

    def top_up() -> None:
        while len(pending) < 2 * concurrency:
            request = next(queue, None)
            if request is None:
                return
            pending.append(loop.create_task(fetch(request.url, request.params)))

    try:
        top_up()
        previous_count = first_count
        while pending:
            task = pending.popleft()
            page = loop.run_until_complete(task)
            top_up()
            records = select_records(page.payload, records_path, where=page.url)
            if not records:
                return
            if isinstance(paginator, OffsetPaginator) and previous_count < paginator.size:
                # A short page before the last one means the server caps the limit below
                # page_size; the offsets planned from page_size would skip records.
                raise SourceError(
                    f"a page before this one returned {previous_count} records for "
                    f"{paginator.limit_param}={paginator.size}; offsets planned from "
                    "page_size would skip records",
                    source=page.url,
                    fix="set page_size to the largest limit the server accepts, or concurrency=1",
                )
            previous_count = len(records)
            yield page, records
    finally:
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(client.aclose())
        loop.close()
