"""experiments/sweep.py end to end: a 2x2 sweep of a tiny preset runs, reruns do nothing, a run
whose final checkpoint is deleted (and only that run) resumes, and results.py lists every run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = ["--experiments=multi_1", "--duration_hidden=8", "--notes_hidden=16", "--pitch_embedding=4",
        "--batch_size=16", "--num_steps=10", "--checkpoint_every=5", "--eval_every=10", "--eval_examples=64",
        "--log_every=5", "--keep_checkpoints=3", "--grid=learning_rate=0.01,0.003", "--seeds=0,1",
        "--eval_split=metrics"]
RUNS = sorted(f"multi_1__learning_rate={lr}__seed={s}" for lr in ("0.01", "0.003") for s in (0, 1))


def _sweep(sweep_dir: Path, root: Path, env: dict[str, str], *extra: str) -> str:
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "sweep.py"), f"--sweep_dir={sweep_dir}",
                          f"--kernscores_dir={root}", *TINY, *extra],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_sweep_runs_skips_and_resumes(tmp_path, chorale_root):
    env = dict(os.environ, VOICECOMP_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    sweep_dir = tmp_path / "sweep"
    out = _sweep(sweep_dir, chorale_root, env, "--parallel=1")
    manifest = json.loads((sweep_dir / "manifest.json").read_text())
    assert sorted(r["name"] for r in manifest["runs"]) == RUNS
    for run in manifest["runs"]:
        assert run["config"]["model"]["voice_history"] == 3 and run["config"]["num_steps"] == 10
        assert "--experiment=multi_1" in run["args"]
    assert {r["config"]["learning_rate"] for r in manifest["runs"]} == {0.01, 0.003}
    for name in RUNS:
        result = json.loads((sweep_dir / name / "result.json").read_text())
        assert result["step"] == 10 and result["bits_per_beat_reference"]["total"] > 0
        assert (sweep_dir / name / "checkpoints" / "10").is_dir()
    assert out.count("starting (10 steps)") == 4

    # a second invocation finds everything finished and starts no process
    out = _sweep(sweep_dir, chorale_root, env, "--parallel=1")
    assert "nothing to do" in out and "starting" not in out and "resuming" not in out

    # drop one run's final checkpoint (and result): only that run resumes from step 5
    victim = RUNS[1]
    shutil.rmtree(sweep_dir / victim / "checkpoints" / "10")
    before = {n: (sweep_dir / n / "result.json").stat().st_mtime_ns for n in RUNS}
    out = _sweep(sweep_dir, chorale_root, env, "--parallel=1")
    assert out.count("resuming from step 5") == 1 and f"[{victim}] resuming from step 5" in out
    assert "starting" not in out
    assert "resumed from step 5" in (sweep_dir / victim / "train.log").read_text()
    after = {n: (sweep_dir / n / "result.json").stat().st_mtime_ns for n in RUNS}
    assert [n for n in RUNS if after[n] != before[n]] == [victim]
    assert (sweep_dir / victim / "checkpoints" / "10").is_dir()

    # the results table lists all four runs
    table = subprocess.run([sys.executable, str(REPO / "experiments" / "results.py"), f"--sweep_dir={sweep_dir}"],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert table.returncode == 0, table.stderr
    for name in RUNS:
        assert f"| {name} | multi_1 |" in table.stdout
    assert "Mean over seeds" in table.stdout and (sweep_dir / "results.md").is_file()


def test_launch_scripts_and_slurm(tmp_path, chorale_root):
    env = dict(os.environ, VOICECOMP_CACHE=str(tmp_path / "cache"))
    sweep_dir = tmp_path / "sweep"
    out = _sweep(sweep_dir, chorale_root, env, "--launcher=scripts", "--hosts=3")
    scripts = sorted((sweep_dir / "launch").glob("host_*.sh"))
    assert len(scripts) == 3 and "--runs=" in scripts[0].read_text()
    assert sum(s.read_text().count("multi_1__") for s in scripts) == 4
    out = _sweep(sweep_dir, chorale_root, env, "--launcher=slurm")
    sbatch = (sweep_dir / "launch" / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-3" in sbatch and "--run_index=${SLURM_ARRAY_TASK_ID}" in sbatch
    assert not any((sweep_dir / n / "checkpoints").exists() for n in RUNS)  # nothing was trained
    assert "sbatch" in out
