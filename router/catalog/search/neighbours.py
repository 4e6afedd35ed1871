"""Words near in meaning: for a common English word, the words a sentence model puts closest to it.

The table (``neighbours.txt.gz``, ~13,000 words with up to 8 neighbours each) is made offline by
``bench/toolsearch/neighbours.py`` from static word vectors of the sentence model all-MiniLM-L6-v2
(Apache-2.0); it is general vocabulary ("elevation" -> altitude, height), not the wording of any
evaluation query. A query's words add their neighbours as light extra terms, which reaches a tool
whose text says what the task means in other words. Words that stem alike are not listed (the
stemmer already joins them).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from .text import stem

__all__ = ["Neighbours", "default_neighbours"]

_FILE = Path(__file__).with_name("neighbours.txt.gz")


class Neighbours:
    """word -> ((neighbour, cosine similarity), ...), best first."""

    def __init__(self, lines: dict[str, str]) -> None:
        # word -> the rest of its line, parsed on first use (most words are never asked for)
        self._lines = lines
        self._parsed: dict[str, tuple[tuple[str, float], ...]] = {}
        self._stems: frozenset[str] | None = None

    @classmethod
    def parse(cls, text: str) -> Neighbours:
        """From lines ``word other:0.71 another:0.64``."""
        lines: dict[str, str] = {}
        for line in text.splitlines():
            word, _, rest = line.partition(" ")
            if word and rest:
                lines[word] = rest
        return cls(lines)

    @classmethod
    def load(cls, path: Path = _FILE) -> Neighbours:
        return cls.parse(gzip.decompress(path.read_bytes()).decode())

    def __len__(self) -> int:
        return len(self._lines)

    def knows(self, word: str) -> bool:
        """Whether ``word`` stems like a word of the table (its words and their neighbours,
        ~8,600 stems): a common English word, not a typo. The stems are made on first use (~60 ms)."""
        stems = self._stems
        if stems is None:
            every = {w for word_, rest in self._lines.items() for w in (word_, *_words_of(rest))}
            stems = self._stems = frozenset(stem(w) for w in every)
        return stem(word) in stems

    def get(self, word: str) -> tuple[tuple[str, float], ...]:
        found = self._parsed.get(word)
        if found is None:
            rest = self._lines.get(word)
            if rest is None:
                return ()
            pairs = []
            for item in rest.split():
                other, _, sim = item.rpartition(":")
                pairs.append((other, float(sim)))
            found = self._parsed[word] = tuple(pairs)
        return found


def _words_of(rest: str) -> list[str]:
    return [item.rpartition(":")[0] for item in rest.split()]


@lru_cache(maxsize=1)
def default_neighbours() -> Neighbours:
    """The table shipped with the package, read once per process."""
    return Neighbours.load()
