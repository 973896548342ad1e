"""The fast paths give what the simple ones give: record-wise row gathers, memory-mapped sharded training
vectors (and their background consolidation), the NumPy dropout mask, cross-language SupCon positives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from prodcat_pipeline.config import PipelineConfig
from prodcat_pipeline.heads import FastDropout
from prodcat_pipeline.losses import cross_language_positives
from prodcat_pipeline.reader import ShardedVectors
from prodcat_pipeline.store import put_rows, take_rows


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_take_and_put_rows_equal_fancy_indexing(dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 24)).astype(dtype)
    idx = rng.integers(0, 500, 333)
    np.testing.assert_array_equal(take_rows(a, idx), a[idx])
    out = np.zeros((500, 24), dtype=np.float32)
    expected = out.copy()
    perm = rng.permutation(500)[:200]
    put_rows(out, perm, a[:200])
    expected[perm] = a[:200]
    np.testing.assert_array_equal(out, expected)


@pytest.fixture
def sharded_cache(tmp_path, fake_encoder):
    from prodcat_pipeline.embedder import embed

    n = 230
    texts = [f"product title number {i} {'extra' * (i % 3)}" for i in range(n)]
    table = pa.table(
        {
            "text": texts + texts[:20],  # duplicates map to the same vector
            "label": [i % 3 for i in range(n + 20)],
            "split": ["train"] * (n + 20),
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    cfg = PipelineConfig()
    cfg.data.path = str(tmp_path / "d.parquet")
    cfg.cache.dir = str(tmp_path / "cache")
    cfg.cache.shard_size = 50
    return embed(cfg, show_progress=False).cached


def test_sharded_take_equals_gather_and_survives_consolidation(sharded_cache):
    store = sharded_cache.store
    assert len(store.manifest["shards"]) == 5
    vec = sharded_cache.rows["vec"].to_numpy().astype(np.int64)
    idx = np.random.default_rng(1).integers(0, len(vec), 97)
    expected = store.gather(vec[idx], dtype=np.float16)
    X = ShardedVectors(store)
    got = X.take(torch.from_numpy(vec[idx]))
    np.testing.assert_array_equal(got.numpy(), expected)
    X.consolidate()
    assert len(X.arrays) == 1
    np.testing.assert_array_equal(X.take(torch.from_numpy(vec[idx])).numpy(), expected)


def test_fast_dropout_rate_scale_and_determinism():
    drop = FastDropout(0.25)
    x = torch.ones(400, 512)
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    b = drop(x)
    assert torch.equal(a, b)  # seeded by torch's RNG: resumable runs stay identical
    kept = (a != 0).float().mean().item()
    assert abs(kept - 0.75) < 0.01
    assert abs(a.mean().item() - 1.0) < 0.02  # inverted dropout keeps the expectation
    drop.eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)


def test_cross_language_positives():
    labels = torch.tensor([0, 0, 0, 1, 1])
    langs = torch.tensor([0, 0, 1, 0, 1])
    clusters = torch.tensor([10, 11, 12, 13, 13])
    pos = cross_language_positives(labels, langs, clusters)
    expected = torch.zeros(5, 5, dtype=torch.bool)
    for i in range(5):
        for j in range(5):
            same_label_other_lang = labels[i] == labels[j] and langs[i] != langs[j]
            expected[i, j] = bool(same_label_other_lang or clusters[i] == clusters[j])
    assert torch.equal(pos, expected)
    assert not pos[0, 1]  # same label, same language: not a positive
    assert pos[0, 2] and pos[3, 4]


def test_pair_with_cluster_mates():
    from prodcat_pipeline.sampling import pair_with_cluster_mates

    rng = np.random.default_rng(0)
    clusters = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    order = rng.permutation(8)
    paired = pair_with_cluster_mates(order, clusters, labels, rng)
    assert len(paired) == 8
    anchors, mates = paired[0::2], paired[1::2]
    np.testing.assert_array_equal(anchors, order[:4])
    for a, m in zip(anchors, mates, strict=True):
        if (clusters == clusters[a]).sum() > 1:
            assert clusters[m] == clusters[a] and m != a  # another member of the same cluster
        else:
            assert labels[m] == labels[a]  # alone in its cluster: a same-label row
