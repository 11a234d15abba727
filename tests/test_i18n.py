"""One catalogue, English and French: every string the pages and chat replies use is translated,
with the same placeholders, and the language is picked as the README says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from bot import i18n

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"\{(\w*)[^}]*\}")


def extracted() -> dict[str, tuple[str, ...]]:
    """Every message id in the code and templates (as `make messages` finds them), with where."""
    keywords = {**DEFAULT_KEYWORDS, "plural": (2, 3)}
    method_map = [
        ("bot/front/web/templates/**.html", "jinja2"),
        ("bot/**.py", "python"),
        ("connectors/**.py", "python"),
    ]
    found: dict[str, tuple[str, ...]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=method_map, keywords=keywords
    ):
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found[msgid] = (*found.get(msgid, ()), f"{filename}:{lineno}")
    return found


def french() -> dict[str, list[str]]:
    with (i18n.LOCALE_DIR / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale="fr")
    out: dict[str, list[str]] = {}
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = list(m.string) if isinstance(m.string, tuple) else [m.string]
        if m.fuzzy:
            strings = [""]
        for msgid in ids:
            out[msgid] = strings
    return out


def test_every_string_in_the_code_has_a_french_translation() -> None:
    fr = french()
    missing = [f"{msgid!r} ({where[0]})" for msgid, where in extracted().items() if not all(fr.get(msgid, [""]))]
    assert not missing, "untranslated (run `make messages`, then translate):\n" + "\n".join(missing)


def test_each_english_text_is_in_the_catalogue_once() -> None:
    """Merged catalogues can hold a text twice, translated two ways: only one of them would show."""
    text = (i18n.LOCALE_DIR / "fr" / "LC_MESSAGES" / "messages.po").read_text(encoding="utf-8")
    keys = [block.split("msgstr", 1)[0] for block in text.split("\n\n") if "\nmsgid " in "\n" + block]
    repeated = sorted({k.strip() for k in keys if keys.count(k) > 1})
    assert not repeated, "repeated (python scripts/dedupe_po.py bot/locale/fr/LC_MESSAGES/messages.po):\n" + "\n".join(
        repeated
    )


def test_translations_keep_the_placeholders_of_the_english() -> None:
    wrong = []
    for msgid, strings in french().items():
        want = sorted(set(PLACEHOLDER.findall(msgid)))
        for s in strings:
            if s and sorted(set(PLACEHOLDER.findall(s))) != want:
                wrong.append(f"{msgid!r} → {s!r}")
    assert not wrong, "\n".join(wrong)


def test_french_wording_comes_from_the_catalogue() -> None:
    _ = i18n.wording("fr")
    assert _("Only inbox admins can manage automations.") != "Only inbox admins can manage automations."
    assert (
        i18n.wording("en")("Only inbox admins can manage automations.") == "Only inbox admins can manage automations."
    )
    assert i18n.wording("de").lang == "en"  # a language we do not have falls back to English


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr"),
        ("de-DE,de;q=0.9,en-US;q=0.8", "en"),
        ("en;q=0.2, fr;q=0.9", "fr"),
        ("fr;q=0, en", "en"),
        ("de, es", None),
        ("", None),
        ("fr;q=abc, en;q=0.5", "en"),
    ],
)
def test_accept_language_picks_the_best_of_ours(header: str, lang: str | None) -> None:
    assert i18n.from_accept_language(header) == lang


def test_pick_takes_the_first_language_we_have() -> None:
    assert i18n.pick(None, "de", "fr_FR", "en") == "fr"
    assert i18n.pick(None, "") == "en"
