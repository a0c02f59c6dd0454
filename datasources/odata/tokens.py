"""Access tokens by the OAuth2 client credentials grant (Microsoft Entra ID), kept
until shortly before they expire.

A few lines over httpx rather than a library: authlib's httpx client is moving to a
fork of httpx (its httpx support is deprecated), and msal is synchronous, built on
requests, and checks its authority against Microsoft's instance discovery.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from datasources.odata.endpoint import Endpoint
from gateway.kernel.errors import UpstreamFailed

LEEWAY = 300.0  # renew this long before expiry (Entra's tokens live an hour or more),
# or after four fifths of a shorter life


class ClientCredentials:
    def __init__(self, endpoint: Endpoint, http: httpx.AsyncClient) -> None:
        assert endpoint.token_url is not None
        self._endpoint = endpoint
        self._url = endpoint.token_url
        self._http = http
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    async def header(self, renew: bool = False) -> str:
        """`Bearer …` with a token that is good for a while yet; `renew` gets a new one
        even so (the service refused the last)."""
        async with self._lock:
            if renew or self._token is None or time.monotonic() >= self._renew_at:
                await self._fetch()
        return f"Bearer {self._token}"

    async def _fetch(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._endpoint.client_id or "",
            "client_secret": self._endpoint.secret(),  # read now: a rotated one is used
            "scope": self._endpoint.scope,
        }
        try:
            response = await self._http.post(self._url, data=form)
        except httpx.TransportError as exc:
            raise UpstreamFailed(f"the token endpoint could not be reached: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(token, str):
            said = body.get("error_description") or body.get("error") if body else None
            raise UpstreamFailed(
                f"the token endpoint refused the gateway's credentials "
                f"({response.status_code}): {said or response.reason_phrase}"
            )
        self._token = token
        life = float(body.get("expires_in") or 3600)
        self._renew_at = time.monotonic() + life - min(LEEWAY, life / 5)
