"""A deterministic corpus of malformed inputs for every kind of file the CLI reads.

Each :class:`Case` damages one input (a recipe field, our NIR metadata, a graph tensor, a
checkpoint, a run-folder file, a study file, a path) and names the command that reads it. The
test (tests/fuzz/test_corpus.py) runs each through the CLI and expects exit 2, one line on stderr,
no traceback and the run folder unchanged. ``python tests/fuzz/gen_corpus.py OUT RUN`` writes every
case into OUT (RUN: a run folder to damage copies of) and prints the table of kinds.

No randomness: the cases are a fixed table, so a failure names one case that can be rerun alone.
"""
from __future__ import annotations

import io
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: the recipe every recipe case starts from (a valid one: the damage is the only fault)
BASE_RECIPE: dict[str, Any] = {
    "name": "fuzz", "seed": 0, "timesteps": 4,
    "data": {"name": "digits", "encoding": "direct", "batch_size": 64},
    "model": {"name": "digits_convnet", "neuron": "if"},
    "train": {"ann": {"epochs": 1, "lr": 0.003}, "snn": {"epochs": 1}},
    "attack": {"sections": ["clean", "fgsm"], "max_samples": 16, "blackbox": "ann"},
    "deploy": {"targets": ["torch"], "max_samples": 16},
}

Build = Callable[[Path, Path], list[str]]  # (case folder, its copy of the run folder) -> argv


@dataclass
class Case:
    kind: str
    name: str
    build: Build

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


# ------------------------------------------------------------------ TOML
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, (int, str)):
        return json.dumps(v) if isinstance(v, str) else str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(v)


def to_toml(d: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer (scalars, arrays, nested tables) for the recipe cases."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"\n[{prefix}{k}]")
            lines.append(to_toml(v, f"{prefix}{k}."))
    return "\n".join(lines) + "\n"


def _with(path: str, value: Any) -> dict[str, Any]:
    d = json.loads(json.dumps(BASE_RECIPE))
    *head, last = path.split(".")
    node = d
    for k in head:
        node = node.setdefault(k, {})
    node[last] = value
    return d


def _recipe_case(path: str, value: Any) -> Case:
    def build(d: Path, run: Path) -> list[str]:
        (d / "bad.toml").write_text(to_toml(_with(path, value)))
        return ["run", str(d / "bad.toml"), "--out", str(d / "out")]
    return Case("recipe", f"{path}={value!r}", build)


def _recipe_text_case(name: str, data: bytes) -> Case:
    def build(d: Path, run: Path) -> list[str]:
        (d / "bad.toml").write_bytes(data)
        return ["run", str(d / "bad.toml"), "--out", str(d / "out")]
    return Case("recipe", name, build)


BAD_FIELDS: list[tuple[str, Any]] = [
    ("name", 5), ("name", "../../x"), ("name", "a b"), ("name", ""), ("seed", "x"), ("seed", 1.5),
    ("timesteps", 0), ("timesteps", -3), ("timesteps", "8"), ("timesteps", 2.5), ("timesteps", 10 ** 12),
    ("data.name", "nosuch"), ("data.encoding", "morse"), ("data.encoding", "events"), ("data.test_fraction", 0.0),
    ("data.test_fraction", 1.5), ("data.test_fraction", math.nan), ("data.batch_size", 0), ("data.batch_size", -1),
    ("data.path", 5), ("data.time_bins", -1), ("data.resolution", -2),
    ("model.name", "nosuch"), ("model.neuron", "hh"), ("model.leak", math.nan), ("model.leak", -1.0),
    ("model.reset", "bounce"), ("model.surrogate", "nosuch"), ("model.surrogate_scale", math.inf), ("model.width", 0),
    ("model.dropout", 2.0), ("model.dropout", -0.1), ("model.pooling", "median"), ("model.nir", "missing.nir"),
    ("model.nir_convention", "keras"), ("model.nir_reset", "bounce"), ("model.nir_dt", -1.0),
    ("train.ann.epochs", -1), ("train.ann.lr", math.nan), ("train.ann.lr", -1.0), ("train.ann.optimizer", "rmsprop"),
    ("train.ann.milestones", [5.0]), ("train.ann.milestones", "x"), ("train.ann.gamma", math.nan),
    ("train.convert.percentile", 200.0), ("train.convert.percentile", -1.0), ("train.convert.batches", 0),
    ("train.snn.method", "magic"), ("train.snn.epochs", -1), ("train.snn.periods", 0), ("train.snn.noise", "pink"),
    ("train.snn.noise_bound", math.nan),
    ("attack.epsilon", math.nan), ("attack.epsilon", 5.0), ("attack.epsilon", -1.0), ("attack.steps", -1),
    ("attack.step_size", math.nan), ("attack.max_samples", -5), ("attack.query_budget", -10),
    ("attack.sections", ["nosuch"]), ("attack.blackbox", "oracle"), ("attack.batch_size", 0),
    ("attack.sweep_epsilons", [math.nan]),
    ("deploy.targets", ["nochip"]), ("deploy.targets", "torch"), ("deploy.input_spikes", "morse"),
    ("deploy.timeout_s", 0.0), ("deploy.timeout_s", math.nan), ("deploy.max_samples", -1),
    ("deploy.finetune_epochs", -1), ("deploy.finetune_lr", math.nan), ("deploy.lava.copiez", 8),
    ("foo", 1), ("bar.baz", 1),
]


def recipe_cases() -> list[Case]:
    cases = [_recipe_case(p, v) for p, v in BAD_FIELDS]
    cases += [_recipe_text_case("syntax", b"name = [\n"), _recipe_text_case("binary", b"\xff\xfe\x00garbage"),
              _recipe_text_case("table-as-value", b"data = 5\n"), _recipe_text_case("duplicate-key",
                                                                                   b"seed = 1\nseed = 2\n")]

    def directory(d: Path, run: Path) -> list[str]:
        (d / "dir.toml").mkdir()
        return ["run", str(d / "dir.toml"), "--out", str(d / "out")]

    def missing(d: Path, run: Path) -> list[str]:
        return ["run", str(d / "absent.toml"), "--out", str(d / "out")]

    return cases + [Case("recipe", "a-directory", directory), Case("recipe", "missing", missing)]


# ------------------------------------------------------------------ NIR
def _rewrite_nir(src: Path, dst: Path, change: Callable[[Any], None]) -> None:
    import nir

    g = nir.read(str(src))
    change(g)
    nir.write(str(dst), g)


def _meta_change(key: str | None, value: Any, raw: str | None = None) -> Callable[[Any], None]:
    def change(g: Any) -> None:
        if raw is not None:
            g.metadata["neurodeploy"] = raw
            return
        meta = json.loads(g.metadata["neurodeploy"])
        meta[key] = value
        g.metadata["neurodeploy"] = json.dumps(meta)
    return change


def _node_change(node: str, attr: str, how: str) -> Callable[[Any], None]:
    def change(g: Any) -> None:
        a = np.array(getattr(g.nodes[node], attr), dtype=np.float32, copy=True)
        if how == "nan":
            a.flat[0] = np.nan
        elif how == "inf":
            a.flat[-1] = np.inf
        elif how == "shape":
            a = a[..., :-1]
        setattr(g.nodes[node], attr, a)
    return change


def _drop_edge_target(g: Any) -> None:
    g.edges.append(("fc", "nowhere"))


NIR_CHANGES: list[tuple[str, Callable[[Any], None]]] = [
    *[(f"meta.{k}={v!r}", _meta_change(k, v)) for k, v in [
        ("timesteps", 0), ("timesteps", -3), ("timesteps", "8"), ("timesteps", 2.5), ("timesteps", 10 ** 12),
        ("input_shape", [-1, 8, 8]), ("input_shape", [100000, 100000, 10]), ("input_shape", "1,8,8"),
        ("input_shape", [1, 9, 9]), ("schema", "2"), ("schema", 99), ("encoding", "morse"), ("readout", "max"),
        ("reset", {"sn1": "bounce"}), ("num_classes", -1), ("convention", "keras"), ("dt", -1.0)]],
    ("meta-not-json", _meta_change(None, None, raw="{not json")),
    ("meta-a-number", _meta_change(None, None, raw="5")),
    ("meta-dt-nan", _meta_change(None, None, raw='{"timesteps": 4, "dt": NaN, "encoding": "direct", '
                                                 '"input_shape": [1, 8, 8]}')),
    ("conv1.weight-nan", _node_change("conv1", "weight", "nan")),
    ("fc.weight-inf", _node_change("fc", "weight", "inf")),
    ("sn1.v_threshold-nan", _node_change("sn1", "v_threshold", "nan")),
    ("conv1.bias-inf", _node_change("conv1", "bias", "inf")),
    ("fc.weight-shape", _node_change("fc", "weight", "shape")),
    ("edge-to-missing-node", _drop_edge_target),
]


def _nir_bytes_cases() -> list[tuple[str, Callable[[Path, Path], None]]]:
    def text(src: Path, dst: Path) -> None:
        dst.write_text("not an HDF5 file\n")

    def empty(src: Path, dst: Path) -> None:
        dst.write_bytes(b"")

    def truncated(src: Path, dst: Path) -> None:
        data = src.read_bytes()
        dst.write_bytes(data[: len(data) // 2])

    def hdf5_not_nir(src: Path, dst: Path) -> None:
        import h5py

        with h5py.File(dst, "w") as f:
            f["x"] = np.arange(3)

    return [("text", text), ("empty", empty), ("truncated", truncated), ("hdf5-not-nir", hdf5_not_nir)]


def nir_cases() -> list[Case]:
    cases = []
    writers: list[tuple[str, Callable[[Path, Path], None]]] = [
        (name, (lambda ch: lambda src, dst: _rewrite_nir(src, dst, ch))(change)) for name, change in NIR_CHANGES]
    writers += _nir_bytes_cases()
    for name, write in writers:
        def imp(d: Path, run: Path, write=write) -> list[str]:
            write(run / "model.nir", d / "bad.nir")
            return ["import", str(d / "bad.nir"), "--out", str(d / "out")]

        def sim(d: Path, run: Path, write=write) -> list[str]:
            write(run / "model.nir", d / "bad.nir")
            shutil.move(d / "bad.nir", run / "model.nir")
            return ["simulate", str(run), "--target", "torch"]

        cases += [Case("nir", f"import:{name}", imp), Case("nir", f"simulate:{name}", sim)]

    def directory(d: Path, run: Path) -> list[str]:
        (d / "dir.nir").mkdir()
        return ["import", str(d / "dir.nir"), "--out", str(d / "out")]

    def missing(d: Path, run: Path) -> list[str]:
        return ["import", str(d / "absent.nir"), "--out", str(d / "out")]

    return cases + [Case("nir", "import:a-directory", directory), Case("nir", "import:missing", missing)]


# ------------------------------------------------------------------ checkpoints
def _safetensors(path: Path, change: str) -> None:
    from safetensors.torch import load_file, save_file
    import torch

    state = load_file(str(path))
    meta = {"neurodeploy": "{}"}
    first = next(iter(state))
    if change == "missing-tensor":
        del state[first]
    elif change == "extra-tensor":
        state["nosuch.weight"] = torch.zeros(3)
    elif change == "wrong-shape":
        state[first] = torch.zeros(*[s + 1 for s in state[first].shape])
    elif change == "nan":
        t = state[first].clone()
        t.view(-1)[0] = float("nan")
        state[first] = t
    elif change == "int-dtype":
        state[first] = state[first].to(torch.int32)
    elif change == "meta-list":
        meta = {"neurodeploy": "[1, 2]"}
    elif change == "meta-not-json":
        meta = {"neurodeploy": "{oops"}
    save_file(state, str(path), metadata=meta)


def checkpoint_cases() -> list[Case]:
    cases = []
    for which, cmd in (("snn.safetensors", ["export"]), ("ann.safetensors", ["export-onnx"])):
        raw: list[tuple[str, Callable[[Path], None]]] = [
            ("garbage", lambda p: p.write_bytes(b"not a checkpoint")),
            ("empty", lambda p: p.write_bytes(b"")),
            ("truncated", lambda p: p.write_bytes(p.read_bytes()[:100])),
            ("pickle", lambda p: _torch_pickle(p)),
        ] + [(c, (lambda c: lambda p: _safetensors(p, c))(c)) for c in
             ("missing-tensor", "extra-tensor", "wrong-shape", "nan", "int-dtype", "meta-list", "meta-not-json")]
        for name, damage in raw:
            def build(d: Path, run: Path, damage=damage, which=which, cmd=cmd) -> list[str]:
                damage(run / which)
                return [*cmd, str(run)]
            cases.append(Case("checkpoint", f"{which}:{name}", build))
    return cases


def _torch_pickle(path: Path) -> None:
    buf = io.BytesIO()
    import torch

    torch.save({"w": torch.zeros(2)}, buf)
    path.write_bytes(buf.getvalue())


# ------------------------------------------------------------------ run-folder files
def _report_change(change: Callable[[dict], Any]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        r = json.loads((run / "report.json").read_text())
        new = change(r)
        (run / "report.json").write_text(json.dumps(r if new is None else new))
    return damage


REPORT_DAMAGE: list[tuple[str, Callable[[Path], None]]] = [
    ("a-list", _report_change(lambda r: [r])),
    ("a-number", _report_change(lambda r: 5)),
    ("a-string", _report_change(lambda r: "report")),
    ("targets-5", _report_change(lambda r: r.update(targets=5))),
    ("target-a-list", _report_change(lambda r: r["targets"].update(torch=[1]))),
    ("n_samples-str", _report_change(lambda r: r["targets"]["torch"].update(n_samples="x"))),
    ("accuracy-7", _report_change(lambda r: r["targets"]["torch"].update(accuracy=7))),
    ("figures-5", _report_change(lambda r: r.update(figures=5))),
    ("source-a-list", _report_change(lambda r: r.update(source=[]))),
    ("dataset-3", _report_change(lambda r: r.update(dataset=3))),
    ("energy-a-list", _report_change(lambda r: r.update(energy=[]))),
    ("truncated", lambda run: (run / "report.json").write_text((run / "report.json").read_text()[:200])),
    ("not-utf8", lambda run: (run / "report.json").write_bytes(b"\xff\xfe{}")),
    ("empty", lambda run: (run / "report.json").write_bytes(b"")),
]


def _npz_damage(how: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        if how == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            return
        if how == "not-a-zip":
            path.write_bytes(b"plain text")
            return
        if how == "empty":
            path.write_bytes(b"")
            return
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        n = len(d["predictions"])
        if how == "object-array":
            d["predictions"] = np.array([object()] * n, dtype=object)
        elif how == "float-predictions":
            d["predictions"] = d["predictions"].astype(np.float32)
        elif how == "2d-predictions":
            d["predictions"] = d["predictions"].reshape(n, 1)
        elif how == "wrong-length":
            d = {k: (v[:-3] if v.ndim else v) for k, v in d.items()}
        elif how == "short-counts":
            k = next(k for k in d if k.startswith("spikes/"))
            d[k] = d[k][:-1]
        elif how == "nan-counts":
            k = next(k for k in d if k.startswith("synops/"))
            d[k] = d[k].astype(np.float64)
            d[k][0] = np.nan
        elif how == "negative-counts":
            k = next(k for k in d if k.startswith("spikes/"))
            d[k] = d[k] - 1e6
        elif how == "info-not-json":
            d["info"] = np.array("{oops")
        elif how == "no-predictions":
            del d["predictions"]
        elif how == "unknown-array":
            d["weights"] = np.zeros(n)
        buf = io.BytesIO()
        np.savez(buf, **d) if how != "object-array" else np.savez(buf, allow_pickle=True, **d)
        path.write_bytes(buf.getvalue())
    return damage


NPZ_DAMAGE = ("truncated", "not-a-zip", "empty", "object-array", "float-predictions", "2d-predictions",
              "wrong-length", "short-counts", "nan-counts", "negative-counts", "info-not-json", "no-predictions",
              "unknown-array")

LEDGER_DAMAGE: list[tuple[str, bytes]] = [
    ("a-list", b"[]"), ("truncated", b'{"train": {"fingerprint": '), ("entry-5", b'{"train": 5}'),
    ("files-a-list", b'{"export": {"fingerprint": "x", "stamp": "y", "files": [], "sections": []}}'),
]


def run_folder_cases() -> list[Case]:
    cases = []
    for name, damage in REPORT_DAMAGE:
        for cmd in (["simulate", "{run}", "--target", "torch"], ["attack", "{run}"], ["energy", "{run}"]):
            def build(d: Path, run: Path, damage=damage, cmd=cmd) -> list[str]:
                damage(run)
                return [c.format(run=run) for c in cmd]
            cases.append(Case("report.json", f"{cmd[0]}:{name}", build))
    for which in ("torch", "source"):
        for how in NPZ_DAMAGE:
            for cmd in (["energy", "{run}", "--recompute"], ["simulate", "{run}", "--target", "torch"]):
                def build(d: Path, run: Path, which=which, how=how, cmd=cmd) -> list[str]:
                    _npz_damage(how)(run / "outputs" / f"{which}.npz")
                    return [c.format(run=run) for c in cmd]
                cases.append(Case("outputs.npz", f"{cmd[0]}:{which}:{how}", build))
    for name, data in LEDGER_DAMAGE:
        def build(d: Path, run: Path, data=data) -> list[str]:
            (run / "stages.json").write_bytes(data)
            return ["run", str(run / "recipe.toml"), "--out", str(run)]
        cases.append(Case("stages.json", name, build))
    for name, data in (("syntax", b"name = [\n"), ("bad-field", b'name = "fuzz"\ntimesteps = 0\n')):
        def build(d: Path, run: Path, data=data) -> list[str]:
            (run / "recipe.toml").write_bytes(data)
            return ["simulate", str(run), "--target", "torch"]
        cases.append(Case("run-recipe", name, build))
    return cases


STUDY_DAMAGE: list[tuple[str, Any]] = [
    ("a-list", []), ("runs-5", {"runs": 5}), ("run-5", {"runs": [5]}), ("run-missing-fields", {"runs": [{"recipe": "x"}]}),
    ("run-unknown-field", {"runs": [{"recipe": "x", "seed": 0, "clean": 0.5, "fgsm": 0.4, "pgd": 0.3, "oops": 1}]}),
    ("seed-str", {"runs": [{"recipe": "x", "seed": "0", "clean": 0.5, "fgsm": 0.4, "pgd": 0.3}]}),
    ("clean-str", {"runs": [{"recipe": "x", "seed": 0, "clean": "high", "fgsm": 0.4, "pgd": 0.3}]}),
]


def study_cases() -> list[Case]:
    cases = []
    for name, data in STUDY_DAMAGE + [("truncated", None)]:
        def build(d: Path, run: Path, data=data) -> list[str]:
            (d / "study").mkdir()
            (d / "study" / "study.json").write_text('{"runs": [' if data is None else json.dumps(data))
            return ["study", "digits", "--seeds", "0", "--out", str(d / "study")]
        cases.append(Case("study.json", name, build))
    return cases


def path_cases() -> list[Case]:
    def c(name: str, fn: Build) -> Case:
        return Case("path", name, fn)

    def file_as_out(d: Path, run: Path) -> list[str]:
        (d / "out").write_text("a file")
        (d / "r.toml").write_text(to_toml(BASE_RECIPE))
        return ["run", str(d / "r.toml"), "--out", str(d / "out")]

    def no_recipe(d: Path, run: Path) -> list[str]:
        (run / "recipe.toml").unlink()
        return ["simulate", str(run), "--target", "torch"]

    def recipe_dir(d: Path, run: Path) -> list[str]:
        (run / "recipe.toml").unlink()
        (run / "recipe.toml").mkdir()
        return ["attack", str(run)]

    def nir_dir(d: Path, run: Path) -> list[str]:
        (run / "model.nir").unlink()
        (run / "model.nir").mkdir()
        return ["simulate", str(run), "--target", "torch"]

    def report_dir(d: Path, run: Path) -> list[str]:
        (run / "report.json").unlink()
        (run / "report.json").mkdir()
        return ["energy", str(run)]

    return [
        c("simulate:absent-folder", lambda d, run: ["simulate", str(d / "absent"), "--target", "torch"]),
        c("simulate:a-file", lambda d, run: ["simulate", str(run / "report.md"), "--target", "torch"]),
        c("export:absent-folder", lambda d, run: ["export", str(d / "absent")]),
        c("energy:absent-folder", lambda d, run: ["energy", str(d / "absent")]),
        c("run:out-is-a-file", file_as_out),
        c("simulate:no-recipe", no_recipe),
        c("attack:recipe-is-a-dir", recipe_dir),
        c("simulate:model.nir-is-a-dir", nir_dir),
        c("energy:report.json-is-a-dir", report_dir),
        c("simulate:unknown-target", lambda d, run: ["simulate", str(run), "--target", "nochip"]),
        c("convert:absent-onnx", lambda d, run: ["convert", str(d / "absent.onnx"), "--recipe", "digits",
                                                 "--out", str(d / "out")]),
        c("import:bad-input-shape", lambda d, run: ["import", str(run / "model.nir"), "--out", str(d / "out"),
                                                    "--input-shape", "1,x,8"]),
    ]


def all_cases() -> list[Case]:
    """The whole corpus, in a fixed order."""
    return recipe_cases() + nir_cases() + checkpoint_cases() + run_folder_cases() + study_cases() + path_cases()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: gen_corpus.py OUT RUN_FOLDER", file=sys.stderr)
        return 2
    out, base = Path(argv[0]), Path(argv[1])
    counts: dict[str, int] = {}
    for i, case in enumerate(all_cases()):
        d = out / f"{i:03d}"
        d.mkdir(parents=True)
        shutil.copytree(base, d / "run")
        argv_case = case.build(d, d / "run")
        (d / "case.json").write_text(json.dumps({"id": case.id, "argv": argv_case}) + "\n")
        counts[case.kind] = counts.get(case.kind, 0) + 1
    for kind, n in counts.items():
        print(f"{kind:<12} {n}")
    print(f"{'total':<12} {sum(counts.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
