"""Text analysis: Unicode normalisation, identifier splitting, tokens, stop words and stemming.

Every function here is pure and deterministic, so two replicas that index the same definitions
produce the same terms.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import snowballstemmer
from opencc import OpenCC

__all__ = [
    "STOP_WORDS",
    "analyze",
    "clear_caches",
    "fold",
    "has_cjk",
    "is_cjk",
    "split_identifier",
    "stem",
    "stem_words",
    "words",
]

# camelCase / PascalCase / acronym boundaries and letter<->digit boundaries.
_CAMEL_1 = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CAMEL_2 = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
_DIGITS = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def _marks() -> str:
    """A regex class of the combining marks below the CJK blocks: Devanagari, Bengali, Tamil,
    Thai, Arabic and Hebrew write vowels and points as marks, which are not word characters to
    ``re`` ("फ़ाइल" would split into "फ", "इल")."""
    spans: list[str] = []
    start = None
    for code in range(0x0300, 0x3001):
        mark = code < 0x3000 and unicodedata.category(chr(code)).startswith("M")
        if mark and start is None:
            start = code
        elif not mark and start is not None:
            spans.append(f"\\u{start:04x}-\\u{code - 1:04x}")
            start = None
    return "".join(spans)


_MARKS = _marks()
# runs of word characters, each with the marks that follow (as fast as `[^\W_]+` on plain text)
_WORD = re.compile(f"[^\\W_]+(?:[{_MARKS}]+[^\\W_]*)*|[{_MARKS}]+[^\\W_]*")

# Han, Hiragana, Katakana (incl. the prolonged sound mark), Hangul: scripts written without spaces
# between words. Runs of them are indexed as overlapping character bigrams.
_CJK_RANGES = (
    (0x3040, 0x30FF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xAC00, 0xD7AF),
    (0xFF66, 0xFF9F),
)


_CJK_CLASS = "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in _CJK_RANGES)
_CJK_CHAR = re.compile(f"[{_CJK_CLASS}]")


def is_cjk(ch: str) -> bool:
    return _CJK_CHAR.match(ch) is not None


def has_cjk(text: str) -> bool:
    """Whether ``text`` has a character of a script written without spaces (one regex scan)."""
    return _CJK_CHAR.search(text) is not None


# Short, general stop lists (English plus the function words of German, French, Spanish that
# dominate task phrasing). They only remove words that carry no intent.
# French function words: stop words, and the sign that a text is French (`_STOP_IN`)
_FRENCH = (
    "le",
    "la",
    "les",
    "un",
    "une",
    "des",
    "du",
    "de",
    "et",
    "ou",
    "avec",
    "pour",
    "dans",
    "sur",
    "par",
    "au",
    "aux",
    "est",
    "sont",
    "moi",
    "mon",
    "ma",
    "mes",
    "je",
    "tu",
    "nous",
    "vous",
    "il",
    "elle",
    "ce",
    "cette",
    "ces",
    "qui",
    "que",
    "quoi",
    "stp",
    "svp",
)

_STOP = frozenset(
    [
        "everything",
        "now",
        "anything",
        "something",
        "nothing",
        "everyone",
        "anyone",
        "someone",
        "stuff",
        "thing",
        "things",
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "else",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "into",
        "onto",
        "over",
        "under",
        "about",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "mine",
        "we",
        "us",
        "our",
        "you",
        "your",
        "yours",
        "he",
        "him",
        "his",
        "she",
        "her",
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "not",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "just",
        "also",
        "please",
        "pls",
        "let",
        "lets",
        "let's",
        "want",
        "wanted",
        "need",
        "needs",
        "like",
        "would",
        "i'd",
        "i'm",
        "it's",
        "that's",
        "whats",
        "what's",
        "im",
        "id",
        "ok",
        "okay",
        "hey",
        "hi",
        "thanks",
        "thank",
        "via",
        "per",
        "e.g",
        "eg",
        "etc",
        "der",
        "die",
        "das",
        "den",
        "dem",
        "des",
        "ein",
        "eine",
        "einen",
        "einem",
        "einer",
        "und",
        "oder",
        "mit",
        "von",
        "zu",
        "zum",
        "zur",
        "im",
        "ist",
        "sind",
        "bitte",
        "mir",
        "mich",
        "mein",
        "meine",
        "meinen",
        "dein",
        "deine",
        "ich",
        "du",
        "wir",
        "sie",
        "es",
        "was",
        "wie",
        "wo",
        "auf",
        "aus",
        "bei",
        "nach",
        "fur",
        "für",
        "vom",
        "am",
        "an",
        "kannst",
        "kann",
        "konnen",
        "können",
        *_FRENCH,
        "el",
        "los",
        "las",
        "unos",
        "unas",
        "del",
        "y",
        "o",
        "con",
        "para",
        "por",
        "en",
        "es",
        "son",
        "mi",
        "mis",
        "yo",
        "tu",
        "nosotros",
        "que",
        "como",
        "donde",
        "porfavor",
        "favor",
        # what is left of an English contraction once its apostrophe splits it ("we're", "I've",
        # "you'll"); a negation's ("don't") is kept: "don't send it yet" asks for a draft
        "re",
        "ve",
        "ll",
    ]
)
STOP_WORDS = _STOP
"""Words too common to say anything about a task (English, and the other languages' most common)."""

# French "comment" (how) is a stop word only in French text: in English it names what
# `add_comment` adds. A text is French for this by the French function words it has besides.
_STOP_IN = {
    "comment": frozenset(_FRENCH),
    # German "Tag" (a day: "in den letzten 7 Tagen", "Tag für Tag") is no tag in German text; the
    # markers are German only ("des" is French too, where a tag is a tag)
    "tag": frozenset({"der", "das", "den", "dem", "und", "ist", "für", "fur", "jeden", "letzten"}),
}

_stemmer = snowballstemmer.stemmer("english")
# Russian is the one other script whose words are inflected and written with spaces that the
# lexicon has forms for: without its own stemmer, "создай", "создайте" and "создать" (create)
# would each need listing.
_russian = snowballstemmer.stemmer("russian")
_CYRILLIC = re.compile("[\u0400-\u04ff]+")
# Arabic joins its conjunctions and articles to the word (وأرسل "and send", الملف "the file"), and
# Hindi inflects (फाइलें "files"): each script has its Snowball stemmer too.
_arabic = snowballstemmer.stemmer("arabic")
_ARABIC = re.compile("[\u0600-\u06ff]+")
_hindi = snowballstemmer.stemmer("hindi")
_DEVANAGARI = re.compile("[\u0900-\u097f]+")
_SCRIPT_STEMMERS = ((_CYRILLIC, _russian), (_ARABIC, _arabic), (_DEVANAGARI, _hindi))
# The stemmer splits a few words' inflections ("queue" -> queue, "queued" -> queu; "alias" ->
# alia, "aliases" -> alias): ``stems.txt`` joins them again (made by bench/toolsearch/stems.py; its
# later lines: a role noun and its verb, watcher and watch, an adjective or noun the stemmer
# keeps apart from its base, tidal and tide, though it joins national and nation, and British
# spellings joined to the American ones most tools are written in, colour and color).
_MERGES = dict(line.split() for line in Path(__file__).with_name("stems.txt").read_text().splitlines())
# ... and joins a few words of another sense: a form filed with a registry, or a filing, is no
# file of data ("reports filed by Ford" asks for SEC filings, not a file reader)
_SENSES = {
    **dict.fromkeys(("filed", "filing", "filings"), "filing"),
    # a course's assignment is no assigning of an issue to someone
    **dict.fromkeys(("assignment", "assignments"), "assignment"),
    # a workflow's transition is no transit (public transport, a warehouse type)
    **dict.fromkeys(
        ("transition", "transitions", "transitioned", "transitioning", "transitional"), "transition"
    ),
}


@lru_cache(maxsize=65536)
def stem(token: str) -> str:
    """Snowball stem of a lower-cased token: English, or Russian, Arabic or Hindi for a word in
    their scripts; other scripts pass through unchanged."""
    if not token.isascii():
        # Latin letters with diacritics were already folded; anything left is another script.
        for script, stemmer in _SCRIPT_STEMMERS:
            if script.fullmatch(token):
                stemmed: str = stemmer.stemWord(token)
                return stemmed
        return token
    if len(token) <= 3 or token.isdigit():
        return token
    sense = _SENSES.get(token)
    if sense is not None:
        return sense
    result: str = _stemmer.stemWord(token)
    return _MERGES.get(result, result)


def stem_words(tokens: list[str]) -> list[str]:
    """`stem` of many lower-case ASCII words at once, without memoising them: one-off words (a
    typo's edits, a loanword's spellings) would push out of `stem`'s cache the words it keeps."""
    stems: list[str] = _stemmer.stemWords(tokens)
    return [
        t if len(t) <= 3 or t.isdigit() else _SENSES.get(t) or _MERGES.get(s, s)
        for t, s in zip(tokens, stems, strict=True)
    ]


_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NUKTA = "\u093c"  # फ़ाइल and फाइल (file) are the same word, written with and without it
_KANA = re.compile("[\u3040-\u30ff\uff66-\uff9f]")


@lru_cache(maxsize=1)
def _opencc() -> tuple[Callable[[str], str], Callable[[str], str]]:
    """OpenCC's Traditional-to-Simplified conversions: characters only (tw2s), and with Taiwan's
    vocabulary turned into the mainland's (tw2sp: 檔案 -> 文件, 資料夾 -> 文件夹). Loaded once (~130
    ms), when the lexicon's own Han forms are first folded."""
    characters: Callable[[str], str] = OpenCC("tw2s").convert
    vocabulary: Callable[[str], str] = OpenCC("tw2sp").convert
    return characters, vocabulary


def _simplified(text: str) -> str:
    """Han text in Simplified characters. Taiwan's vocabulary becomes the mainland's only in text
    written in Traditional characters: applied to Simplified text it would turn the mainland's 文件
    (file) into 文档."""
    characters, vocabulary = _opencc()
    simplified = characters(text)
    return simplified if simplified == text else vocabulary(text)


def fold(text: str, simplify_han: bool = True) -> str:
    """NFKC, case-fold, strip diacritics from Latin letters only (so kana stay intact), and write
    Han characters in their Simplified forms with mainland vocabulary, so a Traditional Chinese
    task (檔案, 網頁) meets the same lexicon forms and bigrams as a Simplified one (文件, 网页).
    Japanese (text with kana) keeps its kanji: 項目 is a field there, 项目 a project in Chinese."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return text
    if simplify_han and _HAN.search(text) and not _KANA.search(text):
        text = _simplified(text)
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.combining(ch) and out and (out[-1].isascii() or ch == _NUKTA):
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out)).replace("ß", "ss")


def split_identifier(text: str) -> str:
    """Insert spaces at camelCase, acronym and letter/digit boundaries (before case folding)."""
    text = _CAMEL_2.sub(" ", _CAMEL_1.sub(" ", text))
    return _DIGITS.sub(" ", text)


# a run of CJK characters, or a run of other letters/digits
_CHUNK = re.compile(f"[{_CJK_CLASS}]+|(?:[^\\W_{_CJK_CLASS}]|[{_MARKS}])+")


_ASCII_CHUNK = re.compile(r"[A-Za-z0-9]+")


def words(text: str) -> list[str]:
    """Folded word tokens of ``text``; see ``_words``."""
    return list(_words(text))


# "to-do" is one word whose parts are both stop words: it is read as "todo", as tool names write it
_TO_DO = re.compile(r"\bto-do(?=s?\b)", re.I)
# "e-mail" (as German, French and many others write it) is the word "email", not a letter and "mail"
_E_MAIL = re.compile(r"\b([eE])-([mM][aA][iI][lL])")


@lru_cache(maxsize=512)  # recent texts only: one registration analyses a text several ways
def _words(text: str) -> tuple[str, ...]:
    """Folded word tokens of ``text`` (identifier-aware); CJK runs become character bigrams.

    Stop words are kept here (phrases need them); ``analyze`` drops them.
    """
    out: list[str] = []
    if "-do" in text or "-Do" in text or "-DO" in text:
        text = _TO_DO.sub("todo", text)
    if "-mail" in text or "-Mail" in text or "-MAIL" in text:
        text = _E_MAIL.sub(r"\1\2", text)
    if text.isascii():
        chunks = _ASCII_CHUNK.findall(text)
    else:
        chunks = _CHUNK.findall(unicodedata.normalize("NFKC", text))
    for chunk in chunks:
        if chunk.isalpha() and chunk.isascii():
            if chunk.islower():
                out.append(chunk)  # the common case: nothing to split or fold
                continue
            if chunk[0].isupper() and (len(chunk) == 1 or chunk[1:].islower()):
                out.append(chunk.lower())  # a capitalised word ("Create"): no camel case to split
                continue
        out.extend(_chunk_words(chunk))
    return tuple(out)


@lru_cache(maxsize=65536)
def _chunk_words(chunk: str) -> tuple[str, ...]:
    parts = _WORD.findall(fold(split_identifier(chunk)))
    if len(parts) > 1 and chunk.isascii():
        # "HubSpot" -> hub, spot, hubspot: the joined form meets a lower-case spelling
        return (*parts, chunk.lower())
    out: list[str] = []
    for raw in parts:
        _cjk_aware(raw, out)
    return tuple(out)


def _cjk_aware(raw: str, out: list[str]) -> None:
    """Append ``raw``; runs of CJK characters inside it become overlapping character bigrams."""
    if raw.isascii():
        out.append(raw)
        return
    buf: list[str] = []
    cjk = False
    for ch in raw + " ":
        c = is_cjk(ch)
        if buf and (c != cjk or ch == " "):
            piece = "".join(buf)
            if cjk and len(piece) > 1:
                out.extend(piece[i : i + 2] for i in range(len(piece) - 1))
            else:
                out.append(piece)
            buf = []
        if ch != " ":
            buf.append(ch)
            cjk = c


def analyze(text: str) -> list[str]:
    """Index/query terms: words without stop words or single Latin letters, stemmed."""
    return list(_analyze(text))


@lru_cache(maxsize=4096)
def _analyze(text: str) -> tuple[str, ...]:
    # cached: a re-registration (drift, a restart, another replica's echo) repeats most texts
    result: list[str] = []
    found = _words(text)
    for w in found:
        if w in _STOP:
            continue
        markers = _STOP_IN.get(w)
        if markers is not None and not markers.isdisjoint(found):
            continue
        if len(w) == 1 and w.isascii():
            continue
        result.append(stem(w))
    return tuple(result)


def clear_caches(stems: bool = False) -> None:
    """Forget the memoised analyses of texts (and of single words' stems too, if ``stems``); for
    cold-start measurements."""
    _analyze.cache_clear()
    _words.cache_clear()
    _chunk_words.cache_clear()
    if stems:
        stem.cache_clear()
