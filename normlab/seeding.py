"""Seeds derived from names, so any episode can be re-run alone with the seed it had."""

import hashlib


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from the parts (e.g. scenario seed, episode index, agent id).

    Hash-based rather than sequential so that episode k's seed needs nothing from episodes
    0..k-1, and 31 bits so that every library (NumPy, llama.cpp, torch) accepts it.
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF
