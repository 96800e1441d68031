r"""Harmonization benchmark: how well a model harmonizes the soprano of the Bach chorales of the
test split, with the melody decided after (old ordering) or before (new) the sampled voices.

  python experiments/import_reference.py --weights=../shared/reference/multipart6_weights.npz \
      --workdir=runs/published6
  python experiments/bench_harmonize.py --checkpoint=runs/published6 --kernscores_dir=../shared/kernscores \
      --seeds=4 --out=docs/results/bench_harmonize.json

Within a frame the coupled models decide the voices from channel 0 up, so a voice hears the
current notes of the lower channels only.  Kern spines are numbered from the lowest staff up:
in a chorale the soprano is the highest channel (3), and decided at its own channel's turn the
three other voices never hear the soprano note that sounds with them (the *old* ordering, the
sampler's ``clamped_first=False``).  The *new* ordering decides the clamped soprano first (the
sampler's default: :func:`voicecomp.sample.clamped_first_order` moves it to channel 0, the
others keep their order above it); since the voice weights are shared, the likelihoods are those
of the encoded score with its channels permuted so (:func:`voicecomp.encoding.permute_channels`).
For each ordering the benchmark reports:

* **conditional bits/beat** of the real alto, tenor and bass given the soprano: the exact
  likelihood of their events (every onset example of those voices, SPEC §1.4) with the soprano
  teacher-forced and not scored, i.e. the probability the sampler's harmonization assigns to
  Bach's voices.  Two conversions: *per beat* = the scored voices' nats over the chorales' beats
  (their own events per beat), and the *reference* convention of SPEC §2 (nats per scored event x
  the training split's 4.7575).  The soprano's own bits (scored alone) and all four voices are
  given beside it for context;
* **voice-leading statistics** (:mod:`voicecomp.voiceleading`) of sampled harmonizations,
  ``--seeds`` per chorale (soprano clamped, the other voices sampled, as long as the chorale in
  beats), and of the real chorales, counted the same way: dissonant onsets against the soprano,
  voice crossings, notes outside the voice's range in the real test chorales, parallel fifths and
  octaves, chords and rests.

The figures (and the settings) are printed as a table and written as JSON to ``--out``.
"""

from __future__ import annotations

from voicecomp.runtime import use_all_cpu_cores

use_all_cpu_cores()  # one XLA device per core; must precede the first JAX import

import dataclasses
import json
import os
import time

from absl import flags, logging

from voicecomp import cli

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Work directory of a windowed multi-voice run (e.g. the "
                                  "published weights through experiments/import_reference.py).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_KERNSCORES_DIR = flags.DEFINE_string("kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES).")
_CORPUS = flags.DEFINE_string("corpus_name", "bach.chorales", "KernScores corpus whose scores are harmonized.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "test"], "Split the scores come from.")
_LIMIT = flags.DEFINE_integer("limit", 0, "Use only the first N scores of the split (0: all).")
_SEEDS = flags.DEFINE_integer("seeds", 4, "Sampled harmonizations per score and ordering (0: likelihood only).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed of the sampler (score b of a chorale: its seed and index b).")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature (durations and notes).")
_OUT = flags.DEFINE_string("out", None, "Write the figures as JSON to this file.")
flags.mark_flag_as_required("checkpoint")

ORDERINGS = ("old", "new")
REFERENCE_EVENTS_PER_BEAT = 4.7575  # the KernScores training split's rate (SPEC §2)


def check_flags() -> None:
    """Flags and paths, before JAX is imported or anything is read."""
    cli.positive("limit", _LIMIT.value, zero=True)
    cli.positive("seeds", _SEEDS.value, zero=True)
    cli.positive("temperature", _TEMPERATURE.value, zero=True)
    if not os.path.isdir(_CHECKPOINT.value):
        raise cli.DataError(f"--checkpoint={_CHECKPOINT.value}: no such directory")
    cli.check_kernscores_dir(_KERNSCORES_DIR.value)


def channel_order(voices: int, melody: int, ordering: str) -> list[int]:
    """Channel order of an ordering: ``old`` keeps the score's channels, ``new`` is the sampler's
    order for a clamped melody (:func:`voicecomp.sample.clamped_first_order`)."""
    from voicecomp import sample as sample_lib
    from voicecomp.vocab import MAX_VOICES

    if ordering == "old":
        return list(range(MAX_VOICES))
    return sample_lib.clamped_first_order([melody], voices, MAX_VOICES)


def load_scores(kernscores_dir, corpus_name: str, split: str, limit: int):
    """``{score id: EncodedScore}`` of the corpus's scores in the split, each with its pickup
    (quarters), and the number of voices (used channels, the soprano the highest)."""
    from fractions import Fraction

    from voicecomp import encoding
    from voicecomp.data.corpus import load_corpus
    from voicecomp.data.humdrum import TICKS_PER_QUARTER

    corpus = load_corpus("kernscores", kernscores_dir=kernscores_dir, progress=False)
    ids = [s for s in corpus.split_ids(split) if corpus.corpus_of[s] == corpus_name]
    if not ids:
        raise cli.DataError(f"--corpus_name={corpus_name}: no scores in the {split} split")
    ids = ids[:limit] if limit else ids
    scores, pickups, voices = {}, {}, {}
    for score_id in ids:
        encoded = encoding.encode_score(corpus.scores[score_id])
        used = (encoded.durations != encoding.EMPTY).any(axis=0)
        count = int(used.sum())
        if not used[:count].all() or count < 2:
            raise cli.DataError(f"{score_id}: its voices are not channels 0..N-1 of one score (used {used.tolist()})")
        scores[score_id] = encoded
        pickups[score_id] = Fraction(int(corpus.scores[score_id].pickup), TICKS_PER_QUARTER)
        voices[score_id] = count
    counts = sorted(set(voices.values()))
    if len(counts) != 1:
        raise cli.DataError(f"--corpus_name={corpus_name}: scores with {counts} voices; the benchmark compares "
                            f"scores of one voice count")
    return scores, pickups, counts[0]


def conditional_likelihood(config, params, scores, voices: int) -> tuple[dict, float]:
    """Per ordering: bits per beat of the harmony voices given the melody (the highest channel),
    of the melody alone, of all voices and of each voice (module docstring); and the beats."""
    import jax
    import numpy as np
    from tqdm import tqdm

    from voicecomp import encoding, evaluation, metrics
    from voicecomp.tasks import make_task
    from voicecomp.tasks.multivoice import Data

    melody = voices - 1
    beats = sum(s.beats() for s in scores.values())
    tables, orders = {}, {}
    for ordering in ORDERINGS:
        orders[ordering] = channel_order(voices, melody, ordering)
        permuted = {k: dataclasses.replace(s, **dict(zip(("notes", "durations", "flows"), encoding.permute_channels(
            s.notes, s.durations, s.flows, orders[ordering])))) for k, s in scores.items()}
        tables[ordering] = encoding.build_frame_table(permuted)
    task = make_task(config, data=Data(tables=tables))
    eval_step = evaluation.make_eval_step(task)
    results = {}
    for ordering, table in tables.items():
        # every example once; its losses summed per channel of the permuted score
        examples, time_nats, note_nats = (np.zeros(encoding.MAX_VOICES) for _ in range(3))
        batcher = task.batcher(ordering, shards=1, batch_size=evaluation.EVAL_BATCH_SIZE,
                               max_frames=evaluation.EVAL_MAX_FRAMES)
        bar = tqdm(total=table.num_examples, unit="ex", desc=f"likelihood, {ordering} ordering", mininterval=1.0)
        for batch in batcher.sequential():
            (time_ce, note_ce, _, _), _ = eval_step(params, batch, task.initial_carry(1))
            time_ce, note_ce = (np.asarray(x, np.float64).ravel() for x in jax.device_get((time_ce, note_ce)))
            scored = batch["weight"].ravel() > 0
            channel = batch["voice"].ravel()[scored]
            np.add.at(examples, channel, 1)
            np.add.at(time_nats, channel, time_ce[scored])
            np.add.at(note_nats, channel, note_ce[scored])
            bar.update(int(scored.sum()))
        bar.close()
        if int(examples.sum()) != table.num_examples:
            raise RuntimeError(f"{ordering} ordering: {int(examples.sum())} of {table.num_examples} examples scored")
        channel_of = [orders[ordering].index(v) for v in range(voices)]  # score voice -> permuted channel

        def bits(voice_set):
            rows = [channel_of[v] for v in voice_set]
            n, t, m = (float(x[rows].sum()) for x in (examples, time_nats, note_nats))
            per_beat = {"total": (t + m) / beats / metrics.LN2, "time": t / beats / metrics.LN2,
                        "notes": m / beats / metrics.LN2, "events_per_beat": n / beats}
            reference = {key: metrics.bits_per_beat(value / n, REFERENCE_EVENTS_PER_BEAT)
                         for key, value in (("total", t + m), ("time", t), ("notes", m))}
            return {"examples": int(n), "bits_per_beat": per_beat,
                    "bits_per_beat_reference": {**reference, "events_per_beat": REFERENCE_EVENTS_PER_BEAT}}

        results[ordering] = {
            "channel_order": orders[ordering][:voices],
            "harmony_given_melody": bits([v for v in range(voices) if v != melody]),
            "melody": bits([melody]),
            "all_voices": bits(range(voices)),
            "per_voice": {str(v): bits([v]) for v in range(voices)},
        }
    return results, beats


def melody_notes(notes, durations, channel: int) -> list[tuple[int, tuple[int, ...]]]:
    """The (duration index, pitches) of every onset of a channel: what a clamp must reproduce."""
    import numpy as np

    from voicecomp.encoding import NUM_SPECIAL

    onsets = np.flatnonzero(durations[:, channel] >= NUM_SPECIAL)
    return [(int(durations[j, channel]), tuple(np.flatnonzero(notes[j, channel]).tolist())) for j in onsets]


def sample_statistics(model, params, scores, pickups, voices: int, seeds: int, seed: int, temperature: float) -> dict:
    """Voice-leading counts of the real scores and of ``seeds`` harmonizations per score and ordering."""
    import numpy as np
    from tqdm import tqdm

    from voicecomp import encoding
    from voicecomp import sample as sample_lib
    from voicecomp.voiceleading import VoiceLeadingCounts, count_voice_leading, voice_ranges

    melody = voices - 1
    channels = tuple(range(voices))
    ranges = voice_ranges(((s.notes, s.durations) for s in scores.values()), channels)
    counts = {name: VoiceLeadingCounts() for name in ("real",) + ORDERINGS}
    for score in scores.values():
        counts["real"] += count_voice_leading(score.notes, score.durations, channels, melody, ranges)
    longest = max(int((s.durations[:, melody] >= encoding.NUM_SPECIAL).sum()) for s in scores.values())
    bar = tqdm(total=len(scores) * len(ORDERINGS), unit="harmonization", desc=f"sampling x{seeds}")
    for score_id, score in scores.items():
        want = melody_notes(score.notes, score.durations, melody)
        clamp = sample_lib.clamp_from_frames(score.notes, score.durations, [melody])
        # one clamp length for every score: one compiled sampler
        pad = longest - clamp.durations.shape[1]
        clamp = dataclasses.replace(clamp, durations=np.pad(clamp.durations, ((0, 0), (0, pad)), constant_values=-1),
                                    notes=np.pad(clamp.notes, ((0, 0), (0, pad), (0, 0))))
        for ordering in ORDERINGS:
            sampled = sample_lib.sample(model, params, num_scores=seeds, voices=voices, beats=score.beats(),
                                        temperature=temperature, seed=seed, clamp=clamp, pickup=pickups[score_id],
                                        clamped_first=ordering == "new")
            for result in sampled:
                if melody_notes(result.notes, result.durations, melody) != want:
                    raise RuntimeError(f"{score_id} ({ordering} ordering): the clamped soprano was not reproduced")
                counts[ordering] += count_voice_leading(result.notes, result.durations, channels, melody, ranges)
            bar.update(1)
    bar.close()
    offset = encoding.PITCH_OFFSET
    return {
        "ranges_midi": {str(c): [lo + offset, hi + offset] for c, (lo, hi) in ranges.items()},
        "counts": {name: dataclasses.asdict(c) for name, c in counts.items()},
        "rates": {name: c.rates() for name, c in counts.items()},
    }


def print_table(likelihood: dict, statistics) -> None:
    print("\nconditional bits/beat of the harmony voices given the soprano (scored voices' own events/beat; "
          f"reference x{REFERENCE_EVENTS_PER_BEAT})")
    print(f"{'ordering':<10}{'total':>8}{'time':>8}{'notes':>8}   {'ref total':>9}{'time':>8}{'notes':>8}   examples")
    for ordering, result in likelihood.items():
        h = result["harmony_given_melody"]
        own, ref = h["bits_per_beat"], h["bits_per_beat_reference"]
        print(f"{ordering:<10}{own['total']:>8.3f}{own['time']:>8.3f}{own['notes']:>8.3f}   {ref['total']:>9.3f}"
              f"{ref['time']:>8.3f}{ref['notes']:>8.3f}   {h['examples']:,}")
    if statistics is None:
        return
    rates = statistics["rates"]
    keys = list(rates["real"])
    print("\nvoice leading of the harmony voices (dissonance: % of onsets while the soprano sounds; others per 100 "
          "onsets)")
    print(f"{'':<10}" + "".join(f"{k.replace('_per_100', '').replace('_percent', ' %'):>18}" for k in keys))
    for name, row in rates.items():
        print(f"{name:<10}" + "".join(f"{row[k]:>18.2f}" for k in keys))


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    check_flags()
    from voicecomp import train as train_lib

    config = cli.read_run_config(_CHECKPOINT.value)
    if config.task != "multivoice" or config.model.architecture not in ("hierarchical", "distributed") or \
            config.model.history != "window":
        raise cli.UsageError(f"--checkpoint={_CHECKPOINT.value}: the benchmark needs a windowed coupled multi-voice "
                             f"model (hierarchical or distributed)")
    cli.check_checkpoint_step(_CHECKPOINT.value, _STEP.value)
    start = time.perf_counter()
    scores, pickups, voices = load_scores(_KERNSCORES_DIR.value, _CORPUS.value, _SPLIT.value, _LIMIT.value)
    print(f"{len(scores)} scores of {_CORPUS.value} ({_SPLIT.value} split), {voices} voices, "
          f"{sum(s.beats() for s in scores.values()):.0f} beats")
    config, task, state, step = train_lib.load_checkpoint(_CHECKPOINT.value, _STEP.value)
    params = state.ema_params
    print(f"checkpoint {_CHECKPOINT.value} step {step}: {config.model.architecture} model "
          f"(history {config.model.voice_history})")

    likelihood, beats = conditional_likelihood(config, params, scores, voices)
    likelihood_seconds = time.perf_counter() - start
    print(f"likelihoods in {likelihood_seconds:.1f} s")
    statistics = None
    if _SEEDS.value:
        statistics = sample_statistics(task.model, params, scores, pickups, voices, _SEEDS.value, _SEED.value,
                                       _TEMPERATURE.value)
    seconds = time.perf_counter() - start
    print_table(likelihood, statistics)
    figures = {
        "checkpoint": _CHECKPOINT.value, "step": step, "corpus": _CORPUS.value, "split": _SPLIT.value,
        "scores": sorted(scores), "voices": voices, "beats": beats, "melody_channel": voices - 1,
        "seeds": _SEEDS.value, "seed": _SEED.value, "temperature": _TEMPERATURE.value,
        "conditional": likelihood, "statistics": statistics, "seconds": round(seconds, 1),
    }
    if _OUT.value:
        os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
        with open(_OUT.value, "w") as handle:
            json.dump(figures, handle, indent=1, sort_keys=True)
        print(f"wrote {_OUT.value}")
    print(f"done in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    cli.run(main)
