"""French and English messages for the web pages.

Messages are keyed by their English text (gettext style): `en.json` is empty on purpose (the
key is the English message) and `fr.json` maps each English message to French. The language
comes from the `lang` cookie (set by the switch link), else from Accept-Language, else English.
A test checks that every message the templates and pages use has a French translation.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

LANGUAGES = ("en", "fr")
DEFAULT = "en"
COOKIE = "passerelle_lang"


@cache
def catalogue(lang: str) -> dict[str, str]:
    if lang not in LANGUAGES:
        return {}
    text = files(__package__).joinpath(f"{lang}.json").read_text(encoding="utf-8")
    return json.loads(text)


def pick(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's language when valid, else the best Accept-Language match, else English."""
    if cookie in LANGUAGES:
        return str(cookie)
    best, best_q = DEFAULT, -1.0
    for part in (accept_language or "").split(",")[:20]:
        bits = part.strip().split(";")
        tag = bits[0].strip().lower().split("-")[0]
        q = 1.0
        for b in bits[1:]:
            if b.strip().startswith("q="):
                try:
                    q = float(b.strip()[2:])
                except ValueError:
                    q = 0.0
        if tag in LANGUAGES and q > best_q:
            best, best_q = tag, q
    return best


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self.messages = catalogue(self.lang)

    def __call__(self, message: str, **kw: Any) -> str:
        text = self.messages.get(message, message)
        return text.format(**kw) if kw else text
