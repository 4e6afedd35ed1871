"""Tool search over the catalog (docs/tool-search.md): a visibility-aware, incremental BM25F ranker with field weights,
identifier splitting, Unicode-aware tokens, stemming and inferred capability tags."""

from .index import DocKey, Hit, SearchIndex, Visibility
from .lexicon import CONCEPTS, LEXICON, Lexicon
from .text import analyze
from .weights import Weights

__all__ = [
    "CONCEPTS",
    "LEXICON",
    "DocKey",
    "Hit",
    "Lexicon",
    "SearchIndex",
    "Visibility",
    "Weights",
    "analyze",
]
