"""Language identification for datasets without a language column (py3langid, offline)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def detect_languages(texts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """ISO 639-1 code per title, detected once per distinct title with py3langid."""
    import py3langid

    encoded = pc.dictionary_encode(texts)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    uniques = encoded.dictionary.to_pylist()
    codes = np.array([py3langid.classify(t)[0] for t in uniques], dtype=object)
    return pa.array(codes[encoded.indices.to_numpy()], pa.string())
