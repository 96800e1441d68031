"""Experiment presets (Table 4): JSON round trip, the published exp.-6 recipe, flags over presets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

from voicecomp import flags as vc_flags
from voicecomp import presets
from voicecomp.config import TrainConfig, parse_schedule

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_presets_round_trip_through_json(name):
    config = presets.PRESETS[name]
    assert TrainConfig.from_json(config.to_json()) == config
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


def test_no_invented_paper_numbers():
    multi = {k for k in presets.PAPER_RESULTS if k.startswith("multi_")}
    assert multi == {"multi_6"}
    for name in presets.PAPER_RESULTS:
        assert name in presets.PRESETS


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


def test_list_experiments_needs_no_workdir():
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "train.py"), "--list_experiments"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(presets.PRESETS)
    six = next(line for line in lines if line.startswith("multi_6"))
    assert "12.87" in six and "5.12" in six and "7.75" in six
