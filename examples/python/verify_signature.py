#!/usr/bin/env python3
"""Checks ipex's envelope signature test vector from Python, without the gateway.

An organisation signs an envelope with a JWS (RFC 7515) with a detached payload: the payload
is the envelope's canonical bytes, the envelope as the gateway stores it (sender, kind and
schema version set) without its `signature`, in protobuf's deterministic encoding. This
script shows that another language gets the same bytes and verifies the same signature:

1. encodes the vector's envelope (proto3 JSON) with the Python protobuf runtime, signature
   cleared, and compares the bytes with the vector's canonical bytes;
2. computes the key's RFC 7638 thumbprint and compares it with the vector's kid;
3. verifies the JWS over those bytes with the vector's public key (`cryptography`);
4. checks that one flipped bit of the payload no longer verifies.

    python3 examples/python/verify_signature.py [examples/signatures/vector.json]

Needs the stubs of generate.sh (`IPEX_PY_STUBS` or examples/python/generated) and the
packages of requirements.txt. Exit status 0 when every check passes.
"""

import base64
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("IPEX_PY_STUBS", os.path.join(HERE, "generated")))
from ipex.v1 import envelope_pb2  # noqa: E402


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "signatures", "vector.json")
    with open(path, encoding="utf-8") as f:
        vector = json.load(f)

    envelope = json_format.ParseDict(vector["envelope"], envelope_pb2.Envelope())
    jws = envelope.signature
    assert jws == vector["signature"], "the envelope carries another signature than the vector"
    envelope.signature = ""
    canonical = envelope.SerializeToString(deterministic=True)
    expected = bytes.fromhex(vector["canonical_bytes_hex"])
    if canonical != expected:
        print(f"encoding differs:\n  python {canonical.hex()}\n  vector {expected.hex()}", file=sys.stderr)
        return 1
    print(f"canonical bytes: {len(canonical)} bytes, the same as the vector's")

    key = load_pem_public_key(vector["public_key_pem"].encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        print("the vector's key is not Ed25519", file=sys.stderr)
        return 1
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    thumbprint = b64url(hashlib.sha256(
        ('{"crv":"Ed25519","kty":"OKP","x":"%s"}' % b64url(raw)).encode("ascii")).digest())
    if thumbprint != vector["kid"]:
        print(f"kid differs: {thumbprint} against {vector['kid']}", file=sys.stderr)
        return 1

    header_b64, empty, signature_b64 = jws.split(".")
    header = json.loads(b64url_decode(header_b64))
    if empty or header.get("alg") != "EdDSA" or header.get("kid") != thumbprint:
        print(f"unexpected JWS header or payload part: {header}", file=sys.stderr)
        return 1
    signature = b64url_decode(signature_b64)

    def signing_input(payload: bytes) -> bytes:
        return (header_b64 + "." + b64url(payload)).encode("ascii")

    try:
        key.verify(signature, signing_input(canonical))
    except InvalidSignature:
        print("the signature does not verify", file=sys.stderr)
        return 1
    print(f"signature: valid (alg {header['alg']}, kid {thumbprint})")

    tampered = bytearray(canonical)
    tampered[-1] ^= 1
    try:
        key.verify(signature, signing_input(bytes(tampered)))
        print("a tampered payload verified", file=sys.stderr)
        return 1
    except InvalidSignature:
        print("tampered payload: refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
