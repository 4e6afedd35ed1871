"""Make router/catalog/search/stems.txt: the Snowball stems that split one word's inflections.

Offline only (the router reads the file). The English Snowball stemmer gives "queue" and "queues"
the stem ``queue`` but "queued" and "queuing" ``queu``; "alias" ``alia`` but "aliases" ``alias``;
"embed" ``emb`` but "embedded" ``embed``; "diff" ``diff`` but "diffed" ``dif``. A task that says
"the queued item" then shares no term with `cancel_queue_item`. This script finds every such split
in an English word list and writes ``split-stem base-stem`` lines, which `text.stem` applies after
the stemmer.

A pair is kept only when it is unambiguous:
- the inflected form (``-s``, ``-es``, ``-ed``, ``-d``, ``-ing``, a doubled last consonant) has one
  base in the list, and no base that already stems like it ("stared" is "stare", not "star");
- every word of the list with the split stem is that base or one of its inflections;
- the split stem goes to one base stem only.

Then a short list of role nouns the stemmer leaves whole, joined to their verb as it joins
"reviewer" to review: a watcher watches, an assignee is assigned ("who is watching this issue"
is `get_issue_watchers`), and a few adjectives and nouns it keeps apart from their base (it joins
national and nation, seasonal and season, but not tidal and tide, rental and rent).

Nothing here reads the evaluation queries or the tool listings.

    python bench/toolsearch/stems.py [/usr/share/dict/words]   # Debian's wamerican list
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import snowballstemmer

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "router" / "catalog" / "search" / "stems.txt"
_STEMMER = snowballstemmer.stemmer("english")


ROLES = {
    "watcher": "watch",
    "assignee": "assign",
    "attendee": "attend",
    "invitee": "invite",
    "contributor": "contribute",
}
"""Role nouns the stemmer keeps apart from their verb (it joins reviewer, follower, approver...)."""

BASES = {
    "tidal": "tide",
    "coastal": "coast",
    "rental": "rent",
}
"""Adjectives and nouns the stemmer keeps apart from their base (it joins national and nation)."""


def raw_stem(word: str) -> str:
    """The stemmer as `text.stem` calls it, before its merges (short words are kept whole)."""
    if len(word) <= 3:
        return word
    stemmed: str = _STEMMER.stemWord(word)
    return stemmed


def inflections(base: str, known: set[str]) -> set[str]:
    forms = {base + "s", base + "es", base + "ed", base + "ing"}
    if base.endswith("e"):
        forms |= {base + "d", base[:-1] + "ing"}
    if len(base) > 2 and base[-1] not in "aeiouwxy" and base[-2] in "aeiou":
        forms |= {base + base[-1] + "ed", base + base[-1] + "ing"}
    return forms & known


def merges(words: list[str]) -> dict[str, str]:
    known = set(words)
    bases: dict[str, list[str]] = {}
    for base in words:
        if len(base) >= 4:
            for form in inflections(base, known):
                bases.setdefault(form, []).append(base)
    by_stem: dict[str, set[str]] = {}
    for word in words:
        by_stem.setdefault(raw_stem(word), set()).add(word)
    found: dict[str, set[str]] = {}
    for form, candidates in bases.items():
        split = raw_stem(form)
        if len(candidates) != 1 or any(raw_stem(b) == split for b in candidates):
            continue
        base = candidates[0]
        owners = by_stem.get(split, set())
        if all(w == base or base in bases.get(w, ()) for w in owners):
            found.setdefault(split, set()).add(raw_stem(base))
    return {split: targets.pop() for split, targets in sorted(found.items()) if len(targets) == 1}


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/dict/words")
    words = sorted(
        {
            w.strip()
            for w in source.read_text(errors="replace").splitlines()
            if re.fullmatch(r"[a-z]+", w.strip())
        }
    )
    table = merges(words)
    table.update({raw_stem(role): raw_stem(verb) for role, verb in ROLES.items()})
    table.update({raw_stem(word): raw_stem(base) for word, base in BASES.items()})
    OUT.write_text("".join(f"{split} {base}\n" for split, base in table.items()))
    print(f"{len(table)} stems from {len(words)} words -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
