"""Schemathesis hooks for fuzzing Tributary's collector (loaded by tests/e2e/run.sh through
SCHEMATHESIS_HOOKS).

* Serializers for NDJSON (`application/x-ndjson`, `application/jsonlines`), which
  `POST /v1/events` accepts and schemathesis has none for: a generated string is sent as it is
  (so arbitrary text reaches the NDJSON reader), anything else as one JSON value per line;
  and for AWS JSON 1.1 (`application/x-amz-json-1.1`, the Kinesis operation), with a
  deserializer so that Kinesis answers are checked against their schemas too.
* SigV4 signing of the Kinesis operation (`POST /`) with the access key pair in
  TRIBUTARY_E2E_AWS_ACCESS_KEY / TRIBUTARY_E2E_AWS_SECRET, as boto3 signs: unsigned, every
  fuzzed request would stop at the signature check and the body parser would never be reached.
  The request is signed exactly as it goes on the wire (after serialization), so what the fuzzer
  generated — odd bodies, a wrong X-Amz-Target — is what the server judges. A generated
  `X-Amz-Content-Sha256` is dropped (a random hash can only be refused); a generated
  `X-Amz-Date` is replaced by the signing time.
* HMAC signing of native and Segment requests that carry a generated `X-Tributary-Signature`:
  such a request is sent with the signed key in TRIBUTARY_E2E_SIGNED_KEY /
  TRIBUTARY_E2E_SIGNING_SECRET (instead of the write key TRIBUTARY_E2E_WRITE_KEY) and a valid
  signature over the body as sent, with the current `X-Tributary-Timestamp`. A random signature
  can only be refused (401): the fuzzer would spend most of its cases on the signature check and
  few would reach the body parsers; signed for real, they reach them, and the signature check is
  exercised over every kind of body. Requests without the write key (e.g. ignored_auth's, which
  must be refused) are left as they are.
"""

import hashlib
import hmac
import json
import os
import time

import requests
import schemathesis


def _text(value):
    # Hypothesis strings may hold lone surrogates: send them as the bytes they would be.
    return value.encode("utf-8", "surrogatepass")


@schemathesis.serializer("application/x-ndjson", "application/jsonlines")
def ndjson(ctx, value):
    """The body's bytes (schemathesis' public serializer API wants bytes, not request kwargs)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return _text(value)
    lines = value if isinstance(value, list) else [value]
    return _text("".join(json.dumps(line) + "\n" for line in lines))


@schemathesis.serializer("application/x-amz-json-1.1")
def amz_json(ctx, value):
    """AWS JSON 1.1 is JSON under another name (what the AWS SDKs send to Kinesis)."""
    if isinstance(value, bytes):
        return value
    return json.dumps(value).encode("utf-8")


@schemathesis.deserializer("application/x-amz-json-1.1")
def amz_json_answer(ctx, response):
    """Kinesis answers and errors are JSON too: parse them, so their schemas are checked."""
    return json.loads(response.content)


class SigV4(requests.auth.AuthBase):
    """Signs a prepared request with botocore's SigV4 signer, for the `kinesis` service."""

    def __init__(self, access_key, secret, region="us-east-1"):
        from botocore.credentials import Credentials

        self.credentials = Credentials(access_key, secret)
        self.region = region

    def __call__(self, request):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        replaced = {"authorization", "x-amz-date", "x-amz-content-sha256"}
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in replaced}
            body = request.body or b""
            if isinstance(body, str):
                body = _text(body)
            signed = AWSRequest(method=request.method, url=request.url, data=body, headers=headers)
            SigV4Auth(self.credentials, "kinesis", self.region).add_auth(signed)
        except Exception:
            # Headers botocore cannot sign (e.g. not text): send the request as generated; the
            # server must refuse it cleanly, which is still worth checking.
            return request
        for name in list(request.headers):
            if name.lower() in replaced:
                del request.headers[name]
        for name, value in signed.headers.items():
            request.headers[name] = value
        return request


class TributarySignature(requests.auth.AuthBase):
    """Signs requests that carry X-Tributary-Signature, with the signed key (see above)."""

    def __init__(self, write_key, signed_key, secret):
        self.write_auth = f"Bearer {write_key}"
        self.signed_auth = f"Bearer {signed_key}"
        self.secret = secret.encode()

    def __call__(self, request):
        if "X-Tributary-Signature" not in request.headers:
            return request
        if request.headers.get("Authorization") != self.write_auth:
            return request
        body = request.body or b""
        if isinstance(body, str):
            body = _text(body)
        timestamp = str(int(time.time()))
        mac = hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256)
        request.headers["Authorization"] = self.signed_auth
        request.headers["X-Tributary-Timestamp"] = timestamp
        request.headers["X-Tributary-Signature"] = "v1=" + mac.hexdigest()
        return request


_WRITE_KEY = os.environ.get("TRIBUTARY_E2E_WRITE_KEY")
_SIGNED_KEY = os.environ.get("TRIBUTARY_E2E_SIGNED_KEY")
_SIGNING_SECRET = os.environ.get("TRIBUTARY_E2E_SIGNING_SECRET")
_HMAC = (
    TributarySignature(_WRITE_KEY, _SIGNED_KEY, _SIGNING_SECRET)
    if _WRITE_KEY and _SIGNED_KEY and _SIGNING_SECRET
    else None
)
_ACCESS_KEY = os.environ.get("TRIBUTARY_E2E_AWS_ACCESS_KEY")
_SECRET = os.environ.get("TRIBUTARY_E2E_AWS_SECRET")
_SIGNER = SigV4(_ACCESS_KEY, _SECRET) if _ACCESS_KEY and _SECRET else None


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.method.upper() != "POST":
        return
    signer = _SIGNER if case.operation.path == "/" else _HMAC
    if signer is not None:
        kwargs["auth"] = signer
