"""A query's words that no visible tool has, read as words that some have.

A task is typed in a hurry and in many languages: "deploymnet" is a typo of deployment, "サーバー"
a loanword for server, "automatisations" shares its stem with automation. None of them is a term
of any visible tool, so on its own it would count for nothing. Here each is read as the indexed
stem it most likely means (`spelling.py` makes the candidate spellings, `katakana.py` the
consonant skeletons); the index gives the reading a typo's or a cognate's light weight.

Only stems that a visible tool has are readings (the caller's ``df`` counts the visible tools with
a term): a hidden tool's words can neither be read into a query nor change which reading wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .katakana import english_skeletons, katakana_reading, katakana_skeletons
from .spelling import cognate_stems, corrections, loan_spellings

__all__ = ["UnknownWords"]

DocumentFrequency = Callable[[str], int]
"""The number of visible tools with a term (0 for a term no tool has)."""

_ENGLISH_STEM = re.compile(r"[a-z]{3,}")  # a term a katakana loanword may read as
_KATAKANA = re.compile("[ァ-ヴ]")


class UnknownWords:
    """Reads unknown query words against the index's terms; keeps the consonant skeletons of its
    English stems (katakana loanwords are read by them) as terms come and go."""

    def __init__(self) -> None:
        # consonant skeleton -> the English stems that have it
        self._skeletons: dict[str, set[str]] = {}

    def term_added(self, term: str) -> None:
        """The index has a term it had not (its first tool)."""
        if _ENGLISH_STEM.fullmatch(term):
            for skeleton in english_skeletons(term):
                self._skeletons.setdefault(skeleton, set()).add(term)

    def term_removed(self, term: str) -> None:
        """The index no longer has a term (its last tool left)."""
        if _ENGLISH_STEM.fullmatch(term):
            for skeleton in english_skeletons(term):
                stems = self._skeletons[skeleton]
                stems.discard(term)
                if not stems:
                    del self._skeletons[skeleton]

    def typos(
        self, typos: tuple[tuple[str, str], ...], df: DocumentFrequency, have: set[str]
    ) -> list[tuple[str, int]]:
        """For each (word, its own stem) no visible tool has, the visible stem one edit away that
        the most visible tools have (ties by term), or the English stem a katakana word reads as;
        each with its count of visible tools. ``have``: the query's terms, which a reading does
        not repeat (it is updated)."""
        fixed: list[tuple[str, int]] = []
        for word, own in typos:
            if df(own):
                continue
            if _KATAKANA.match(word):
                read = self._katakana(word, df)
                if read is not None and read not in have:
                    have.add(read)
                    fixed.append((read, df(read)))
                continue
            best: tuple[int, str] | None = None
            for candidate in corrections(word) if word.isascii() else loan_spellings(word):
                count = df(candidate)
                if count and (best is None or (-count, candidate) < (-best[0], best[1])):
                    best = (count, candidate)
            if best is not None and best[1] not in have:
                have.add(best[1])
                fixed.append((best[1], best[0]))
        return fixed

    def _katakana(self, word: str, df: DocumentFrequency) -> str | None:
        """The visible English stem a katakana loanword reads as (`katakana.py`), if any."""
        for skeleton, romaji in katakana_skeletons(word):
            stems = [t for t in self._skeletons.get(skeleton, ()) if df(t)]
            read = katakana_reading(romaji, stems) if stems else None
            if read is not None:
                return read
        return None

    @staticmethod
    def cognates(
        cognates: tuple[tuple[str, str], ...], df: DocumentFrequency, have: set[str]
    ) -> list[tuple[str, int, float]]:
        """For each word of another language no visible tool has, the visible stems it begins
        with (configurées: configur, config), each with its count of visible tools and an equal
        share of the word's weight: which English word it shares its stem with (automatisations:
        automation or automatic) is not known, so each counts a little. ``have`` is updated."""
        fixed: list[tuple[str, int, float]] = []
        for word, own in cognates:
            if df(own):
                continue
            found: list[tuple[str, int]] = []
            for prefix in cognate_stems(word):
                count = df(prefix) if prefix not in have else 0
                if count:
                    found.append((prefix, count))
            have.update(prefix for prefix, _ in found)
            fixed.extend((prefix, count, 1.0 / len(found)) for prefix, count in found)
        return fixed
