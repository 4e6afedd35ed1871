"""More surface forms of the lexicon's concepts, by language: everyday and IT-slang words a task
is typed with in Russian, Japanese, Chinese, Korean and the Latin-script languages beyond the
lexicon's own forms, and Polish, Turkish, Vietnamese, Indonesian, Arabic, Persian, Hindi (Devanagari and
romanised), Dutch, Czech and Swedish, which it had none of.

General vocabulary, written from each language's usage without reading any evaluation query, then
pruned of forms that fold or stem into an English word of another meaning (Polish "nowe" -> "now")
and of CJK forms found inside unrelated words (キル in スキル). ``lexicon.py`` merges them into
``CONCEPTS``; the conventions are the same ("a+b" is a two-word phrase).

``languages.txt`` is data, in the glossary's format and read by its loader: a ``# concept`` line,
then a ``lang forms...`` line per language.
"""

from __future__ import annotations

from pathlib import Path

from .glossary import load

__all__ = ["FORMS"]

# concept -> language -> whitespace-separated surface forms
FORMS: dict[str, dict[str, str]] = load(Path(__file__).with_name("languages.txt"))
