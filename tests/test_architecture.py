"""The package's layout rules (docs/ARCHITECTURE.md): no import cycles, a training module that holds
training only, models used through their methods, one task registry."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import flax.linen as nn
import jax
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "voicecomp"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """voicecomp module -> the voicecomp modules it imports, at any depth of the file (function-level
    imports included).  ``from voicecomp.x import y`` names ``voicecomp.x.y`` when that is a module.
    A submodule's implicit import of its own package (Python runs ``voicecomp/tasks/__init__.py``
    before ``voicecomp/tasks/base.py``) is not an edge: only what a file's import statements name."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:  # ``import voicecomp.a.b`` names a.b; a.b.C is in a.b
                    target = target.rpartition(".")[0]
                if target.startswith("voicecomp") and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles():
    """The checker itself: a two-module and a three-module cycle are found, a chain is not."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_import_graph_sees_function_level_imports():
    graph = import_graph()
    # voicecomp.cli imports these inside functions only
    assert {"voicecomp.checkpoint", "voicecomp.placement", "voicecomp.data.humdrum"} <= graph["voicecomp.cli"]
    assert "voicecomp.tasks" in graph["voicecomp.checkpoint"]
    assert "voicecomp.tasks.multivoice" in graph["voicecomp.tasks"]


def test_no_module_imports_a_module_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_train_holds_training_only():
    lines = (PACKAGE / "train.py").read_text().splitlines()
    assert len(lines) < 400, len(lines)
    tree = ast.parse("\n".join(lines))
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    # evaluation, placement, batchers and tasks have their own modules
    assert not defined & {"evaluate", "make_eval_step", "Placement", "FrameBatcher", "Task", "MultiVoiceTask",
                          "make_task", "read_metrics"}, defined


def _reads_parameters_by_path(node: ast.AST) -> bool:
    """``<params>["name"]`` where ``<params>`` is a variable or attribute called ``params`` /
    ``ema_params`` or an expression ending in ``["params"]``."""
    if not (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)):
        return False
    tree = node.value
    if isinstance(tree, ast.Name):
        return tree.id in ("params", "ema_params")
    if isinstance(tree, ast.Attribute):
        return tree.attr in ("params", "ema_params")
    return isinstance(tree, ast.Subscript) and isinstance(tree.slice, ast.Constant) and tree.slice.value == "params"


def test_no_module_reads_model_parameters_by_path():
    """Code outside a model asks the model (``apply(..., method=...)``) instead of indexing its
    parameter tree (``params["notes"]["recurrence"]``, ``variables["params"]["duration"]``)."""
    offenders = [f"{path.relative_to(REPO)}:{node.lineno}"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 for node in ast.walk(ast.parse(path.read_text(), str(path))) if _reads_parameters_by_path(node)]
    assert not offenders, offenders


def test_the_parameter_path_finder_finds_paths():
    found = lambda code: any(_reads_parameters_by_path(n) for n in ast.walk(ast.parse(code)))  # noqa: E731
    assert found('params["notes"]["recurrence"]') and found('state.ema_params["duration"]')
    assert found('variables["params"]["notes"]')
    assert not found('model.init(rng, pack)["params"]') and not found('carry["notes"]')


def test_the_registry_knows_every_task_and_preset():
    from voicecomp import presets, tasks
    from voicecomp.tasks.streaming import StreamingTask

    for name, entry in tasks.TASKS.items():
        for preset_name, preset in entry.presets.items():
            assert preset.config.task == name, preset_name
            assert tasks.config_from_json(preset.config.to_json()) == preset.config
    assert set(presets.PRESETS) == set(tasks.all_presets())
    assert type(tasks.make_task(presets.PRESETS["stream_6"])) is StreamingTask
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        tasks.config_from_dict({"task": "nope"})


# ---------------------------------------------------------------------------
# A model family is one module plus one registry entry: the family below is all a new module
# would hold (configuration, Flax module, task, presets); registering it is the only other change.


@dataclasses.dataclass(frozen=True)
class OnsetLocationConfig:
    """A family whose logits depend only on the onset's location class (plain types: config.json)."""

    init_std: float = 0.01
    architecture: str = "onset-location"  # the fields FrameBatcher batches read
    voice_history: int = 2
    num_voices: int = 6
    pitch_range: int = 78


class OnsetLocationModel(nn.Module):
    config: OnsetLocationConfig

    @nn.compact
    def frame_shared(self, batch):
        from voicecomp.vocab import NUM_LOCATIONS, NUM_NOTE_VALUES

        loc = jax.nn.one_hot(batch["loc"][batch["frame"]], NUM_LOCATIONS)  # loc per frame, frame per example
        init = nn.initializers.normal(self.config.init_std)
        return (nn.Dense(NUM_NOTE_VALUES, kernel_init=init, name="duration")(loc),
                nn.Dense(self.config.pitch_range, kernel_init=init, name="notes")(loc))


def test_a_model_family_is_one_module_and_one_registry_entry(tmp_path, monkeypatch, encoded_kernscores):
    from voicecomp import checkpoint, encoding, evaluation, tasks, train
    from voicecomp.config import TrainConfig
    from voicecomp.tasks.base import Preset
    from voicecomp.tasks.multivoice import Data, MultiVoiceTask

    class OnsetLocationTask(MultiVoiceTask):
        model_class = OnsetLocationModel

    preset = TrainConfig(task="onset_location", model=OnsetLocationConfig(), batch_size=32, max_frames=16,
                         optimizer="adam", learning_rate=0.05, num_steps=30, log_every=10, eval_every=30,
                         eval_examples=200, checkpoint_every=30, batch_shards=1, experiment="onset_location")
    monkeypatch.setitem(tasks.TASKS, "onset_location", tasks.TaskEntry(
        model_config=OnsetLocationConfig, task=OnsetLocationTask,
        presets={"onset_location": Preset(preset, "onsets from their location class only")}))

    ids = [f"bach.chorales.chor00{i}" for i in range(1, 6)]
    data = Data(tables={"train": encoding.build_frame_table({k: encoded_kernscores[k] for k in ids[1:]}),
                        "test": encoding.build_frame_table({k: encoded_kernscores[k] for k in ids[:1]})})
    state = train.train(preset, str(tmp_path), data=data, progress=False)
    rows = checkpoint.read_metrics(str(tmp_path))
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 30]
    first, last = (r["test"]["bits_per_beat_reference"]["total"] for r in (evals[0], evals[-1]))
    assert last < first  # it learned something from the location alone

    config, task, restored, step = train.load_checkpoint(str(tmp_path))  # config.json through the registry
    assert step == 30 and config.model == OnsetLocationConfig() and type(task) is OnsetLocationTask
    task = tasks.make_task(config, data=data)
    again = evaluation.evaluate(task, restored.ema_params, "test")
    direct = evaluation.evaluate(task, state.ema_params, "test")
    assert again.examples == direct.examples == data.tables["test"].num_examples
    assert again.as_dict() == direct.as_dict()
