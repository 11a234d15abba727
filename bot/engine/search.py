"""What the full-text index stores and how a search box's words are looked up in it. Pure.

Both sides use the matcher's normal form (`match_form`: NFKC, case folding, diacritics removed,
punctuation as separators), so "Remboursement" is found by `remboursement` and a search finds whole
words only ("by" does not find "bystander"). Characters of scripts written without spaces (Han,
kana, Thai, …) are indexed one per token and looked up as a phrase of consecutive tokens, so a
search for 退款 finds 退款请求 — the same substring rule as the matcher's for those scripts.
"""

from __future__ import annotations

from bot.engine.normalize import is_no_space, match_form

MAX_TERMS = 16


def _spaced(word: str) -> str:
    """A word with each no-space-script character as a token of its own."""
    if word.isascii():
        return word
    out: list[str] = []
    run: list[str] = []
    for ch in word:
        if is_no_space(ch):
            if run:
                out.append("".join(run))
                run = []
            out.append(ch)
        else:
            run.append(ch)
    if run:
        out.append("".join(run))
    return " ".join(out)


def document(text: str) -> str:
    """The text to index for one message."""
    form = match_form(text)
    if form.isascii():  # no word to split into characters: the common case, on every message stored
        return " ".join(form.split())
    return " ".join(_spaced(w) for w in form.split())


def terms(query: str) -> list[str]:
    """The search box's words, each a phrase of index tokens (duplicates dropped, order kept).
    Every term must be found somewhere in a conversation for it to match."""
    words = [_spaced(w) for w in match_form(query).split()]
    return list(dict.fromkeys(words))[:MAX_TERMS]
