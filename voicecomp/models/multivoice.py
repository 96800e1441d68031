"""Coupled multi-voice recurrent models (SPEC §3; Thickstun et al. 2019, Table 4).

Three architectures share one interface:

* ``'hierarchical'`` (exp. 1, 2, 4-7): per-voice recurrent states moved between channels by the
  flow matrices, plus a global state fed by the sum of the voice states.
* ``'distributed'`` (exp. 3): no global state; each voice update adds a pooled term over voices.
* ``'independent'`` (exp. 8): a single-voice RNN over channel 0 only (no coupling).

Every model has two separate networks: a duration network (52 note-value logits) and a notes
network (78 onset logits, one per pitch, weights shared across pitches: the relative-pitch
convolution).  Inputs stay integer indices until they reach the model.

Two entry points compute identical logits:

* :meth:`MultiVoiceModel.__call__` -- per-example inputs (channel 0 is the predicted voice).
* :meth:`MultiVoiceModel.frame_shared` -- history inputs per *frame* (unswapped) plus per-example
  current-frame inputs; the C history steps run once per frame and the states are permuted per
  example.  This is exact because the voice updates are permutation-equivariant and the global
  update only sees the (permutation-invariant) sum of the voice states.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

ARCHITECTURES = ("hierarchical", "distributed", "independent")
HISTORY_MODES = ("window", "full")
# Duration vocabulary indices 0..2 are CONT, EMPTY, START; the predicted note values follow.
NOTE_VALUE_OFFSET = 3
CONT_INDEX = 0  # vocabulary index of a voice continuing its note
EMPTY_INDEX = 1  # vocabulary index of an unused channel
PER_EXAMPLE_KEYS = ("e", "t", "f", "y", "yt", "yf", "loc")
FRAME_SHARED_KEYS = ("e", "t", "f", "loc", "frame", "voice", "y", "yt", "yf")
# Full-history chunks: frames ``e, t, f, loc, reset`` per lane and step ([L, T, ...]); examples
# ``frame`` (index into the L*T flattened frames), ``voice`` (its channel in that frame), and the
# voice's own ``own_notes`` [B, M] / ``own_duration`` [B] (vocabulary index), which the notes net
# sees causally.  The rest of the current frame is the frame itself.
STREAM_KEYS = ("e", "t", "f", "loc", "reset", "frame", "voice", "own_notes", "own_duration")


@dataclasses.dataclass(frozen=True)
class MultiVoiceConfig:
    """Architecture and sizes of a multi-voice model (defaults: the published exp.-6 model).

    ``global_history`` is the number of *history* frames whose steps update the global state
    (the current step always does): the global state is updated at steps
    ``k >= voice_history - global_history`` of the ``voice_history + 1`` steps.  The reference
    notebooks: exp. 4 (``if k < context: continue``) is ``global_history=0``, exp. 5
    (``if k < 5: continue`` with context 10) is ``global_history=5``.
    """

    architecture: str = "hierarchical"
    voice_history: int = 10
    global_history: int = 10
    duration_hidden: int = 64
    notes_hidden: int = 128
    pitch_embedding: int = 16
    num_voices: int = 6
    pitch_range: int = 78
    num_durations: int = 55
    num_locations: int = 48
    compute_dtype: Any = jnp.float32
    init_std: float = 0.003
    # "window": every frame's history is rebuilt from its last ``voice_history`` frames (the
    # paper). "full": voice and global states are carried from the start of the score (SPEC
    # §3.1); ``voice_history`` is then the number of START padding frames before frame 0.
    history: str = "window"

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.history not in HISTORY_MODES:
            raise ValueError(f"history must be one of {HISTORY_MODES}, got {self.history!r}")
        if self.history == "full" and self.architecture == "independent":
            raise ValueError("history='full' is for the coupled architectures (hierarchical, distributed)")
        if self.history == "full" and self.architecture == "hierarchical" and self.global_history < self.voice_history:
            raise ValueError("history='full' needs global_history == voice_history: a global state updated only "
                             "at the last steps of a window has no streaming counterpart (SPEC §3.1)")
        if self.voice_history < 1:
            raise ValueError(f"voice_history must be >= 1, got {self.voice_history}")
        if self.global_history < 0:
            raise ValueError(f"global_history must be >= 0, got {self.global_history}")
        if self.num_durations <= NOTE_VALUE_OFFSET:
            raise ValueError(f"num_durations must exceed {NOTE_VALUE_OFFSET}")

    @property
    def num_note_values(self) -> int:
        """Number of duration classes predicted (the vocabulary less CONT/EMPTY/START)."""
        return self.num_durations - NOTE_VALUE_OFFSET

    @property
    def global_start(self) -> int:
        """First step index (0-based, of ``voice_history + 1``) that updates the global state."""
        return self.voice_history - min(self.global_history, self.voice_history)

    @classmethod
    def independent(cls, **overrides: Any) -> "MultiVoiceConfig":
        """Exp. 8 defaults: single-voice RNNs with 300 hidden units, N(0, 0.01^2) init."""
        kwargs: dict[str, Any] = dict(
            architecture="independent", duration_hidden=300, notes_hidden=300, init_std=0.01
        )
        kwargs.update(overrides)
        return cls(**kwargs)


# ----------------------------------------------------------------------------------------------
# Small helpers


def _matmul(x: Array, w: Array, dtype: Any) -> Array:
    """``x @ w`` with operands in ``dtype`` and float32 accumulation/result."""
    if jnp.dtype(dtype) == jnp.float32:
        return jnp.matmul(x.astype(jnp.float32), w)
    return jnp.matmul(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


def _mix_voices(mixing: Array, voice_state: Array) -> Array:
    """``new[b, dst] = sum_src mixing[b, src, dst] * voice_state[b, src]`` (voice axis 1)."""
    batch, voices = voice_state.shape[:2]
    flat = voice_state.reshape(batch, voices, -1)
    mixed = jnp.einsum("bsd,bsx->bdx", mixing.astype(flat.dtype), flat)
    return mixed.reshape(voice_state.shape)


def _voice_sum(voice_state: Array, idle_sum: Optional[Array]) -> Array:
    total = voice_state.sum(axis=1)
    return total if idle_sum is None else total + idle_sum


def _swap_permutation(voice: Array, num_voices: int) -> Array:
    """Per-example channel permutation exchanging channels 0 and ``voice`` ([B, V] indices)."""
    channels = jnp.arange(num_voices)[None, :]
    voice = voice[:, None]
    return jnp.where(channels == 0, voice, jnp.where(channels == voice, 0, channels))


def _determined(durations: Array) -> Array:
    """Channels whose current row every example of the frame sees (CONT, EMPTY), as 0/1 floats."""
    return ((durations == CONT_INDEX) | (durations == EMPTY_INDEX)).astype(jnp.float32)


def _normal(std: float) -> Callable[..., Array]:
    return nn.initializers.normal(stddev=std)


# ----------------------------------------------------------------------------------------------
# Input embeddings


class Embedding(nn.Module):
    """Lookup table for integer symbols; index -1 (a masked row) embeds to zeros."""

    num_symbols: int
    features: int
    init_std: float

    @nn.compact
    def __call__(self, index: Array) -> Array:
        table = self.param("embedding", _normal(self.init_std), (self.num_symbols, self.features))
        rows = jnp.take(table, jnp.maximum(index, 0), axis=0)
        return jnp.where((index >= 0)[..., None], rows, 0.0)


class PitchClassEmbedding(nn.Module):
    """Onset bits folded into 12 pitch classes (pitch n -> n mod 12), then a linear map."""

    features: int
    pitch_range: int
    init_std: float
    compute_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, onsets: Array) -> Array:
        table = self.param("embedding", _normal(self.init_std), (12, self.features))
        # Folding is linear: fold @ table == table tiled over octaves.
        unfolded = jnp.take(table, jnp.arange(self.pitch_range) % 12, axis=0)
        return _matmul(onsets, unfolded, self.compute_dtype)


class PitchEmbedding(nn.Module):
    """Relative-pitch embedding of a frame row: a cross-correlation over pitch then a projection.

    ``kernel[j]`` is the tap for pitch offset ``j - pitch_range`` (offsets -M..M-1; tap 0 never
    touches the M-wide row but is kept for layout compatibility with the reference).
    """

    features: int
    channels: int
    pitch_range: int
    init_std: float
    compute_dtype: Any = jnp.float32

    def setup(self) -> None:
        m = self.pitch_range
        self.kernel = self.param("kernel", _normal(self.init_std), (2 * m, self.channels))
        self.projection = self.param("projection", _normal(self.init_std), (self.channels, self.features))

    def relative(self, onsets: Array) -> Array:
        """``[..., M]`` onset bits -> ``[..., M, channels]`` correlation with the pitch kernel."""
        m = self.pitch_range
        source = np.arange(m)[:, None]
        target = np.arange(m)[None, :]
        # toeplitz[src, dst] = kernel[src - dst + M]; a dense [M, M*channels] matmul beats a
        # conv on CPU because M is small.
        toeplitz = jnp.take(self.kernel, source - target + m, axis=0)
        out = _matmul(onsets, toeplitz.reshape(m, m * self.channels), self.compute_dtype)
        return out.reshape(*onsets.shape[:-1], m, self.channels)

    def project(self, relative: Array) -> Array:
        """``[..., channels]`` -> ``[..., features]``."""
        return _matmul(relative, self.projection, self.compute_dtype)

    def __call__(self, onsets: Array) -> Array:
        return self.project(self.relative(onsets))


class CausalPitchEmbedding(nn.Module):
    """Embedding of the predicted voice's own lower onsets: taps for pitch offsets -(M-1)..-1."""

    features: int
    pitch_range: int
    init_std: float
    compute_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, onsets: Array) -> Array:
        m = self.pitch_range
        kernel = self.param("kernel", _normal(self.init_std), (m - 1, self.features))
        source = np.arange(m)[:, None]
        target = np.arange(m)[None, :]
        taps = np.clip(source - target + m - 1, 0, m - 2)
        strictly_lower = jnp.asarray((source < target)[..., None], jnp.float32)
        toeplitz = jnp.take(kernel, taps, axis=0) * strictly_lower
        out = _matmul(onsets, toeplitz.reshape(m, m * self.features), self.compute_dtype)
        return out.reshape(*onsets.shape[:-1], m, self.features)


class AbsolutePitch(nn.Module):
    """Per-pitch bias vector: pitch n uses tap ``M - n``, pitch 0 gets zero (reference layout)."""

    features: int
    pitch_range: int
    init_std: float

    @nn.compact
    def __call__(self) -> Array:
        kernel = self.param("kernel", _normal(self.init_std), (self.pitch_range, self.features))
        return jnp.concatenate([jnp.zeros((1, self.features), kernel.dtype), kernel[1:][::-1]], axis=0)


# ----------------------------------------------------------------------------------------------
# Recurrent cells and readout


class VoiceCell(nn.Module):
    """One voice update, shared by all channels: ``relu(mixed_state @ W + drive [+ pooled])``.

    ``pooling`` selects the distributed (exp. 3) coupling term added to every voice:
    ``'projected'`` = ``(sum_u mixed_state[u] @ W) @ W_pool`` (duration net of the notebook),
    ``'raw'`` = ``(sum_u mixed_state[u]) @ W_pool`` (notes net of the notebook), None = none.
    """

    hidden: int
    init_std: float
    pooling: Optional[str] = None
    compute_dtype: Any = jnp.float32

    def setup(self) -> None:
        shape = (self.hidden, self.hidden)
        self.recurrent = self.param("recurrent", _normal(self.init_std), shape)
        if self.pooling is not None:
            self.pooled = self.param("pooled", _normal(self.init_std), shape)

    def project(self, voice_state: Array) -> Array:
        """The recurrent matmul alone; it commutes with flow mixing so can run before it."""
        return _matmul(voice_state, self.recurrent, self.compute_dtype)

    def project_with_inputs(self, voice_state: Array, inputs: Array, input_kernel: Array) -> Array:
        """``voice_state @ W + inputs @ input_kernel`` as one matmul (one pass over the state)."""
        features = jnp.concatenate([voice_state, inputs.astype(voice_state.dtype)], axis=-1)
        kernel = jnp.concatenate([self.recurrent, input_kernel], axis=0)
        return _matmul(features, kernel, self.compute_dtype)

    def base(self, mixed_projected: Array, mixed_state: Optional[Array] = None) -> Array:
        """The pre-activation without the drive: the mixed projected state plus the pooled term."""
        if self.pooling == "projected":
            pooled = _matmul(mixed_projected.sum(axis=1), self.pooled, self.compute_dtype)
            return mixed_projected + pooled[:, None]
        if self.pooling == "raw":
            assert mixed_state is not None, "raw pooling needs the mixed voice state"
            pooled = _matmul(mixed_state.sum(axis=1), self.pooled, self.compute_dtype)
            return mixed_projected + pooled[:, None]
        return mixed_projected

    def __call__(self, mixed_projected: Array, drive: Array, mixed_state: Optional[Array] = None) -> Array:
        return jax.nn.relu(self.base(mixed_projected, mixed_state) + drive)


class GlobalCell(nn.Module):
    """Global update ``relu(global_state @ W + (sum_u voice_state[u]) @ W_from_voices)``."""

    hidden: int
    init_std: float
    compute_dtype: Any = jnp.float32

    def setup(self) -> None:
        shape = (self.hidden, self.hidden)
        self.recurrent = self.param("recurrent", _normal(self.init_std), shape)
        self.from_voices = self.param("from_voices", _normal(self.init_std), shape)

    def project(self, global_state: Array) -> Array:
        return _matmul(global_state, self.recurrent, self.compute_dtype)

    def __call__(self, projected_global: Optional[Array], voice_state: Array, idle_sum: Optional[Array] = None) -> Array:
        """Update from an already projected ``global_state @ W`` (None: the state is zero).

        ``idle_sum`` is the summed state of channels left out of ``voice_state`` (see
        :meth:`MultiVoiceModel.frame_shared`)."""
        return self.from_sum(projected_global, _voice_sum(voice_state, idle_sum))

    def from_sum(self, projected_global: Optional[Array], voice_sum: Array) -> Array:
        """Update from the projected global state (None: zero) and the summed voice states."""
        pre_activation = _matmul(voice_sum, self.from_voices, self.compute_dtype)
        if projected_global is not None:
            pre_activation = pre_activation + projected_global
        return jax.nn.relu(pre_activation)

    def step(self, global_state: Optional[Array], voice_state: Array, idle_sum: Optional[Array] = None) -> Array:
        """Update from the state itself; both matmuls as one (None: the state is zero)."""
        if global_state is None:
            return self(None, voice_state, idle_sum)
        features = jnp.concatenate([global_state, _voice_sum(voice_state, idle_sum)], axis=-1)
        kernel = jnp.concatenate([self.recurrent, self.from_voices], axis=0)
        return jax.nn.relu(_matmul(features, kernel, self.compute_dtype))


class Readout(nn.Module):
    """``relu(pooled @ W_all + this_voice @ W_this) @ W_top + bias`` (or ``h @ W_top + bias``)."""

    hidden: int
    out_features: int
    bias_size: int
    init_std: float
    hidden_layer: bool = True
    compute_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, this_voice: Array, pooled: Optional[Array] = None) -> Array:
        init = _normal(self.init_std)
        if self.hidden_layer:
            w_pooled = self.param("pooled", init, (self.hidden, self.hidden))
            w_this = self.param("this_voice", init, (self.hidden, self.hidden))
            features = jax.nn.relu(
                _matmul(pooled, w_pooled, self.compute_dtype) + _matmul(this_voice, w_this, self.compute_dtype)
            )
        else:
            features = this_voice
        w_out = self.param("output", init, (self.hidden, self.out_features))
        bias = self.param("bias", init, (self.bias_size,))
        logits = _matmul(features, w_out, self.compute_dtype)
        if self.out_features == 1:
            logits = logits[..., 0]
        return logits + bias


class CoupledRecurrence(nn.Module):
    """Voice + global (hierarchical) or pooled (distributed) recurrence and readout.

    State layout: ``voice_state [B, V, ..., H]``, ``global_state [B, ..., H]``; the ``...`` axes
    (pitch, in the notes net) are independent positions sharing the weights.
    """

    config: MultiVoiceConfig
    hidden: int
    out_features: int
    bias_size: int
    distributed_pooling: str  # pooling mode used when architecture == 'distributed'

    def setup(self) -> None:
        cfg = self.config
        distributed = cfg.architecture == "distributed"
        self.voice_cell = VoiceCell(
            self.hidden,
            cfg.init_std,
            pooling=self.distributed_pooling if distributed else None,
            compute_dtype=cfg.compute_dtype,
        )
        if not distributed:
            self.global_cell = GlobalCell(self.hidden, cfg.init_std, cfg.compute_dtype)
        self.readout = Readout(
            self.hidden, self.out_features, self.bias_size, cfg.init_std, compute_dtype=cfg.compute_dtype
        )

    @property
    def _hierarchical(self) -> bool:
        return self.config.architecture == "hierarchical"

    def history(
        self,
        drive_at: Callable[[int], tuple[Array, Optional[Array]]],
        flows: Array,
        num_steps: int,
        input_kernel: Optional[Array] = None,
        idle_sum: Optional[Array] = None,
    ) -> tuple[Array, Optional[Array]]:
        """Runs the history steps ``0..num_steps-1`` from zero states.

        ``drive_at(k)`` gives step ``k``'s input as ``(drive [B, V, ..., H], features)``: the
        drive is added as is, ``features [B, V, ..., F]`` (or None) go through ``input_kernel
        [F, H]`` fused with the recurrent matmul.  ``flows [B, C, V, V]``.
        Returns ``(voice_state, global_state)``; ``global_state`` is None while never updated.
        A python loop over the static steps: under jit on CPU it was as fast as ``lax.scan``
        forward and faster forward+backward (bench notes in experiments/bench_model.py).
        """
        voice_state: Optional[Array] = None
        global_state: Optional[Array] = None
        for k in range(num_steps):
            drive, features = drive_at(k)
            if voice_state is None:  # zero state: skip the mix and the recurrent matmul
                mixed_state = jnp.zeros(drive.shape[:-1] + (self.hidden,), drive.dtype)
                mixed_projected = jnp.zeros_like(mixed_state)
                if features is not None:
                    mixed_projected = _matmul(features, input_kernel, self.config.compute_dtype)
            else:
                mixed_state = _mix_voices(flows[:, k], voice_state)
                if features is None:
                    mixed_projected = self.voice_cell.project(mixed_state)
                else:
                    mixed_projected = self.voice_cell.project_with_inputs(mixed_state, features, input_kernel)
            voice_state = self.voice_cell(mixed_projected, drive, mixed_state)
            if self._hierarchical and k >= self.config.global_start:
                global_state = self.global_cell.step(global_state, voice_state, idle_sum)
        assert voice_state is not None
        return voice_state, global_state

    def stream(
        self,
        initial: tuple[Array, Optional[Array]],
        inputs: Any,
        drive_of: Callable[[Any], tuple[Array, Optional[Array], Array, Array]],
        flows: Array,
        reset: Array,
        input_kernel: Optional[Array] = None,
    ) -> tuple[tuple[Array, Optional[Array]], tuple[Array, Array, Optional[Array]]]:
        """Full-history recurrence (SPEC §3.1): one step per frame, states carried from ``initial``.

        ``inputs`` is a pytree whose leaves are ``[B, T, ...]``; ``drive_of(inputs_at_step)`` gives
        ``(drive, features, masked_drive, determined)``: the frame's drive and fused features as in
        :meth:`history`, the drive of a channel whose row is hidden from an example (``[..., H]``,
        broadcast over channels) and ``determined [B, V]``, channels every example of the frame sees
        (CONT, EMPTY).  ``flows [B, T, V, V]``; ``reset [B, T]`` zeroes the states entering a step
        (a new score's stream begins there).  ``initial`` = ``(voice_state [B, V, ..., H],
        global_state [B, ..., H] or None)``.

        Returns the states after the last step and, per step, what :meth:`stream_readout` needs,
        all ``[B, T, ...]``.  The example of voice ``v`` at a frame sees channels below ``v``
        complete, channel ``v`` only through its own drive, and later channels complete only where
        determined: every channel but ``v`` has the new state of the frame's own step or the state
        of a hidden row, and those do not depend on the example.  So the step returns
        ``others [B, V, ..., H]`` (for each ``v``, the sum of the other channels' new states as
        the example of ``v`` sees them), ``base [B, V, ..., H]`` (each channel's pre-activation
        without its drive) and the projected global state: the per-example work is one channel.
        """
        hierarchical = self._hierarchical
        raw_needed = self.config.architecture == "distributed"
        to_time_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        xs = jax.tree.map(to_time_major, (inputs, flows, reset))

        def body(carry, x):
            voice_state, global_state = carry
            step_inputs, flow, step_reset = x
            keep = 1.0 - step_reset.astype(voice_state.dtype)
            voice_state = voice_state * keep.reshape((-1,) + (1,) * (voice_state.ndim - 1))
            mixed_projected = _mix_voices(flow, self.voice_cell.project(voice_state))
            mixed_state = _mix_voices(flow, voice_state) if raw_needed else None
            base = self.voice_cell.base(mixed_projected, mixed_state)
            drive, features, masked_drive, determined = drive_of(step_inputs)
            if features is not None:
                drive = drive + _matmul(features, input_kernel, self.config.compute_dtype)
            new_voice_state = jax.nn.relu(base + drive)
            seen = determined.reshape(determined.shape + (1,) * (base.ndim - 2))
            as_seen_later = jnp.where(seen > 0, new_voice_state, jax.nn.relu(base + masked_drive))
            below = jnp.cumsum(new_voice_state, axis=1) - new_voice_state
            above = jnp.flip(jnp.cumsum(jnp.flip(as_seen_later, 1), axis=1), 1) - as_seen_later
            global_projected = None
            new_global_state = global_state
            if hierarchical:
                global_state = global_state * keep.reshape((-1,) + (1,) * (global_state.ndim - 1))
                global_projected = self.global_cell.project(global_state)
                new_global_state = self.global_cell(global_projected, new_voice_state)
            return (new_voice_state, new_global_state), (below + above, base, global_projected)

        final, entering = jax.lax.scan(body, initial, xs)
        return final, jax.tree.map(to_time_major, entering)

    def stream_readout(
        self, entering: tuple[Array, Array, Optional[Array]], frame: Array, voice: Array, own_drive: Array
    ) -> Array:
        """Per-example current step and readout from :meth:`stream`'s per-frame outputs (frame
        axis flattened to ``Bf``): example ``b`` is voice ``voice[b]`` at frame ``frame[b]`` and
        ``own_drive [B, ..., H]`` is its own channel's drive."""
        others, base, global_projected = entering
        num_voices = others.shape[1]
        row = frame * num_voices + voice
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        this_voice = jax.nn.relu(jnp.take(flat(base), row, axis=0) + own_drive)
        voice_sum = jnp.take(flat(others), row, axis=0) + this_voice
        if self._hierarchical:
            global_state = self.global_cell.from_sum(jnp.take(global_projected, frame, axis=0), voice_sum)
            return self.readout(this_voice, global_state)
        return self.readout(this_voice, voice_sum)

    def last_step(
        self,
        voice_state: Optional[Array],
        global_state: Optional[Array],
        frame: Array,
        voice: Array,
        current_flow: Array,
        drive: Array,
        idle_sum: Optional[Array] = None,
    ) -> Array:
        """The current step per example, from per-frame history states, then the readout.

        ``voice_state [Bf, V, ..., H]`` / ``global_state [Bf, ..., H]`` (None = all zeros) are
        per frame and unswapped; example ``b`` reads frame ``frame[b]`` with channels 0 and
        ``voice[b]`` exchanged.  ``current_flow [B, V, V]`` and ``drive [B, V, ..., H]`` are
        per example (swapped).
        """
        projected_global = None
        if global_state is not None:
            projected_global = jnp.take(self.global_cell.project(global_state), frame, axis=0)
        num_voices = drive.shape[1]
        permutation = _swap_permutation(voice, num_voices)
        # new[dst] = sum_src yf[src, dst] * swapped[src] with swapped[src] = state[perm[src]]
        # (perm is an involution) == sum_w yf[perm[w], dst] * state[w]: one 6x6 matrix each.
        mixing = jnp.take_along_axis(current_flow, permutation[:, :, None], axis=1)
        if voice_state is None:
            mixed_state = jnp.zeros_like(drive)
            mixed_projected = mixed_state
        else:
            # Project once per frame: examples outnumber frames.
            projected_frames = self.voice_cell.project(voice_state)
            mixed_projected = _mix_voices(mixing, jnp.take(projected_frames, frame, axis=0))
            mixed_state = _mix_voices(mixing, jnp.take(voice_state, frame, axis=0))  # DCE'd unless used
        new_voice_state = self.voice_cell(mixed_projected, drive, mixed_state)
        if self._hierarchical:
            new_global_state = self.global_cell(projected_global, new_voice_state, idle_sum)
            return self.readout(new_voice_state[:, 0], new_global_state)
        return self.readout(new_voice_state[:, 0], new_voice_state.sum(axis=1))


# ----------------------------------------------------------------------------------------------
# Coupled duration and notes networks


class CoupledDurationNet(nn.Module):
    """Duration network of the coupled models: 52 note-value logits."""

    config: MultiVoiceConfig

    def setup(self) -> None:
        cfg = self.config
        h = cfg.duration_hidden
        self.duration_embed = Embedding(cfg.num_durations, h, cfg.init_std)
        self.pitch_class_embed = PitchClassEmbedding(h, cfg.pitch_range, cfg.init_std, cfg.compute_dtype)
        self.location_embed = Embedding(cfg.num_locations, h, cfg.init_std)
        self.recurrence = CoupledRecurrence(
            cfg, h, cfg.num_note_values, cfg.num_note_values, distributed_pooling="projected"
        )

    def idle_state(self, loc: Array) -> Array:
        """State of an EMPTY channel with no incoming flow: ``relu(drive_EMPTY)``, ``[B, H]``."""
        empty = self.duration_embed(jnp.full((1,), EMPTY_INDEX, jnp.int32))
        return jax.nn.relu(empty + self.location_embed(loc))

    def history(self, e: Array, t: Array, f: Array, loc: Array, idle_voices: int = 0) -> tuple[Array, Optional[Array]]:
        """Per-frame history: ``e [Bf,C,V,M]``, ``t [Bf,C,V]``, ``f [Bf,C,V,V]``; ``loc [Bf]`` (the
        current frame's location at every step, as the paper) or ``[Bf, C]`` (each step's own)."""
        location = self.location_embed(loc)
        location = location[:, None, None] if loc.ndim == 1 else location[:, :, None]
        drive = self.duration_embed(t) + self.pitch_class_embed(e) + location
        if idle_voices and loc.ndim != 1:
            raise ValueError("idle channels can be left out only with one location per window")
        idle_sum = idle_voices * self.idle_state(loc) if idle_voices else None
        return self.recurrence.history(lambda k: (drive[:, k], None), f, e.shape[1], idle_sum=idle_sum)

    def stream(self, carry: tuple[Array, Optional[Array]], e: Array, t: Array, f: Array, loc: Array, reset: Array):
        """Full history (:meth:`CoupledRecurrence.stream`): ``e [B,T,V,M]``, ``t [B,T,V]``,
        ``f [B,T,V,V]``, ``loc [B,T]`` (each frame's own location class), ``reset [B,T]``."""
        location = self.location_embed(loc)[:, :, None]
        drive = self.duration_embed(t) + self.pitch_class_embed(e) + location
        # A hidden row (and the predicted voice's own row) carries only the location.
        inputs = (drive, location, _determined(t))
        return self.recurrence.stream(carry, inputs, lambda x: (x[0], None, x[1], x[2]), f, reset)

    def stream_readout(self, entering, frame: Array, voice: Array, loc: Array) -> Array:
        """Per-example logits ``[B, 52]`` from :meth:`stream`'s outputs (``loc [B]``)."""
        return self.recurrence.stream_readout(entering, frame, voice, self.location_embed(loc))

    def _current_drive(self, y: Array, yt: Array, loc: Array) -> Array:
        drive = self.duration_embed(yt) + self.pitch_class_embed(y)
        # Channel 0's duration and notes are what is being predicted.
        return drive.at[:, 0].set(0.0) + self.location_embed(loc)[:, None]

    def __call__(
        self, states: tuple[Array, Optional[Array]], frame: Array, voice: Array,
        y: Array, yt: Array, yf: Array, loc: Array, idle_voices: int = 0,
    ) -> Array:
        """Current step per example; ``loc [B]`` per example. Returns ``[B, 52]`` logits."""
        idle_sum = idle_voices * self.idle_state(loc) if idle_voices else None
        return self.recurrence.last_step(*states, frame, voice, yf, self._current_drive(y, yt, loc), idle_sum)


class CoupledNotesNet(nn.Module):
    """Notes network of the coupled models: 78 onset logits sharing weights over pitch."""

    config: MultiVoiceConfig

    def setup(self) -> None:
        cfg = self.config
        h, m = cfg.notes_hidden, cfg.pitch_range
        self.pitch_embedding = PitchEmbedding(h, cfg.pitch_embedding, m, cfg.init_std, cfg.compute_dtype)
        self.causal_pitch_embedding = CausalPitchEmbedding(h, m, cfg.init_std, cfg.compute_dtype)
        self.absolute_pitch = AbsolutePitch(h, m, cfg.init_std)
        self.duration_embed = Embedding(cfg.num_durations, h, cfg.init_std)
        self.recurrence = CoupledRecurrence(cfg, h, 1, m, distributed_pooling="raw")

    def idle_state(self) -> Array:
        """State of an EMPTY channel with no incoming flow: ``relu(drive_EMPTY)``, ``[M, H]``."""
        empty = self.duration_embed(jnp.full((1,), EMPTY_INDEX, jnp.int32))
        return jax.nn.relu(empty + self.absolute_pitch())

    def history(self, e: Array, t: Array, f: Array, idle_voices: int = 0) -> tuple[Array, Optional[Array]]:
        """Per-frame history: ``e [Bf,C,V,M]``, ``t [Bf,C,V]``, ``f [Bf,C,V,V]``."""
        relative = self.pitch_embedding.relative(e)  # [Bf, C, V, M, knote]: 8x smaller than H
        duration = self.duration_embed(t)
        absolute = self.absolute_pitch()

        def drive_at(k: int) -> tuple[Array, Array]:
            return duration[:, k, :, None] + absolute, relative[:, k]

        idle_sum = idle_voices * self.idle_state() if idle_voices else None
        return self.recurrence.history(drive_at, f, e.shape[1], self.pitch_embedding.projection, idle_sum)

    def stream(self, carry: tuple[Array, Optional[Array]], e: Array, t: Array, f: Array, reset: Array):
        """Full history (:meth:`CoupledRecurrence.stream`): ``e [B,T,V,M]``, ``t [B,T,V]``,
        ``f [B,T,V,V]``, ``reset [B,T]``."""
        absolute = self.absolute_pitch()
        inputs = (self.duration_embed(t), self.pitch_embedding.relative(e), _determined(t))
        return self.recurrence.stream(
            carry, inputs, lambda x: (x[0][:, :, None] + absolute, x[1], absolute, x[2]), f, reset,
            self.pitch_embedding.projection,
        )

    def stream_readout(self, entering, frame: Array, voice: Array, own_notes: Array, own_duration: Array) -> Array:
        """Per-example logits ``[B, 78]`` from :meth:`stream`'s outputs: the predicted voice sees
        its own lower onsets (``own_notes [B, M]``) and its duration (``own_duration [B]``)."""
        own = self.causal_pitch_embedding(own_notes) + self.duration_embed(own_duration)[:, None] + self.absolute_pitch()
        return self.recurrence.stream_readout(entering, frame, voice, own)

    def _current_drive(self, y: Array, yt: Array) -> Array:
        others = self.pitch_embedding(y[:, 1:])
        # The predicted voice sees only its own lower onsets (sampled low to high).
        own = self.causal_pitch_embedding(y[:, 0])[:, None]
        drive = jnp.concatenate([own, others], axis=1)
        return drive + self.duration_embed(yt)[:, :, None] + self.absolute_pitch()

    def __call__(
        self, states: tuple[Array, Optional[Array]], frame: Array, voice: Array,
        y: Array, yt: Array, yf: Array, idle_voices: int = 0,
    ) -> Array:
        """Current step per example. Returns ``[B, 78]`` logits."""
        idle_sum = idle_voices * self.idle_state() if idle_voices else None
        return self.recurrence.last_step(*states, frame, voice, yf, self._current_drive(y, yt), idle_sum)


# ----------------------------------------------------------------------------------------------
# Independent (single-voice) networks, exp. 8


class SingleVoiceCell(nn.Module):
    """``relu(state @ W + drive)``."""

    hidden: int
    init_std: float
    compute_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, state: Optional[Array], drive: Array) -> Array:
        recurrent = self.param("recurrent", _normal(self.init_std), (self.hidden, self.hidden))
        if state is None:
            return jax.nn.relu(drive)
        return jax.nn.relu(_matmul(state, recurrent, self.compute_dtype) + drive)


class IndependentDurationNet(nn.Module):
    """Exp. 8 duration net: an RNN over channel 0's C history frames (not the current one)."""

    config: MultiVoiceConfig

    def setup(self) -> None:
        cfg = self.config
        h = cfg.duration_hidden
        self.duration_embed = Embedding(cfg.num_durations, h, cfg.init_std)
        self.pitch_class_embed = PitchClassEmbedding(h, cfg.pitch_range, cfg.init_std, cfg.compute_dtype)
        self.location_embed = Embedding(cfg.num_locations, h, cfg.init_std)
        self.cell = SingleVoiceCell(h, cfg.init_std, cfg.compute_dtype)
        self.readout = Readout(
            h, cfg.num_note_values, cfg.num_note_values, cfg.init_std, hidden_layer=False,
            compute_dtype=cfg.compute_dtype,
        )

    def __call__(self, e0: Array, t0: Array, loc: Array) -> Array:
        """``e0 [B,C,M]``, ``t0 [B,C]``, ``loc [B]`` -> ``[B, 52]``."""
        drive = self.duration_embed(t0) + self.pitch_class_embed(e0) + self.location_embed(loc)[:, None]
        state = None
        for k in range(e0.shape[1]):
            state = self.cell(state, drive[:, k])
        return self.readout(state)


class IndependentNotesNet(nn.Module):
    """Exp. 8 notes net: per-pitch RNN over channel 0's C history frames plus the current one."""

    config: MultiVoiceConfig

    def setup(self) -> None:
        cfg = self.config
        h, m = cfg.notes_hidden, cfg.pitch_range
        self.pitch_embedding = PitchEmbedding(h, cfg.pitch_embedding, m, cfg.init_std, cfg.compute_dtype)
        self.causal_pitch_embedding = CausalPitchEmbedding(h, m, cfg.init_std, cfg.compute_dtype)
        self.absolute_pitch = AbsolutePitch(h, m, cfg.init_std)
        self.duration_embed = Embedding(cfg.num_durations, h, cfg.init_std)
        self.cell = SingleVoiceCell(h, cfg.init_std, cfg.compute_dtype)
        self.readout = Readout(h, 1, m, cfg.init_std, hidden_layer=False, compute_dtype=cfg.compute_dtype)

    def __call__(self, e0: Array, t0: Array, y0: Array, yt0: Array) -> Array:
        """``e0 [B,C,M]``, ``t0 [B,C]``, ``y0 [B,M]``, ``yt0 [B]`` -> ``[B, 78]``."""
        absolute = self.absolute_pitch()
        relative = self.pitch_embedding.relative(e0)
        duration = self.duration_embed(t0)
        state = None
        for k in range(e0.shape[1]):
            drive = self.pitch_embedding.project(relative[:, k]) + duration[:, k, None] + absolute
            state = self.cell(state, drive)
        drive = self.causal_pitch_embedding(y0) + self.duration_embed(yt0)[:, None] + absolute
        state = self.cell(state, drive)
        return self.readout(state)


# ----------------------------------------------------------------------------------------------
# Top-level model


def _check_per_example(inputs: Mapping[str, Array], cfg: MultiVoiceConfig) -> None:
    missing = [k for k in PER_EXAMPLE_KEYS if k not in inputs]
    if missing:
        raise KeyError(f"per-example inputs lack {missing}; expected keys {PER_EXAMPLE_KEYS}")
    v, m = cfg.num_voices, cfg.pitch_range
    b, c = inputs["e"].shape[:2]
    chex.assert_shape(inputs["e"], (b, c, v, m))
    chex.assert_shape(inputs["t"], (b, c, v))
    chex.assert_shape(inputs["f"], (b, c, v, v))
    chex.assert_shape(inputs["y"], (b, v, m))
    chex.assert_shape(inputs["yt"], (b, v))
    chex.assert_shape(inputs["yf"], (b, v, v))
    chex.assert_shape(inputs["loc"], (b,))


def _check_frame_shared(inputs: Mapping[str, Array], cfg: MultiVoiceConfig) -> None:
    missing = [k for k in FRAME_SHARED_KEYS if k not in inputs]
    if missing:
        raise KeyError(f"frame-shared inputs lack {missing}; expected keys {FRAME_SHARED_KEYS}")
    m = cfg.pitch_range
    bf, c, v = inputs["e"].shape[:3]
    b = inputs["frame"].shape[0]
    if v < cfg.num_voices and cfg.architecture != "hierarchical":
        raise ValueError("only hierarchical models accept inputs with idle channels left out")
    chex.assert_shape(inputs["e"], (bf, c, v, m))
    chex.assert_shape(inputs["t"], (bf, c, v))
    chex.assert_shape(inputs["f"], (bf, c, v, v))
    chex.assert_shape(inputs["loc"], (bf,))
    chex.assert_shape([inputs["frame"], inputs["voice"]], (b,))
    chex.assert_shape(inputs["y"], (b, v, m))
    chex.assert_shape(inputs["yt"], (b, v))
    chex.assert_shape(inputs["yf"], (b, v, v))


def _check_stream(inputs: Mapping[str, Array], cfg: MultiVoiceConfig) -> None:
    missing = [k for k in STREAM_KEYS if k not in inputs]
    if missing:
        raise KeyError(f"stream inputs lack {missing}; expected keys {STREAM_KEYS}")
    if cfg.architecture == "independent":
        raise ValueError("the independent architecture has no full-history mode")
    v, m = cfg.num_voices, cfg.pitch_range
    lanes, steps = inputs["e"].shape[:2]
    b = inputs["frame"].shape[0]
    chex.assert_shape(inputs["e"], (lanes, steps, v, m))
    chex.assert_shape([inputs["t"]], (lanes, steps, v))
    chex.assert_shape(inputs["f"], (lanes, steps, v, v))
    chex.assert_shape([inputs["loc"], inputs["reset"]], (lanes, steps))
    chex.assert_shape([inputs["frame"], inputs["voice"], inputs["own_duration"]], (b,))
    chex.assert_shape(inputs["own_notes"], (b, m))


def zero_carry(config: MultiVoiceConfig, lanes: int) -> dict[str, Any]:
    """States entering the first chunk of :meth:`MultiVoiceModel.stream` (all zero)."""
    v, m = config.num_voices, config.pitch_range
    hierarchical = config.architecture == "hierarchical"

    def states(*shape: int) -> tuple[Array, Optional[Array]]:
        return (jnp.zeros((lanes, v) + shape, jnp.float32),
                jnp.zeros((lanes,) + shape, jnp.float32) if hierarchical else None)

    return {"duration": states(config.duration_hidden), "notes": states(m, config.notes_hidden)}


class MultiVoiceModel(nn.Module):
    """Coupled (or independent) multi-voice model: ``(duration_logits [B,52], note_logits [B,78])``.

    Inputs are dicts of integer arrays (see :data:`PER_EXAMPLE_KEYS`/:data:`FRAME_SHARED_KEYS`):
    ``e`` onset bits, ``t`` duration vocabulary indices (0..54), ``f`` flows ``f[src, dst]``,
    ``y``/``yt``/``yf`` the current frame (``yt == -1``: masked row), ``loc`` location class.
    """

    config: MultiVoiceConfig = MultiVoiceConfig()

    def setup(self) -> None:
        if self.config.architecture == "independent":
            self.duration = IndependentDurationNet(self.config)
            self.notes = IndependentNotesNet(self.config)
        else:
            self.duration = CoupledDurationNet(self.config)
            self.notes = CoupledNotesNet(self.config)

    def __call__(self, inputs: Mapping[str, Array]) -> tuple[Array, Array]:
        """Per-example entry point: channel 0 of every tensor is the predicted voice."""
        _check_per_example(inputs, self.config)
        batch = inputs["e"].shape[0]
        shared = dict(inputs)
        shared["frame"] = jnp.arange(batch)
        shared["voice"] = jnp.zeros((batch,), jnp.int32)
        return self._forward(shared)

    def frame_shared(self, inputs: Mapping[str, Array]) -> tuple[Array, Array]:
        """Frame-shared entry point: history ``e,t,f,loc`` per frame (unswapped); ``frame``,
        ``voice``, ``y``, ``yt``, ``yf`` per example (``y/yt/yf`` already swapped).  An optional
        ``step_loc [Bf, C]`` gives every history step its own location (the full-history models'
        convention) instead of the current frame's.

        Hierarchical models also accept fewer than ``num_voices`` channels when every left-out
        (highest) channel is EMPTY throughout the window with no flow into it: such a channel's
        state is ``relu(drive_EMPTY)`` at every step, so it enters the global sum as a constant
        and its recurrence need not run (an exact saving for 2-5 voice music)."""
        _check_frame_shared(inputs, self.config)
        return self._forward(inputs)

    def stream(self, inputs: Mapping[str, Array], carry: Mapping[str, Any]) -> tuple[tuple[Array, Array], dict[str, Any]]:
        """Full-history entry point (SPEC §3.1): one chunk of ``T`` consecutive frames per lane.

        ``inputs`` (:data:`STREAM_KEYS`): ``e [L,T,V,M]``, ``t [L,T,V]``, ``f [L,T,V,V]``, ``loc
        [L,T]`` (each frame's own location class), ``reset [L,T]`` (1 where a stream starts: the
        states entering that frame are zero); per example ``frame [B]`` (``lane * T + step``),
        ``voice``, ``own_notes``, ``own_duration``.  ``carry``: the states after the previous chunk of every
        lane (:func:`zero_carry` at the start).  Returns the logits and the states after this chunk.
        An example at frame ``k`` of a score preceded by ``P`` START frames gets the logits of the
        windowed model with ``C = k + P`` whose history steps use their own frames' locations.
        """
        cfg = self.config
        _check_stream(inputs, cfg)
        e = inputs["e"].astype(jnp.float32)
        t = inputs["t"].astype(jnp.int32)
        f = inputs["f"].astype(jnp.float32)
        frame_loc = inputs["loc"].astype(jnp.int32)
        reset = inputs["reset"].astype(jnp.float32)
        frame = inputs["frame"].astype(jnp.int32)
        voice = inputs["voice"].astype(jnp.int32)
        own_notes = inputs["own_notes"].astype(jnp.float32)
        own_duration = inputs["own_duration"].astype(jnp.int32)
        loc = jnp.take(frame_loc.reshape(-1), frame, axis=0)
        flat = lambda x: None if x is None else x.reshape((-1,) + x.shape[2:])  # noqa: E731 - [L, T] -> [L*T]

        duration_carry, duration_entering = self.duration.stream(carry["duration"], e, t, f, frame_loc, reset)
        duration_logits = self.duration.stream_readout(tuple(map(flat, duration_entering)), frame, voice, loc)
        notes_carry, notes_entering = self.notes.stream(carry["notes"], e, t, f, reset)
        note_logits = self.notes.stream_readout(tuple(map(flat, notes_entering)), frame, voice, own_notes, own_duration)
        batch = frame.shape[0]
        chex.assert_shape(duration_logits, (batch, cfg.num_note_values))
        chex.assert_shape(note_logits, (batch, cfg.pitch_range))
        new_carry = {"duration": duration_carry, "notes": notes_carry}
        return (duration_logits.astype(jnp.float32), note_logits.astype(jnp.float32)), new_carry

    def advance(self, carry: Mapping[str, Any], frames: Mapping[str, Array]) -> dict[str, Any]:
        """The carried states after ``frames`` (``e [L,T,V,M]``, ``t``, ``f``, ``loc``, ``reset``
        as in :meth:`stream`) without any readout: what a sampler needs to move past a frame."""
        e, t, f = (frames[k].astype(jnp.float32 if k != "t" else jnp.int32) for k in ("e", "t", "f"))
        loc, reset = frames["loc"].astype(jnp.int32), frames["reset"].astype(jnp.float32)
        duration_carry, _ = self.duration.stream(carry["duration"], e, t, f, loc, reset)
        notes_carry, _ = self.notes.stream(carry["notes"], e, t, f, reset)
        return {"duration": duration_carry, "notes": notes_carry}

    def _forward(self, inputs: Mapping[str, Array]) -> tuple[Array, Array]:
        cfg = self.config
        e = inputs["e"].astype(jnp.float32)
        t = inputs["t"].astype(jnp.int32)
        f = inputs["f"].astype(jnp.float32)
        frame_loc = inputs["loc"].astype(jnp.int32)
        frame = inputs["frame"].astype(jnp.int32)
        voice = inputs["voice"].astype(jnp.int32)
        y = inputs["y"].astype(jnp.float32)
        yt = inputs["yt"].astype(jnp.int32)
        yf = inputs["yf"].astype(jnp.float32)
        loc = jnp.take(frame_loc, frame, axis=0)

        step_loc = inputs.get("step_loc")
        if cfg.architecture == "independent":
            # Channel 0 after the swap is channel `voice` of the frame.
            e0 = jnp.take_along_axis(jnp.take(e, frame, axis=0), voice[:, None, None, None], axis=2)[:, :, 0]
            t0 = jnp.take_along_axis(jnp.take(t, frame, axis=0), voice[:, None, None], axis=2)[:, :, 0]
            duration_logits = self.duration(e0, t0, loc)
            note_logits = self.notes(e0, t0, y[:, 0], yt[:, 0])
        else:
            idle = cfg.num_voices - e.shape[2]
            history_loc = frame_loc if step_loc is None else step_loc.astype(jnp.int32)
            duration_states = self.duration.history(e, t, f, history_loc, idle)
            duration_logits = self.duration(duration_states, frame, voice, y, yt, yf, loc, idle)
            notes_states = self.notes.history(e, t, f, idle)
            note_logits = self.notes(notes_states, frame, voice, y, yt, yf, idle)

        batch = y.shape[0]
        chex.assert_shape(duration_logits, (batch, cfg.num_note_values))
        chex.assert_shape(note_logits, (batch, cfg.pitch_range))
        return duration_logits.astype(jnp.float32), note_logits.astype(jnp.float32)
