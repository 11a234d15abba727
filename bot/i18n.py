"""Wording in English and French: one gettext catalogue for the web pages and the bot's chat
replies alike. English source strings are the message ids; `bot/locale/fr/LC_MESSAGES/messages.po`
holds the French. The catalogue is compiled in memory on first use (Babel), so there is no build
step and nothing compiled is committed.

In code: `_ = wording(lang)` then `_("Only inbox admins can manage automations.")`, with
placeholders filled after translation: `_("Automation {name} created.", name=...)`, and
`plural(_, "{n} automation", "{n} automations", n)`. Templates get the same `_` and `plural`.
`make messages` extracts new strings into the catalogue."""

from __future__ import annotations

import functools
import gettext
import io
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of `lang` (English: the message ids themselves)."""
    if lang not in LANGUAGES or lang == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    with (LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    mo = io.BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    return Translations(mo, domain=DOMAIN)


def language_of(tag: str | None) -> str | None:
    """Our language for a language tag or locale (`fr`, `fr-CA`, `fr_FR`, `en-US`), or None."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].casefold()
    return primary if primary in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The best of our languages for an `Accept-Language` header, or None when it names none.

    Hand-written: the header is a comma list of `tag;q=weight`, and no dependency we carry parses
    it (Babel negotiates locales but does not read the header)."""
    if not header:
        return None
    choices: list[tuple[float, int, str]] = []
    for order, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().casefold() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        lang = language_of(tag)
        if lang is not None and weight > 0:
            choices.append((-weight, order, lang))
    return min(choices)[2] if choices else None


def pick(*candidates: str | None) -> str:
    """The first of `candidates` that is one of our languages (each may be a tag like `fr-CA`),
    else English."""
    for candidate in candidates:
        lang = language_of(candidate)
        if lang is not None:
            return lang
    return DEFAULT_LANGUAGE


class Wording:
    """The catalogue in one language, as a callable: `t("Saved {name}.", name=...)`."""

    __slots__ = ("_t", "lang")

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        self._t = translations(self.lang)

    def __call__(self, message: str, /, **values: Any) -> str:
        text = self._t.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, n: int, /, **values: Any) -> str:
        return self._t.ngettext(singular, plural, n).format(n=n, **values)


def plural(_: Wording, singular: str, plural: str, n: int, /, **values: Any) -> str:
    """The singular or plural text for `n` in `_`'s language; `n` fills `{n}`. (A function, not a
    method, so that `make messages` finds both texts: `plural(_, "{n} rule", "{n} rules", n)`.)"""
    return _.ngettext(singular, plural, n, **values)


@functools.cache
def wording(lang: str | None) -> Wording:
    return Wording(lang or DEFAULT_LANGUAGE)
