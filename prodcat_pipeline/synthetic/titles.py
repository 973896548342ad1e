"""Deterministic synthetic offer titles: product clusters with shop-specific wording variants."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..splits import assign_by_rows
from .vocab import (
    _AGES,
    _ATTR_P,
    _AUTO_SPEC,
    _BRANDS,
    _CARS,
    _CLOTH,
    _COMMON,
    _COUNTS,
    _LETTERS,
    _NEIGHBOUR,
    _ORDER,
    _SEPS,
    _SIZE_P,
    _VOCAB,
    LABEL_P,
    LANGUAGE_P,
    LANGUAGES,
    NOISE_RATE,
)


class _Rand:
    """Uniform floats drawn in blocks from a numpy Generator, handed out one at a time."""

    __slots__ = ("_rng", "_buf", "_i")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng, self._buf, self._i = rng, [], 0

    def u(self) -> float:
        i = self._i
        if i >= len(self._buf):
            self._buf, i = self._rng.random(1 << 16).tolist(), 0
        self._i = i + 1
        return self._buf[i]

    def pick(self, seq):
        return seq[int(self.u() * len(seq))]


def _code(r: _Rand) -> str:
    a, d, p = r.pick(_LETTERS) + r.pick(_LETTERS), str(1000 + int(r.u() * 9000)), r.u()
    if p < 0.35:
        return a + d
    if p < 0.6:
        return f"{a}-{d}"
    return f"{a}{d}-{100 + int(r.u() * 900)}" if p < 0.8 else f"{d}{int(r.u() * 100):02d}"


def _attr(kind: str, cat: int, lang: str, noun_i: int, r: _Rand) -> str:
    c, v = _COMMON[lang], _VOCAB[cat][lang]
    if kind == "col":
        return r.pick(c["col"])
    if kind == "mat":
        return r.pick(v[2])
    if kind == "code":
        return _code(r)
    if kind == "pack":
        return r.pick(c["pack"]).format(r.pick(_COUNTS))
    if kind == "fit":
        return r.pick(c["fit"]).format(r.pick(_CARS))
    if kind == "stone":
        return r.pick(c["with"]).format(r.pick(v[3]))
    if kind == "spec":
        spec = _AUTO_SPEC.get(noun_i)
        return r.pick(spec.split("|")) if spec else _code(r)
    if kind == "by":
        first, last = r.pick(c["first"]), r.pick(c["last"])
        return r.pick(c["by"]).format(last + first if lang == "ja" else f"{first} {last}")
    if kind == "fmt":
        f = r.pick(c["fmt"])
        return f"({f})" if r.u() < 0.5 else f
    if kind == "year":
        y = 1995 + int(r.u() * 30)
        return f"({y})" if r.u() < 0.5 else str(y)
    if kind == "isbn":
        d = f"{int(r.u() * 1e9):09d}"
        return f"ISBN 978-{d[0]}-{d[1:5]}-{d[5:9]}-{int(r.u() * 10)}" if r.u() < 0.6 else f"978{d}{d[0]}"
    # kind == "size": category-specific size formats
    if cat == 5:
        e = 36 + int(r.u() * 11)
        uk = round((e - 31.33) * 1.5) / 2
        return r.pick(c["shoe"]).format(e=e, u=f"{uk:g}", s=f"{uk + 1:g}", c=round((e * 2 / 3 - 1.5) * 2) / 2)
    if cat == 4:
        if r.u() < 0.5:
            return f"{r.pick((40, 42, 45, 50, 55, 60))}cm"
        ring = 48 + int(r.u() * 15)
        return r.pick(c["ring"]).format(r=ring, l="HIJKLMNOPQRS"[ring - 48 if ring < 60 else 11], j=ring - 42)
    if cat == 1:
        if r.u() < 0.7:
            return r.pick(c["age"]).format(*r.pick(_AGES))
        return c["size"][0].format(1 + int(r.u() * 6))
    if lang not in ("en", "ja") and r.u() < 0.3:
        return r.pick(c["size"]).format(34 + 2 * int(r.u() * 8))
    return r.pick(c["size"]).format(r.pick(_CLOTH))


def _core(cat: int, lang: str, r: _Rand) -> tuple:
    """One product: (brand, head tokens, noun, noun index, attributes as [kind, value])."""
    v, c = _VOCAB[cat][lang], _COMMON[lang]
    brands = _BRANDS[cat][-2:] if cat == 2 and lang == "ja" else _BRANDS[cat][:-2] if cat == 2 else _BRANDS[cat]
    brand = r.pick(brands) if cat != 2 or r.u() < 0.3 else ""
    attrs = [[k, ""] for k, p in _ATTR_P[cat] if r.u() < p] or [[_ATTR_P[cat][0][0], ""]]
    if cat == 2:
        noun_i, n, n2 = -1, r.pick(v[0]), r.pick(v[0])
        t = r.pick(v[3]).format(a=r.pick(v[1]), n=n, n2=n2, t=r.pick(v[2]), k=1 + int(r.u() * 5))
        noun, head = t[0].upper() + t[1:], []
    else:
        noun_i = int(r.u() * len(v[0]))
        noun, adj_post, gen_post = v[0][noun_i], *_ORDER[lang]
        p, adjs = r.u(), []
        for _ in range(0 if p < 0.25 else 1 if p < 0.75 else 2):
            a = r.pick(v[1])
            if a not in adjs:
                adjs.append(a)
        head = [*adjs, noun] if not adj_post else [noun, *adjs]
        g = 0.6 if cat in (3, 4, 5) else 0.15 if cat == 1 else 0.0
        if r.u() < g:
            gen = r.pick(c["gen"][4:] if cat == 1 else c["gen"][:4])
            head = [*head, gen] if gen_post else [gen, *head]
    for a in attrs:
        a[1] = _attr(a[0], cat, lang, noun_i, r)
    return brand, head, noun, noun_i, attrs


def _render(core: tuple, cat: int, lang: str, r: _Rand) -> str:
    """One shop's title for a product: varies wording, order, separators, case and size/colour variant."""
    brand, head, noun, noun_i, attrs = core
    toks = [t for t in head if t == noun or r.u() > 0.15] if head else [noun]
    if len(toks) > 1 and r.u() < 0.15:
        toks = toks[1:] + toks[:1]
    vals = []
    for kind, val in attrs:
        if kind in ("size", "col") and r.u() < 0.25:
            val = _attr(kind, cat, lang, noun_i, r)
        if r.u() > 0.1:
            vals.append(val)
    if cat != 2 and r.u() < 0.1 and all(k != "code" for k, _ in attrs):
        vals.append(_code(r))
    if len(vals) > 1 and r.u() < 0.3:
        i = int(r.u() * len(vals))
        vals = vals[i:] + vals[:i]
    sep, s = r.pick(_SEPS), " ".join(toks)
    if vals:
        s = s + (sep if sep != " " or r.u() < 0.7 else r.pick(_SEPS)) + sep.join(vals)
    p = r.u()
    if brand and p < 0.88:
        b = brand.upper() if r.u() < 0.1 else brand
        b = f"[{b}]" if lang == "ja" and r.u() < 0.3 else b
        s = f"{s} - {b}" if p > 0.8 else f"{b} {s}"
    if r.u() < 0.3:
        e = r.pick(_COMMON[lang]["extra"])
        s = f"{e} {s}" if lang == "ja" or r.u() < 0.4 else f"{s}{r.pick(_SEPS)}{e}"
    p = r.u()
    if p < 0.06:
        s = s.upper()
    elif p < 0.1:
        s = s.lower()
    elif p < 0.18:
        s = " ".join(w[:1].upper() + w[1:] for w in s.split(" "))
    if r.u() < 0.04:
        s += r.pick(("!", " !!", "...", " *", "."))
    return s[0].upper() + s[1:] if s[:1].islower() and r.u() < 0.7 else s


def generate_titles(n_rows: int, *, seed: int = 0, duplicate_rate: float = 0.3) -> pa.Table:
    """Synthetic offers: columns text, label (index into LABEL_NAMES), cluster (product id), language."""
    if n_rows < 1 or not 0.0 <= duplicate_rate < 1.0:
        raise ValueError("n_rows must be >= 1 and duplicate_rate in [0, 1)")
    rng = np.random.default_rng(seed)
    sizes = rng.choice(np.arange(1, 51), size=n_rows, p=_SIZE_P / _SIZE_P.sum())
    nc = int(np.searchsorted(np.cumsum(sizes), n_rows)) + 1
    sizes = sizes[:nc].copy()
    sizes[-1] -= int(sizes.sum()) - n_rows
    lang = assign_by_rows(sizes, LANGUAGE_P, rng)
    label = assign_by_rows(sizes, LABEL_P, rng)
    vcat = np.where(rng.random(nc) < NOISE_RATE, np.asarray(_NEIGHBOUR)[label], label)
    starts = np.cumsum(sizes) - sizes
    later = np.setdiff1d(np.arange(n_rows), starts, assume_unique=True)
    is_dup = np.zeros(n_rows, dtype=bool)
    is_dup[rng.choice(later, size=min(round(duplicate_rate * n_rows), len(later)), replace=False)] = True
    r, chunks, texts, dup = _Rand(rng), [], [], is_dup.tolist()
    row = 0
    for size, li, cat in zip(sizes.tolist(), lang.tolist(), vcat.tolist(), strict=True):
        code = LANGUAGES[li]
        core, seen, mine = _core(cat, code, r), set(), []
        for _ in range(size):
            if dup[row]:
                t = r.pick(mine)
            else:
                for _try in range(6):
                    t = _render(core, cat, code, r)
                    if t not in seen:
                        break
                seen.add(t)
            mine.append(t)
            row += 1
        texts.extend(mine)
        if len(texts) >= 1 << 17:
            chunks.append(pa.array(texts, pa.string()))
            texts = []
    chunks.append(pa.array(texts, pa.string()))
    langs = pa.DictionaryArray.from_arrays(pa.array(np.repeat(lang, sizes).astype(np.int8)), pa.array(LANGUAGES))
    table = pa.table(
        {
            "text": pa.chunked_array(chunks, pa.string()),
            "label": pa.array(np.repeat(label, sizes), pa.int64()),
            "cluster": pa.array(np.repeat(np.arange(nc, dtype=np.int64), sizes)),
            "language": langs.dictionary_decode(),
        }
    )
    return table.take(pa.array(rng.permutation(n_rows)))
