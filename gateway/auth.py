"""Optional API keys: `Authorization: Bearer KEY`, as the OpenAI clients send `api_key`.

With keys configured (GATEWAY_API_KEYS, GATEWAY_API_KEYS_FILE) every /v1 request needs one of
them, compared in constant time (hmac.compare_digest against each key, so neither a match nor
its position shows in the timing). Without keys, only clients on the loopback interface are
served (`make gateway` on a laptop needs no key), and any other client is refused with a 401
saying how to configure keys; GATEWAY_AUTH=off serves everyone without a key (behind a proxy that
authenticates). A proxy on the same host makes every client look local: configure keys there.
"""
from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import HTTPConnection

from gateway.errors import APIError

CHALLENGE = {"WWW-Authenticate": "Bearer"}


class KeyCheck:
    def __init__(self, keys: tuple[str, ...], auth: str) -> None:
        self._keys = [k.encode() for k in keys]
        self.auth = auth

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check_connection(self, connection: HTTPConnection) -> None:
        """`check` for an HTTP request or a WebSocket handshake (both are starlette connections)."""
        self.check(connection.headers.get("authorization"), connection.client.host if connection.client else None)

    def check(self, authorization: str | None, client_host: str | None) -> None:
        """Raise APIError 401 unless this request may pass."""
        if self.auth == "off":
            return
        if not self._keys:
            if _is_loopback(client_host):
                return
            raise APIError("this gateway has no API keys configured, so it serves only local clients; set "
                           "GATEWAY_API_KEYS or GATEWAY_API_KEYS_FILE (or GATEWAY_AUTH=off behind an "
                           "authenticating proxy)", status=401, code="invalid_api_key", headers=CHALLENGE)
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise APIError("You didn't provide an API key: send the header 'Authorization: Bearer KEY' (the "
                           "OpenAI clients do it with api_key=KEY)", status=401, code="invalid_api_key",
                           headers=CHALLENGE)
        given = key.strip().encode()
        matched = False
        for known in self._keys:   # every key compared: the time does not depend on which one matches
            matched |= hmac.compare_digest(given, known)
        if not matched:
            raise APIError("Incorrect API key provided", status=401, code="invalid_api_key", headers=CHALLENGE)


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:   # not an address (a unix socket, a test client's name)
        return False
