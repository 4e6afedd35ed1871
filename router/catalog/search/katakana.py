"""English loanwords written in katakana, read as the English words the tools have.

Japanese writes most technical and many everyday borrowed words in katakana: バッテリー (battery),
マルウェア (malware), ルート (route), ナレーション (narration). The glossary knows the common ones;
this reads the rest, product and place names included, the way `spelling.py` reads English words
written in Cyrillic.

A katakana word and an English word are compared by their consonants, the part Japanese keeps:
each side is reduced to a *skeleton* of consonant classes (r and l are one class, b and v, s, z and
soft c, j and g), English vowels, silent letters and the r that Japanese leaves unsaid (server is
サーバー, "s-b") dropped; a kana of two sounds is read both ways (ジ as j or a voiced s,
ミュージック music; フ as f or h, ウェブフック webhook). The English side is the index's stems, so
the katakana side also drops what the stemmer drops (-ing, a plural s, -tion as t). Of the stems
with the same skeleton, the one whose letters are closest to the katakana's romanisation is the
reading, if it is close enough: an unrelated word that happens to share the consonants (root for
ルート) is farther from it.

Which stems exist and which the caller may see is the index's question (`SearchIndex`); this module
only reduces words and measures distances.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["english_skeletons", "katakana_candidates", "katakana_reading", "katakana_skeletons", "romanize"]

_MIN_KANA = 3  # a shorter word's consonants say too little (ペン, ルー)
_MIN_STEM = 3

# Hepburn, as loanwords are written, row by row; ヂ and ヅ as their voiced s-sounds
_ROWS = {
    "アイウエオ": ("a", "i", "u", "e", "o"),
    "カキクケコ": ("ka", "ki", "ku", "ke", "ko"),
    "ガギグゲゴ": ("ga", "gi", "gu", "ge", "go"),
    "サシスセソ": ("sa", "shi", "su", "se", "so"),
    "ザジズゼゾ": ("za", "ji", "zu", "ze", "zo"),
    "タチツテト": ("ta", "chi", "tsu", "te", "to"),
    "ダヂヅデド": ("da", "ji", "zu", "de", "do"),
    "ナニヌネノ": ("na", "ni", "nu", "ne", "no"),
    "ハヒフヘホ": ("ha", "hi", "fu", "he", "ho"),
    "バビブベボ": ("ba", "bi", "bu", "be", "bo"),
    "パピプペポ": ("pa", "pi", "pu", "pe", "po"),
    "マミムメモ": ("ma", "mi", "mu", "me", "mo"),
    "ヤユヨ": ("ya", "yu", "yo"),
    "ラリルレロ": ("ra", "ri", "ru", "re", "ro"),
    "ワヰヱヲンヴ": ("wa", "wi", "we", "wo", "n", "vu"),
}
_KANA = {kana: roman for row, romans in _ROWS.items() for kana, roman in zip(row, romans, strict=True)}
_SMALL_Y = {"ャ": "a", "ュ": "u", "ョ": "o"}  # キャ kya, シュ shu
_SMALL_VOWEL = {"ァ": "a", "ィ": "i", "ゥ": "u", "ェ": "e", "ォ": "o"}  # ファ fa, ティ ti, ウェ we
_WORD = re.compile("[ァ-ヴー]+")
_VOWELS = frozenset("aeiou")


def katakana_candidates(text: str) -> tuple[str, ...]:
    """A task's katakana words of three kana or more (the long-vowel mark counted, small kana
    not: ルート is one, ペン and ティー are not), in order, each once."""
    found: dict[str, None] = {}
    for word in _WORD.findall(text):
        if sum(ch in _KANA or ch == "ー" for ch in word) >= _MIN_KANA:
            found.setdefault(word, None)
    return tuple(found)


@lru_cache(maxsize=4096)
def romanize(word: str) -> str:
    """Hepburn romanisation: バッテリー -> batterii, ドキュメント -> dokyumento."""
    out = ""
    double = False
    for ch in word:
        if ch == "ッ":
            double = True
            continue
        if ch == "ー":
            if out and out[-1] in _VOWELS:
                out += out[-1]
            continue
        if ch in _SMALL_Y and out.endswith("i"):
            out = out[:-1] + ("" if out[-3:-1] in ("sh", "ch") or out[-2:-1] == "j" else "y") + _SMALL_Y[ch]
            continue
        if ch in _SMALL_VOWEL and out and out[-1] in _VOWELS:
            standalone_u = out[-1] == "u" and (len(out) == 1 or out[-2] in _VOWELS)
            out = out[:-1] + ("w" if standalone_u else "") + _SMALL_VOWEL[ch]  # ウェ we, フォ fo
            continue
        syllable = _KANA.get(ch)
        if syllable is None:
            continue
        if double and syllable[0] not in _VOWELS:
            out += syllable[0]
        double = False
        out += syllable
    return out


# consonant classes: what English letters Japanese writes with one kana row
_ENGLISH_RULES = (
    (re.compile(r"(?<=[^aeiouy])e$"), ""),  # a silent e: rate sounds as rat, not ra-te
    (re.compile(r"^kn"), "n"),
    (re.compile(r"^wr"), "r"),
    (re.compile(r"^ps"), "s"),
    (re.compile(r"mb$"), "m"),
    (re.compile(r"gn$"), "n"),  # campaign, design
    (re.compile(r"gh"), ""),
    (re.compile(r"ph"), "f"),
    (re.compile(r"tch|ch"), "C"),
    (re.compile(r"(?<!s)s(?=ion)"), "j"),  # version, vision: バージョン, ビジョン
    (re.compile(r"sh|th|ss"), "s"),
    (re.compile(r"ck|qu?"), "k"),
    (re.compile(r"dg"), "g"),
    (re.compile(r"x"), "ks"),
    (re.compile(r"c(?=[eiy])"), "s"),
    (re.compile(r"c"), "k"),
    (re.compile(r"m(?=[bp])"), "n"),
    (re.compile(r"(?<=[aeiouy])r(?![aeiouy])"), ""),  # the r Japanese leaves unsaid: server, market
    (re.compile(r"w(?![aeiouy])"), ""),  # a vowel's w: show, new
)
_CLASSES = str.maketrans({"l": "r", "v": "b", "z": "s", "j": "g", "h": None, "y": None})


def _classes(letters: str) -> str:
    """Letters as consonant classes, vowels dropped, a repeated class once."""
    out: list[str] = []
    for ch in letters.translate(_CLASSES):
        if ch in _VOWELS:
            continue
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=8192)
def _english_letters(stem: str) -> str:
    """A stem spelled as Japanese hears it (`_ENGLISH_RULES`); cached, since a search compares
    the same stems of a skeleton again for each task that reads a loanword."""
    for pattern, repl in _ENGLISH_RULES:
        stem = pattern.sub(repl, stem)
    return stem


def english_skeletons(stem: str) -> tuple[str, ...]:
    """An English stem's consonant classes as Japanese would write them: server -> sb,
    batteri -> btr, document -> dkmnt, text -> tkst; a stem the stemmer cut before an e ends in
    a c of either sound (invoic, servic: s; music: k), so such a stem has both."""
    if stem.endswith("c"):
        return (_classes(_english_letters(stem[:-1] + "s")), _classes(_english_letters(stem)))
    return (_classes(_english_letters(stem)),)


def _kana_letters(romaji: str) -> str:
    """Romaji in the letters `_classes` reads: ch as one sound, sh as s, ts (tool, ツール) as t."""
    return romaji.replace("ch", "C").replace("sh", "s").replace("ts", "t")


# what the stemmer strips from an English word, as katakana ends it: hosting (ホスティング) is
# host, narration (ナレーション) narrat, tools (ツールズ) tool; and a final -or or -er written
# with its r (カーソル cursor), which English skeletons leave out
_STRIPPED = (("ingu", ""), ("ngu", ""), ("shon", "t"), ("zu", ""), ("su", ""), ("do", ""), ("ru", ""))


# kana that stand for two English sounds: ジ for j and soft g (ジム gym) but also for a voiced s
# (ミュージック music, リポジトリ repository); フ for f and also for h (ウェブフック webhook)
_TWO_SOUNDS = (("ji", "zi"), ("fu", "hu"))


def _sound_variants(romaji: str) -> list[str]:
    """`romaji` and its spellings with each kana of two sounds read the other way (all its
    occurrences at once: a word rarely mixes them)."""
    variants = [romaji]
    for kana, other in _TWO_SOUNDS:
        if kana in romaji:
            variants += [variant.replace(kana, other) for variant in variants]
    return variants


@lru_cache(maxsize=4096)
def katakana_skeletons(word: str) -> tuple[tuple[str, str], ...]:
    """The skeletons an English stem of `word` may have, each with the romanisation it was read
    from: the word's own, and the word without what the stemmer strips from English words."""
    forms: list[str] = []
    for romaji in _sound_variants(romanize(word)):
        forms.append(romaji)
        for suffix, repl in _STRIPPED:
            if romaji.endswith(suffix) and len(romaji) > len(suffix) + 2:
                forms.append(romaji[: -len(suffix)] + repl)
    out: dict[str, str] = {}
    for form in forms:
        skeleton = _classes(_kana_letters(form))
        if len(skeleton) >= 2:
            out.setdefault(skeleton, form)
    return tuple(out.items())


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (short words: a row at a time)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _shape(letters: str) -> str:
    """Consonant classes with one vowel mark where any vowels were: how close two spellings
    sound, whatever the vowels Japanese adds or English writes."""
    out: list[str] = []
    for ch in letters.translate(_CLASSES):
        mark = "a" if ch in _VOWELS else ch
        if not out or out[-1] != mark:
            out.append(mark)
    return "".join(out)


def katakana_reading(romaji: str, stems: Iterable[str]) -> str | None:
    """Of `stems` (English stems with the skeleton of `romaji`, a katakana word's romanisation
    from `katakana_skeletons`), the one the word reads as: the closest in shape, then in letters,
    then alphabetically; None if even that one is farther than a quarter of the word's shape
    (plus one) from it."""
    shape = _shape(_kana_letters(romaji))
    best: tuple[int, int, str] | None = None
    for stem in stems:
        if len(stem) < _MIN_STEM:
            continue
        rank = (_distance(shape, _shape(_english_letters(stem))), _distance(romaji, stem), stem)
        if best is None or rank < best:
            best = rank
    if best is None or best[0] > 1 + len(shape) // 4:
        return None
    return best[2]
