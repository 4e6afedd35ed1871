"""A glossary of IT and business words in other languages: each English word's forms in Russian,
Japanese, Chinese, Korean, Spanish, Portuguese, French, German, Italian, Polish, Turkish,
Vietnamese, Indonesian, Arabic, Persian, Hindi, Dutch, Czech and Swedish, as tasks are typed ("узел", "ノード", "Knoten" for node).

``lexicon.py`` reads a form found in a task as the English word itself (its stem, as a query term),
so a task in another language meets a tool that says "node", "dashboard" or "invoice" in its own
words, beyond the concepts. The English words (1,068) are nouns and verbs of the tool catalogs'
domains (clusters, monitoring, calendars, mail, documents, spreadsheets, CRM, billing, chat, notes,
papers, recruiting, shops, trading, data pipelines, identity) and everyday ones (meals, school, rent,
a car, travel, health, money transfers, parcels, a smart home, sports, law, fitness), and 127
countries, regions and their adjectives ("호주" for Australia, "schweizerisch" for Swiss); the forms
are general usage, written without reading any evaluation query. A two-word entry ("air
quality") reads its forms ("Luftqualität") as both words. "memory" has no entry: in other languages it mostly means a
computer's memory (память, memória), and as the English word it would name the knowledge-graph
server called memory. A form spelled like a common English word once folded and stemmed (Spanish
"cliente", French "marché") is left out: it would be read as English (``tests/test_search_text.py``
checks it); so is one that folds and stems as its own English word (French "intégration"): the
task's English reading already finds it, and as a form it would add the word's weight twice to
every English task that says it.

``glossary.txt``: a ``# word`` line, then a ``lang forms...`` line per language ("a+b" is a
two-word phrase).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["GLOSSARY", "load", "sections"]

_FILE = Path(__file__).with_name("glossary.txt")


def sections(path: Path) -> dict[str, list[str]]:
    """A word list's sections: a ``# name`` line, then the section's lines (``##`` lines are
    comments). The glossary, ``languages.txt`` and ``concepts.txt`` are all written so."""
    found: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("##"):
            continue
        if line.startswith("# "):
            lines = found.setdefault(line[2:].strip(), [])
        elif line.strip() and lines is not None:
            lines.append(line.strip())
    return found


def load(path: Path = _FILE) -> dict[str, dict[str, str]]:
    """English word -> language -> whitespace-separated forms (a ``lang forms...`` line each)."""
    glossary: dict[str, dict[str, str]] = {}
    for word, lines in sections(path).items():
        forms = glossary[word] = {}
        for line in lines:
            lang, _, text = line.partition(" ")
            forms[lang] = text.strip()
    return glossary


GLOSSARY = load()
