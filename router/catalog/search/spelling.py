"""Words no visible tool has, read as words some tool has: typos in English tasks, English
loanwords written in Cyrillic, and cognates of English words in other languages.

People type "calender", "idnex" and "coment"; an agent passes the user's words on. The ranker
reads such a word as the indexed word one edit away (a letter deleted, inserted, replaced, or two
swapped), the most common one if several are, at less than a word's weight.

Only in tasks written in English, and only for lower-case words of five letters or more: in other
languages a word one edit from an English one is usually a word of that language (Italian "prima"
is not "prisma", French "taille" not "tail"), and a capitalised word inside a sentence is a name
("Priya", "Geneva").

Russian IT speech writes English words in Cyrillic letters: деплоймент, коммиты, постгрес,
обсидиан. Such a word, written back in the Latin spellings its letters usually stand for in
loanwords (with and without its case ending) and stemmed, meets the tools' English words; the
glossary and the lexicon cover the common ones, this catches the rest (product names above all).

French, Spanish, Portuguese and Italian share many stems with English: automatisations,
configurées, connectée, resolvido. Such a word of a task in another language, when no visible tool
has it, reads as each indexed stem it begins with (five letters or more), its weight shared among
them: which English word it shares its stem with (automation, automatic) is not known.

Which words count as known depends on what the caller may see, so the ranker makes the choice per
view (`SearchIndex.search`); this module only proposes.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

from .text import STOP_WORDS, fold, stem, stem_words

__all__ = [
    "cognate_candidates",
    "cognate_stems",
    "corrections",
    "cyrillic_candidates",
    "loan_spellings",
    "looks_english",
    "typo_candidates",
]

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_MIN_LENGTH = 5
_MAX_LENGTH = 20  # a longer word is rarely a typo, and its edits cost ~50 per letter to stem
_RAW_WORD = re.compile(r"[A-Za-z]+|[^\sA-Za-z]+")
_ALPHA = re.compile(r"[a-z]+")
_COGNATE_WORD = 7
_COGNATE_STEM = 5


# Function words: a task is read as English when it has more of the first than of the second
# (the two overlap on purpose: "in", "a", "i", "me" are words in several languages).
def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ENGLISH = _set(
    """the a an to of and or for with from on in at by into onto up out off my me i our your their
    this that these those what which who how why when where is are was be it its can could you
    please all any every some new last next"""
)
_OTHER = _set(
    """de la el los las en y que para por con del una un le les des du et pour avec sur dans est
    pas ne mon ma mes der die das und mit ein eine einen den dem von zu ist auf nicht ich mir mein
    meine il di che per nel della al alla lo gli sono non het een van voor op met dat te ook niet
    om naar um uma no da dos em ao nos se os as o e yang untuk ke dari dan ini itu w z na do jest
    sie ve bir için ile bu và của cho các với i tutti tutte sind welche wie was wer alle noch schon
    bitte mich meinen meinem nach bei aus oder aber wenn dann gibt es je une quels quelles sont moi
    qui mis son hay meu minha quais welke zijn mijn er wat hoe kun"""
)


def looks_english(text: str) -> bool:
    """Whether a task is written in English: ASCII, with more English function words than those
    of the other languages written in Latin letters."""
    if not text.isascii():
        return False
    tokens = text.lower().split()
    english = sum(t in _ENGLISH for t in tokens)
    return english > sum(t in _OTHER for t in tokens)


def typo_candidates(text: str) -> tuple[str, ...]:
    """The words of an English task that may be typos: lower-case, letters only, five to twenty.
    Whether one is a typo (no visible tool has it) is the ranker's question."""
    if not looks_english(text):
        return ()
    found: dict[str, None] = {}
    for token in _RAW_WORD.findall(text):
        if (
            _MIN_LENGTH <= len(token) <= _MAX_LENGTH
            and token.islower()
            and _ALPHA.fullmatch(token)
            and token not in STOP_WORDS
        ):
            found.setdefault(token, None)
    return tuple(found)


def looks_foreign(text: str) -> bool:
    """Whether a task in Latin letters reads as another language: more of the other languages'
    function words than English ones, or letters with diacritics."""
    if text.isascii():
        tokens = text.lower().split()
        return sum(t in _OTHER for t in tokens) > sum(t in _ENGLISH for t in tokens)
    return any(ch.isalpha() and not ch.isascii() and fold(ch).isascii() for ch in text)


def cognate_candidates(text: str) -> tuple[str, ...]:
    """The words of a task in another language written in Latin letters that may begin with an
    English word's stem (automatisations, configurées, connectée): folded, letters only, seven
    letters or more."""
    if not looks_foreign(text):
        return ()
    found: dict[str, None] = {}
    for token in _RAW_WORD.findall(fold(text)):
        if len(token) >= _COGNATE_WORD and _ALPHA.fullmatch(token) and token not in STOP_WORDS:
            found.setdefault(token, None)
    return tuple(found)


def cognate_stems(word: str) -> tuple[str, ...]:
    """The stems a cognate may begin with: its prefixes, longest first, of five letters or more."""
    return tuple(word[:n] for n in range(len(word), _COGNATE_STEM - 1, -1))


@lru_cache(maxsize=4096)
def corrections(word: str) -> tuple[str, ...]:
    """The stems of the words one edit from ``word`` (Damerau-Levenshtein, letters a-z), without
    the word's own stem; sorted. The first letter stays (few typos change it), and a stem shorter
    than the word by more than three letters is not a correction ("pending" -> "ending", stem
    "end", is another word)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    edits = {a + b[1:] for a, b in splits if b}
    edits |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    edits |= {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    edits |= {a + c + b for a, b in splits for c in _LETTERS}
    edits.discard(word)
    own = stem(word)
    first, shortest = word[0], len(word) - 3
    return tuple(
        sorted(
            {
                s
                for s in stem_words(sorted(e for e in edits if e[:1] == first))
                if s != own and len(s) >= shortest
            }
        )
    )


# ---- loanwords written in Cyrillic ----------------------------------------------------------------

# How English loanwords' letters are written in Russian, most likely spelling first (деплой is
# deploy, коммит commit, кластер cluster): each Cyrillic letter's Latin spellings.
_LATIN = {
    "а": ("a", "u"), "б": ("b",), "в": ("v", "w"), "г": ("g",), "д": ("d",), "е": ("e",),
    "ё": ("yo", "e"), "ж": ("zh", "g", "j"), "з": ("z", "s"), "и": ("i", "y", "ee"), "й": ("y", "i"),
    "к": ("k", "c", "ck"), "л": ("l",), "м": ("m",), "н": ("n",), "о": ("o",), "п": ("p",),
    "р": ("r",), "с": ("s", "c"), "т": ("t",), "у": ("u", "oo"), "ф": ("f", "ph"), "х": ("h",),
    "ц": ("ts", "c"), "ч": ("ch",), "ш": ("sh",), "щ": ("sch",), "ъ": ("",), "ы": ("y", "i"),
    "ь": ("",), "э": ("e", "a"), "ю": ("yu", "u"), "я": ("ya",),
}  # fmt: skip
_PAIRS = {"дж": ("j", "g"), "кс": ("x", "ks"), "кв": ("qu", "kv"), "ей": ("ey", "ay"), "ай": ("i", "y", "ai")}
# Russian case endings a loanword takes (деплоймента, постгреса, обсидиане)
_ENDINGS = _set("ами ями ого ому ой ей ом ем ах ях ов ев ы и а я у ю е")
_CYRILLIC_WORD = re.compile("[а-яё]{4,}")
_MAX_SPELLINGS = 96


def cyrillic_candidates(text: str) -> tuple[str, ...]:
    """A task's words in Cyrillic letters that may be English loanwords (four letters or more)."""
    return tuple(dict.fromkeys(_CYRILLIC_WORD.findall(text.lower())))


@lru_cache(maxsize=4096)
def loan_spellings(word: str) -> tuple[str, ...]:
    """The English stems a Cyrillic loanword may be written for, without and with its case
    ending: деплоймента -> deployment, коммиты -> commit. At most a few dozen spellings each."""
    forms = [word, *(word[: -len(e)] for e in _ENDINGS if word.endswith(e) and len(word) - len(e) >= 4)]
    out: set[str] = set()
    for form in forms:
        pieces: list[tuple[str, ...]] = []
        i = 0
        while i < len(form):
            pair = _PAIRS.get(form[i : i + 2])
            if pair is not None:
                pieces.append(pair)
                i += 2
            else:
                pieces.append(_LATIN.get(form[i], (form[i],)))
                i += 1
        spellings = ["".join(p) for p in itertools.islice(itertools.product(*pieces), _MAX_SPELLINGS)]
        out.update(s for s in stem_words(spellings) if len(s) >= 4)
    return tuple(sorted(out))
