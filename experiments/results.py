"""Collect a sweep's final evaluations into a Markdown table beside the paper's numbers.

  python experiments/results.py --sweep_dir=sweeps/hist [--out=results.md] [--json]

One row per run of ``SWEEP_DIR/manifest.json`` (runs without a ``result.json`` are listed with their
status), bits per beat at the reference rate (the paper's convention, SPEC §2) and at the split's
own rate, then -- where a configuration ran with several seeds -- the mean and standard deviation
over seeds.  The paper column shows :data:`voicecomp.presets.PAPER_RESULTS` for the preset.
The table is printed and written to ``SWEEP_DIR/results.md``.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Optional

from absl import flags

from voicecomp import cli

MANIFEST = "manifest.json"
RESULT = "result.json"


# ---------------------------------------------------------------------------
# Sweep files (shared with experiments/sweep.py; no jax needed)


def read_manifest(sweep_dir: Path) -> dict[str, Any]:
    path = Path(sweep_dir) / MANIFEST
    if not path.is_file():
        raise cli.DataError(f"{path} does not exist: plan the sweep first (--experiments/--grid/--seeds)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise cli.DataError(f"{path}: not JSON ({err})") from None


def checkpoint_steps(workdir: Path) -> list[int]:
    """Steps of the finished orbax checkpoints of a work directory (temporary folders excluded)."""
    folder = Path(workdir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def run_status(sweep_dir: Path, name: str, num_steps: int) -> tuple[str, int]:
    """``('done'|'trained'|'partial'|'new', newest checkpoint step)`` of run ``name``.

    done: the final checkpoint (step ``num_steps``) and result.json exist; trained: the final
    checkpoint but no result; partial: older checkpoints only (a rerun resumes); new: none."""
    workdir = Path(sweep_dir) / name
    steps = checkpoint_steps(workdir)
    newest = steps[-1] if steps else 0
    if num_steps in steps:
        return ("done" if (workdir / RESULT).is_file() else "trained"), newest
    return ("partial" if steps else "new"), newest


# ---------------------------------------------------------------------------
# The table


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per manifest run: its result (if any), status and paper figures."""
    from voicecomp import presets

    manifest = read_manifest(sweep_dir)
    rows = []
    for run in manifest["runs"]:
        num_steps = int(run["config"]["num_steps"])
        status, step = run_status(sweep_dir, run["name"], num_steps)
        result_path = Path(sweep_dir) / run["name"] / RESULT
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
        row: dict[str, Any] = {
            "run": run["name"], "experiment": run["experiment"], "overrides": run["overrides"],
            "seed": run["config"]["seed"], "status": status, "step": step, "num_steps": num_steps,
            "paper": presets.PAPER_RESULTS.get(run["experiment"]),
        }
        if result is not None:
            row.update(split=result.get("split"), examples=result.get("examples"),
                       reference=result["bits_per_beat_reference"], split_rate=result.get("bits_per_beat_split_rate"),
                       note_ap=result.get("note_ap_percent"), duration_accuracy=result.get("duration_accuracy_percent"),
                       source=result.get("source"))
        rows.append(row)
    return rows


def _paper_cell(paper: Optional[dict[str, Any]]) -> str:
    if not paper or paper.get("total") is None:
        return "-"
    text = f"{paper['total']:.2f}"
    if paper.get("time") is not None and paper.get("notes") is not None:
        text += f" ({paper['time']:.2f} + {paper['notes']:.2f})"
    return text


def _overrides_cell(overrides: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "-"


def markdown(rows: list[dict[str, Any]], sweep_dir: Path) -> str:
    splits = sorted({r["split"] for r in rows if r.get("split")})
    lines = [f"# Sweep results: {sweep_dir}", "",
             "Bits per beat of the iterate average at the final step. *Reference*: the training split's "
             "events per beat for every split (the paper's convention); *split rate*: the split's own. "
             f"Evaluated split(s): {', '.join(splits) or '-'}. Paper: Table 4 on the non-piano test split "
             "(reference convention).", "",
             "| run | experiment | grid | seed | step | split | total | time | notes | total (split rate) "
             "| note AP % | paper total (time + notes) | vs paper |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        ref = r.get("reference")
        if ref is None:
            cells = [f"*{r['status']}*", "-", "-", "-", "-", "-"]
            step = f"{r['step']}/{r['num_steps']}"
        else:
            own = r.get("split_rate") or {}
            cells = [r["split"], _fmt(ref["total"]), _fmt(ref["time"]), _fmt(ref["notes"]), _fmt(own.get("total")),
                     _fmt(r.get("note_ap"), 2)]
            step = str(r["num_steps"])
        paper = r.get("paper") or {}
        delta = "-"
        if ref is not None and paper.get("total") is not None:
            delta = f"{ref['total'] - paper['total']:+.3f}"
        lines.append(f"| {r['run']} | {r['experiment']} | {_overrides_cell(r['overrides'])} | {r['seed']} | {step} | "
                     + " | ".join(cells) + f" | {_paper_cell(r.get('paper'))} | {delta} |")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["experiment"], _overrides_cell(r["overrides"]), r.get("split"))
        groups.setdefault(key, []).append(r)
    multi = {k: v for k, v in groups.items() if len(v) > 1}
    if multi:
        lines += ["", "## Mean over seeds", "",
                  "| experiment | grid | split | seeds done | total | time | notes | paper total |",
                  "|---|---|---|---:|---:|---:|---:|---|"]
        for (experiment, overrides, split), members in multi.items():
            done = [m for m in members if m.get("reference")]

            def stat(key: str) -> str:
                values = [m["reference"][key] for m in done]
                if not values:
                    return "-"
                if len(values) == 1:
                    return _fmt(values[0])
                return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"

            lines.append(f"| {experiment} | {overrides} | {split or '-'} | {len(done)}/{len(members)} | "
                         f"{stat('total')} | {stat('time')} | {stat('notes')} | {_paper_cell(members[0].get('paper'))} |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    if not _SWEEP_DIR.value:
        raise cli.UsageError("--sweep_dir is required")
    sweep_dir = Path(_SWEEP_DIR.value).resolve()
    rows = collect(sweep_dir)  # a missing or malformed manifest: one line, exit 1
    text = markdown(rows, sweep_dir)
    print(text, end="")
    out = _OUT.value or str(sweep_dir / "results.md")
    if out != "-":
        Path(out).write_text(text)
        print(f"\nwritten to {out}")
    if _JSON.value:
        print(json.dumps(rows, sort_keys=True))
    return 0


def define_flags() -> None:
    global _SWEEP_DIR, _OUT, _JSON
    _SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Folder of the sweep (holds manifest.json).")
    _OUT = flags.DEFINE_string("out", None, "Markdown file to write (default SWEEP_DIR/results.md; '-' for none).")
    _JSON = flags.DEFINE_bool("json", False, "Print the collected rows as one JSON line at the end.")


if __name__ == "__main__":
    define_flags()  # here, not at import: experiments/sweep.py imports this module's helpers
    cli.run(main)
