"""Language identification for datasets without a language column (py3langid, offline)."""

from __future__ import annotations

# ISO 639-1 codes (plus `und`, what rows without a language get): `--languages` and language weights must use them
ISO_639_1 = frozenset(
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el "
    "en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu "
    "ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na "
    "nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so "
    "sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu "
    "und".split()
)


def detect_languages(texts, only: list[str] | None = None):
    """ISO 639-1 code per title (a pyarrow string array), detected once per distinct title with py3langid;
    with `only`, chosen among those languages (a model's training languages: what it can use)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(texts)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    uniques = encoded.dictionary.to_pylist()
    identifier = _identifier(tuple(sorted(set(only))) if only else None)
    codes = np.array([identifier.classify(t)[0] for t in uniques], dtype=object)
    return pa.array(codes[encoded.indices.to_numpy()], pa.string())


_IDENTIFIERS: dict = {}


def _identifier(only: tuple[str, ...] | None):
    """py3langid's identifier, restricted to the languages of `only` it knows (all when fewer than two)."""
    if only not in _IDENTIFIERS:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
        known = [c for c in only or () if c in set(identifier.nb_classes)]
        if len(known) >= 2:
            identifier.set_languages(known)
        _IDENTIFIERS[only] = identifier
    return _IDENTIFIERS[only]


def language_code(code: str, where: str) -> str:
    code = str(code).strip().lower()
    if code not in ISO_639_1:
        raise ValueError(f"unknown language code '{code}' in {where}: use ISO 639-1 codes such as en, de, fr, es, ja")
    return code


def language_weights(v, where: str):
    """None, "auto", or {code: weight} from a mapping or "en=1,de=2" (ValueError naming the problem)."""
    if v is None or (isinstance(v, str) and v.strip().lower() == "auto"):
        return None if v is None else "auto"
    pairs = v.items() if isinstance(v, dict) else (_pair(p) for p in str(v).split(",") if p.strip())
    out = {}
    for code, weight in pairs:
        code = language_code(code, where)
        try:
            out[code] = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"weight for '{code}' is not a number: {weight!r}") from None
        if not 0 <= out[code] < float("inf"):
            raise ValueError(f"weight for '{code}' must be a finite number >= 0, got {weight!r}")
    return out


def _pair(part: str) -> tuple[str, str]:
    if "=" not in part:
        raise ValueError(f"expected 'auto' or code=weight pairs like en=1,de=2, got '{part.strip()}'")
    code, weight = part.split("=", 1)
    return code, weight
