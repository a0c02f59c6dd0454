"""`$batch` in OData 4.0's multipart form (F&O speaks 4.0, so not 4.01's JSON form):
several requests in one round trip, each answered on its own.

Requests go outside any changeset and with `odata.continue-on-error`, so one that is
refused does not stop the rest: a bulk write learns which rows were refused and why,
as the SQL stores' bulk upsert does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gateway.kernel.errors import UpstreamFailed

Json = dict[str, Any]
PREFER = "odata.continue-on-error"


@dataclass(frozen=True)
class Part:
    """One request of a batch; `url` is relative to the service root."""

    method: str
    url: str
    body: Json | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: Json | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def write(parts: Sequence[Part], dumps: Any) -> tuple[str, str]:
    """(the content type, the body) of a batch of these parts."""
    boundary = f"batch_{uuid.uuid4().hex}"
    lines: list[str] = []
    for number, part in enumerate(parts, 1):
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {number}",
            "",
            f"{part.method} {part.url} HTTP/1.1",
            "Accept: application/json",
        ]
        lines += [f"{name}: {value}" for name, value in part.headers.items()]
        if part.body is not None:
            lines += ["Content-Type: application/json", "", dumps(part.body)]
        else:
            lines += [""]
    lines += [f"--{boundary}--", ""]
    return f"multipart/mixed; boundary={boundary}", "\r\n".join(lines)


def read(content_type: str, text: str, expected: int) -> list[Answer]:
    """The answers of a batch response, in the order of its requests."""
    boundary = _boundary(content_type)
    answers: list[Answer] = []
    # JSON keeps line breaks escaped: normalising them cannot touch a body
    for chunk in text.replace("\r\n", "\n").split(f"--{boundary}")[1:]:
        if chunk.startswith("--"):
            break
        _mime, _, http = chunk.lstrip("\n").partition("\n\n")
        status_line, _, rest = http.partition("\n")
        head, _, body = rest.partition("\n\n")
        try:
            status = int(status_line.split()[1])
        except (IndexError, ValueError):
            raise UpstreamFailed(
                f"the OData service's batch answer has no status: {status_line!r}"
            ) from None
        headers = {}
        for line in head.split("\n"):
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        answers.append(Answer(status, headers, _json(body.strip())))
    if len(answers) != expected:
        raise UpstreamFailed(
            f"the OData service answered {len(answers)} of a batch's {expected} requests"
        )
    return answers


def _boundary(content_type: str) -> str:
    for item in content_type.split(";")[1:]:
        name, _, value = item.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    raise UpstreamFailed(f"the OData service's batch answer is not multipart: {content_type}")


def _json(body: str) -> Json | None:
    if not body:
        return None
    try:
        found = json.loads(body, parse_float=Decimal)
    except ValueError:
        return {"error": {"message": body[:500]}}
    return found if isinstance(found, dict) else None
