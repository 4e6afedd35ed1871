"""Acronyms: one side says a thing by its initials, the other spells it out.

A task may write what a tool's name spells out ("TB as at 31 March" for `get_trial_balance`,
"post a JE" for `create_journal_entry`), and a tool's name may carry what a task spells out
(`swiss_ip_search_spc` for "supplementary protection certificates", `get_rum_page_performance`
for "real user monitoring"). Neither shares a word with the other, and the lexicon's short forms
(pr, k8s, kpi ...) cover only the common ones.

Both directions become extra terms that only each other can match, so they never meet a word:
- `^tb`: the initials of a tool name's object (its words after a verb and its server's name),
  and a task's word in capitals of two to five letters (a plural's "s" after it: "PBs");
- `~spc`: a word of three to five letters in a tool's name that its description writes in
  capitals, and the initials of three to five consecutive words of an English task (stop words
  left out).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .spelling import looks_english
from .text import STOP_WORDS, split_identifier, words

SPELLED_OUT = "^"
"""Prefix of the terms a task's capitals match: initials of a tool name's words."""
INITIALS = "~"
"""Prefix of the terms a tool name's acronym matches: initials of a task's words."""

# a word in capitals, two to five letters, with a plural's "s" at most ("TB", "JE", "PBs"); not
# part of an identifier or a code (PROJ-123, GC-20931 and the like are read as literals first)
_CAPITALS = re.compile(r"(?<![\w-])([A-Z]{2,5})s?(?![\w-])")
_WRITTEN_IN_CAPITALS = re.compile(r"(?<![\w-])([A-Z]{3,5})s?(?![\w-])")


def _initials(parts: list[str], shortest: int, longest: int) -> Iterable[str]:
    """The initials of every run of ``shortest`` to ``longest`` consecutive words of ``parts``."""
    firsts = "".join(w[0] for w in parts)
    for size in range(shortest, longest + 1):
        for start in range(len(firsts) - size + 1):
            yield firsts[start : start + size]


def _ascii_words(text: str) -> list[str]:
    return [w for w in words(text) if w.isascii() and w.isalpha() and w not in STOP_WORDS]


def name_terms(name: str, text: str, skip: Callable[[str], bool]) -> frozenset[str]:
    """The acronym terms of a tool's ``name`` (its core name, as written) and ``text`` (its title
    and description). Its object's words, after a verb and its server's name (``skip``), give
    their initials: of any run of three or four of them, and of two only when they are the whole
    object (`^tb` for get_trial_balance; two letters are too many coincidences otherwise). A
    word of three to five letters that the text writes in capitals is an acronym (`~spc` for
    swiss_ip_search_spc, whose description says SPC)."""
    parts = _ascii_words(split_identifier(name).replace("_", " ").replace("-", " "))
    while parts and skip(parts[0]):
        parts = parts[1:]
    found = {SPELLED_OUT + a for a in _initials(parts, 3, 4)}
    if len(parts) == 2:
        found.add(SPELLED_OUT + parts[0][0] + parts[1][0])
    # most names have no such word in capitals in their text: a substring test first, and the
    # text scanned only for the one that is there (a registration analyses every tool)
    written = [w for w in parts if 3 <= len(w) <= 5 and w.upper() in text]
    if written:
        capitals = set(_WRITTEN_IN_CAPITALS.findall(text))
        found.update(INITIALS + w for w in written if w.upper() in capitals)
    return frozenset(found)


def task_terms(text: str, expands: Callable[[str], bool]) -> frozenset[str]:
    """The acronym terms of a task's ``text`` (what it asks, not what it dictates): its words in
    capitals that the lexicon does not already expand (`^tb`), and the initials of its runs of
    three to five words in an English task (`~spc`)."""
    found = {
        SPELLED_OUT + m.group(1).lower() for m in _CAPITALS.finditer(text) if not expands(m.group(1).lower())
    }
    if looks_english(text):  # the acronyms tools carry are English ones
        found.update(INITIALS + a for a in _initials(_ascii_words(text), 3, 5))
    return frozenset(found)
