"""Factorisation (4) of the paper: single-voice models on voice-parts (SPEC §1.5, §4; Table 6).

:class:`PartBatcher` batches the examples of a :class:`~voicecomp.data.parts.PartTable` (history
``r(m)``) or of its frame-encoding slice (``r~(m)``); :class:`SingleVoiceTask` trains the
duration and notes models of :mod:`voicecomp.models.singlevoice` on them; :data:`PRESETS` holds
the 22 rows of Table 6 with the paper's figures.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from voicecomp.config import TrainConfig
from voicecomp.data.corpus import load_corpus
from voicecomp.data.parts import (
    PartTable,
    build_parts,
    build_voice_frame_table,
    event_global_frames,
    gather_part_examples,
    gather_part_frame_history,
)
from voicecomp.encoding import BatchPosition
from voicecomp.metrics import per_example_nats
from voicecomp.models.singlevoice import SingleVoiceConfig, SingleVoiceModel
from voicecomp.tasks.base import Preset, Task
from voicecomp.vocab import NUM_SPECIAL, SINGLE_VOICE_EVENTS_PER_BEAT, START


class PartBatcher:
    """Batches of single-voice examples for :class:`SingleVoiceTask`.

    A batch is ``shards`` packs of ``batch_size / shards`` example slots stacked on a
    leading axis (``weight`` 0 on padding).  The training order is a permutation per
    (seed, epoch); the position (epoch, batch index) resumes it exactly.  An epoch's
    last partial batch is skipped in training; :meth:`sequential` pads it.

    Batch arrays (``S`` shards, ``B`` slots, ``m`` history events, ``M`` pitches): ``e``
    [S, B, m, M], ``t`` [S, B, m], ``loc`` [S, B], ``y`` [S, B, M], ``yt`` [S, B],
    ``duration_target`` [S, B], ``notes_target`` [S, B, M] (the gathers of
    :mod:`voicecomp.data.parts`) and ``weight`` [S, B].
    """

    def __init__(self, gather, num_events: int, batch_size: int, shards: int = 1,
                 examples: Optional[np.ndarray] = None):
        if batch_size % shards:
            raise ValueError(f"batch_size ({batch_size}) must divide into {shards} shards")
        self._gather = gather
        self.batch_size, self.shards = batch_size, shards
        self.examples = np.arange(num_events, dtype=np.int64) if examples is None else np.asarray(examples, np.int64)
        self.num_examples = int(self.examples.size)
        if self.num_examples == 0:
            raise ValueError("no examples to batch")

    def _batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        valid = indices.size
        padded = np.concatenate([indices, np.full(self.batch_size - valid, indices[0], np.int64)])
        batch = self._gather(padded)
        batch["weight"] = (np.arange(self.batch_size) < valid).astype(np.float32)
        return {k: np.reshape(v, (self.shards, self.batch_size // self.shards) + v.shape[1:]) for k, v in batch.items()}

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        return self.examples[np.random.default_rng([seed, epoch]).permutation(self.num_examples)]

    def training(self, seed: int, position: BatchPosition):
        epoch, index = position.epoch, position.batch
        per_epoch = self.num_examples // self.batch_size
        if per_epoch == 0:
            raise ValueError(f"{self.num_examples} examples cannot fill a batch of {self.batch_size}")
        while True:
            order = self.epoch_order(seed, epoch)
            while index < per_epoch:
                chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
                index += 1
                yield BatchPosition(epoch, index), self._batch(chosen)
            epoch, index = epoch + 1, 0

    def sequential(self):
        for start in range(0, self.num_examples, self.batch_size):
            yield self._batch(self.examples[start:start + self.batch_size])


class SingleVoiceTask(Task):
    """Factorisation (4): one voice-part at a time (SPEC §1.5, §4; Table 6).

    ``data``: a :class:`PartTable` per split (built lazily from the configured corpus,
    non-piano parts, reference arithmetic).  Histories: ``r(m)`` from the part table, or
    with ``model.history_source='frame'`` ``r~(m)``, the event's channel of the m frames
    before it in the frame encoding (:func:`gather_part_frame_history`).  Every split is
    converted at the paper's fixed 1.219 events per beat (:data:`voicecomp.vocab.SINGLE_VOICE_EVENTS_PER_BEAT`).
    """

    def __init__(self, config: TrainConfig, data: Optional[Mapping[str, PartTable]] = None,
                 splits=("train", "test"), progress: bool = True, corpus=None):
        super().__init__(config)
        self.model = SingleVoiceModel(config.model)
        self._tables: dict[str, PartTable] = dict(data) if data is not None else {}
        self._frames: dict[str, tuple] = {}
        self._splits = tuple(dict.fromkeys(("train",) + tuple(splits))) if data is None else tuple(self._tables)
        self._progress, self._corpus = progress, corpus

    # -- data --------------------------------------------------------------------
    @property
    def corpus(self):
        if self._corpus is None:
            self._corpus = load_corpus(self.config.corpus, kernscores_dir=self.config.kernscores_dir,
                                       progress=self._progress)
        return self._corpus

    def table(self, split: str) -> PartTable:
        if split not in self._tables:
            if split not in self._splits:
                raise KeyError(f"split {split!r} not loaded (have {self._splits})")
            self._tables[split] = build_parts(self.corpus, split)
        return self._tables[split]

    def _frame_history(self, split: str):
        if split not in self._frames:
            frames = build_voice_frame_table(self.corpus, split)
            self._frames[split] = (frames, event_global_frames(self.table(split), frames))
        return self._frames[split]

    def gather(self, split: str, indices: np.ndarray) -> dict[str, np.ndarray]:
        m = self.config.model.history
        table = self.table(split)
        if self.config.model.history_source == "frame":
            frames, global_frames = self._frame_history(split)
            return gather_part_frame_history(table, frames, indices, m, global_frames=global_frames)
        return gather_part_examples(table, indices, m)

    # -- Task interface ------------------------------------------------------------
    def init_params(self, rng, pack):
        return self.model.init(rng, pack)["params"]

    def shard_outputs(self, params, batch):
        duration_logits, note_logits = self.model.apply({"params": params}, batch)
        time_ce, note_ce = per_example_nats(duration_logits, note_logits, batch["duration_target"],
                                            batch["notes_target"])
        return time_ce, note_ce, duration_logits, note_logits

    def batcher(self, split, *, shards, batch_size, max_frames=0, examples=None):
        table = self.table(split)
        return PartBatcher(lambda idx: self.gather(split, idx), table.num_examples, batch_size, shards, examples)

    def num_examples(self, split):
        return self.table(split).num_examples

    def events_per_beat(self, split):
        return SINGLE_VOICE_EVENTS_PER_BEAT

    def splits(self):
        return self._splits

    def dummy_pack(self):
        b, m, p = 2, self.config.model.history, self.config.model.pitch_range
        return {
            "e": np.zeros((b, m, p), np.int8), "t": np.full((b, m), START, np.int8),
            "loc": np.zeros((b,), np.int32), "y": np.zeros((b, p), np.int8),
            "yt": np.full((b,), NUM_SPECIAL, np.int8), "duration_target": np.zeros((b,), np.int32),
            "notes_target": np.zeros((b, p), np.int8),
        }

    def describe(self):
        return self.config.model.describe()


def _table6_configs() -> dict[str, TrainConfig]:
    """One configuration per row of Table 6, as the reference notebooks ``singlepartN`` built it.

    Learning rates: the notebooks' two stages (first value, then the second from
    ``lr_schedule``'s step); the reference used no L2 here (``optimize(..., l2=0)``).
    Initial weights N(0, 0.01^2) for every row (the reference started its bias/linear rows
    at exactly 0; with :func:`voicecomp.metrics.per_example_nats` a logit of exactly 0 gets
    a zero gradient, so an all-zero start would leave never-seen pitches stuck at 0).
    """
    S = SingleVoiceConfig
    linear_lr, fc_lr = (0.1, 0.01), (0.01, 0.001)
    rows = {
        1: (S(history=1, duration_arch="bias", notes_arch="bias"), (0.01, 0.01)),
        2: (S(history=1, notes_pitch="absolute", notes_history=False), linear_lr),
        3: (S(history=1), linear_lr),
        4: (S(history=1, duration_location=True, notes_pitch_onehot=True), linear_lr),
        5: (S(history=1, duration_arch="fc", notes_arch="fc", notes_pitch="absolute"), linear_lr),
        6: (S(history=1, duration_arch="fc", notes_arch="fc"), fc_lr),
        7: (S(history=1, duration_arch="fc", notes_arch="fc", duration_location=True, notes_pitch_onehot=True), fc_lr),
        8: (S(history=5, notes_pitch="absolute", notes_history=False), linear_lr),
        9: (S(history=5), linear_lr),
        10: (S(history=5, duration_location=True, notes_pitch_onehot=True), linear_lr),
        11: (S(history=5, duration_arch="fc", notes_arch="fc", notes_pitch="absolute"), fc_lr),
        12: (S(history=5, duration_arch="fc", notes_arch="fc"), fc_lr),
        13: (S(history=5, duration_arch="fc", notes_arch="fc", duration_location=True, notes_pitch_onehot=True), fc_lr),
        14: (S(history=5, duration_arch="fc", notes_arch="fc", duration_location=True, duration_fold=True,
               notes_pitch_onehot=True, notes_embedding=True), fc_lr),
        15: (S(history=10, notes_pitch="absolute", notes_history=False), linear_lr),
        16: (S(history=10, duration_location=True, notes_pitch_onehot=True), linear_lr),
        17: (S(history=10, duration_arch="fc", notes_arch="fc", duration_location=True, duration_fold=True,
               notes_pitch_onehot=True, notes_embedding=True), (0.01, 0.003)),
        18: (S(history=10, duration_arch="cnn", notes_arch="cnn", duration_location=True, duration_fold=True,
               notes_pitch_onehot=True, notes_embedding=True), (0.01, 0.003)),
        19: (S(history=10, duration_arch="cnn2", notes_arch="cnn2", duration_location=True, duration_fold=True,
               notes_pitch_onehot=True, notes_embedding=True), (0.01, 0.003)),
        20: (S(history=10, duration_arch="rnn", notes_arch="rnn", duration_location=True,
               notes_pitch_onehot=True), (0.003, 0.001)),
        21: (S(history=10, duration_arch="rnn", notes_arch="rnn", duration_location=True, duration_fold=True,
               notes_pitch_onehot=True, notes_embedding=True), (0.01, 0.003)),
        22: (S(history=10, history_source="frame", duration_arch="rnn", notes_arch="rnn", duration_location=True,
               duration_fold=True, notes_pitch_onehot=True, notes_embedding=True), (0.001, 0.0003)),
    }
    presets = {}
    for row, (model, (lr, lr2)) in rows.items():
        steps, drop = (40_000, 30_000) if model.duration_arch in ("bias", "linear") else (100_000, 70_000)
        presets[f"single_{row:02d}"] = TrainConfig(
            task="singlevoice", model=model, loss_events_per_beat=SINGLE_VOICE_EVENTS_PER_BEAT,
            batch_size=300, optimizer="sgd", momentum=0.95, l2=0.0, learning_rate=lr,
            lr_schedule="" if lr == lr2 else f"{lr}@0,{lr2}@{drop}", ema_decay=0.999,
            num_steps=steps, eval_every=5000, checkpoint_every=5000, experiment=f"single_{row:02d}",
        )
    return presets


# Table 6 of the paper (reference/paper_tables.json): row -> (parameters, time, notes, total),
# bits per beat on the test parts at 1.219 events per beat.
_TABLE6 = {
    1: ("112", 2.92, 7.15, 10.07), 2: ("21k", 2.00, 6.05, 8.05), 3: ("9k", 2.00, 4.29, 6.29),
    4: ("11k", 1.83, 4.29, 6.12), 5: ("149k", 1.99, 3.93, 5.92), 6: ("135k", 1.99, 4.07, 6.06),
    7: ("172k", 1.80, 3.90, 5.70), 8: ("72k", 1.86, 6.05, 7.91), 9: ("36k", 1.86, 3.91, 5.77),
    10: ("38k", 1.73, 3.91, 5.64), 11: ("418k", 1.64, 3.26, 4.90), 12: ("497k", 1.64, 3.16, 4.80),
    13: ("535k", 1.59, 3.10, 4.69), 14: ("228k", 1.58, 3.05, 4.63), 15: ("134k", 1.83, 6.05, 7.88),
    16: ("71k", 1.71, 3.83, 5.54), 17: ("372k", 1.55, 3.00, 4.55), 18: ("250k", 1.55, 3.01, 4.56),
    19: ("769k", 1.50, 2.92, 4.42), 20: ("342k", 1.48, 2.89, 4.37), 21: ("283k", 1.48, 2.88, 4.36),
    22: ("301k", 1.59, 2.93, 4.52),
}


def _table6_presets() -> dict[str, Preset]:
    presets = {}
    for name, config in _table6_configs().items():
        params, time_bits, notes_bits, total = _TABLE6[int(name.rpartition("_")[2])]
        presets[name] = Preset(
            config=config, description=f"Table 6 row {int(name.rpartition('_')[2])}: {config.model.describe()}",
            paper={"total": total, "time": time_bits, "notes": notes_bits, "params": params, "split": "test parts",
                   "convention": "1.219 events/beat"})
    return presets


PRESETS: dict[str, Preset] = _table6_presets()
