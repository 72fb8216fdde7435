"""Password hashing with argon2id (RFC 9106), and the rules a new password must meet.

Parameters are RFC 9106's second recommended option (the "low memory" profile
of argon2-cffi): argon2id, t=3 passes, m=64 MiB, p=4 lanes, 16-byte salt,
32-byte tag. One verification costs about 0.1 s of CPU and 64 MiB of memory on
a current server: slow enough that a stolen ``esb_users`` table is not worth
brute-forcing, fast enough for interactive logins. The parameters live in the
hash string (``$argon2id$v=19$m=65536,t=3,p=4$...``), so hashes made with older
parameters still verify, and :func:`needs_rehash` tells the login to upgrade
them. Callers run :func:`verify_password` in a worker thread: it must never
block the engine's event loop.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

#: the only hasher: RFC 9106 low-memory profile (argon2id, t=3, m=64 MiB, p=4)
HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
#: shortest password accepted for a new or changed password
MIN_LENGTH = 12
MAX_LENGTH = 1024

# A hash of nothing anyone knows: verifying an unknown user's attempt against it takes
# as long as a real check, so response times do not tell which user names exist.
_DUMMY = HASHER.hash("esb: no such user; this hash only spends the time a real check takes")


def hash_password(password: str) -> str:
    """The argon2id hash to store (salted; the same password never hashes the same twice)."""
    return HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; ``None`` (no password set) spends the time and says no."""
    try:
        return HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with other parameters than today's (rehash on the next good login)."""
    try:
        return HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable as a new password, or None.

    Length only (NIST SP 800-63B 5.1.1.2: no composition rules); a deployment
    that wants more puts a directory in front of the engine.
    """
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters (got {len(password)})"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    if password != password.strip():
        return "a password must not begin or end with white space (a pasted line end, most likely)"
    return None
