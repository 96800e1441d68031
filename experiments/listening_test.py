r"""The paper's listening test (Section 6, Table 5): build a kit, then recompute Table 5 from answers.

  # a kit from a checkpoint (or --weights=../shared/reference/multipart6_weights.npz)
  python experiments/listening_test.py make --checkpoint=runs/published6 --out_dir=kit \
      --kernscores_dir=../shared/kernscores
  # publish kit/page/ (or open kit/page/index.html); collect the participants' answers-*.json
  python experiments/listening_test.py analyze --kit=kit answers/*.json

``make`` draws ``--clips_per_length`` real clips (random windows of non-piano test scores) and
as many model clips (free samples, each with the voice count of a real clip) of every length in
``--lengths`` frames, renders them alike (``--synth``: FluidSynth with a General MIDI soundfont
when installed, else the built-in synthesiser; fixed ``--tempo``, ``--sample_rate``, RMS
loudness and fades) and writes ``kit/page/`` (the static page), ``kit/key.json`` (the answer key,
never read by the page) and ``kit/kit.json`` (settings, including the renderer used).

``analyze`` prints, per clip length, the mean number of correct answers out of 10 per
participant with a 95% confidence interval and a binomial test against chance, beside the
paper's row, and writes ``table5.json`` and ``table5.png`` to ``--out_dir`` (default
``kit/analysis``).

Usage errors exit with status 2, bad data (a malformed answers file, a missing corpus) with 1,
each with one line on stderr (voicecomp.cli).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from voicecomp import cli


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct positive integers, got {text!r}")
    return sorted(values)


def _parser() -> argparse.ArgumentParser:
    from voicecomp import export, listening
    from voicecomp.data.corpus import CORPUS_NAMES

    parser = cli.ArgumentParser(prog="listening_test.py", description="Listening-test kit (paper Table 5).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=cli.ArgumentParser)

    make = commands.add_parser("make", help="build a kit: clips, the static page and the answer key")
    source = make.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="work directory of a multi-voice run (experiments/train.py or "
                        "experiments/import_reference.py)")
    source.add_argument("--weights", help="reference .npz weights instead of a checkpoint "
                        "(e.g. ../shared/reference/multipart6_weights.npz)")
    make.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest)")
    make.add_argument("--out_dir", required=True, help="kit folder to create (must not hold a kit)")
    make.add_argument("--lengths", type=_int_list, default=list(listening.DEFAULT_LENGTHS),
                      help="clip lengths in frames (default 10,20,30,40,50)")
    make.add_argument("--clips_per_length", type=int, default=10,
                      help="real clips and model clips of each length in the kit (default 10 each)")
    make.add_argument("--per_participant", type=int, default=10,
                      help="clips of each length one participant judges (the paper: 10)")
    make.add_argument("--seed", type=int, default=0, help="seed of the real windows and the samples")
    make.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1: free samples)")
    make.add_argument("--model_offset", type=int, default=0,
                      help="model clips start at a random frame 0..N of longer samples (default 0: at the "
                      "start of the sample, the paper's setting)")
    make.add_argument("--voices", type=int, default=None,
                      help="voices of every model clip (default: that of its paired real clip)")
    make.add_argument("--tempo", type=float, default=120.0, help="quarter notes per minute (default 120)")
    make.add_argument("--sample_rate", type=int, default=32000, help="audio sample rate in Hz (default 32000)")
    make.add_argument("--synth", default="auto", choices=listening.SYNTHS,
                      help="auto (default: FluidSynth if installed, else additive), fluidsynth or additive")
    make.add_argument("--soundfont", default=export.DEFAULT_SOUNDFONT, help="General MIDI soundfont for FluidSynth")
    make.add_argument("--program", type=int, default=0, help="General MIDI program of every voice (0: piano)")
    make.add_argument("--loudness", type=float, default=-20.0, help="RMS level of every clip in dBFS (default -20)")
    make.add_argument("--corpus", choices=CORPUS_NAMES, default="kernscores", help="corpus of the real clips")
    make.add_argument("--kernscores_dir", default=None, help="KernScores root (default: $VOICECOMP_KERNSCORES)")

    analyze = commands.add_parser("analyze", help="recompute Table 5 from answers files")
    analyze.add_argument("--kit", required=True, help="the kit folder (holds key.json)")
    analyze.add_argument("--out_dir", default=None, help="where table5.json/.png go (default: KIT/analysis)")
    analyze.add_argument("answers", nargs="+", help="answers files downloaded from the page")
    return parser


def _load_model(args):
    """(model, params, description) of --checkpoint or --weights."""
    from voicecomp.models.multivoice import MultiVoiceConfig, MultiVoiceModel

    if args.weights:
        import numpy as np

        from import_reference import check_metadata  # experiments/ is this script's folder
        from voicecomp import weights

        try:
            with np.load(args.weights) as data:
                arrays = {k: data[k] for k in data.files}
            check_metadata(arrays)
            history = int(arrays.get("history", 10))
            config = MultiVoiceConfig(voice_history=history, global_history=history)
            params = weights.params_from_reference(arrays, config)["params"]
        except (OSError, ValueError, KeyError) as err:
            raise cli.DataError(f"--weights={args.weights}: {err}") from None
        return MultiVoiceModel(config), params, {"weights": os.path.abspath(args.weights)}
    from absl import logging

    from voicecomp import train as train_lib

    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
    try:
        config, task, state, step = train_lib.load_checkpoint(args.checkpoint, args.step)
    except (OSError, ValueError) as err:
        raise cli.DataError(f"--checkpoint={args.checkpoint}: {err}") from None
    if config.task != "multivoice":
        raise cli.UsageError(f"--checkpoint={args.checkpoint}: a {config.task} model; the listening test "
                             "samples multi-voice models")
    return task.model, state.ema_params, {"checkpoint": os.path.abspath(args.checkpoint), "step": step,
                                          "experiment": config.experiment}


def make(args) -> None:
    import numpy as np

    from voicecomp import listening
    from voicecomp.data.corpus import load_corpus

    cli.check(args.checkpoint or args.weights, "make needs --checkpoint or --weights")
    cli.check(args.clips_per_length >= 1, f"--clips_per_length={args.clips_per_length}: must be at least 1")
    cli.check(1 <= args.per_participant <= 2 * args.clips_per_length,
              f"--per_participant={args.per_participant}: must be 1..{2 * args.clips_per_length} "
              "(the clips of one length in the kit)")
    cli.check(args.voices is None or 1 <= args.voices <= 6, f"--voices={args.voices}: must be 1..6")
    cli.check(0 <= args.model_offset <= 4000, f"--model_offset={args.model_offset}: must be 0..4000")
    cli.positive("tempo", args.tempo)
    cli.positive("temperature", args.temperature, zero=True)
    cli.check(args.sample_rate >= 8000, f"--sample_rate={args.sample_rate}: must be at least 8000")
    cli.check(0 <= args.program <= 127, f"--program={args.program}: a General MIDI program is 0..127")
    cli.check(args.loudness < -3, f"--loudness={args.loudness}: must be below -3 dBFS (room for peaks)")
    out = Path(args.out_dir)
    cli.check(not (out / "key.json").exists() and not (out / "page").exists(), f"--out_dir={out}: already holds a kit")
    try:
        synth = listening.resolve_synth(args.synth, args.soundfont)
    except listening.KitError as err:
        raise cli.UsageError(str(err)) from None
    kernscores_dir = cli.check_kernscores_dir(args.kernscores_dir) if args.corpus == "kernscores" else None
    if args.weights and not os.path.isfile(args.weights):
        raise cli.DataError(f"--weights={args.weights}: no such file")
    if args.checkpoint and not os.path.isdir(args.checkpoint):
        raise cli.DataError(f"--checkpoint={args.checkpoint}: no such directory")

    model, params, model_info = _load_model(args)
    print(f"model: {model.config.architecture}, history {model.config.voice_history} "
          f"({model_info.get('checkpoint') or model_info.get('weights')})")
    try:
        corpus = load_corpus(args.corpus, kernscores_dir=kernscores_dir, progress=False)
        rng = np.random.default_rng(args.seed)
        real = listening.real_clips(corpus, args.lengths, args.clips_per_length, rng)
        requests = [(c.frames, args.voices or c.voices) for c in real]
        model_clips = listening.model_clips(model, params, requests, seed=args.seed, temperature=args.temperature,
                                            max_offset=args.model_offset, progress=print)
        settings = listening.RenderSettings(synth=synth, soundfont=args.soundfont, program=args.program,
                                            tempo_bpm=args.tempo, sample_rate=args.sample_rate,
                                            loudness_dbfs=args.loudness)
        print(f"rendering {len(real) + len(model_clips)} clips with {synth}")
        info = {"model": model_info, "seed": args.seed, "temperature": args.temperature,
                "model_offset": args.model_offset,
                "voices": args.voices or "as the paired real clip", "corpus": args.corpus, "split": "test_nonpiano",
                "command": " ".join(sys.argv)}
        report = lambda done, total: print(f"  {done}/{total} clips") if done % 20 == 0 or done == total else None
        kit = listening.write_kit(out, real + model_clips, settings, per_participant=args.per_participant, info=info,
                                  progress=report)
    except listening.KitError as err:
        raise cli.DataError(str(err)) from None
    print(f"kit {kit['kit_id']}: {len(real) + len(model_clips)} clips of {kit['lengths']} frames, "
          f"{args.per_participant} of each length per participant, rendered with {kit['renderer']}")
    print(f"  page (publish this folder): {out / 'page' / 'index.html'}")
    print(f"  answer key (keep private):  {out / 'key.json'}")


def analyze(args) -> None:
    from voicecomp import listening

    out_dir = Path(args.out_dir) if args.out_dir else Path(args.kit) / "analysis"
    try:
        key = listening.load_key(args.kit)
        participants = listening.load_all_answers(args.answers, key)
    except listening.KitError as err:
        raise cli.DataError(str(err)) from None
    results = listening.analyze(key, participants)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "table5.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"{len(participants)} participants, kit {key['kit_id']}")
    print(listening.format_table(results))
    try:
        png = listening.plot(results, out_dir / "table5.png")
    except ImportError:
        print("warning: matplotlib is not installed (pip install 'voicecomp[render]'); no plot", file=sys.stderr)
        png = None
    print(f"wrote {out_dir / 'table5.json'}" + (f" and {png}" if png else ""))


def main() -> None:
    args = _parser().parse_args()
    if args.command == "make":
        make(args)
    else:
        analyze(args)


if __name__ == "__main__":
    cli.run_argparse(main)
