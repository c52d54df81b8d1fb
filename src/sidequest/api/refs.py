"""A dashboard row's reference to one entry of a sorted set: ``<score>~<digest>-<jid>``,
which names that very entry whatever others share its score and jid, and Sidekiq's own
``<score>-<jid>``, which the web UI of Sidekiq uses and links may still carry."""

from __future__ import annotations

import re

#: ``ref_of``'s form: score, digest, jid (anything, dashes and slashes included).
_REF = re.compile(r"([^~]+)~([0-9a-f]{32})-(.*)", re.DOTALL)


def ref_of(score: float, digest: str, jid: str | None) -> str:
    """The reference of one entry. The digest sits before the dash, so that everything after
    it is the jid, as in Sidekiq's form."""
    return f"{score!r}~{digest}-{jid}"


def parse_ref(key: str) -> tuple[float, str, str | None] | None:
    """``(score, jid, digest)`` of a row's key: ``ref``'s ``<score>~<digest>-<jid>``, or
    Sidekiq's ``<score>-<jid>`` (split at the first dash: a jid may contain dashes), whose
    digest is None. None when it is neither."""
    found = _REF.fullmatch(key)
    score = _score(found.group(1)) if found else None
    if found and score is not None:
        return score, found.group(3), found.group(2)
    # Sidekiq's form; also a jid that merely looks like the tail of a ref ("a~<hex>-b").
    text, dash, jid = key.partition("-")
    score = _score(text)
    return (score, jid, None) if dash and score is not None else None


def _score(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
