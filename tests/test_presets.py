"""Experiment presets: JSON round trip, every Table 4 row as its notebook trained it
(reference/multipart_recipes.json), the paper's numbers (reference/paper_tables.json), flags over
presets and --print_config."""

from __future__ import annotations

import json
import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

from voicecomp import flags as vc_flags
from voicecomp import presets, tasks
from voicecomp.config import TrainConfig, parse_schedule
from voicecomp.tasks import multivoice

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_presets_round_trip_through_json(name):
    config = presets.PRESETS[name]
    assert tasks.config_from_json(config.to_json()) == config
    assert config.experiment == name


def test_table4_rows_present():
    for i in range(1, 9):
        assert f"multi_{i}" in presets.PRESETS
        assert presets.describe(f"multi_{i}").startswith(f"Table 4 exp. {i}")


def test_multi6_is_the_published_recipe():
    config = presets.PRESETS["multi_6"]
    m = config.model
    assert (m.architecture, m.voice_history, m.global_history) == ("hierarchical", 10, 10)
    assert (m.duration_hidden, m.notes_hidden, m.pitch_embedding) == (64, 128, 16)
    assert m.init_std == 0.003
    assert (config.optimizer, config.momentum, config.l2, config.batch_size, config.ema_decay) == ("sgd", 0.95, 1e-4, 100, 0.999)
    assert config.corpus == "kernscores" and config.corpora == ()
    assert [v for _, v in parse_schedule(config.lr_schedule, config.learning_rate)] == [0.003, 0.001, 0.0003, 0.0001]
    assert presets.PAPER_RESULTS["multi_6"]["total"] == 12.87
    assert presets.PAPER_RESULTS["multi_6"]["time"] + presets.PAPER_RESULTS["multi_6"]["notes"] == pytest.approx(12.87)


def test_table4_architectures():
    p = presets.PRESETS
    assert [(p[f"multi_{i}"].model.voice_history, p[f"multi_{i}"].model.global_history) for i in (1, 2, 4, 5, 6, 7)] == [
        (3, 3), (5, 5), (10, 0), (10, 5), (10, 10), (20, 20)]
    assert p["multi_3"].model.architecture == "distributed" and p["multi_3"].model.voice_history == 5
    eight = p["multi_8"]
    assert eight.model.architecture == "independent" and eight.model.voice_history == 10
    assert eight.model.duration_hidden == eight.model.notes_hidden == 300
    assert eight.corpora and not set(eight.corpora) & {"bach.wtc", "joplin", "chopin.mazurkas"}
    assert {"bach.chorales", "josquin", "haydn.quartets"} <= set(eight.corpora)


@pytest.fixture(scope="module")
def recipes(shared_dir):
    return json.loads((shared_dir / "reference" / "multipart_recipes.json").read_text())["experiments"]


@pytest.fixture(scope="module")
def paper_tables(shared_dir):
    return json.loads((shared_dir / "reference" / "paper_tables.json").read_text())


def _global_history(skip: list[str], context: int) -> int:
    """The notebooks' ``global_update_skip``: none -> every step; ``self.context`` -> only the
    current step (global_history 0); ``k`` -> the last k steps."""
    if not skip:
        return context
    (value,) = set(skip)
    return 0 if value == "self.context" else int(value)


def test_table4_presets_follow_the_notebooks(recipes):
    """Every Table 4 preset against multipart_recipes.json: window, sizes, corpora, batch, L2,
    momentum, iterate average, evaluation interval and learning-rate stages (a new optimiser each)."""
    assert sorted(recipes, key=int) == [str(i) for i in range(1, 9)]
    for exp, recipe in recipes.items():
        name = f"multi_{exp}"
        config, written = presets.PRESETS[name], multivoice.RECIPES[name]
        stages = recipe["stages"]
        rates = tuple(stage["learning_rate"] for stage in stages)
        assert written.stages == rates, name
        (batch,) = {stage["batch_size"] for stage in stages}
        (l2,) = {stage["l2"] for stage in stages}
        (update_rate,) = {stage["update_rate"] for stage in stages}
        m = config.model
        assert m.voice_history == recipe["context"], name
        assert m.global_history == _global_history(recipe["global_update_skip"], recipe["context"]), name
        assert (m.duration_hidden, m.notes_hidden) == (recipe["duration_hidden"], recipe["notes_hidden"]), name
        assert (config.batch_size, config.l2, config.momentum, config.ema_decay) == (
            batch, l2, recipe["momentum"], recipe["iterate_average"]), name
        assert config.eval_every == config.checkpoint_every == update_rate, name
        assert config.optimizer == "sgd" and config.fresh_momentum, name
        if recipe["train_corpora"] == "all":
            assert config.corpora == (), name
        else:
            assert recipe["train_corpora"] == "non-piano" and config.corpora == multivoice.non_piano_corpora(), name
        # The schedule runs the stages in order; repeated rates are one stage (their restarts are unknown).
        schedule = parse_schedule(config.lr_schedule, config.learning_rate)
        merged = [r for i, r in enumerate(rates) if i == 0 or r != rates[i - 1]]
        assert [rate for _, rate in schedule] == merged, name
        assert [step for step, _ in schedule] == multivoice.stage_starts(len(merged)), name
        assert schedule[-1][0] < config.num_steps, name


def test_stage_boundaries_are_the_published_runs_restarts(shared_dir):
    """The exp.-6 stage starts are where multipart6_curve.json's evaluation steps break the
    run's 5,000-step / epoch rhythm (a restarted notebook cell)."""
    curve = json.loads((shared_dir / "reference" / "multipart6_curve.json").read_text())["test_bits_per_beat"]
    steps = sorted(int(s) for s in curve)
    epoch_ends = [0] + [b for a, b in zip(steps, steps[1:]) if b - a != 5000]
    epoch = min(b - a for a, b in zip(epoch_ends, epoch_ends[1:]))
    restarts = [b - epoch for a, b in zip(epoch_ends, epoch_ends[1:]) if b - a != epoch]
    assert set(multivoice.EXP6_STAGE_STARTS[1:]) <= set(restarts)
    assert steps[-1] == multivoice.PUBLISHED_NUM_STEPS
    for start in multivoice.EXP6_STAGE_STARTS[1:3]:  # 0.003 -> 0.001 -> 0.0003: the curve drops at once
        assert curve[str(start + 5000)] < curve[str(start)] - 0.05


def test_paper_numbers_are_the_papers(paper_tables):
    table4, table6 = paper_tables["table4_multi_voice"], paper_tables["table6_single_voice"]
    for exp, row in table4.items():
        figures = presets.PAPER_RESULTS[f"multi_{exp}"]
        assert (figures["total"], figures["time"], figures["notes"]) == (row["total"], row["time"], row["notes"])
        history = f"{presets.PRESETS[f'multi_{exp}'].model.voice_history}"
        assert row["history_voice_global"].split("/")[0] == history
        assert presets.PRESETS[f"multi_{exp}"].model.architecture == row["architecture"]
    for number, row in table6.items():
        figures = presets.PAPER_RESULTS[f"single_{int(number):02d}"]
        assert (figures["total"], figures["time"], figures["notes"], figures["params"]) == (
            row["total"], row["time"], row["notes"], row["params"])
    assert {k for k in presets.PAPER_RESULTS} == {f"multi_{e}" for e in table4} | {
        f"single_{int(n):02d}" for n in table6}
    for name in presets.PAPER_RESULTS:
        assert name in presets.PRESETS


def test_fresh_momentum_only_for_table4():
    assert not TrainConfig().fresh_momentum
    for name, config in presets.PRESETS.items():
        # stream_6 trains the exp.-6 cells from scratch with exp. 6's own stages
        assert config.fresh_momentum == (name.startswith("multi_") or name == "stream_6"), name


@pytest.fixture()
def parse_flags():
    if "experiment" not in flags.FLAGS:
        vc_flags.define_train_flags()

    def parse(argv):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["prog"] + argv)
        return vc_flags.config_from_flags()

    yield parse
    flags.FLAGS.unparse_flags()


def test_flags_override_presets(parse_flags):
    _parse = parse_flags
    config = _parse(["--experiment=multi_6", "--notes_hidden=32", "--learning_rate=0.01", "--num_steps=7"])
    base = presets.PRESETS["multi_6"]
    assert config.model.notes_hidden == 32 and config.learning_rate == 0.01 and config.num_steps == 7
    assert config.model.voice_history == 10 and config.momentum == 0.95 and config.lr_schedule == base.lr_schedule
    assert config.replace(model=base.model, learning_rate=base.learning_rate, num_steps=base.num_steps) == base
    assert _parse(["--experiment=multi_8"]) == presets.PRESETS["multi_8"]  # nothing given: the preset itself
    assert _parse(["--experiment=multi_8", "--corpora=bach.chorales"]).corpora == ("bach.chorales",)
    assert _parse([]) == TrainConfig()
    assert not _parse(["--experiment=multi_3", "--nofresh_momentum"]).fresh_momentum
    assert _parse(["--fresh_momentum"]).fresh_momentum
    assert _parse(["--experiment=multi_3", "--learning_rate=0.001"]).lr_schedule == presets.PRESETS["multi_3"].lr_schedule


def test_list_experiments_needs_no_workdir(paper_tables):
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "train.py"), "--list_experiments"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.strip().splitlines()}
    assert len(lines) == len(presets.PRESETS)
    rows = [(f"multi_{e}", r) for e, r in paper_tables["table4_multi_voice"].items()]
    rows += [(f"single_{int(n):02d}", r) for n, r in paper_tables["table6_single_voice"].items()]
    for name, row in rows:
        paper = lines[name].split("| paper: ")[1]
        assert paper.startswith(f"{row['total']:.2f} = {row['time']:.2f} time + {row['notes']:.2f} notes"), lines[name]


def test_print_config_shows_the_presets_stages(recipes):
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "train.py"), "--experiment=multi_3",
                          "--print_config"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    text, _, summary = out.stdout.strip().rpartition("\n")
    config = tasks.config_from_json(text)
    assert config == presets.PRESETS["multi_3"]
    rates = [stage["learning_rate"] for stage in recipes["3"]["stages"]]
    assert rates == [1e-4, 3e-5, 1e-5]
    assert [rate for _, rate in parse_schedule(config.lr_schedule, config.learning_rate)] == rates
    assert re.fullmatch(r"learning-rate stages: 0\.0001 from step 0, 3e-05 from step 505,792, 1e-05 from step "
                        r"1,001,584; momentum restarted at each stage; 1,139,424 steps", summary), summary


def test_build_md_shows_the_papers_numbers():
    """BUILD.md lists the paper's figures for every Table 4 and Table 6 preset, and its 10-minute
    budget table gives each row's gap to the paper (measured total minus the paper's)."""
    lines = (REPO / "BUILD.md").read_text().splitlines()
    for name, figures in presets.PAPER_RESULTS.items():
        row = next(line for line in lines if line.startswith(f"| {name} |"))
        if name.startswith("multi_"):
            assert row.endswith(f"| {figures['total']:.2f} = {figures['time']:.2f} + {figures['notes']:.2f} |"), row
        else:
            assert row.endswith(f"| {figures['params']} | {figures['time']:.2f} | {figures['notes']:.2f} | "
                                f"{figures['total']:.2f} |"), row
    header = next(line for line in lines if "| gap to paper |" in line)
    columns = [c.strip() for c in header.strip("|").split("|")]
    table = itertools.takewhile(lambda line: line.startswith("| "), lines[lines.index(header) + 2:])
    budget_rows = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert len(budget_rows) == 13
    for cells in budget_rows:
        figures = presets.PAPER_RESULTS[f"single_{int(cells[0]):02d}"]
        total = float(cells[columns.index("total (± s.e.)")].split()[0])
        paper = cells[columns.index("paper (time / notes / total)")]
        assert paper == f"{figures['time']:.2f} / {figures['notes']:.2f} / {figures['total']:.2f}", cells
        assert float(cells[columns.index("gap to paper")]) == pytest.approx(total - figures["total"], abs=5e-4)
