"""Plain BM25 over tool name + description: the baseline the ranker is compared with.

Tokens are lower-cased runs of letters and digits (so ``get_issue`` gives ``get``, ``issue``); no
stemming, no camelCase splitting, no stop words, no other fields. k1 = 1.5, b = 0.75. Statistics
are taken over the whole corpus (the baseline has no notion of visibility).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from router.catalog.search import DocKey, Hit

__all__ = ["BM25Index"]

_TOKEN = re.compile(r"[^\W_]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class BM25Index:
    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._tf: dict[DocKey, dict[str, int]] = {}
        self._len: dict[DocKey, int] = {}
        self._df: dict[str, int] = {}

    def put_server(self, server: str, instructions: str | None, tools: Sequence[Mapping[str, Any]]) -> None:
        del instructions  # not used by the baseline
        for tool in tools:
            key = (server, str(tool.get("name", "")))
            desc = tool.get("description")
            toks = _tokens(key[1] + " " + (desc if isinstance(desc, str) else ""))
            tf: dict[str, int] = {}
            for t in toks:
                tf[t] = tf.get(t, 0) + 1
            self._tf[key] = tf
            self._len[key] = len(toks)
            for t in tf:
                self._df[t] = self._df.get(t, 0) + 1

    def search(self, query: str, limit: int = 5) -> list[Hit]:
        n = len(self._tf)
        if n == 0:
            return []
        avgdl = sum(self._len.values()) / n
        q = sorted(set(_tokens(query)))
        scores: dict[DocKey, float] = {}
        for t in q:
            df = self._df.get(t, 0)
            if not df:
                continue
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            for key, tf in self._tf.items():
                f = tf.get(t)
                if f:
                    denom = f + self.k1 * (1 - self.b + self.b * self._len[key] / avgdl)
                    scores[key] = scores.get(key, 0.0) + idf * f * (self.k1 + 1) / denom
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [Hit(k, s) for k, s in best]
