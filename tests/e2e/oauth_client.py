"""A new integrator's first session with the auth-center, using independent, well-known
client libraries only: Authlib (OAuth 2 client), requests, PyJWT (RFC 9068 check) and, for
DPoP (RFC 9449), PyJWT with `cryptography` making the proofs.

Run by tests/e2e/oauth_clients.rs against a running auth-center and demo-service:

    OAUTH_E2E_BASE          the auth-center's base URL (its issuer)
    OAUTH_E2E_ADMIN_TOKEN   an admin's access token (to register the clients)
    OAUTH_E2E_DEMO          the demo-service's base URL (a resource server with the verifier)

Every check is an assert: the first one that fails ends the script with a traceback and a
non-zero exit code.
"""

import os
import sys
import time
import uuid

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from joserfc.jwk import ECKey

BASE = os.environ["OAUTH_E2E_BASE"]
ADMIN = {"Authorization": "Bearer " + os.environ["OAUTH_E2E_ADMIN_TOKEN"]}
DEMO = os.environ["OAUTH_E2E_DEMO"]
TIMEOUT = 10


def step(message):
    print("ok:", message, flush=True)


# 1. Discovery (RFC 8414).
response = requests.get(BASE + "/.well-known/oauth-authorization-server", timeout=TIMEOUT)
assert response.status_code == 200, response.text
meta = AuthorizationServerMetadata(response.json())
assert meta["issuer"] == BASE, meta
for field in [
    "issuer",
    "token_endpoint",
    "jwks_uri",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "revocation_endpoint",
    "revocation_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint",
    "introspection_endpoint_auth_methods_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
]:
    getattr(meta, "validate_" + field)()
# No authorization endpoint, so no response type: the REQUIRED member is an empty array
# (Authlib's validate_response_types_supported() takes an empty array for a missing one).
assert meta["response_types_supported"] == [], meta
assert "authorization_endpoint" not in meta, meta
assert {"client_credentials", "refresh_token"} == set(meta["grant_types_supported"])
assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
assert "ES256" in meta["token_endpoint_auth_signing_alg_values_supported"]
no_oidc = requests.get(BASE + "/.well-known/openid-configuration", timeout=TIMEOUT)
assert no_oidc.status_code == 404, no_oidc.status_code
step("RFC 8414 metadata read and validated; no OpenID discovery document")

# 2. An admin registers two service accounts: one with a secret, one with a key.
response = requests.post(
    BASE + "/v1/admin/clients",
    headers=ADMIN,
    json={"client_id": "svc-basic", "scopes": ["read", "write"], "introspect": True},
    timeout=TIMEOUT,
)
assert response.status_code == 201, response.text
secret = response.json()["client_secret"]
key = ECKey.generate_key("P-256", private=True)
public_jwk = key.as_dict(private=False)
response = requests.post(
    BASE + "/v1/admin/clients",
    headers=ADMIN,
    json={"client_id": "svc-jwt", "scopes": ["read"], "jwks": {"keys": [public_jwk]}},
    timeout=TIMEOUT,
)
assert response.status_code == 201, response.text
assert "client_secret" not in response.json()
step("clients registered: svc-basic (secret), svc-jwt (ES256 key)")


def check_rfc9068(access_token, client_id, scope=None):
    """The access token is an RFC 9068 JWT that verifies against the published JWKS."""
    header = jwt.get_unverified_header(access_token)
    assert header["typ"].lower() in ("at+jwt", "application/at+jwt"), header
    signing_key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(access_token)
    claims = jwt.decode(
        access_token,
        signing_key.key,
        algorithms=[header["alg"]],
        audience="api",
        issuer=meta["issuer"],
        options={"require": ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]},
    )
    assert claims["client_id"] == client_id, claims
    assert claims.get("scope") == scope, claims
    return claims


# 3. Client credentials with client_secret_basic.
basic = OAuth2Session(
    "svc-basic",
    secret,
    token_endpoint_auth_method="client_secret_basic",
    revocation_endpoint_auth_method="client_secret_basic",
)
token = basic.fetch_token(
    meta["token_endpoint"], grant_type="client_credentials", scope="read", timeout=TIMEOUT
)
assert token["token_type"].lower() == "bearer", token
assert token["scope"] == "read", token
assert "refresh_token" not in token, token
claims = check_rfc9068(token["access_token"], "svc-basic", "read")
assert claims["sub"] == "svc-basic", claims
step("client_credentials with client_secret_basic; the token passes PyJWT's RFC 9068 checks")

# The demo-service (the verifier, unchanged) accepts the service account's token.
me = requests.get(
    DEMO + "/me", headers={"Authorization": "Bearer " + token["access_token"]}, timeout=TIMEOUT
)
assert me.status_code == 200, me.text
assert me.json()["sub"] == "svc-basic", me.text
step("the demo-service accepts the client-credentials token")


# 4. Client credentials with private_key_jwt (RFC 7523). The auth-center accepts assertions
# that expire within oauth.assertion_max_lifetime_secs (5 minutes by default); Authlib signs
# them for an hour unless told otherwise, so the integrator passes expires_in.
class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            expires_in=60,
        )


signer = OAuth2Session("svc-jwt", key, token_endpoint_auth_method="private_key_jwt")
signer.register_client_auth_method(ShortLivedPrivateKeyJWT(meta["token_endpoint"], alg="ES256"))
for _ in range(2):  # a fresh assertion (and jti) each time
    jwt_token = signer.fetch_token(
        meta["token_endpoint"], grant_type="client_credentials", timeout=TIMEOUT
    )
    check_rfc9068(jwt_token["access_token"], "svc-jwt", "read")
step("client_credentials with private_key_jwt (ES256), twice")

# 5. A user logs in (the first-party JSON login) and refreshes through /oauth2/token as the
# public first-party client.
user = {"username": "integrator", "password": "correct horse battery staple"}
response = requests.post(BASE + "/v1/register", json=user, timeout=TIMEOUT)
assert response.status_code == 201, response.text
response = requests.post(BASE + "/v1/login", json=user, timeout=TIMEOUT)
assert response.status_code == 200, response.text
login = response.json()
first_party = OAuth2Session(
    "first-party",
    token_endpoint_auth_method="none",
    revocation_endpoint_auth_method="none",
)
refreshed = first_party.refresh_token(
    meta["token_endpoint"], refresh_token=login["refresh_token"], timeout=TIMEOUT
)
assert refreshed["refresh_token"] != login["refresh_token"], refreshed
user_claims = check_rfc9068(refreshed["access_token"], "first-party")
step("a user's refresh token rotated through /oauth2/token")

# 6. DPoP (RFC 9449), with proofs made by PyJWT and `cryptography`, not by this project's code:
# a login with a proof binds the session to the client's EC P-256 key, and its refresh token
# then rotates at /oauth2/token only with a fresh proof from that key.
assert "ES256" in meta["dpop_signing_alg_values_supported"], meta
dpop_key = ec.generate_private_key(ec.SECP256R1())
dpop_jwk = ECAlgorithm.to_jwk(dpop_key.public_key(), as_dict=True)


def dpop_proof(url, method="POST"):
    """A fresh DPoP proof JWT for `method url` (RFC 9449 §4.2)."""
    return jwt.encode(
        {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())},
        dpop_key,
        algorithm="ES256",
        headers={"typ": "dpop+jwt", "jwk": dpop_jwk},
    )


def refresh_at_token_endpoint(refresh_token, proof=None):
    headers = {"DPoP": proof} if proof else {}
    return requests.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": "first-party",
        },
        headers=headers,
        timeout=TIMEOUT,
    )


response = requests.post(
    BASE + "/v1/login",
    json=user,
    headers={"DPoP": dpop_proof(BASE + "/v1/login")},
    timeout=TIMEOUT,
)
assert response.status_code == 200, response.text
bound = response.json()
response = refresh_at_token_endpoint(bound["refresh_token"], dpop_proof(meta["token_endpoint"]))
assert response.status_code == 200, response.text
bound_refreshed = response.json()
assert bound_refreshed["session_id"] == bound["session_id"], bound_refreshed
assert bound_refreshed["refresh_token"] != bound["refresh_token"], bound_refreshed
check_rfc9068(bound_refreshed["access_token"], "first-party")
# Without a proof the bound refresh token is refused, and the session is left as it was...
response = refresh_at_token_endpoint(bound_refreshed["refresh_token"])
assert response.status_code == 400, response.text
assert response.json()["error"] == "invalid_dpop_proof", response.text
# ...as it is with a proof made for another URL.
response = refresh_at_token_endpoint(
    bound_refreshed["refresh_token"], dpop_proof(BASE + "/v1/refresh")
)
assert response.status_code == 400, response.text
assert response.json()["error"] == "invalid_dpop_proof", response.text
response = refresh_at_token_endpoint(
    bound_refreshed["refresh_token"], dpop_proof(meta["token_endpoint"])
)
assert response.status_code == 200, response.text
step("DPoP: a login bound to a PyJWT-made ES256 key refreshes at /oauth2/token only with a proof")

# 7. Introspection with client authentication (RFC 7662).
response = basic.introspect_token(
    meta["introspection_endpoint"], token=refreshed["access_token"], timeout=TIMEOUT
)
assert response.status_code == 200, response.text
answer = response.json()
assert answer["active"] is True, answer
assert answer["username"] == "integrator", answer
assert answer["client_id"] == "first-party", answer
assert answer["sub"] == user_claims["sub"], answer
assert answer["token_type"] == "Bearer", answer
response = basic.introspect_token(
    meta["introspection_endpoint"], token=token["access_token"], timeout=TIMEOUT
)
answer = response.json()
assert answer["active"] is True and answer["scope"] == "read", answer
assert answer["client_id"] == "svc-basic", answer
step("introspection with client_secret_basic: a user's and a service account's token")

# 8. Revocation (RFC 7009): the client's own token, then the user's refresh token.
response = basic.revoke_token(
    meta["revocation_endpoint"],
    token=token["access_token"],
    token_type_hint="access_token",
    timeout=TIMEOUT,
)
assert response.status_code == 200, response.text
answer = basic.introspect_token(
    meta["introspection_endpoint"], token=token["access_token"], timeout=TIMEOUT
).json()
assert answer == {"active": False}, answer
deadline = time.monotonic() + 5
while True:
    me = requests.get(
        DEMO + "/me", headers={"Authorization": "Bearer " + token["access_token"]}, timeout=TIMEOUT
    )
    if me.status_code == 401 or time.monotonic() > deadline:
        break
    time.sleep(0.01)
assert me.status_code == 401, me.text
response = first_party.revoke_token(
    meta["revocation_endpoint"],
    token=refreshed["refresh_token"],
    token_type_hint="refresh_token",
    timeout=TIMEOUT,
)
assert response.status_code == 200, response.text
answer = basic.introspect_token(
    meta["introspection_endpoint"], token=refreshed["access_token"], timeout=TIMEOUT
).json()
assert answer == {"active": False}, answer
step("revoked; introspection says active: false and the demo-service refuses the token")

print("all OAuth client checks passed", flush=True)
sys.exit(0)
