"""Odd inputs through the command line: every failure is one `Error: ...` line on stderr, a non-zero exit and
no traceback; what can be refused before any encoding or writing is. One table of cases, then property-based
tests (hypothesis) of the readers, the numeric flags and load_config."""

from __future__ import annotations

import errno
import json
import math
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_knn_predict_run import invoke
from test_train import World, dataset_columns, make_world, write_parquet

from prodcat_pipeline.errors import ProdcatError


def _permissions_ignored() -> bool:
    """True for root (os.geteuid() == 0) and anyone else whom a read-only folder does not stop."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ro"
        folder.mkdir(mode=0o555)
        try:
            (folder / "probe").touch()
            return True
        except PermissionError:
            return False
        finally:
            folder.chmod(0o755)


needs_non_root = pytest.mark.skipif(_permissions_ignored(), reason="root writes into read-only folders")
HYPOTHESIS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Base:
    """One world (a learnable dataset, its cache built by a fake encoder) and one trained linear run, shared by
    the module: cases copy what they damage."""

    world: World
    run: Path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    from prodcat_pipeline import train

    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("odd")
    world = make_world(tmp, mp, n=240)
    run = tmp / "runs" / "linear"
    train(world.config(head="linear", epochs=1), out=run)
    yield Base(world, run)
    mp.undo()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # never the repository's ./pipeline.yaml


@pytest.fixture
def read_only(tmp_path):
    """read_only(path): make a file or folder tree read-only; permissions are restored afterwards."""
    made: list[Path] = []

    def _make(path: Path) -> Path:
        for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            made.append(p)
        return path

    yield _make
    for p in made:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def assert_one_error_line(result, *needles: str) -> str:
    """Non-zero exit, exactly one non-empty stderr line starting with `Error:` (the last one), no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# ---------------------------------------------------------------- the table


@dataclass
class Ctx:
    base: Base
    tmp: Path
    read_only: Callable[[Path], Path]
    monkeypatch: pytest.MonkeyPatch
    calls_before: int = 0
    vars: dict = field(default_factory=dict)

    @property
    def world(self) -> World:
        return self.base.world

    def data_args(self, data: Path | None = None, cache: Path | None = None) -> list:
        return ["--data", data or self.world.data, "--cache-dir", cache or self.world.cache_dir]

    def copy_cache(self) -> Path:
        return Path(shutil.copytree(self.world.cache_dir, self.tmp / "cache-copy"))

    def copy_run(self) -> Path:
        return Path(shutil.copytree(self.base.run, self.tmp / "run-copy"))

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path

    def yaml(self, doc) -> Path:
        return self.write("odd.yaml", yaml.safe_dump(doc))


def _jsonl_list_labels(c: Ctx):
    rows = [{"text": f"item {i}", "label": ["shoes", "toys"]} for i in range(6)]
    return ["embed", *c.data_args(c.write("lists.jsonl", "".join(json.dumps(r) + "\n" for r in rows)))]


def _json_array_of_ints(c: Ctx):
    return ["embed", *c.data_args(c.write("ints.json", "[1, 2, 3]\n"))]


def _deep_json(c: Ctx):
    return ["embed", *c.data_args(c.write("deep.json", "[" * 100_000 + "]" * 100_000))]


def _split_seed_yaml(c: Ctx):
    return ["train", "--config", c.yaml({"data": {"split_seed": -1}}), *c.data_args()]


def _manifest_without_rows(c: Ctx):
    cache = c.copy_cache()
    manifest = next(cache.glob("*/manifest.json"))
    doc = json.loads(manifest.read_text())
    del doc["shards"][0]["rows"]
    manifest.write_text(json.dumps(doc))
    c.vars["path"] = "manifest.json"
    return ["train", "--head", "linear", "--epochs", "1", "--out", c.tmp / "out", *c.data_args(cache=cache)]


def _new_titles(c: Ctx) -> Path:
    cols = dataset_columns(40, seed=5)  # titles the cache does not hold
    return write_parquet(c.tmp / "new.parquet", cols)


def _read_only_cache_new_titles(c: Ctx):
    cache = c.read_only(c.copy_cache())
    return ["embed", *c.data_args(_new_titles(c), cache)]


def _cache_dir_is_a_file(c: Ctx):
    return ["train", "--out", c.tmp / "out", *c.data_args(_new_titles(c), c.write("cache-file", "x"))]


def _label_names_do_not_fit(c: Ctx):
    run = c.copy_run()
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["label_names"] = ckpt["label_names"][:2]
    torch.save(ckpt, run / "best.pt")
    return ["predict", "--run", run]


def _weights(value: float):
    def setup(c: Ctx):
        run = c.copy_run()
        ckpt = torch.load(run / "best.pt", weights_only=True)
        ckpt["head_state"] = {k: torch.full_like(v, value) if v.is_floating_point() else v
                              for k, v in ckpt["head_state"].items()}  # fmt: skip
        torch.save(ckpt, run / "best.pt")
        return ["predict", "--run", run]

    return setup


def _read_only_folder(c: Ctx) -> Path:
    folder = c.tmp / "ro"
    folder.mkdir()
    return c.read_only(folder)


def _yaml_alias_bomb(c: Ctx):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    text = "head_overrides:\n  linear:\n    " + "\n    ".join(lines) + "\n"
    assert len(text) < 700  # ~600 bytes that would expand to 9**9 values
    return ["config", "show", "--config", c.write("bomb.yaml", text)]


def _raising(exc: BaseException):
    def setup(c: Ctx):
        import prodcat_pipeline.embedder as embedder

        def fail(*args, **kwargs):
            raise exc

        c.monkeypatch.setattr(embedder, "embed", fail)
        return ["embed", *c.data_args()]

    return setup


def _encoder_not_called(c: Ctx) -> None:
    assert c.world.encoder.calls == c.calls_before, "titles were encoded before the refusal"


def case(id_: str, setup, *needles: str, stdin: str | None = None, check=None, marks=()):
    return pytest.param(setup, needles, stdin, check, id=id_, marks=marks)


PREDICT = "shoes en item 1\ntoys de item 2\n"
HUGE = str(2**70)

CASES = [
    # data files
    case("jsonl-list-labels", _jsonl_list_labels, "label column 'label'", "list", check=_encoder_not_called),
    case("json-array-of-ints", _json_array_of_ints, "ints.json", "one object per row"),
    case("json-nested-too-deeply", _deep_json, "deep.json"),
    # seeds, devices and numeric flags: refused before any work
    case("seed-negative", lambda c: ["train", "--seed", "-1", *c.data_args()], "train.seed"),
    case("seed-2**70", lambda c: ["train", "--seed", HUGE, *c.data_args()], "train.seed"),
    case("split-seed-negative-in-yaml", _split_seed_yaml, "odd.yaml", "data.split_seed"),
    case("train-device-foo", lambda c: ["train", "--device", "foo", *c.data_args()], "device", "foo"),
    case("embed-device-foo", lambda c: ["embed", "--device", "foo", *c.data_args()], "device", "foo"),
    case("predict-device-foo", lambda c: ["predict", "--run", c.base.run, "--device", "foo"], "--device", "foo",
         stdin=PREDICT),
    case("eval-device-foo", lambda c: ["eval", "--run", c.base.run, "--device", "foo"], "--device", "foo"),
    case("ensemble-device-foo", lambda c: ["ensemble", "--runs", f"{c.base.run},{c.copy_run()}", "--device", "foo",
         "--out", c.tmp / "ens"], "foo"),
    case("device-newline", lambda c: ["train", "--device", "cpu\n", *c.data_args()], "device"),
    case("device-missing-gpu", lambda c: ["train", "--device", "cuda:9", "--out", c.tmp / "o", *c.data_args(
        _new_titles(c))], "cuda:9", check=_encoder_not_called),
    case("lr-inf", lambda c: ["train", "--lr", "inf", *c.data_args()], "train.lr"),
    case("lr-nan", lambda c: ["train", "--lr", "nan", *c.data_args()], "train.lr"),
    case("weight-decay-inf", lambda c: ["run", "--weight-decay", "inf", *c.data_args()], "weight_decay"),
    case("lang-remove-directions-2**70", lambda c: ["train", "--lang-remove-directions", HUGE, *c.data_args()],
         "lang_remove_directions"),
    case("knn-k-1000000", lambda c: ["knn-eval", "--k", "1000000", *c.data_args()], "knn.k"),
    case("knn-ef-search-2**70", lambda c: ["knn-eval", "--index", "hnsw", "--ef-search", HUGE, *c.data_args()],
         "knn.ef_search"),
    case("knn-temperature-nan", lambda c: ["knn-eval", "--temperature", "nan", *c.data_args()], "knn.temperature"),
    case("predict-top-k-0", lambda c: ["predict", "--run", c.base.run, "--top-k", "0"], "--top-k", stdin=PREDICT),
    case("predict-threshold-nan", lambda c: ["predict", "--run", c.base.run, "--threshold", "nan"], "--threshold",
         stdin=PREDICT),
    case("predict-batch-rows-2**70", lambda c: ["predict", "--run", c.base.run, "--batch-rows", HUGE],
         "--batch-rows", stdin=PREDICT),
    case("predict-batch-size-0", lambda c: ["predict", "--run", c.base.run, "--batch-size", "0"], "--batch-size",
         stdin=PREDICT),
    # the cache
    case("manifest-shard-without-rows", _manifest_without_rows, "manifest.json"),
    case("read-only-cache-new-titles", _read_only_cache_new_titles, "cache-copy", check=_encoder_not_called,
         marks=needs_non_root),
    case("cache-dir-is-a-file", _cache_dir_is_a_file, "--cache-dir", "cache-file", "is a file",
         check=_encoder_not_called),
    # models
    case("checkpoint-label-names-do-not-fit", _label_names_do_not_fit, "best.pt", "do not fit", stdin=PREDICT),
    case("nan-weights-predict", _weights(math.nan), "best.pt", "NaN", stdin=PREDICT),
    case("overflowing-weights-predict", _weights(3e38), "run-copy", "non-finite probabilities", stdin=PREDICT),
    # outputs
    case("predict-output-is-a-folder", lambda c: ["predict", "--run", c.base.run, "--output", c.tmp],
         "--output", "is a folder", stdin=PREDICT),
    case("predict-output-in-read-only-folder", lambda c: ["predict", "--run", c.base.run, "--output",
         _read_only_folder(c) / "p.jsonl"], "--output", "ro", stdin=PREDICT, marks=needs_non_root),
    case("train-out-is-a-file", lambda c: ["train", "--out", c.write("f", "x"), *c.data_args(_new_titles(c))],
         "--out", "is a file", check=_encoder_not_called),
    case("knn-out-is-a-file", lambda c: ["knn-eval", "--out", c.write("f", "x"), *c.data_args()], "--out",
         "is a file"),
    case("train-out-in-read-only-folder", lambda c: ["train", "--out", _read_only_folder(c) / "run",
         *c.data_args(_new_titles(c))], "--out", "ro", check=_encoder_not_called, marks=needs_non_root),
    case("knn-out-in-read-only-folder", lambda c: ["knn-eval", "--out", _read_only_folder(c) / "run",
         *c.data_args()], "--out", "ro", marks=needs_non_root),
    case("eval-out-is-a-file", lambda c: ["eval", "--run", c.base.run, "--out", c.write("f", "x")], "--out",
         "is a file"),
    case("export-out-in-read-only-folder", lambda c: ["export", "--run", c.base.run, "--out",
         _read_only_folder(c) / "m"], "--out", "ro", marks=needs_non_root),
    # pipeline.yaml
    case("yaml-too-big", lambda c: ["config", "show", "--config", c.write("big.yaml", "#" * (1 << 20) + "\n")],
         "big.yaml", "at most"),
    case("yaml-alias-bomb-in-head-overrides", _yaml_alias_bomb, "bomb.yaml", "expands"),
    case("yaml-nested-too-deeply", lambda c: ["config", "show", "--config", c.write("deep.yaml", "[" * 50_000)],
         "deep.yaml"),
    case("yaml-not-a-mapping", lambda c: ["config", "show", "--config", c.write("l.yaml", "- 1\n- 2\n")],
         "mapping"),
    case("yaml-head-override-unknown-key", lambda c: ["config", "show", "--config", c.yaml(
        {"head_overrides": {"linear": {"lrr": 0.1}}})], "head_overrides.linear.lrr"),
    case("yaml-head-override-unknown-head", lambda c: ["config", "show", "--config", c.yaml(
        {"head_overrides": {"v9": {"lr": 0.1}}})], "unknown head 'v9'"),
    case("yaml-head-override-inf", lambda c: ["config", "show", "--config", c.write(
        "inf.yaml", "head_overrides:\n  v2:\n    lr: .inf\n")], "head_overrides.v2.lr"),
    case("yaml-head-override-sets-head", lambda c: ["config", "show", "--config", c.yaml(
        {"head_overrides": {"v2": {"head": "v3"}}})], "head_overrides.v2"),
    case("yaml-head-overrides-a-list", lambda c: ["config", "show", "--config", c.yaml(
        {"head_overrides": ["linear"]})], "head_overrides"),
    case("yaml-huge-integer", lambda c: ["config", "show", "--config", c.write("int.yaml", "train:\n  seed: "
         + "9" * 5000 + "\n")], "int.yaml"),
    # what the operating system refuses, wherever it happens: one line naming the path
    case("os-permission-denied", _raising(PermissionError(errno.EACCES, "Permission denied", "/srv/c/emb.npy")),
         "Permission denied: /srv/c/emb.npy"),
    case("os-disk-full", _raising(OSError(errno.ENOSPC, "No space left on device", "/srv/c/emb.npy")),
         "No space left on device: /srv/c/emb.npy", "disk is full"),
    case("os-read-only-fs", _raising(OSError(errno.EROFS, "Read-only file system", "/srv/c")), "/srv/c",
         "read-only"),
    case("os-rename-target-exists", _raising(FileExistsError(errno.EEXIST, "File exists", "/a.tmp", None, "/a")),
         "File exists: /a.tmp -> /a"),
    case("os-not-a-directory", _raising(NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x")),
         "Not a directory: /f/x"),
    case("out-of-memory", _raising(MemoryError("Unable to allocate 17.8 GiB for an array")), "out of memory",
         "17.8 GiB"),
]  # fmt: skip


@pytest.mark.parametrize("setup,needles,stdin,check", CASES)
def test_odd_input_is_one_error_line(base, tmp_path, read_only, monkeypatch, setup, needles, stdin, check):
    ctx = Ctx(base, tmp_path, read_only, monkeypatch)
    args = setup(ctx)
    ctx.calls_before = base.world.encoder.calls
    result = invoke(args, input=stdin)
    assert_one_error_line(result, *needles, *([ctx.vars["path"]] if "path" in ctx.vars else []))
    if check is not None:
        check(ctx)


# ---------------------------------------------------------------- what is not an error


def test_knn_k_above_the_training_rows_searches_the_train_size_with_a_warning(base, tmp_path, monkeypatch):
    from prodcat_pipeline.knn import KnnClassifier

    searched = []
    kneighbors = KnnClassifier.kneighbors

    def spy(self, X, k=None):
        sims, ids = kneighbors(self, X, k)
        searched.append(ids.shape[1])
        return sims, ids

    monkeypatch.setattr(KnnClassifier, "kneighbors", spy)
    out = tmp_path / "knn"
    r = invoke(["knn-eval", "--k", "5000", "--out", out, "--data", base.world.data, "--cache-dir",
                base.world.cache_dir])  # fmt: skip
    assert r.exit_code == 0, r.output
    n_train = base.world.columns["split"].count("train")
    assert f"knn.k=5000 is more than the {n_train} training rows" in r.stderr
    assert searched and max(searched) == n_train  # not 5000 columns of -1 (the 62 s, 17.8 GB of k=1e6)
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=_no_constant)
    assert metrics["knn"]["k"] == 5000 and metrics["knn"]["k_chosen_by"] == "set"  # as set; every row voted


def _no_constant(name):
    raise AssertionError(f"{name} is not JSON")


def test_predict_jsonl_never_holds_nan(base, tmp_path):
    path = write_parquet(tmp_path / "in.parquet", {"text": ["shoes en a", "", None, "toys de b"],
                                                   "price": [1.5, math.nan, math.inf, -math.inf]})  # fmt: skip
    out = tmp_path / "p.jsonl"
    r = invoke(["predict", "--run", base.run, "-i", path, "--keep-columns", "price", "-o", out])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line, parse_constant=_no_constant) for line in out.read_text().splitlines()]
    assert [row["price"] for row in rows] == [1.5, None, None, None]
    assert [row["label"] is not None for row in rows] == [True, False, False, True]


def test_jsonl_lines_without_a_usable_title_each_give_one_row_with_a_reason(base, tmp_path):
    path = tmp_path / "odd.jsonl"
    lines = [
        "[1, 2, 3]",
        "[" * 100_000,
        '{"text": "a\\ud800b"}',
        '{"text": ["x"]}',
        '{"text": 5}',
        "",
        '{"text": "toys"}',
    ]
    path.write_text("".join(line + "\n" for line in lines))
    r = invoke(["predict", "--run", base.run, "-i", path])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.split("\n")[:-1]]
    assert [row["reason"] for row in rows] == ["not a JSON object", "unreadable JSON (line 2)",
                                               "not valid Unicode (a lone surrogate, line 3)", "title is list, not text",
                                               "title is int, not text", "blank line", None]  # fmt: skip


@pytest.mark.parametrize("exc", [BrokenPipeError(errno.EPIPE, "Broken pipe"), RuntimeError("a bug"), KeyError("bug")],
                         ids=["broken-pipe", "runtime-error", "key-error"])  # fmt: skip
def test_a_broken_pipe_is_quiet_and_a_bug_keeps_its_traceback(base, monkeypatch, exc):
    import prodcat_pipeline.embedder as embedder

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(embedder, "embed", fail)
    r = invoke(["embed", "--data", base.world.data, "--cache-dir", base.world.cache_dir])
    assert "Error:" not in r.stderr
    if isinstance(exc, BrokenPipeError):  # `prodcat predict | head`: click exits quietly
        assert isinstance(r.exception, SystemExit) and "Traceback" not in r.stderr
    else:  # a bug: not turned into an Error line
        assert r.exception is exc


# ---------------------------------------------------------------- properties

TITLES = st.lists(st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["", "  ", "\n", "shoes en x"])),
                  min_size=1, max_size=12)  # fmt: skip


@pytest.fixture(scope="module")
def classifier(base):
    from prodcat_pipeline import Classifier

    return Classifier.from_pretrained(base.run, device="cpu")


@HYPOTHESIS
@given(titles=TITLES, fmt=st.sampled_from(["jsonl", "csv", "parquet", "txt"]), batch_rows=st.integers(1, 5))
def test_every_input_row_gives_one_output_row_with_a_label_or_a_reason(classifier, tmp_path, titles, fmt,
                                                                       batch_rows):  # fmt: skip
    from prodcat_pipeline.predict_io import InputSpec
    from prodcat_pipeline.predictor import predict_file

    src = tmp_path / f"in.{fmt}"
    if fmt == "txt":  # one title per line: a None is an empty line, line breaks inside a title split it
        titles = [line for t in titles for line in (t or "").replace("\r", "\n").split("\n")] or [""]
        src.write_text("".join(t + "\n" for t in titles), encoding="utf-8")
    elif fmt == "jsonl":
        src.write_text("".join(json.dumps({"text": t, "sku": i}) + "\n" for i, t in enumerate(titles)))
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(pa.table({"text": pa.array(titles, pa.string()), "sku": list(range(len(titles)))}), src)
    else:
        pq.write_table(pa.table({"text": pa.array(titles, pa.string()), "sku": list(range(len(titles)))}), src)
    out = tmp_path / "out.jsonl"
    spec = InputSpec(str(src), id_column=None if fmt == "txt" else "sku")
    result = predict_file(classifier, spec, str(out), top_k=2, batch_rows=batch_rows, show_progress=False)
    lines = out.read_text(encoding="utf-8").split("\n")  # not splitlines(): U+0085, U+2028 are text in JSON
    rows = [json.loads(line, parse_constant=_no_constant) for line in lines[:-1]]
    assert len(rows) == result.rows == len(titles) and lines[-1] == ""
    for i, row in enumerate(rows):
        assert (row["label"] is None) != (row["reason"] is None), row
        if fmt != "txt":
            assert row["sku"] in (i, str(i))  # in input order, joinable
        if row["label"] is not None:
            assert 0.0 <= row["probability"] <= 1.0


NUMBERS = st.one_of(
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["nan", "-inf", "1e999", "0x10", "", " 3", "١٢"]),
)
NUMERIC_FLAGS = ["--lr", "--epochs", "--seed", "--batch-size", "--weight-decay", "--classifier-dropout",
                 "--lr-warmup-steps", "--contrastive-temp", "--lang-sampling-temp", "--keep", "--kl-temperature",
                 "--lang-remove-directions", "--focal-alpha", "--grad-accum"]  # fmt: skip


def _accepted_or_one_error(result) -> None:
    if result.exit_code != 0:
        assert_one_error_line(result)


@HYPOTHESIS
@given(flag=st.sampled_from(NUMERIC_FLAGS), value=NUMBERS)
def test_numeric_train_flags_are_accepted_or_one_error_line(flag, value):
    result = invoke(["config", "show", flag, str(value)])
    _accepted_or_one_error(result)
    if result.exit_code == 0:  # what was accepted is finite
        shown = yaml.safe_load(result.stdout)["train"]
        assert all(math.isfinite(v) for v in shown.values() if isinstance(v, float))


@HYPOTHESIS
@given(flag=st.sampled_from(["--top-k", "--threshold", "--batch-rows", "--batch-size"]), value=NUMBERS)
def test_numeric_predict_flags_are_accepted_or_one_error_line(base, flag, value):
    result = invoke(["predict", "--run", base.run, flag, str(value)], input=PREDICT)
    _accepted_or_one_error(result)
    for line in result.stdout.splitlines() if result.exit_code == 0 else []:
        json.loads(line, parse_constant=_no_constant)


SECTIONS = {"data": ["path", "split_seed", "split_fractions", "drop_empty"], "encoder": ["batch_size", "device",
            "weights", "workers"], "cache": ["shard_size", "dtype"], "train": ["lr", "seed", "head", "languages",
            "lang_loss_weights", "epochs"], "knn": ["k", "temperature", "nprobe"], "tune": ["heads", "trials",
            "space"], "head_overrides": ["linear", "v2", "v9"], "heads": [], "out": []}  # fmt: skip
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
                   st.sampled_from(["cpu", "cuda:0", "linear", "auto", "en=1,de=x", "1,0.5", "de,fr"]))  # fmt: skip
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                      st.dictionaries(st.sampled_from(["lr", "low", "high", "en", "v2", "linear"]), inner,
                                      max_size=3)), max_leaves=8)  # fmt: skip


@st.composite
def config_documents(draw):
    doc = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True)):
        keys = SECTIONS[section]
        if not keys or draw(st.booleans()):
            doc[section] = draw(VALUES)
        else:
            doc[section] = draw(st.dictionaries(st.sampled_from(keys), VALUES, max_size=3))
    return doc


@HYPOTHESIS
@given(doc=config_documents())
def test_any_config_document_gives_a_config_or_one_prodcat_error(doc):
    from prodcat_pipeline.config import PipelineConfig, load_config

    try:
        assert isinstance(load_config(doc), PipelineConfig)
    except ProdcatError as exc:
        assert "\n" not in str(exc)


@HYPOTHESIS
@given(text=st.text(max_size=300))
def test_any_yaml_text_gives_a_config_or_one_prodcat_error(tmp_path, text):
    from prodcat_pipeline.config import PipelineConfig, load_config

    path = tmp_path / "any.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        assert isinstance(load_config(path), PipelineConfig)
    except ProdcatError:
        pass
