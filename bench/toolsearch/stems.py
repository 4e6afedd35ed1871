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
national and nation, seasonal and season, but not tidal and tide, rental and rent, allergen or
allergic and allergy, inverse and invert).

Last, British spellings joined to the American ones most tools are written in (colour and color,
organisation and organization, neighbourhood, optimise, centre, licence, programme): the stemmer
keeps them apart ("organis", "organiz"). A word of the British list that the American list lacks
is rewritten by the usual spelling rules (-ise -ize, -our -or, -tre -ter, -ogue -og, -ence -ense,
-lled -led, ae and oe as e, -mme -m); where exactly one rewriting is an American word, its stem is
joined to that word's, unless an American word already stems like it. A few variants that
Debian's American list also holds (licence, programme, catalogue, dialogue) are listed by hand.

Nothing here reads the evaluation queries or the tool listings.

    python bench/toolsearch/stems.py [AMERICAN [BRITISH]]
    # Debian's wamerican and wbritish: /usr/share/dict/american-english, british-english
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
    "allergic": "allergy",
    "allergen": "allergy",
    "inverse": "invert",
}
"""Adjectives and nouns the stemmer keeps apart from their base (it joins national and nation)."""


# British -> American spelling rules, tried at every place a word has the British part
SPELLING_RULES = (
    ("isation", "ization"),
    ("ise", "ize"),
    ("ised", "ized"),
    ("ises", "izes"),
    ("ising", "izing"),
    ("iser", "izer"),
    ("isers", "izers"),
    ("yse", "yze"),
    ("ysed", "yzed"),
    ("ysing", "yzing"),
    ("our", "or"),
    ("tre", "ter"),
    ("tres", "ters"),
    ("ogue", "og"),
    ("ogues", "ogs"),
    ("ence", "ense"),
    ("ences", "enses"),
    ("lled", "led"),
    ("lling", "ling"),
    ("ller", "ler"),
    ("llers", "lers"),
    ("aem", "em"),
    ("aed", "ed"),
    ("oes", "es"),
    ("oed", "ed"),
    ("mme", "m"),
    ("mmes", "ms"),
    ("yre", "ire"),
    ("yres", "ires"),
    ("que", "ck"),
)

VARIANTS = {
    "licence": "license",
    "programme": "program",
    "catalogue": "catalog",
    "dialogue": "dialog",
    "analyse": "analyze",
}
"""British spellings the American list holds as well (so the rules above never see them)."""

KEPT_APART = {"localisation", "utilisation"}
"""British spellings left as they are, for a French word spelled alike that the lexicon reads
otherwise: localisation is a place (English localization translates an app), utilisation is
usage (joined, it would stem as utility)."""


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


def british_merges(american_words: list[str], british_words: list[str]) -> dict[str, str]:
    """British stem -> American stem, for the spellings `SPELLING_RULES` rewrite unambiguously."""
    known = set(american_words)
    american_stems = {raw_stem(w) for w in american_words}
    found: dict[str, set[str]] = {}
    for word in sorted(set(british_words) - known):
        for british, us in SPELLING_RULES:
            at = word.find(british)
            while at >= 0:
                other = word[:at] + us + word[at + len(british) :]
                if other in known and raw_stem(word) != raw_stem(other):
                    found.setdefault(raw_stem(word), set()).add(raw_stem(other))
                at = word.find(british, at + 1)
    table = {
        split: targets.pop()
        for split, targets in sorted(found.items())
        if len(targets) == 1 and split not in american_stems
    }
    for word in KEPT_APART:
        table.pop(raw_stem(word), None)
    table.update({raw_stem(b): raw_stem(a) for b, a in VARIANTS.items()})
    return table


def read_words(source: Path) -> list[str]:
    return sorted(
        {
            w.strip()
            for w in source.read_text(errors="replace").splitlines()
            if re.fullmatch(r"[a-z]+", w.strip())
        }
    )


def main() -> None:
    words = read_words(Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/dict/american-english"))
    british = read_words(Path(sys.argv[2] if len(sys.argv) > 2 else "/usr/share/dict/british-english"))
    table = merges(words)
    table.update({raw_stem(role): raw_stem(verb) for role, verb in ROLES.items()})
    table.update({raw_stem(word): raw_stem(base) for word, base in BASES.items()})
    # a British stem joins the American stem where that one is joined itself (queu -> queue)
    table.update({b: table.get(a, a) for b, a in british_merges(words, british).items() if b not in table})
    OUT.write_text("".join(f"{split} {base}\n" for split, base in table.items()))
    print(f"{len(table)} stems from {len(words)} words -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
