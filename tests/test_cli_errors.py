"""Bad input to every command line ends in one line on stderr -- naming the flag or the file and
the reason -- with exit status 2 for usage errors and 1 for bad data, never a traceback.

One table of cases per script.  Every case is a subprocess (a fresh interpreter, as a user runs
it); they all start together on a thread pool when the first case is collected, so the module
costs about as much wall time as its slowest few cases.  Flags are checked before slow work, so
each case fails within an interpreter start and a JAX import.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
USAGE, DATA = 2, 1
CHORALE = "bach-js/bach-371-chorales/kern/chor001.krn"


class Case(NamedTuple):
    name: str
    args: tuple[str, ...]  # {placeholders} are filled from the fixture's paths
    status: int
    message: str  # regex searched in the error line
    env: tuple[tuple[str, str], ...] = ()


TRAIN = [
    Case("no_workdir", (), USAGE, r"--workdir is required"),
    Case("bad_schedule", ("--workdir={new}", "--lr_schedule=0.01"), USAGE,
         r"--lr_schedule=0\.01: schedule item '0\.01' is not value@step"),
    Case("unknown_experiment", ("--workdir={new}", "--experiment=multi_9"), USAGE,
         r"--experiment=multi_9: unknown experiment 'multi_9'"),
    Case("shards_over_devices", ("--workdir={new}", "--batch_shards=3"), USAGE,
         r"--batch_shards=3: 3 batch shards cannot be spread over 2 devices",
         (("XLA_FLAGS", "--xla_force_host_platform_device_count=2"),)),
    Case("other_settings", ("--workdir={published}", "--kernscores_dir={kernscores}", "--notes_hidden=32"), USAGE,
         r"--workdir=\S+ holds a run with different settings \(.*model.*\)"),
    Case("missing_corpus", ("--workdir={new}", "--kernscores_dir={missing}"), DATA,
         r"--kernscores_dir=\S+: no such directory"),
    Case("model_flag_of_other_task", ("--workdir={new}", "--experiment=single_01", "--voice_history=3"), USAGE,
         r"--voice_history do\(es\) not apply to singlevoice models"),
    Case("bad_momentum", ("--workdir={new}", "--momentum=1.5"), USAGE, r"--momentum=1\.5: must be < 1"),
    Case("not_an_integer", ("--workdir={new}", "--num_steps=ten"), USAGE, r"flag --num_steps=ten: invalid literal"),
]

EVALUATE = [
    Case("no_checkpoint_flag", (), USAGE, r"--checkpoint must have a value"),
    Case("missing_checkpoint", ("--checkpoint={missing}",), DATA, r"--checkpoint=\S+: no such directory"),
    Case("not_a_run", ("--checkpoint={empty}",), DATA, r"--checkpoint=\S+: \S+ holds no config\.json"),
    Case("no_checkpoint_yet", ("--checkpoint={config_only}",), DATA, r"--checkpoint=\S+: holds no checkpoint yet"),
    Case("missing_step", ("--checkpoint={published}", "--step=7"), USAGE,
         r"--step=7: \S+ has checkpoints at steps 0$"),
    Case("corpus_folder_without_corpus", ("--checkpoint={published}", "--kernscores_dir={empty}"), DATA,
         r"--kernscores_dir=\S+: holds none of the KernScores corpus folders"),
    Case("unknown_split", ("--checkpoint={published}", "--split=validation"), USAGE,
         r"flag --split=validation: value should be one of"),
]

SAMPLE = [
    Case("bad_meter", ("--checkpoint={published}", "--meter=4-4"), USAGE,
         r"--meter=4-4: expected NUMERATOR/DENOMINATOR"),
    Case("bad_clamp_voices", ("--checkpoint={published}", "--clamp_voices=x", "--clamp_score={chorale}"), USAGE,
         r"--clamp_voices=x: 'x' is not a channel 0\.\.5"),
    Case("seven_voices", ("--checkpoint={published}", "--voices=7"), USAGE, r"--voices=7: must be 1\.\.6"),
    Case("negative_temperature", ("--checkpoint={published}", "--temperature=-1"), USAGE,
         r"--temperature=-1\.0: must be >= 0"),
    Case("unknown_format", ("--checkpoint={published}", "--formats=kern,mp3"), USAGE,
         r"--formats=kern,mp3: unknown mp3"),
    Case("missing_prompt", ("--checkpoint={published}", "--prompt={missing}.krn"), DATA,
         r"--prompt=\S+\.krn: no such file"),
    Case("malformed_prompt", ("--checkpoint={published}", "--prompt={malformed}"), DATA,
         r"malformed\.krn:3: unhandled non-note non-rest item '4x'"),
    Case("prompt_voices_over_channels", ("--checkpoint={published}", "--prompt={seven}"), DATA,
         r"seven\.krn:\d+: too many kern spines \(7"),
    Case("prompt_frames_over_score", ("--checkpoint={published}", "--prompt={chorale}", "--prompt_frames=100000"),
         USAGE, r"--prompt_frames=100000: \S+chor001\.krn has only \d+ frames"),
    Case("single_voice_checkpoint", ("--checkpoint={single_voice}",), USAGE,
         r"--checkpoint=\S+ holds a single-voice model \(single_01\); sample\.py samples the coupled"),
    Case("missing_step", ("--checkpoint={published}", "--step=5"), USAGE, r"--step=5: \S+ has checkpoints at steps 0"),
    Case("bad_top_p", ("--checkpoint={published}", "--top_p=0"), USAGE, r"--top_p=0\.0: must be in \(0, 1\]"),
    Case("negative_notes_temperature", ("--checkpoint={published}", "--notes_temperature=-0.5"), USAGE,
         r"--notes_temperature=-0\.5: must be >= 0"),
    Case("harmonize_with_clamp", ("--checkpoint={published}", "--harmonize={chorale}", "--clamp_score={chorale}",
                                  "--clamp_voices=3"), USAGE, r"--harmonize clamps all of its file's voices"),
    Case("harmonize_too_many_voices", ("--checkpoint={published}", "--harmonize={chorale}", "--voices=3"), DATA,
         r"--harmonize=\S+chor001\.krn: 4 voice\(s\) to clamp; --voices=3 must be more"),
    Case("missing_harmonize", ("--checkpoint={published}", "--harmonize={missing}.mxl"), DATA,
         r"--harmonize=\S+\.mxl: no such file"),
]

MAIN = [
    Case("seven_voices", ("--voices=7",), USAGE, r"--voices=7: must be 1\.\.6"),
    Case("unknown_format", ("--formats=kern,mp3",), USAGE, r"--formats=kern,mp3: unknown mp3"),
    Case("missing_corpus", ("--corpus=kernscores", "--kernscores_dir={missing}"), DATA,
         r"--kernscores_dir=\S+: no such directory"),
    Case("no_steps", ("--num_steps=0",), USAGE, r"--num_steps=0: must be > 0"),
]

SWEEP = [
    Case("no_sweep_dir", (), USAGE, r"--sweep_dir is required"),
    Case("bad_grid_value", ("--sweep_dir={new}", "--experiments=multi_1", "--grid=num_steps=x"), USAGE,
         r"--grid=num_steps=x: 'x' is not a value of --num_steps"),
    Case("unknown_experiment", ("--sweep_dir={new}", "--experiments=multi_9"), USAGE,
         r"--experiments: unknown experiment 'multi_9'"),
    Case("bad_seed", ("--sweep_dir={new}", "--seeds=0,one"), USAGE, r"--seeds=0,one: 'one' is not an integer"),
    Case("run_of_unplanned_sweep", ("--sweep_dir={new}", "--run_index=0"), DATA,
         r"\S+manifest\.json does not exist: plan the sweep first"),
    Case("bad_schedule", ("--sweep_dir={new}", "--experiments=multi_1", "--lr_schedule=0.01",
                          "--kernscores_dir={kernscores}"), USAGE, r"--lr_schedule=0\.01: schedule item"),
]

DATA_CLI = [
    Case("missing_corpus", ("stats", "--kernscores_dir={missing}"), DATA, r"--kernscores_dir=\S+: no such directory"),
    Case("folder_without_corpus", ("stats", "--kernscores_dir={empty}"), DATA,
         r"--kernscores_dir=\S+: holds none of the KernScores corpus folders"),
    Case("unknown_command", ("frobnicate",), USAGE, r"expected one command: stats \| download \(got frobnicate\)"),
    Case("download_without_dest", ("download",), USAGE, r"download needs --dest=DIR"),
    Case("sources_not_json", ("download", "--dest={new}", "--sources={malformed}"), DATA,
         r"--sources=\S+malformed\.krn: not JSON"),
]

SCRIPTS = {
    "train": (["experiments/train.py"], TRAIN),
    "evaluate": (["experiments/evaluate.py"], EVALUATE),
    "sample": (["experiments/sample.py"], SAMPLE),
    "main": (["experiments/main.py"], MAIN),
    "sweep": (["experiments/sweep.py"], SWEEP),
    "data": (["-m", "voicecomp.data"], DATA_CLI),
}


def _files(root: Path, kernscores: str, published: Path) -> dict[str, str]:
    """The paths the cases refer to: bad files, a config-only run, a single-voice run."""
    from voicecomp import checkpoint as checkpoint_lib
    from voicecomp import presets

    (root / "empty").mkdir()
    malformed = root / "malformed.krn"
    malformed.write_text("**kern\t**kern\n4c\t4d\n4x\t4e\n*-\t*-\n")
    seven = root / "seven.krn"
    seven.write_text("\t".join(["**kern"] * 7) + "\n" + "\t".join("4" + p for p in "cdefgab") + "\n"
                     + "\t".join(["*-"] * 7) + "\n")
    # A run killed before its first checkpoint (config.json only), and a single-voice run.
    checkpoint_lib.write_config(str(root / "config_only"), presets.PRESETS["multi_6"].replace(kernscores_dir=kernscores))
    checkpoint_lib.write_config(str(root / "single_voice"), presets.PRESETS["single_01"].replace(kernscores_dir=kernscores))
    return {"missing": str(root / "missing"), "empty": str(root / "empty"), "malformed": str(malformed),
            "seven": str(seven), "config_only": str(root / "config_only"),
            "single_voice": str(root / "single_voice"), "published": str(published),
            "chorale": str(Path(kernscores) / CHORALE), "kernscores": kernscores}


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, kernscores_dir, published_checkpoint):
    """Every case of every table, started at once; ``outcomes[(script, name)]`` is a future."""
    root = tmp_path_factory.mktemp("bad_input")
    paths = _files(root, kernscores_dir, published_checkpoint)
    base_env = {k: v for k, v in os.environ.items() if k not in ("VOICECOMP_KERNSCORES", "XLA_FLAGS")}
    base_env.update(VOICECOMP_CACHE=str(root / "cache"), PYTHONUNBUFFERED="1")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    futures = {}
    for script, (command, cases) in SCRIPTS.items():
        for case in cases:
            new = str(root / f"new_{script}_{case.name}")
            args = [a.format(new=new, **paths) for a in case.args]
            futures[(script, case.name)] = (pool.submit(_run, command + args, dict(base_env, **dict(case.env))), new)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _check(outcomes, script: str, case: Case) -> None:
    future, new = outcomes[(script, case.name)]
    result = future.result()
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert re.search(case.message, lines[0]), lines[0]
    assert result.returncode == case.status, (result.returncode, lines[0])
    assert not os.path.exists(new), f"a rejected command wrote {new}"


def _ids(cases: list[Case]) -> list[str]:
    return [case.name for case in cases]


@pytest.mark.parametrize("case", TRAIN, ids=_ids(TRAIN))
def test_train(outcomes, case):
    _check(outcomes, "train", case)


@pytest.mark.parametrize("case", EVALUATE, ids=_ids(EVALUATE))
def test_evaluate(outcomes, case):
    _check(outcomes, "evaluate", case)


@pytest.mark.parametrize("case", SAMPLE, ids=_ids(SAMPLE))
def test_sample(outcomes, case):
    _check(outcomes, "sample", case)


@pytest.mark.parametrize("case", MAIN, ids=_ids(MAIN))
def test_main(outcomes, case):
    _check(outcomes, "main", case)


@pytest.mark.parametrize("case", SWEEP, ids=_ids(SWEEP))
def test_sweep(outcomes, case):
    _check(outcomes, "sweep", case)


@pytest.mark.parametrize("case", DATA_CLI, ids=_ids(DATA_CLI))
def test_data_cli(outcomes, case):
    _check(outcomes, "data", case)


def test_at_least_25_cases():
    assert sum(len(cases) for _, cases in SCRIPTS.values()) >= 25


def test_traceback_flag_shows_the_traceback(tmp_path):
    """``--traceback`` is the way to see where an error came from."""
    env = {k: v for k, v in os.environ.items() if k != "VOICECOMP_KERNSCORES"}
    result = _run(["-m", "voicecomp.data", "stats", f"--kernscores_dir={tmp_path / 'missing'}", "--traceback"], env)
    assert result.returncode != 0 and "Traceback" in result.stderr and "DataError" in result.stderr
