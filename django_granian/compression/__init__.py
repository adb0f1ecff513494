"""Response compression (zstd, br, gzip), sans-IO: negotiation (:mod:`.negotiate`), encoders
(:mod:`.codecs`) and the rules for what is compressed and how its headers change (:mod:`.policy`).
The server applies it to every app response in one place: ``app/filters.py``."""

from .codecs import Codec, StreamEncoder, available, decompress
from .negotiate import accept_encoding, choose_coding, coding_quality
from .policy import DEFAULT_TYPES, Compression, Plan, TypeMatcher

__all__ = ["Codec", "Compression", "DEFAULT_TYPES", "Plan", "StreamEncoder", "TypeMatcher", "accept_encoding",
           "available", "choose_coding", "coding_quality", "decompress"]
