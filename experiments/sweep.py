r"""Run a grid of training runs: presets x flag values x seeds, idempotent and resumable.

  # plan + run locally (sequentially on CPU; one process per local GPU when there are several)
  python experiments/sweep.py --sweep_dir=sweeps/hist --experiments=multi_1,multi_2 \
      --grid=learning_rate=0.01,0.003 --seeds=0,1 --num_steps=200000 --kernscores_dir=../shared/kernscores
  # the same grid as one launch script per host, or a SLURM array (one task per run)
  python experiments/sweep.py ... --launcher=scripts --hosts=4
  python experiments/sweep.py ... --launcher=slurm --slurm_args="--partition=gpu,--gres=gpu:1"
  # one run of an existing sweep (what the scripts and the SLURM array call)
  python experiments/sweep.py --sweep_dir=sweeps/hist --run_index=3
  # the results table
  python experiments/results.py --sweep_dir=sweeps/hist

Every run is ``experiments/train.py --experiment=PRESET --workdir=SWEEP_DIR/RUN`` with the common
overrides (any training flag given here, e.g. ``--num_steps``), the run's grid values and seed.
``SWEEP_DIR/manifest.json`` lists the runs with their resolved configurations.  Invoking the sweep
again is safe: runs whose final checkpoint (step ``num_steps``) and ``result.json`` exist are
skipped, interrupted runs resume from their newest checkpoint (train.py resumes), and a finished
run without a result is only evaluated.  After training, the run is evaluated into
``SWEEP_DIR/RUN/result.json``: ``--eval_split=metrics`` reads the final evaluation that training
logged (a fixed sample of the test split); a split name (default ``test_nonpiano``, the paper's)
runs ``experiments/evaluate.py`` on that whole split (``--eval_limit`` for a sample).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from absl import flags

from voicecomp import cli
from voicecomp import flags as vc_flags
from voicecomp.config import TrainConfig, dtype_name

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import MANIFEST, RESULT, read_manifest  # noqa: E402  (experiments/results.py)
from results import run_status as _run_status  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "experiments" / "train.py"
EVALUATE_SCRIPT = REPO / "experiments" / "evaluate.py"
TRAIN_LOG = "train.log"
EVAL_SPLITS = ("metrics", "train", "test", "test_nonpiano")

vc_flags.define_train_flags()
flags.adopt_module_key_flags(vc_flags)
_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Folder of the sweep: manifest.json and one folder per run.")
_EXPERIMENTS = flags.DEFINE_list("experiments", [], "Presets to sweep (see train.py --list_experiments); "
                                 "empty: the defaults (the exp.-6 recipe) as 'default'.")
_GRID = flags.DEFINE_multi_string("grid", [], "A swept training flag and its values, NAME=V1,V2,... (repeatable; "
                                  "the product of all of them is run). Separate values by ';' when they "
                                  "contain commas (lr_schedule, corpora).")
_SEEDS = flags.DEFINE_list("seeds", [], "Seeds (each run of the grid once per seed); empty: the preset's/--seed.")
_LAUNCHER = flags.DEFINE_enum("launcher", "local", ["local", "scripts", "slurm"],
                              "local: run here; scripts: write one launch script per host; slurm: write an sbatch array.")
_PARALLEL = flags.DEFINE_integer("parallel", 0, "Runs at once locally (0: one per local accelerator, 1 on CPU).")
_HOSTS = flags.DEFINE_integer("hosts", 1, "--launcher=scripts: number of host scripts (runs dealt round-robin).")
_SLURM_ARGS = flags.DEFINE_list("slurm_args", ["--gres=gpu:1", "--cpus-per-task=8", "--time=48:00:00"],
                                "--launcher=slurm: #SBATCH options (comma separated).")
_RUN_INDEX = flags.DEFINE_integer("run_index", None, "Execute only this run (index in manifest.json) of an existing sweep.")
_RUNS = flags.DEFINE_list("runs", [], "Execute only these runs (names) of an existing sweep.")
_EVAL_SPLIT = flags.DEFINE_enum("eval_split", "test_nonpiano", EVAL_SPLITS,
                                "Evaluation written to result.json: 'metrics' (training's final evaluation) or a "
                                "whole split through experiments/evaluate.py.")
_EVAL_LIMIT = flags.DEFINE_integer("eval_limit", 0, "Evaluate a fixed sample of this many examples (0: the whole split).")
_COMPILE_CACHE = flags.DEFINE_string("compilation_cache", "{sweep_dir}/jax_cache",
                                     "JAX persistent compilation cache shared by the runs (runs that differ only in "
                                     "seed compile nothing); '' disables. An existing $JAX_COMPILATION_CACHE_DIR wins.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Plan and print the runs' status; train nothing.")

# Training flags that describe the sweep itself, never forwarded to train.py as overrides.
_NOT_FORWARDED = {"workdir", "experiment", "list_experiments", "seed"}


# ---------------------------------------------------------------------------
# Planning


@dataclasses.dataclass
class Run:
    name: str
    experiment: str
    overrides: dict[str, str]  # grid values (flag name -> text)
    seed: Optional[int]
    args: list[str]  # train.py arguments except --workdir
    config: dict[str, Any]  # the resolved TrainConfig

    @property
    def num_steps(self) -> int:
        return int(self.config["num_steps"])


def _train_flag_names() -> list[str]:
    names = set(vc_flags._MODEL_FIELDS) | set(vc_flags._RUN_FIELDS) | {"compute_dtype", "corpora"}
    return sorted(names)


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``["learning_rate=0.01,0.003"]`` -> ``[("learning_rate", ["0.01", "0.003"])]`` (validated)."""
    known = set(_train_flag_names())
    grid = []
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().lstrip("-")
        if not sep or not values.strip():
            raise cli.UsageError(f"--grid={item!r}: expected NAME=V1,V2,...")
        if name not in known or name == "seed":
            raise cli.UsageError(f"--grid: {name!r} is not a training flag (use --seeds for seeds); "
                                 f"choose from {', '.join(sorted(known - {'seed'}))}")
        separator = ";" if ";" in values else ","  # ';' for values that hold commas (lr_schedule, corpora)
        texts = [v.strip() for v in values.split(separator) if v.strip()]
        for text in texts:  # fail now, not hours later in a subprocess
            try:
                flags.FLAGS[name].parser.parse(text)
            except ValueError as err:
                raise cli.UsageError(f"--grid={item}: {text!r} is not a value of --{name} ({err})") from None
        if any(n == name for n, _ in grid):
            raise cli.UsageError(f"--grid: {name!r} given twice")
        grid.append((name, texts))
    return grid


def apply_overrides(config: TrainConfig, overrides: dict[str, str]) -> TrainConfig:
    """``config`` with training-flag texts applied as train.py would."""
    model_changes: dict[str, Any] = {}
    run_changes: dict[str, Any] = {}
    for name, text in overrides.items():
        value = flags.FLAGS[name].parser.parse(text)
        if name == "compute_dtype":
            model_changes[name] = dtype_name(value)
        elif name in vc_flags._MODEL_FIELDS:
            model_changes[name] = value
        elif name == "corpora":
            run_changes[name] = tuple(value)
        else:
            run_changes[name] = value
    model = dataclasses.replace(config.model, **model_changes) if model_changes else config.model
    return config.replace(model=model, **run_changes)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text)


def run_name(experiment: str, overrides: dict[str, str], seed: Optional[int]) -> str:
    parts = [experiment] + [f"{k}={v}" for k, v in overrides.items()]
    if seed is not None:
        parts.append(f"seed={seed}")
    return _slug("__".join(parts))


def common_override_args() -> list[str]:
    """The training flags given explicitly to this invocation, as train.py arguments."""
    args = []
    for name in _train_flag_names():
        flag = flags.FLAGS[name]
        if flag.present and name not in _NOT_FORWARDED:
            args.append(flag.serialize())
    return args


def plan_runs() -> list[Run]:
    from voicecomp import presets

    experiments = _EXPERIMENTS.value or [""]
    for name in experiments:
        if name and name not in presets.PRESETS:
            raise cli.UsageError(f"--experiments: unknown experiment {name!r}; known: "
                                 f"{', '.join(sorted(presets.PRESETS))}")
    grid = parse_grid(_GRID.value)
    bad_seeds = [s for s in _SEEDS.value if not s.strip().lstrip("-").isdigit()]
    if bad_seeds:
        raise cli.UsageError(f"--seeds={','.join(_SEEDS.value)}: {bad_seeds[0]!r} is not an integer")
    seeds: list[Optional[int]] = [int(s) for s in _SEEDS.value] or [None]
    common = common_override_args()
    runs = []
    for experiment in experiments:
        base = vc_flags.config_from_flags(presets.get_preset(experiment) if experiment else TrainConfig())
        for values in itertools.product(*[texts for _, texts in grid]):
            overrides = {name: text for (name, _), text in zip(grid, values)}
            for seed in seeds:
                config = apply_overrides(base, overrides)
                if seed is not None:
                    config = config.replace(seed=seed)
                elif flags.FLAGS["seed"].present:
                    config = config.replace(seed=flags.FLAGS["seed"].value)
                args = ([f"--experiment={experiment}"] if experiment else []) + common
                args += [f"--{k}={v}" for k, v in overrides.items()]
                args.append(f"--seed={config.seed}")
                # every run's settings now, not hours later in its subprocess; devices and corpus
                # folder only where the runs will run (here)
                cli.check_train_config(config, here=_LAUNCHER.value == "local")
                name = run_name(experiment or "default", overrides, seed)
                runs.append(Run(name, experiment or "default", overrides, seed, args,
                                json.loads(config.to_json())))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise cli.UsageError("two runs of the grid have the same name; check --experiments/--grid/--seeds")
    return runs


def write_manifest(sweep_dir: Path, runs: list[Run], eval_split: str, eval_limit: int) -> list[Run]:
    """Merge ``runs`` into ``sweep_dir/manifest.json`` (runs of earlier plans are kept)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    existing = read_manifest(sweep_dir) if (sweep_dir / MANIFEST).is_file() else {"runs": []}
    merged = {r["name"]: r for r in existing["runs"]}
    for run in runs:
        merged[run.name] = dataclasses.asdict(run)
    data = {
        "about": "voicecomp sweep: one folder per run; experiments/sweep.py --sweep_dir=THIS resumes it",
        "repo": str(REPO),
        "eval_split": eval_split,
        "eval_limit": eval_limit,
        "runs": list(merged.values()),
    }
    tmp = sweep_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, sweep_dir / MANIFEST)
    return [Run(**r) for r in data["runs"]]


def run_status(sweep_dir: Path, run: Run) -> tuple[str, int]:
    """``('done'|'trained'|'partial'|'new', newest checkpoint step)`` from the files alone."""
    return _run_status(sweep_dir, run.name, run.num_steps)


# ---------------------------------------------------------------------------
# Executing runs


class _Children:
    """Subprocesses of this sweep; SIGINT/SIGTERM are forwarded to them and stop new runs."""

    def __init__(self):
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen] = set()
        self.stopped: Optional[int] = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._forward)

    def _forward(self, signum, frame):
        self.stopped = signum
        with self.lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.send_signal(signum)

    def run(self, command: list[str], log_path: Path, prefix: str, env: dict[str, str]) -> tuple[int, str]:
        """Run ``command``; stream its output to the console (prefixed) and ``log_path``."""
        lines: list[str] = []
        with open(log_path, "a") as log:
            log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} $ {shlex.join(command)}\n")
            log.flush()
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=env, cwd=REPO, bufsize=1)
            with self.lock:
                self.procs.add(proc)
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    log.flush()
                    lines.append(line)
                    if "\r" not in line:  # skip progress-bar redraws on the console
                        print(f"[{prefix}] {line}", end="", flush=True)
                rc = proc.wait()
            finally:
                with self.lock:
                    self.procs.discard(proc)
        return rc, "".join(lines)


CHILDREN = _Children()


_CACHE_DIR: Optional[str] = None


def _child_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if _CACHE_DIR and "JAX_COMPILATION_CACHE_DIR" not in env:
        env["JAX_COMPILATION_CACHE_DIR"] = _CACHE_DIR
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    env.update(extra or {})
    return env


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _final_eval_row(workdir: Path, step: int) -> Optional[dict[str, Any]]:
    from voicecomp.checkpoint import read_metrics

    rows = [r for r in read_metrics(str(workdir)) if r.get("kind") == "eval" and r.get("step") == step]
    return rows[-1] if rows else None


def evaluate_run(sweep_dir: Path, run: Run, eval_split: str, eval_limit: int, env: dict[str, str]) -> bool:
    """Write ``RUN/result.json``; False if the evaluation failed."""
    workdir = sweep_dir / run.name
    record: dict[str, Any] = {"run": run.name, "experiment": run.experiment, "overrides": run.overrides,
                              "seed": run.config["seed"], "step": run.num_steps}
    row = _final_eval_row(workdir, run.num_steps) if eval_split == "metrics" else None
    if row is not None and "test" in row:
        record.update(source="metrics.jsonl (training's final evaluation, fixed sample)", split="test",
                      **row["test"])
    else:
        split = "test" if eval_split == "metrics" else eval_split
        command = [sys.executable, str(EVALUATE_SCRIPT), f"--checkpoint={workdir}", f"--step={run.num_steps}",
                   f"--split={split}", "--json"]
        if eval_limit:
            command.append(f"--limit={eval_limit}")
        rc, output = CHILDREN.run(command, workdir / "evaluate.log", f"{run.name} eval", env)
        if rc != 0:
            print(f"[{run.name}] evaluation failed (exit {rc}); see {workdir / 'evaluate.log'}")
            return False
        figures = json.loads(output.strip().splitlines()[-1])
        figures.pop("checkpoint", None)
        figures.pop("step", None)
        record.update(source="experiments/evaluate.py" + (f" (sample of {eval_limit})" if eval_limit else ""),
                      **figures)
    _write_json(workdir / RESULT, record)
    ref = record["bits_per_beat_reference"]
    print(f"[{run.name}] result: {ref['total']:.3f} = {ref['time']:.3f} time + {ref['notes']:.3f} notes "
          f"bits/beat ({record['split']}, reference rate)", flush=True)
    return True


def execute_run(sweep_dir: Path, run: Run, eval_split: str, eval_limit: int,
                env_extra: Optional[dict[str, str]] = None) -> str:
    """Train (or resume) and evaluate one run as needed; returns its final status."""
    status, step = run_status(sweep_dir, run)
    if status == "done":
        return status
    workdir = sweep_dir / run.name
    workdir.mkdir(parents=True, exist_ok=True)
    env = _child_env(env_extra)
    if status in ("new", "partial"):
        (workdir / RESULT).unlink(missing_ok=True)  # whatever was there is stale
        what = f"resuming from step {step}" if status == "partial" else "starting"
        print(f"[{run.name}] {what} ({run.num_steps} steps)", flush=True)
        command = [sys.executable, str(TRAIN_SCRIPT), f"--workdir={workdir}", *run.args]
        rc, _ = CHILDREN.run(command, workdir / TRAIN_LOG, run.name, env)
        if rc != 0 or CHILDREN.stopped is not None:
            print(f"[{run.name}] training stopped (exit {rc}); rerun the sweep to resume. Log: {workdir / TRAIN_LOG}")
            return "failed" if rc else "partial"
        status, step = run_status(sweep_dir, run)
        if status != "trained":
            print(f"[{run.name}] training ended at step {step}, not {run.num_steps}; rerun the sweep to resume")
            return status
    if CHILDREN.stopped is None and evaluate_run(sweep_dir, run, eval_split, eval_limit, env):
        return "done"
    return "trained"


def local_slots() -> list[dict[str, str]]:
    """One environment per local accelerator (several GPUs), else a single slot."""
    if _PARALLEL.value:
        count = _PARALLEL.value
        return [{} for _ in range(count)]
    probe = ("import jax; d = jax.local_devices(); print(jax.default_backend(), len(d))")
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                             env=_child_env()).stdout.split()
        backend, count = out[-2], int(out[-1])
    except Exception:  # noqa: BLE001 - no probe: sequential
        return [{}]
    if backend == "gpu" and count > 1:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(count)]
        return [{"CUDA_VISIBLE_DEVICES": i} for i in ids[:count]]
    if backend == "tpu" and count > 1:
        return [{"TPU_VISIBLE_CHIPS": str(i), "TPU_CHIPS_PER_PROCESS_BOUNDS": "1,1,1",
                 "TPU_PROCESS_BOUNDS": "1,1,1", "TPU_MESH_CONTROLLER_PORT": str(8476 + i),
                 "TPU_PROCESS_PORT": str(8476 + i)} for i in range(count)]
    return [{}]


def run_locally(sweep_dir: Path, runs: list[Run], eval_split: str, eval_limit: int) -> dict[str, str]:
    pending = [r for r in runs if run_status(sweep_dir, r)[0] != "done"]
    if not pending:
        return {}
    slots = local_slots() if len(pending) > 1 else [{}]
    if len(slots) > 1:
        print(f"running {len(pending)} run(s), {len(slots)} at a time (one per device)", flush=True)
    outcome: dict[str, str] = {}
    queue = list(pending)
    lock = threading.Lock()

    def worker(env_extra: dict[str, str]) -> None:
        while CHILDREN.stopped is None:
            with lock:
                if not queue:
                    return
                run = queue.pop(0)
            outcome[run.name] = execute_run(sweep_dir, run, eval_split, eval_limit, env_extra)

    if len(slots) == 1:
        worker(slots[0])
    else:
        threads = [threading.Thread(target=worker, args=(env,), daemon=True) for env in slots]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    return outcome


# ---------------------------------------------------------------------------
# Launch scripts


def _sweep_command(sweep_dir: Path, selector: str) -> str:
    return (f"cd {shlex.quote(str(REPO))} && exec {shlex.quote(sys.executable)} experiments/sweep.py "
            f"--sweep_dir={shlex.quote(str(sweep_dir))} {selector}")


def write_host_scripts(sweep_dir: Path, runs: list[Run], hosts: int) -> list[Path]:
    folder = sweep_dir / "launch"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for host in range(hosts):
        names = [r.name for r in runs[host::hosts]]
        if not names:
            continue
        path = folder / f"host_{host}.sh"
        body = ["#!/bin/bash", f"# voicecomp sweep: host {host} of {hosts}, {len(names)} run(s); safe to rerun",
                "set -e", _sweep_command(sweep_dir, "--runs=" + shlex.quote(",".join(names))), ""]
        path.write_text("\n".join(body))
        path.chmod(0o755)
        paths.append(path)
    return paths


def write_slurm_script(sweep_dir: Path, runs: list[Run], sbatch_args: list[str]) -> Path:
    folder = sweep_dir / "launch"
    (sweep_dir / "logs").mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/bash", "#SBATCH --job-name=voicecomp-sweep", f"#SBATCH --array=0-{len(runs) - 1}",
             f"#SBATCH --output={sweep_dir / 'logs'}/%A_%a.out",
             "#SBATCH --signal=TERM@300  # train.py checkpoints on SIGTERM; resubmitting resumes"]
    lines += [f"#SBATCH {arg}" for arg in sbatch_args if arg]
    lines += ["# task i runs manifest.json's run i (train, resume, evaluate; finished runs are skipped)",
              _sweep_command(sweep_dir, "--run_index=${SLURM_ARRAY_TASK_ID}"), ""]
    path = folder / "sweep.sbatch"
    path.write_text("\n".join(lines))
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------------------


def print_status(sweep_dir: Path, runs: list[Run]) -> None:
    counts: dict[str, int] = {}
    for run in runs:
        status, step = run_status(sweep_dir, run)
        counts[status] = counts.get(status, 0) + 1
        detail = f"step {step}/{run.num_steps}" if status == "partial" else ""
        print(f"  {status:<8} {run.name} {detail}")
    print(f"{len(runs)} run(s): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), flush=True)


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    if not _SWEEP_DIR.value:
        raise cli.UsageError("--sweep_dir is required")
    cli.positive("parallel", _PARALLEL.value, zero=True)
    cli.positive("hosts", _HOSTS.value)
    cli.positive("eval_limit", _EVAL_LIMIT.value, zero=True)
    if os.path.exists(_SWEEP_DIR.value) and not os.path.isdir(_SWEEP_DIR.value):
        raise cli.DataError(f"--sweep_dir={_SWEEP_DIR.value}: exists and is not a directory")
    sweep_dir = Path(_SWEEP_DIR.value).resolve()
    global _CACHE_DIR
    _CACHE_DIR = _COMPILE_CACHE.value.replace("{sweep_dir}", str(sweep_dir)) or None
    executing_existing = _RUN_INDEX.value is not None or bool(_RUNS.value)
    if executing_existing:
        manifest = read_manifest(sweep_dir)
        all_runs = [Run(**r) for r in manifest["runs"]]
        eval_split, eval_limit = manifest.get("eval_split", "test_nonpiano"), manifest.get("eval_limit", 0)
        if flags.FLAGS["eval_split"].present:
            eval_split = _EVAL_SPLIT.value
        if _RUN_INDEX.value is not None:
            if not 0 <= _RUN_INDEX.value < len(all_runs):
                raise cli.UsageError(f"--run_index={_RUN_INDEX.value}: the sweep has {len(all_runs)} runs")
            runs = [all_runs[_RUN_INDEX.value]]
        else:
            by_name = {r.name: r for r in all_runs}
            missing = [n for n in _RUNS.value if n not in by_name]
            if missing:
                raise cli.UsageError(f"--runs: not in the manifest: {missing}")
            runs = [by_name[n] for n in _RUNS.value]
    else:
        planned = plan_runs()
        eval_split, eval_limit = _EVAL_SPLIT.value, _EVAL_LIMIT.value
        if not _DRY_RUN.value:
            write_manifest(sweep_dir, planned, eval_split, eval_limit)
        runs = planned
    print(f"sweep {sweep_dir}")
    print_status(sweep_dir, runs)
    if _DRY_RUN.value:
        return 0
    if _LAUNCHER.value == "scripts" and not executing_existing:
        paths = write_host_scripts(sweep_dir, runs, max(1, _HOSTS.value))
        print("launch scripts (run each on its host; rerunning is safe):")
        for path in paths:
            print(f"  {path}")
        return 0
    if _LAUNCHER.value == "slurm" and not executing_existing:
        path = write_slurm_script(sweep_dir, runs, _SLURM_ARGS.value)
        print(f"SLURM array of {len(runs)} task(s): sbatch {path}")
        return 0
    CHILDREN.install()
    start = time.perf_counter()
    outcome = run_locally(sweep_dir, runs, eval_split, eval_limit)
    if not outcome:
        print("nothing to do: every run is finished and evaluated")
        return 0
    print(f"sweep pass finished in {time.perf_counter() - start:.0f} s")
    print_status(sweep_dir, runs)
    print(f"results: python experiments/results.py --sweep_dir={sweep_dir}")
    if CHILDREN.stopped is not None:
        return 128 + CHILDREN.stopped
    return 0 if all(s == "done" for s in outcome.values()) else 1


if __name__ == "__main__":
    cli.run(main)
