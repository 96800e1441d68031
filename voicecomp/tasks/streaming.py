"""Full-history ("streaming") multi-voice training and evaluation (SPEC §3.1).

A score becomes a *stream*: ``P`` START frames (zero notes, identity flow) then its frames; the
voice and global states are carried through it, one recurrent step per frame.  Streams are laid
end to end in ``lanes`` parallel lanes (whole scores per lane, balanced by length), and a batch is
the next ``chunk_frames`` positions of every lane: truncated backpropagation through time, the
states entering a chunk carried exactly from the previous chunk of the same lane (a ``reset``
flag zeroes them where a new score's stream starts).  The carry lives in the training state, so a
checkpoint resumes exactly.

The stream presets (``stream_6``, ``stream_6_ft``) are at the end of this module.

Location convention: each frame's step uses its own location class (START frames use the first
frame's), because a carried state cannot be recomputed for every later frame's location.  The
windowed model with the same per-step locations (``frame_shared`` with ``step_loc``) and a
window reaching back to the stream's start gives the same logits.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Optional, Sequence

import jax
import numpy as np

from voicecomp import encoding
from voicecomp.config import TrainConfig
from voicecomp.metrics import per_example_nats
from voicecomp.models.multivoice import zero_carry
from voicecomp.tasks.base import Preset
from voicecomp.tasks.multivoice import PRESETS as MULTI_VOICE_PRESETS
from voicecomp.tasks.multivoice import non_piano_corpora
from voicecomp.tasks.multivoice import MultiVoiceTask

# Example slots per shard are rounded up to this, so batch shapes (and compilations) are few.
EXAMPLE_BUCKET = 128
NO_FRAME = -1  # a stream position that is a START frame or the idle tail of a lane


def assign_lanes(lengths: np.ndarray, order: np.ndarray, lanes: int) -> list[np.ndarray]:
    """Scores (indices, in ``order``) dealt to ``lanes`` lanes: each goes to the shortest lane
    so far (ties: the lowest), so lanes end at about the same position."""
    totals = np.zeros(lanes, np.int64)
    members: list[list[int]] = [[] for _ in range(lanes)]
    for score in order.tolist():
        lane = int(np.argmin(totals))
        members[lane].append(score)
        totals[lane] += lengths[score]
    return [np.asarray(m, np.int64) for m in members]


@dataclasses.dataclass(frozen=True)
class LaneStreams:
    """Every lane's positions, padded to a common length (a multiple of the chunk length).

    ``frame [L, N]`` is the table frame at each position (:data:`NO_FRAME` for START frames and
    idle tails), ``loc_frame [L, N]`` the frame whose location class the position uses, ``reset
    [L, N]`` 1 where a stream starts (and on idle tails)."""

    frame: np.ndarray
    loc_frame: np.ndarray
    reset: np.ndarray


def lane_streams(table: encoding.FrameTable, lane_scores: Sequence[np.ndarray], padding: int, chunk: int) -> LaneStreams:
    """Positions of the streams of ``lane_scores`` (table score indices per lane)."""
    lanes = []
    for scores in lane_scores:
        frame, loc_frame, reset = [], [], []
        for s in scores.tolist():
            lo, hi = int(table.score_start[s]), int(table.score_start[s + 1])
            frame.append(np.r_[np.full(padding, NO_FRAME), np.arange(lo, hi)])
            loc_frame.append(np.r_[np.full(padding, lo), np.arange(lo, hi)])
            reset.append(np.r_[1, np.zeros(padding + hi - lo - 1, np.int64)])
        lanes.append(tuple(np.concatenate(x) if x else np.zeros(0, np.int64) for x in (frame, loc_frame, reset)))
    longest = max((len(lane[0]) for lane in lanes), default=0)
    size = max(chunk, -(-longest // chunk) * chunk)

    def pad(i: int, fill: int) -> np.ndarray:
        return np.stack([np.r_[lane[i], np.full(size - len(lane[i]), fill, np.int64)] for lane in lanes])

    return LaneStreams(frame=pad(0, NO_FRAME), loc_frame=pad(1, 0), reset=pad(2, 1))


class StreamBatcher:
    """Chunks of ``lanes`` streams from a :class:`~voicecomp.encoding.FrameTable`.

    A batch stacks ``shards`` packs (one per device); each pack holds ``lanes / shards`` lanes
    of ``chunk`` positions and every example at those positions (padded to a multiple of
    :data:`EXAMPLE_BUCKET` with ``weight`` 0).  The training order is a pure function of (seed,
    epoch): scores are shuffled, then dealt to lanes.
    """

    def __init__(self, table: encoding.FrameTable, padding: int, lanes: int, chunk: int, shards: int = 1,
                 scores: Optional[np.ndarray] = None):
        if lanes % shards:
            raise ValueError(f"lanes ({lanes}) must divide into {shards} shards")
        self.table, self.padding, self.lanes, self.chunk, self.shards = table, padding, lanes, chunk, shards
        num_scores = len(table.score_ids)
        self.scores = np.arange(num_scores) if scores is None else np.asarray(scores, np.int64)
        self.lengths = np.diff(table.score_start) + padding
        # examples grouped by frame, then voice (CSR over all frames)
        order = np.lexsort((table.example_voice, table.example_frame))
        self.example_order = order
        counts = np.bincount(table.example_frame, minlength=table.notes.shape[0])
        self.frame_examples = np.r_[0, np.cumsum(counts)]
        in_scores = np.zeros(num_scores, bool)
        in_scores[self.scores] = True
        score_of_frame = np.repeat(np.arange(num_scores), np.diff(table.score_start))
        self.num_examples = int(counts[in_scores[score_of_frame]].sum()) if counts.size else 0

    # -- layouts

    def epoch_streams(self, seed: int, epoch: int) -> LaneStreams:
        order = self.scores[np.random.default_rng([seed, epoch]).permutation(self.scores.size)]
        return lane_streams(self.table, assign_lanes(self.lengths, order, self.lanes), self.padding, self.chunk)

    def sequential_streams(self) -> LaneStreams:
        # longest first: the greedy deal then ends every lane at about the same chunk
        order = self.scores[np.argsort(-self.lengths[self.scores], kind="stable")]
        lanes = assign_lanes(self.lengths, order, self.sequential_lanes())
        return lane_streams(self.table, lanes, self.padding, self.chunk)

    def sequential_lanes(self) -> int:
        """Lanes of a sequential pass: as many as fit the positions into about the length of the
        longest stream (which no lane count shortens), a multiple of the shards.  More lanes
        than training's make fewer, larger recurrent steps, which the CPU runs faster per
        position (the whole non-piano test split: 42 lanes, 15% faster than 16); the logits do
        not depend on the lanes."""
        lengths = self.lengths[self.scores]
        lanes = -(-int(lengths.sum()) // int(lengths.max())) if lengths.size else 1
        return max(self.shards, -(-lanes // self.shards) * self.shards)

    def _example_slots(self, streams: LaneStreams) -> int:
        """Example slots per pack: the largest pack of the layout, rounded up to the bucket."""
        frames = streams.frame.reshape(self.shards, -1, streams.frame.shape[1] // self.chunk, self.chunk)
        counts = np.where(frames >= 0, np.diff(self.frame_examples)[np.maximum(frames, 0)], 0)
        largest = int(counts.sum(axis=(1, 3)).max()) if counts.size else 0
        return max(EXAMPLE_BUCKET, -(-largest // EXAMPLE_BUCKET) * EXAMPLE_BUCKET)

    # -- batches

    def _pack(self, streams: LaneStreams, lanes: slice, start: int, slots: int) -> dict[str, np.ndarray]:
        table, v = self.table, encoding.MAX_VOICES
        window = slice(start, start + self.chunk)
        frame = streams.frame[lanes, window]
        real = frame >= 0
        source = np.maximum(frame, 0)
        e = table.notes[source] * real[..., None, None].astype(np.int8)
        t = np.where(real[..., None], table.durations[source], encoding.START).astype(np.int8)
        f = np.where(real[..., None, None], table.flows[source], np.eye(v, dtype=np.int8)).astype(np.int8)
        pack = {"e": e, "t": t, "f": f,
                "loc": table.location_class[streams.loc_frame[lanes, window]].astype(np.int32),
                "reset": streams.reset[lanes, window].astype(np.int8)}
        flat = frame.reshape(-1)
        positions = np.flatnonzero(flat >= 0)
        lo, hi = self.frame_examples[flat[positions]], self.frame_examples[flat[positions] + 1]
        lengths = hi - lo
        index = np.repeat(lo - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + np.arange(lengths.sum())
        examples = self.example_order[index]
        slot = np.repeat(positions, lengths)
        valid = examples.size
        if valid > slots:
            raise AssertionError(f"pack holds {valid} examples > {slots} slots")
        fill = slots - valid
        frames = np.r_[table.example_frame[examples], np.full(fill, table.example_frame[examples[0]] if valid else 0)]
        voices = np.r_[table.example_voice[examples], np.zeros(fill, np.int8)].astype(np.int64)
        durations = table.durations[frames, voices]
        pack["frame"] = np.r_[slot, np.zeros(fill, np.int64)].astype(np.int32)
        pack["voice"] = voices.astype(np.int32)
        pack["own_notes"] = pack["notes_target"] = table.notes[frames, voices]
        pack["own_duration"] = durations.astype(np.int32)
        pack["duration_target"] = durations.astype(np.int32) - encoding.NUM_SPECIAL
        pack["weight"] = (np.arange(slots) < valid).astype(np.float32)
        return pack

    def _batch(self, streams: LaneStreams, start: int, slots: int) -> dict[str, np.ndarray]:
        per = streams.frame.shape[0] // self.shards
        packs = [self._pack(streams, slice(i * per, (i + 1) * per), start, slots) for i in range(self.shards)]
        return {k: np.stack([p[k] for p in packs]) for k in packs[0]}

    def training(self, seed: int, position: encoding.BatchPosition) -> Iterator[tuple[encoding.BatchPosition, dict]]:
        """Endless chunks from ``position`` (epoch, chunk); yields the position *after* each."""
        epoch, index = position.epoch, position.batch
        while True:
            streams = self.epoch_streams(seed, epoch)
            slots = self._example_slots(streams)
            while index * self.chunk < streams.frame.shape[1]:
                batch = self._batch(streams, index * self.chunk, slots)
                index += 1
                yield encoding.BatchPosition(epoch, index), batch
            epoch, index = epoch + 1, 0

    def sequential(self) -> Iterator[dict]:
        """Every example once: the chunks of the split's streams in order (carry them through),
        in lanes of their own (:meth:`sequential_lanes`: every lane of the first batch starts a
        stream, so the carry entering it is fresh: :meth:`StreamingTask.fresh_carry`)."""
        streams = self.sequential_streams()
        slots = self._example_slots(streams)
        for start in range(0, streams.frame.shape[1], self.chunk):
            yield self._batch(streams, start, slots)


def sample_scores(table: encoding.FrameTable, examples: int, seed: int) -> Optional[np.ndarray]:
    """A fixed seeded set of whole scores holding about ``examples`` examples (None: all)."""
    counts = np.bincount(np.searchsorted(table.score_start, table.example_frame, side="right") - 1,
                         minlength=len(table.score_ids))
    if examples <= 0 or examples >= counts.sum():
        return None
    order = np.random.default_rng(seed).permutation(len(table.score_ids))
    take = int(np.searchsorted(np.cumsum(counts[order]), examples)) + 1
    return np.sort(order[:take])


class StreamingTask(MultiVoiceTask):
    """Factorisation (5) with full-history coupled models: chunked streams, carried states."""

    def __init__(self, config: TrainConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        if config.model.history != "full":
            raise ValueError("StreamingTask needs a model with history='full'")

    def init_params(self, rng, pack):
        # The parameters are those of the windowed model: initialise through its entry point.
        return self.model.init(rng, self.dummy_pack(), method=self.model.frame_shared)["params"]

    def shard_outputs(self, params, batch):
        raise TypeError("full-history models need the carried states: use shard_step")

    def shard_step(self, params, batch, carry):
        (duration_logits, note_logits), carry = self.model.apply({"params": params}, batch, carry,
                                                                 method=self.model.stream)
        time_ce, note_ce = per_example_nats(duration_logits, note_logits, batch["duration_target"],
                                            batch["notes_target"])
        return (time_ce, note_ce, duration_logits, note_logits), carry

    def initial_carry(self, shards: int, lanes: int = 0):
        """Zero states for ``shards`` x ``lanes / shards`` lanes (default: the training lanes)."""
        one = zero_carry(self.config.model, (lanes or self.config.lanes) // shards)
        return jax.tree.map(lambda x: jax.numpy.broadcast_to(x, (shards,) + x.shape), one)

    def fresh_carry(self, batch):
        shards, lanes = batch["t"].shape[:2]  # [S, L, T, V]
        return self.initial_carry(shards, shards * lanes)

    def batcher(self, split, *, shards, batch_size=0, max_frames=0, examples=None, scores=None):
        """Chunked streams of a split (``batch_size``/``max_frames`` do not apply: a training
        batch is ``config.lanes`` x ``config.chunk_frames`` frames, a sequential pass has lanes of
        its own)."""
        if examples is not None:
            raise ValueError("full-history batches hold whole scores: pass scores, not examples")
        return StreamBatcher(self.data.tables[split], self.config.model.voice_history, self.config.lanes,
                             self.config.chunk_frames, shards=shards, scores=scores)

    def eval_batcher(self, split, *, shards, batch_size=0, max_frames=0, size=0, seed=0):
        """Whole scores of a split, a fixed seeded set holding about ``size`` examples (0: all).
        The unused channels are not left out: on the whole non-piano test split, groups of equal
        width with idle channels were 10% slower (more sequential steps, three compilations)."""
        return self.batcher(split, shards=shards, scores=sample_scores(self.data.tables[split], size, seed))

    def describe(self):
        return f"{self.config.model.architecture} multi-voice model, full history"


# ---------------------------------------------------------------------------
# Presets (beyond the paper): the exp.-6 cells with their states carried from the start of every
# score, trained by truncated BPTT over batches of 16 streams x 16 (stream_6) or 64 (stream_6_ft) frames.

PUBLISHED_WEIGHTS = "../shared/reference/multipart6_weights.npz"
_EXP6 = MULTI_VOICE_PRESETS["multi_6"].config
_STREAM_MODEL = dataclasses.replace(_EXP6.model, history="full")
PRESETS: dict[str, Preset] = {
    # from scratch: the exp.-6 optimisation (stages, momentum restarts, L2, iterate average)
    "stream_6": Preset(
        config=_EXP6.replace(model=_STREAM_MODEL, lanes=16, chunk_frames=16, eval_examples=10_000,
                             experiment="stream_6"),
        description="full history: exp.-6 cells, states carried through each score, trained from scratch",
        measured="32.706 on the 10k-example test sample after 60 training minutes on one CPU core "
                 "(multi_6 the same hour: 28.271; both in the iterate average's warm-up)"),
    # warm start from the published weights, the recipe of the best measured fine-tune (BUILD.md): the
    # non-piano training corpora (the paper's test split is non-piano), 5% of the training scores
    # held out for choosing the recipe, the paper's events per beat, chunks of 64 frames (16, 128
    # measured alike), a short iterate average for a run of about 600 steps
    "stream_6_ft": Preset(
        config=_EXP6.replace(model=_STREAM_MODEL, lanes=16, chunk_frames=64, init_from=PUBLISHED_WEIGHTS,
                             corpora=non_piano_corpora(), holdout_validation=True, loss_events_per_beat=4.7575,
                             learning_rate=1e-3, lr_schedule="0.0004@470,0.0002@660", fresh_momentum=False,
                             ema_decay=0.995, num_steps=800, eval_every=130, eval_examples=10_000,
                             checkpoint_every=100, experiment="stream_6_ft"),
        description="full history: exp.-6 cells fine-tuned from the published weights on the non-piano corpora "
                    "(run it with --max_train_minutes=90: the measured run's budget on one CPU core)",
        measured="12.700 = 5.039 time + 7.660 notes (test_nonpiano, reference; 90 training minutes on one CPU core)"),
}
