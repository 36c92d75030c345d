"""API key format: ``cer-<prefix>.<secret>``. The prefix is the non-secret handle that finds the
row; only the SHA-256 of the whole key is stored. Keys are 240 bits of randomness, so a fast
hash is enough (no password stretching is needed for a secret nobody chose)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_KEY_PATTERN = re.compile(r"^(cer-[a-z0-9]{12})\.[A-Za-z0-9_-]{40}$")


@dataclass(frozen=True, slots=True)
class NewKey:
    prefix: str
    secret: str  # the whole key, shown once
    secret_hash: str


def generate_key() -> NewKey:
    prefix = "cer-" + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(12))
    secret = f"{prefix}.{secrets.token_urlsafe(30)}"
    return NewKey(prefix, secret, hash_key(secret))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(presented: str) -> str | None:
    """The prefix of a well-formed key, or None for anything else (never echoed back)."""
    match = _KEY_PATTERN.match(presented)
    return match.group(1) if match else None


def matches(presented: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(presented), stored_hash)
