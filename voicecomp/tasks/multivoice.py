"""Factorisation (5) of the paper with windowed coupled models (SPEC §1.4, §3): frame-packed
batches and the multi-voice task.

Batches are made of whole frames so the model computes each frame's history once
(:class:`FrameBatcher`); the order is a pure function of (seed, epoch), so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

import numpy as np

from voicecomp import encoding
from voicecomp.config import TrainConfig
from voicecomp.metrics import per_example_nats
from voicecomp.models.multivoice import MultiVoiceModel
from voicecomp.tasks.base import Task


# ---------------------------------------------------------------------------
# Frame-packed batches


def _pack(counts: np.ndarray, batch_size: int, max_frames: int) -> np.ndarray:
    """Greedy split of a frame sequence into batches of <= batch_size examples and
    <= max_frames frames; returns the start offset of every batch (and the end)."""
    starts = [0]
    examples = frames = 0
    for i, count in enumerate(counts.tolist()):
        if examples + count > batch_size or frames == max_frames:
            starts.append(i)
            examples = frames = 0
        examples += count
        frames += 1
    starts.append(len(counts))
    return np.asarray(starts, dtype=np.int64)


class FrameBatcher:
    """Static-shape batches of whole frames from a :class:`FrameTable`.

    A batch is ``shards`` packs stacked on a leading axis (one per device in data
    parallel training); each pack has ``batch_size / shards`` example slots
    (``weight`` 0 on padding) and ``max_frames / shards`` history rows, and the
    examples of one frame always share a pack.  The packing depends only on the
    data, the seed and the epoch, never on how many devices run it.
    """

    def __init__(self, table: encoding.FrameTable, history: int, batch_size: int, max_frames: int,
                 examples: Optional[np.ndarray] = None, shards: int = 1, drop_idle_channels: bool = False):
        # About half as many frame rows as example slots: frames carry ~2.2 examples on
        # average, and an unused frame row costs C recurrent steps, an unused example one.
        max_frames = max_frames or batch_size // 2
        if batch_size % shards:
            raise ValueError(f"batch_size ({batch_size}) must divide into {shards} shards")
        self.table, self.history, self.shards = table, history, shards
        self.pack_examples, self.pack_frames = batch_size // shards, max(1, max_frames // shards)
        if self.pack_examples < encoding.MAX_VOICES:
            raise ValueError(f"each shard needs at least {encoding.MAX_VOICES} example slots")
        if examples is None:
            examples = np.arange(table.num_examples)
        # examples grouped by frame (then voice): CSR over the frames that have any
        order = examples[np.lexsort((table.example_voice[examples], table.example_frame[examples]))]
        frames = table.example_frame[order]
        self.example_order = order
        starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
        self.frame_start = np.r_[starts, order.size]
        self.num_frames = starts.size
        self.num_examples = order.size
        self.drop_idle_channels = drop_idle_channels
        if drop_idle_channels:
            self.active_channels = self._active_channels(frames[starts])

    def _pack_arrays(self, frame_ids: np.ndarray) -> dict[str, np.ndarray]:
        lo, hi = self.frame_start[frame_ids], self.frame_start[frame_ids + 1]
        lengths = hi - lo
        flat = np.repeat(lo - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + np.arange(lengths.sum())
        examples = self.example_order[flat]
        valid = examples.size
        padded = np.concatenate([examples, np.full(self.pack_examples - valid, examples[0])])
        pack = encoding.gather_frame_batch(self.table, padded, self.history, max_frames=self.pack_frames)
        pack["weight"] = (np.arange(self.pack_examples) < valid).astype(np.float32)
        return pack

    def _batch(self, packs: list[np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [self._pack_arrays(p) for p in packs]
        while len(arrays) < self.shards:  # the tail of a sequential pass: empty packs
            arrays.append({**arrays[0], "weight": np.zeros_like(arrays[0]["weight"])})
        return {k: np.stack([a[k] for a in arrays]) for k in arrays[0]}

    def _starts(self, counts: np.ndarray) -> np.ndarray:
        return _pack(counts, self.pack_examples, self.pack_frames)

    def epoch_packs(self, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng([seed, epoch]).permutation(self.num_frames)
        counts = (self.frame_start[1:] - self.frame_start[:-1])[order]
        return order, self._starts(counts)

    def training(self, seed: int, position: encoding.BatchPosition) -> Iterator[tuple[encoding.BatchPosition, dict]]:
        """Endless shuffled batches from ``position`` (epoch, pack); yields the position
        *after* each batch.  An epoch's last packs that cannot fill a batch are skipped."""
        epoch, index = position.epoch, position.batch
        while True:
            order, starts = self.epoch_packs(seed, epoch)
            num_packs = len(starts) - 1
            while index + self.shards <= num_packs:
                packs = [order[starts[p]:starts[p + 1]] for p in range(index, index + self.shards)]
                index += self.shards
                yield encoding.BatchPosition(epoch, index), self._batch(packs)
            epoch, index = epoch + 1, 0

    def _active_channels(self, frames: np.ndarray) -> np.ndarray:
        """Per frame: channels up to the highest one used anywhere in its window (history and
        current frame); all of them where the window reaches before the score's start, whose
        padding rows flow into every channel."""
        table, v = self.table, encoding.MAX_VOICES
        used = table.durations != encoding.EMPTY
        top = np.where(used.any(axis=1), v - np.argmax(used[:, ::-1], axis=1), 0)
        window = frames[:, None] + np.arange(-self.history, 1)
        padded = (window < table.first_frame[frames][:, None]).any(axis=1)
        count = top[np.maximum(window, 0)].max(axis=1)
        # 1-voice windows are rare: batch them with 2-voice ones (one compile fewer)
        return np.where(padded, v, np.maximum(count, 2))

    def sequential(self) -> Iterator[dict]:
        """Every example once, frames in table order (grouped by active channels when
        ``drop_idle_channels``: each such batch leaves the idle channels out)."""
        groups = [(encoding.MAX_VOICES, np.arange(self.num_frames))]
        if self.drop_idle_channels:
            groups = [(k, np.flatnonzero(self.active_channels == k)) for k in np.unique(self.active_channels)]
        for channels, frame_ids in groups:
            counts = (self.frame_start[1:] - self.frame_start[:-1])[frame_ids]
            starts = self._starts(counts)
            packs = [frame_ids[starts[p]:starts[p + 1]] for p in range(len(starts) - 1)]
            for i in range(0, len(packs), self.shards):
                yield _keep_channels(self._batch(packs[i:i + self.shards]), int(channels))


def _keep_channels(batch: dict[str, np.ndarray], channels: int) -> dict[str, np.ndarray]:
    """Leave out channels >= ``channels`` of a (shard-stacked) frame-shared batch."""
    if channels == encoding.MAX_VOICES:
        return batch
    out = dict(batch)
    out["e"] = batch["e"][:, :, :, :channels]
    out["t"] = batch["t"][..., :channels]
    out["f"] = batch["f"][..., :channels, :channels]
    out["y"] = batch["y"][:, :, :channels]
    out["yt"] = batch["yt"][..., :channels]
    out["yf"] = batch["yf"][..., :channels, :channels]
    return out


# ---------------------------------------------------------------------------
# Data


@dataclasses.dataclass
class Data:
    tables: dict[str, encoding.FrameTable]


def load_data(config: TrainConfig, splits=("train", "test"), progress: bool = True) -> Data:
    """Parse (or reload) the configured corpus and build the split tables."""
    from voicecomp.data.corpus import load_corpus

    corpus = load_corpus(config.corpus, kernscores_dir=config.kernscores_dir, progress=progress)
    encoded, _ = encoding.encode_corpus(corpus)
    if config.corpora:
        encoded = {k: v for k, v in encoded.items() if corpus.corpus_of[k] in config.corpora}
    wanted = tuple(dict.fromkeys(("train",) + tuple(splits) + (("valid",) if config.holdout_validation else ())))
    # with a held-out validation set, "train" is the training split less the held-out scores
    names = {"train": "train_fit"} if config.holdout_validation else {}
    tables = encoding.split_tables(corpus, encoded, [names.get(s, s) for s in wanted])
    return Data(tables={s: tables[names.get(s, s)] for s in wanted})


class MultiVoiceTask(Task):
    """Factorisation (5): coupled multi-voice models on frame-shared batches (SPEC §1.4, §3)."""

    def __init__(self, config: TrainConfig, data: Optional[Data] = None, splits=("train", "test"), progress=True):
        super().__init__(config)
        self.model = MultiVoiceModel(config.model)
        self._data = data
        self._splits, self._progress = splits, progress

    @property
    def data(self) -> Data:
        if self._data is None:
            self._data = load_data(self.config, splits=self._splits, progress=self._progress)
        return self._data

    def init_params(self, rng, pack):
        return self.model.init(rng, pack, method=self.model.frame_shared)["params"]

    def shard_outputs(self, params, batch):
        duration_logits, note_logits = self.model.apply({"params": params}, batch, method=self.model.frame_shared)
        time_ce, note_ce = per_example_nats(duration_logits, note_logits, batch["duration_target"], batch["notes_target"])
        return time_ce, note_ce, duration_logits, note_logits

    def batcher(self, split, *, shards, batch_size, max_frames, examples=None):
        return FrameBatcher(self.data.tables[split], self.config.model.voice_history, batch_size, max_frames,
                            examples, shards=shards,
                            drop_idle_channels=self.config.model.architecture == "hierarchical")

    def num_examples(self, split):
        return self.data.tables[split].num_examples

    def events_per_beat(self, split):
        return self.data.tables[split].events_per_beat

    def splits(self) -> tuple[str, ...]:
        return tuple(self.data.tables)

    def dummy_pack(self):
        m = self.config.model
        b, c, v, p = encoding.MAX_VOICES, m.voice_history, m.num_voices, m.pitch_range
        return {
            "e": np.zeros((b, c, v, p), np.int8), "t": np.zeros((b, c, v), np.int8),
            "f": np.zeros((b, c, v, v), np.int8), "loc": np.zeros((b,), np.int32),
            "frame": np.arange(b, dtype=np.int32), "voice": np.zeros((b,), np.int32),
            "y": np.zeros((b, v, p), np.int8), "yt": np.zeros((b, v), np.int8), "yf": np.zeros((b, v, v), np.int8),
        }

    def describe(self):
        return f"{self.config.model.architecture} multi-voice model"
