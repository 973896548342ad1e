"""Write splits exactly as `datasets.DatasetDict.save_to_disk` would, atomically, without `datasets`."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa


def _features(schema: pa.Schema, label_names) -> dict:
    out = {}
    for f in schema:
        if f.name == "label":
            out[f.name] = {"names": list(label_names), "_type": "ClassLabel"}
        else:
            out[f.name] = {"dtype": str(f.type), "_type": "Value"}
    return out


def write_lspc_datasetdict(splits: dict[str, pa.Table], out_dir, label_names) -> Path:
    """Write splits exactly as `datasets.DatasetDict.save_to_disk` would, atomically, without `datasets`."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary data folder
    try:
        for name, table in splits.items():
            d = tmp / name
            d.mkdir()
            features = _features(table.schema, label_names)
            meta = {"huggingface": json.dumps({"info": {"features": features}})}
            table = table.replace_schema_metadata(meta)
            path = d / "data-00000-of-00001.arrow"
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
                for batch in table.to_batches(max_chunksize=1000):
                    writer.write_batch(batch)
            fingerprint = hashlib.sha256(path.read_bytes() + name.encode()).hexdigest()[:16]
            info = {"citation": "", "description": "", "features": features, "homepage": "", "license": ""}
            (d / "dataset_info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False), "utf-8")
            state = {
                "_data_files": [{"filename": path.name}],
                "_fingerprint": fingerprint,
                "_format_columns": None,
                "_format_kwargs": {},
                "_format_type": None,
                "_output_all_columns": False,
                "_split": None,
            }
            (d / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), "utf-8")
        (tmp / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}), "utf-8")
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(old / out.name)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
