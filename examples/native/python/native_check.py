"""Reference implementation of the native revocation check (docs/native-revocation.md).

A service that cannot embed the Rust verifier checks an access token in two steps:

1. `TokenVerifier`: the JWT itself (EdDSA signature against the auth-center's JWKS, header
   hygiene, `typ`, `iss`, `aud`, `exp`, `nbf`, `iat`, the `sub`/`sid` identifier rule).
2. `TrackedSessions`: whether the session key `<prefix>:s:{<sub>}:<sid>` still exists in Redis,
   from a local cache that Redis itself invalidates (RESP3 client tracking), asking with
   `PTTL` on a miss and caching the answer no longer than the key lives (Redis pushes an
   expiry only once it deletes the key, which can lag far behind). Anything that prevents a
   sure answer is `Unavailable`: fail closed.

Needs PyJWT with `cryptography` (requirements.txt); the RESP3 client is plain sockets. Run as a
script it answers a line protocol on stdin/stdout (see `main`), which the e2e tests drive.
"""

import json
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections import deque
from urllib.parse import urlsplit

import jwt

IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
FORBIDDEN_HEADER = {"jku", "x5u", "jwk", "x5c", "crit", "enc", "zip", "b64"}
MAX_TOKEN_BYTES = 8 * 1024


class Invalid(Exception):
    """The token is refused: HTTP 401 with `WWW-Authenticate: Bearer error="invalid_token"`."""


class Unavailable(Exception):
    """The answer could not be known: HTTP 503 with `Retry-After`, never 200."""


class TokenVerifier:
    def __init__(self, jwks_url, issuer, audience, algorithms=("EdDSA",), leeway=5):
        self.jwks = jwt.PyJWKClient(jwks_url, lifespan=300)
        self.issuer, self.audience = issuer, audience
        self.algorithms, self.leeway = set(algorithms), leeway

    def verify(self, token):
        if len(token) > MAX_TOKEN_BYTES:
            raise Invalid("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Invalid("malformed token") from None
        if FORBIDDEN_HEADER & header.keys():
            raise Invalid("forbidden header parameter")
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise Invalid("not an access token (typ)")
        alg = header.get("alg")
        if alg not in self.algorithms:  # the allow-list is ours, never the token's
            raise Invalid("algorithm not allowed")
        if not isinstance(header.get("kid"), str):
            raise Invalid("missing kid")
        try:
            key = self.jwks.get_signing_key(header["kid"])
        except jwt.PyJWKClientConnectionError as e:
            raise Unavailable(f"JWKS: {e}") from None
        except jwt.PyJWKClientError:
            raise Invalid("unknown key id") from None
        if key.algorithm_name != alg:
            raise Invalid("algorithm does not match the key")
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": ["exp", "iat", "iss", "aud", "sub", "sid"]})
        except jwt.ExpiredSignatureError:
            raise Invalid("token expired") from None
        except jwt.InvalidTokenError as e:
            raise Invalid(type(e).__name__) from None
        if claims["iat"] > time.time() + self.leeway:  # older PyJWT does not check it
            raise Invalid("token issued in the future")
        if not (isinstance(claims["sub"], str) and IDENTIFIER.match(claims["sub"])
                and isinstance(claims["sid"], str) and IDENTIFIER.match(claims["sid"])):
            raise Invalid("malformed sub or sid")  # they become part of a Redis key
        if "cnf" in claims:  # RFC 9449: only valid with a DPoP proof from the bound key
            raise Invalid("DPoP-bound token: this reference does not check DPoP proofs")
        return claims


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Push(list):
    """A RESP3 push frame (`>`): out-of-band data such as an invalidation."""


class RedisError(Exception):
    pass


def read_frame(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisError(rest.decode())
    if kind in (b":", b"("):
        return int(rest)
    if kind == b"_":
        return None
    if kind == b"#":
        return rest == b"t"
    if kind == b",":
        return float(rest)
    if kind in (b"$", b"=", b"!"):
        if int(rest) < 0:
            return None
        data = f.read(int(rest) + 2)[:-2]
        return RedisError(data.decode()) if kind == b"!" else data
    if kind in (b"*", b"~", b">"):
        items = [read_frame(f) for _ in range(int(rest))]
        return Push(items) if kind == b">" else items
    if kind == b"%":
        return {read_frame(f): read_frame(f) for _ in range(int(rest))}
    if kind == b"|":  # attributes: read and ignore, the reply follows
        for _ in range(2 * int(rest)):
            read_frame(f)
        return read_frame(f)
    raise ConnectionError(f"unexpected RESP3 type {kind!r}")


class TrackedSessions:
    """Does a session key exist? Cached; the cache is invalidated by Redis's pushes."""

    def __init__(self, redis_url, timeout=0.5, max_staleness=60.0, max_stall=0.5):
        self.url, self.timeout = urlsplit(redis_url), timeout
        self.max_staleness, self.max_stall = max_staleness, max_stall
        self.lock = threading.Lock()
        self.conn = None  # (socket, reader file, pending replies) while connected
        self.cache = {}  # session key -> until (monotonic) it may be served
        self.confirmed = 0.0  # when the latest answered heartbeat PING was sent
        self.stats = {"asked": 0, "hits": 0, "invalidations": 0, "flushes": 0}
        threading.Thread(target=self._heartbeat, daemon=True).start()

    def exists(self, key):
        now = time.monotonic()
        with self.lock:
            if self.cache.get(key, 0) > now and now - self.confirmed < self.max_stall:
                self.stats["hits"] += 1
                return True
            self.stats["asked"] += 1
        # PTTL: -2 no such key, -1 no expiry, else the milliseconds it has left.
        reply = self._request(["PTTL", key], remember=key)
        if not isinstance(reply, int) or reply < -2:
            raise Unavailable(f"PTTL answered {reply!r}")
        return reply != -2

    def _connect(self):  # with self.lock held
        u, sock = self.url, None
        try:
            sock = socket.create_connection((u.hostname, u.port or 6379), timeout=self.timeout)
            if u.scheme == "rediss":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=u.hostname)
            f = sock.makefile("rb")
            hello = ["HELLO", 3] + (["AUTH", u.username or "default", u.password] if u.password else [])
            setup = [hello, ["CLIENT", "TRACKING", "ON"]]
            if u.path.strip("/") not in ("", "0"):
                setup.append(["SELECT", u.path.strip("/")])
            sock.sendall(b"".join(encode(*command) for command in setup))
            for command in setup:
                if isinstance(read_frame(f), RedisError):
                    raise OSError(f"{command[0]} refused")
        except (OSError, ValueError) as e:
            if sock is not None:
                sock.close()
            raise Unavailable(f"redis: {e}") from None
        sock.settimeout(None)  # the reader blocks; requests time out on their own
        self.conn = (sock, f, deque())
        self.cache.clear()  # nothing read on an older connection is tracked on this one
        self.confirmed = time.monotonic()
        threading.Thread(target=self._reader, args=(self.conn,), daemon=True).start()

    def _request(self, args, remember=None, timeout=None):
        # `sent`: a PTTL's milliseconds count from when Redis ran it, after this.
        slot = {"done": threading.Event(), "reply": None, "remember": remember,
                "sent": time.monotonic()}
        with self.lock:
            if self.conn is None:
                self._connect()
            conn = self.conn
            conn[2].append(slot)
            try:
                conn[0].sendall(encode(*args))
            except OSError:
                self._drop(conn)
        if not slot["done"].wait(timeout or self.timeout):
            with self.lock:
                self._drop(conn)  # replies no longer match requests: start over
            raise Unavailable("redis timed out")
        if isinstance(slot["reply"], Exception):
            raise Unavailable(f"redis: {slot['reply']}")
        return slot["reply"]

    def _reader(self, conn):
        sock, f, pending = conn
        try:
            while True:
                frame = read_frame(f)
                with self.lock:
                    if isinstance(frame, Push):
                        self._on_push(frame)
                        continue
                    slot = pending.popleft()
                    # Cached here, in stream order: an invalidation read after this reply
                    # is applied after it, so it can never be overtaken.
                    if slot["remember"] and isinstance(frame, int) and frame >= -1 \
                            and self.conn is conn:
                        until = time.monotonic() + self.max_staleness
                        if frame >= 0:  # never past the key's own expiry
                            until = min(until, slot["sent"] + frame / 1000)
                        self.cache[slot["remember"]] = until
                    slot["reply"] = frame
                    slot["done"].set()
        except (OSError, ConnectionError, ValueError, IndexError):
            with self.lock:
                self._drop(conn)

    def _on_push(self, push):  # with self.lock held
        if len(push) < 2 or push[0] != b"invalidate":
            return
        self.stats["invalidations"] += 1
        if push[1] is None:  # FLUSHALL / FLUSHDB: everything is gone
            self._flush()
        else:
            for key in push[1]:
                self.cache.pop(key.decode(), None)

    def _flush(self):
        self.cache.clear()
        self.stats["flushes"] += 1

    def _drop(self, conn):  # with self.lock held: no push can reach us any more
        if self.conn is conn:
            self.conn = None
            self._flush()
        conn[0].close()
        while conn[2]:
            slot = conn[2].popleft()
            slot["reply"] = ConnectionError("connection lost")
            slot["done"].set()

    def _heartbeat(self):
        # A PING on the tracked connection: its PONG proves that every push sent before it
        # has been read. Cache hits need one sent less than max_stall ago.
        while True:
            time.sleep(self.max_stall / 4)
            if self.conn is None:
                continue
            sent = time.monotonic()
            try:
                self._request(["PING"], timeout=self.max_stall)
                self.confirmed = sent
            except Unavailable:
                pass


class NativeChecker:
    def __init__(self, tokens, sessions, prefix):
        self.tokens, self.sessions, self.prefix = tokens, sessions, prefix

    def check(self, token):
        """("valid", claims) | ("invalid", reason) | ("revoked", ...) | ("unavailable", ...)"""
        try:
            claims = self.tokens.verify(token)
            key = f"{self.prefix}:s:{{{claims['sub']}}}:{claims['sid']}"
            if self.sessions.exists(key):
                return "valid", claims
            return "revoked", "session revoked"
        except Invalid as e:
            return "invalid", str(e)
        except Unavailable as e:
            return "unavailable", str(e)


def main():
    """Line protocol: `check <token>` and `stats`, each answered by one JSON line."""
    env = os.environ
    sessions = TrackedSessions(env["NATIVE_REDIS_URL"],
                               max_staleness=float(env.get("NATIVE_MAX_STALENESS", "60")))
    tokens = TokenVerifier(env["NATIVE_JWKS_URL"], env["NATIVE_ISSUER"], env["NATIVE_AUDIENCE"])
    checker = NativeChecker(tokens, sessions, env["NATIVE_REDIS_PREFIX"])
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "check":
            hits = sessions.stats["hits"]
            result, detail = checker.check(arg)
            answer = {"result": result, "from_cache": sessions.stats["hits"] > hits}
            answer.update({"sub": detail["sub"], "sid": detail["sid"]} if result == "valid"
                          else {"reason": detail})
        elif command == "stats":
            with sessions.lock:
                answer = dict(sessions.stats, cached=len(sessions.cache),
                              connected=sessions.conn is not None)
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
