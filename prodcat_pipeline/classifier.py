"""`Classifier`: a trained prodcat model on raw titles, scikit-learn style (`predict`, `predict_proba`,
`predict_topk`, `classes_`), from an exported model folder or any run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ProdcatError


class Classifier:
    """Classify product titles with a model from `prodcat export` or a run folder (head, k-NN, ensemble).

    Titles are preprocessed, looked up in the embedding cache (found ones are not encoded again) or encoded
    by the model's own encoder, exactly as training saw them. A head that transforms each language needs
    each title's language: pass `languages`, else they are detected among the model's training languages.
    An empty title gets an all-zero probability row and the label "" (never a guess).

    Example:
        >>> clf = Classifier.from_pretrained("models/sample-v2")
        >>> clf.predict(["Damen Laufschuhe schwarz Gr. 39", "Baby Strampler Baumwolle"])
        array(['Shoes', 'Baby'], dtype=object)
        >>> clf.predict_topk(["Damen Laufschuhe schwarz Gr. 39"], k=2)
        [[('Shoes', 0.97), ('Clothing', 0.02)]]
    """

    def __init__(self, model, *, device: str = "cpu", use_cache: bool = True, batch_size: int | None = None,
                 trust_remote_code: bool = False):  # fmt: skip
        from .combined import check_encoders
        from .vectorizer import TitleVectorizer

        self.model = model
        self.classes_ = np.array(model.label_names, dtype=object)
        self.languages_ = list(model.languages)  # the training languages a language-aware head knows
        identities = check_encoders(model.encoder)  # the installed encoders must be those it was trained with
        self.vectorizer = TitleVectorizer(model.config, identities, device=device, use_cache=use_cache,
                                          batch_size=batch_size, trust_remote_code=trust_remote_code)  # fmt: skip

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | None = None, use_cache: bool = True,
                        batch_size: int | None = None, trust_remote_code: bool = False) -> Classifier:  # fmt: skip
        """Load an exported model folder (`prodcat export`) or a run folder; `use_cache=False` encodes every
        title instead of reading the vectors of titles already in the embedding cache; `trust_remote_code` lets
        an encoder that ships its own code run it (whatever the folder's stored config says)."""
        from .encoders import resolve_device
        from .models import open_run

        device = resolve_device(device)
        model = open_run(path, device=device)
        return cls(
            model, device=device, use_cache=use_cache, batch_size=batch_size, trust_remote_code=trust_remote_code
        )

    @property
    def needs_languages(self) -> bool:
        return bool(self.model.needs_languages)

    def detect_languages(self, titles: list[str]) -> list[str]:
        """Each title's language, chosen among the model's training languages (py3langid)."""
        from .language import detect_languages
        from .text import preprocess_texts, string_array

        return detect_languages(preprocess_texts(string_array(titles)), self.languages_).to_pylist()

    def predict_proba(self, titles: list[str], languages: list[str | None] | None = None) -> np.ndarray:
        """(n_titles, n_classes) probabilities, columns in `classes_` order; an empty title's row is all 0."""
        titles = _check_titles(titles)
        out = np.zeros((len(titles), len(self.classes_)), dtype=np.float64)
        keep = np.array([bool(t.strip()) for t in titles], dtype=bool)
        if not keep.any():
            return out
        if languages is not None and len(languages) != len(titles):
            raise ProdcatError(f"got {len(languages)} languages for {len(titles)} titles: give one per title")
        kept = [t for t, k in zip(titles, keep, strict=True) if k]
        given = None if languages is None else [lang for lang, k in zip(languages, keep, strict=True) if k]
        out[keep] = self.model.proba(self.vectorizer.vectors(kept), self.languages_for(kept, given))
        if not np.isfinite(out).all():  # NaN weights (a diverged run): never written out as a probability
            raise ProdcatError(f"the model at {self.model.path} gives non-finite probabilities (NaN or inf in its "
                               "weights?); retrain it, e.g. with a lower --lr")  # fmt: skip
        return out

    def languages_for(self, titles: list[str], languages: list[str | None] | None = None) -> list[str] | None:
        """The language each title is classified with: the one given, else detected among the training
        languages; None when the model does not use languages."""
        if not self.needs_languages:
            return None
        languages = list(languages) if languages is not None else [None] * len(titles)
        missing = [i for i, lang in enumerate(languages) if not lang]
        for i, code in zip(missing, self.detect_languages([titles[i] for i in missing]) if missing else [],
                           strict=True):  # fmt: skip
            languages[i] = code
        return languages

    def predict(self, titles: list[str], languages: list[str | None] | None = None) -> np.ndarray:
        """The most probable label of each title ("" for an empty title)."""
        proba = self.predict_proba(titles, languages)
        labels = self.classes_[proba.argmax(1)] if len(proba) else np.array([], dtype=object)
        labels[proba.sum(1) == 0] = ""
        return labels

    def predict_topk(self, titles: list[str], k: int = 3, languages=None) -> list[list[tuple[str, float]]]:
        """The `k` most probable (label, probability) pairs of each title, best first ([] for an empty title)."""
        proba = self.predict_proba(titles, languages)
        return topk_rows(proba, self.classes_, k)


def topk_rows(proba: np.ndarray, classes: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    k = max(1, min(int(k), proba.shape[1]))
    top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return [
        [(str(classes[j]), float(row[j])) for j in idx] if row.sum() > 0 else []
        for row, idx in zip(proba, top, strict=True)
    ]


def _check_titles(titles) -> list[str]:
    if isinstance(titles, str):
        raise ProdcatError("pass a list of titles, not one string (e.g. clf.predict([title]))")
    titles = list(titles)
    bad = [i for i, t in enumerate(titles) if not isinstance(t, str)]
    if bad:
        raise ProdcatError(f"titles must be strings; item {bad[0]} is {type(titles[bad[0]]).__name__}")
    for i, t in enumerate(titles):
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise ProdcatError(f"title {i} is not valid Unicode text (it holds a lone surrogate)") from None
    return titles
