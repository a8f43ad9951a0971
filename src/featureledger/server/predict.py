"""``POST /predict/{deployment}``: a deployment's stable request and response, apart from
any model's signature (docs/serving.md#predictions-over-http)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from featureledger.registry import TokenRecord

if TYPE_CHECKING:
    from featureledger.store import FeatureStore


class PredictRequest(BaseModel):
    """Entity rows (the deployment's keys) and, optionally, request data per row."""

    entities: list[dict[str, Any]] = Field(min_length=1)
    request_data: list[dict[str, Any]] | None = None


class Prediction(BaseModel):
    """One answer; the entity's key columns come first, as sent."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    prediction_id: str
    prediction: float | None
    score: float | None
    model: str | None
    feature_versions: dict[str, int]
    role: Literal["primary", "canary", "fallback"]
    fallback: bool
    reason: str | None = None


class PredictResponse(BaseModel):
    deployment: str
    predictions: list[Prediction]


def add_predict_route(
    app: FastAPI,
    store: FeatureStore,
    *,
    bearer: HTTPBearer,
    token: Callable[[str | None], TokenRecord | None],
    parse_body: Callable[..., Any],
    body_doc: Callable[..., dict[str, Any]],
    response: type[JSONResponse],
    max_entities: int,
) -> None:
    """Add the endpoint; a token must name the deployment (refused by default)."""

    @app.post(
        "/predict/{deployment}",
        response_model=PredictResponse,
        responses={401: {}, 403: {}, 404: {}, 413: {}, 422: {}},
        openapi_extra=body_doc(PredictRequest),
    )
    async def predict(
        deployment: str,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> Any:
        """Predictions of a deployment for each entity row, in request order: features are
        read online, answers a fallback gave are flagged, every answer is logged."""
        record = token(credentials.credentials if credentials else None)
        if record is not None:  # before the body is looked at
            store.authorize_predict(record, deployment)
        body: PredictRequest = parse_body(await request.body(), PredictRequest)
        if len(body.entities) > max_entities:
            return response(
                {
                    "detail": f"{len(body.entities)} entity rows asked, at most "
                    f"{max_entities} per request; split the request",
                    "error": "TooManyEntities",
                },
                status_code=413,
            )
        answers = await run_in_threadpool(
            store.predict, deployment, body.entities, body.request_data
        )
        return response({"deployment": deployment, "predictions": answers})
