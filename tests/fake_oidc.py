"""A fake OpenID Connect issuer: a real HTTP server on 127.0.0.1 speaking the authorization code flow.

It serves discovery (`/.well-known/openid-configuration`), the authorization endpoint (which, instead of a
login page, answers at once with a redirect carrying a code for the claims the test chose), the token
endpoint (checking the client's secret, the code, its redirect URI and the PKCE verifier, and answering an
RS256-signed ID token), the userinfo endpoint (checking the bearer token) and the JWKS with its public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

KEY_ID = "test-key-1"


@dataclass
class Grant:
    claims: dict[str, Any]
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None


@dataclass
class FakeIssuer:
    client_id: str = "studio-client"
    client_secret: str = "studio-client-secret"
    # What the next ID token says, set by a test: "audience" to sign for another client.
    audience: str | None = None
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeIssuer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: object, trace: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def providers_setting(self, *, name: str = "Acme SSO", provider_id: str = "acme") -> dict[str, Any]:
        """SOCIALACCOUNT_PROVIDERS as config.settings builds it from OIDC_* for this issuer."""
        app = {
            "provider_id": provider_id,
            "name": name,
            "client_id": self.client_id,
            "secret": self.client_secret,
            "settings": {"server_url": self.url},
        }
        return {"openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": [app]}}

    def sign_in(self, authorize_url: str, **claims: Any) -> str:
        """Visit the authorization URL the studio redirected to, as a browser would, as the person these
        claims describe; answer where the issuer sends the browser back (the studio's callback)."""
        assert authorize_url.startswith(f"{self.url}/authorize?"), authorize_url
        request = urllib.request.Request(
            authorize_url + "&" + urllib.parse.urlencode({"test_claims": json.dumps(claims)})
        )
        opener = urllib.request.build_opener(_NoRedirects)
        try:
            opener.open(request, timeout=10)
        except urllib.error.HTTPError as answer:
            assert answer.code == 302, answer.read()
            return answer.headers["Location"]
        raise AssertionError("the issuer did not redirect back")

    # The endpoints.

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        key = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**key, "kid": KEY_ID, "alg": "RS256", "use": "sig"}]}

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str]]:
        redirect_uri = query["redirect_uri"]
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return 400, {}
        claims = json.loads(query.get("test_claims", "{}"))
        back = {"state": query.get("state", "")}
        if claims.pop("error", None):
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            self.grants[code] = Grant(
                claims=claims,
                client_id=query["client_id"],
                redirect_uri=redirect_uri,
                nonce=query.get("nonce"),
                code_challenge=query.get("code_challenge"),
            )
            back["code"] = code
        return 302, {"Location": f"{redirect_uri}?{urllib.parse.urlencode(back)}"}

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = (urllib.parse.unquote(part) for part in decoded.partition(":"))
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.code_challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        access_token = secrets.token_urlsafe(24)
        self.tokens[access_token] = grant.claims
        now = int(time.time())
        payload = {
            "iss": self.url,
            "aud": self.audience or self.client_id,
            "iat": now,
            "exp": now + 300,
            **({"nonce": grant.nonce} if grant.nonce else {}),
            **grant.claims,
        }
        id_token = jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": KEY_ID})
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    def userinfo(self, authorization: str | None) -> tuple[int, dict[str, Any]]:
        token = (authorization or "").removeprefix("Bearer ")
        if token not in self.tokens:
            return 401, {"error": "invalid_token"}
        return 200, self.tokens[token]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _handler(issuer: FakeIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            issuer.requests.append(f"GET {path}")
            if path == "/.well-known/openid-configuration":
                self._json(200, issuer.discovery())
            elif path == "/jwks":
                self._json(200, issuer.jwks())
            elif path == "/userinfo":
                self._json(*issuer.userinfo(self.headers.get("Authorization")))
            elif path == "/authorize":
                status, headers = issuer.authorize(dict(urllib.parse.parse_qsl(query)))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            issuer.requests.append(f"POST {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            if self.path == "/token":
                self._json(*issuer.token(form, self.headers.get("Authorization")))
            else:
                self._json(404, {"error": "not_found"})

    return Handler
