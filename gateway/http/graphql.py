"""GraphQL over HTTP (the graphql-over-http draft): GET and POST, content negotiation
between `application/graphql-response+json` and `application/json`, the spec's status
codes, and errors that carry `extensions.code`."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from graphql import GraphQLError, OperationDefinitionNode, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import Response
from strawberry.types.execution import PreExecutionError

from gateway.http.graphiql import graphiql_page
from gateway.kernel.errors import GatewayError, LimitExceeded, Unauthenticated
from gateway.runtime import Runtime

log = logging.getLogger("gateway.http")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


@dataclass(frozen=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


class RequestError(Exception):
    """The HTTP request is not a well-formed GraphQL request."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


async def graphql_endpoint(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    if request.method == "GET" and _wants_html(request):
        return graphiql_page()
    started = time.perf_counter()
    media_type = negotiate(request.headers.get("accept"))
    if media_type is None:
        return _request_error(runtime, JSON, 406, f"send Accept: {GRAPHQL_RESPONSE} or {JSON}")
    try:
        params = await _read_params(request)
        if request.method == "GET":
            _refuse_mutation_over_get(params)
        principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    except RequestError as exc:
        return _request_error(runtime, media_type, exc.status, str(exc), exc.headers)
    except Unauthenticated as exc:
        headers = {"WWW-Authenticate": "Bearer"}
        return _request_error(runtime, media_type, 401, exc.message, headers, code=exc.code)

    schema = runtime.schemas.current
    assert schema is not None
    context = runtime.context(principal)
    # POSTs the fast path can answer were answered by the fast lane, before routing
    if request.method == "GET" and schema.fast is not None and runtime.settings.fast_reads:
        try:
            answer = await schema.fast.execute(
                params.query, params.variables, params.operation_name, context
            )
        except LimitExceeded as exc:  # refused now: the generic path would only repeat it
            runtime.metrics.failed(exc.code)
            return Response(refusal(exc), 200, media_type=media_type)
        except GatewayError:
            answer = None  # the generic path reports it, with its path and location
        except Exception:
            log.exception("fast read path failed; answering on the generic path")
            answer = None
        if answer is not None:
            runtime.metrics.served(answer.operation, "fast", time.perf_counter() - started)
            return Response(answer.body, 200, media_type=media_type)
    result = await schema.execute(
        params.query,
        variable_values=params.variables,
        context_value=context,
        operation_name=params.operation_name,
    )
    body: dict[str, Any] = {}
    raw_errors = result.errors or []
    errors = [format_error(e) for e in raw_errors]
    request_failed = isinstance(result, PreExecutionError) or (
        result.data is None and bool(raw_errors) and all(e.path is None for e in raw_errors)
    )
    if not request_failed:
        body["data"] = result.data
    if errors:
        body["errors"] = errors
        for error in errors:
            runtime.metrics.failed(error["extensions"]["code"])
    status = 400 if request_failed and media_type == GRAPHQL_RESPONSE else 200
    name = _operation_name(params)
    runtime.metrics.served(name, "generic", time.perf_counter() - started)
    return Response(orjson.dumps(body), status, media_type=media_type)


def refusal(exc: GatewayError) -> bytes:
    """The response to an operation refused as a whole, before any field was resolved."""
    return orjson.dumps(
        {"errors": [{"message": exc.message, "extensions": exc.extensions}], "data": None}
    )


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The error as the client sees it: a message a person can act on, and a code."""
    formatted: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    extensions = dict(formatted.get("extensions") or {})
    if isinstance(original, GatewayError):
        extensions["code"] = original.code
        formatted["message"] = original.message
    elif original is not None and error.path is not None and not isinstance(original, GraphQLError):
        error_id = uuid.uuid4().hex[:12]
        log.error("internal error %s at %s", error_id, error.path, exc_info=original)
        formatted["message"] = (
            f"internal error; the gateway log has the details under id {error_id}"
        )
        extensions["code"] = "INTERNAL_SERVER_ERROR"
    elif (limit := _limit(error.message)) is not None:
        formatted["message"], extensions["limit"] = limit
        extensions["code"] = "LIMIT_EXCEEDED"
    elif "code" not in extensions:
        extensions["code"] = _classify(error)
    formatted["extensions"] = extensions
    return formatted


_LIMITS = (  # the parser's and validation rules' refusals, named by the setting to change
    (
        re.compile(r"exceeds maximum operation depth of (\d+)"),
        "GATEWAY_MAX_DEPTH",
        "the query nests deeper than {0} levels",
    ),
    (
        re.compile(r"(\d+) aliases found\. Allowed: (\d+)"),
        "GATEWAY_MAX_ALIASES",
        "the query uses {0} aliases, more than {1}",
    ),
    (
        re.compile(r"Document contains more than (\d+) tokens"),
        "GATEWAY_MAX_TOKENS",
        "the document has more than {0} tokens",
    ),
)


def _limit(message: str) -> tuple[str, str] | None:
    for pattern, setting, says in _LIMITS:
        found = pattern.search(message)
        if found:
            return f"{says.format(*found.groups())}, past the limit ({setting})", setting
    return None


def _classify(error: GraphQLError) -> str:
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    unused = error.message.startswith("Variable '$") and "is never used" in error.message
    if not unused and (
        error.message.startswith("Variable '$") or "got invalid value" in error.message
    ):
        return "BAD_USER_INPUT"
    if error.path is None:
        return "GRAPHQL_VALIDATION_FAILED"
    return "INTERNAL_SERVER_ERROR"


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and "query" not in request.query_params


def negotiate(accept: str | None) -> str | None:
    if not accept:
        return JSON
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media == GRAPHQL_RESPONSE:
            return GRAPHQL_RESPONSE
        if media in (JSON, "application/*", "*/*"):
            return JSON
    return None


async def _read_params(request: Request) -> GraphQLRequest:
    if request.method == "GET":
        raw: dict[str, Any] = dict(request.query_params)
        for name in ("variables", "extensions"):
            if raw.get(name):
                try:
                    raw[name] = orjson.loads(raw[name])
                except orjson.JSONDecodeError:
                    raise RequestError(400, f"the {name} parameter is not valid JSON") from None
    else:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON:
            raise RequestError(415, f"send the request body as {JSON}")
        try:
            raw = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise RequestError(400, "the request body is not valid JSON") from None
        if not isinstance(raw, dict):
            raise RequestError(
                400, "the request body must be a JSON object (batching is not supported)"
            )
    query = raw.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RequestError(400, 'the request has no query; send {"query": "{ ... }"}')
    variables = raw.get("variables") or None
    operation_name = raw.get("operationName") or None
    extensions = raw.get("extensions") or None
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "operationName must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "extensions must be a JSON object")
    return GraphQLRequest(query, variables, operation_name, extensions)


@lru_cache(maxsize=256)
def _operation(query: str, operation_name: str | None) -> OperationDefinitionNode | None:
    try:
        return get_operation_ast(parse(query), operation_name)
    except GraphQLError:
        return None  # the parse error is reported by execution, with its location


def _operation_name(params: GraphQLRequest) -> str | None:
    operation = _operation(params.query, params.operation_name)
    return operation.name.value if operation is not None and operation.name else None


def _refuse_mutation_over_get(params: GraphQLRequest) -> None:
    operation = _operation(params.query, params.operation_name)
    if operation is not None and operation.operation is not OperationType.QUERY:
        raise RequestError(
            405, f"{operation.operation.value}s must be sent with POST", {"Allow": "POST"}
        )


def _request_error(
    runtime: Runtime,
    media_type: str,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    code: str = "BAD_REQUEST",
) -> Response:
    runtime.metrics.failed(code)
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(orjson.dumps(body), status, headers=headers, media_type=media_type)
