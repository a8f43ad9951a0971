"""The retrieval endpoint of the feature server: top-k search of an embedding index
(docs/llm.md#serving). Token-scoped like feature views (``index/NAME`` in a token's view
list), refused by default, licence- and PII-aware, and every search is traced."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from featureledger.registry import TokenRecord

if TYPE_CHECKING:
    from featureledger import FeatureStore


class SearchRequest(BaseModel):
    """A query, how many chunks, metadata filters (key -> value or list of values)."""

    query: str = Field(min_length=1)
    k: int = Field(default=5, ge=1, le=100)
    where: dict[str, Any] = Field(default_factory=dict)
    #: serving is commercial use unless the caller says otherwise: chunks whose licence
    #: does not allow ``use`` are never returned
    use: str = "commercial"
    include_pii: bool = False
    prompt_template: str = ""


def add_llm_routes(
    app: FastAPI,
    store: FeatureStore,
    *,
    bearer: HTTPBearer,
    token: Callable[[str | None], TokenRecord | None],
    parse: Callable[[bytes, type[SearchRequest]], SearchRequest],
    doc: dict[str, Any],
) -> None:
    """Add ``POST /llm/search/{index}`` to the server's ``app``."""

    @app.post(
        "/llm/search/{index}",
        responses={401: {}, 403: {}, 404: {}, 422: {}},
        openapi_extra=doc,
    )
    async def search(
        index: str,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> Any:
        """The ``k`` chunks of ``index`` nearest to the query, with their documents'
        versions and licences, and the id of the trace that recorded the search."""
        body = parse(await request.body(), SearchRequest)
        secret = credentials.credentials if credentials else None
        record = token(secret)
        if record is not None:
            store.authorize_index(record, index, include_pii=body.include_pii)
        user = f"token/{record.id}" if record is not None else "insecure"

        def run() -> dict[str, Any]:
            found = store.llm.search(
                index,
                body.query,
                k=body.k,
                where=body.where,
                use=body.use or None,
                include_pii=body.include_pii,
                prompt_template=body.prompt_template,
                user=user,
            )
            return found.to_dict()

        # embedding and the registry's trace write block: off the event loop
        return await run_in_threadpool(run)
