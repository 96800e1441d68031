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

Unused channels (hierarchical models): a batch may leave out its highest channels when they are
alike (:class:`IdleChannels`); they are carried as one summed state, a channel driven by their
number times the drive (positive homogeneity of relu).  Windowed evaluation, streams and the
sampler all use this one mechanism; in a window clear of the START padding the idle channels
receive no flow and their state needs no recurrence.

Decoding (voicecomp.sample) goes through public methods of :class:`MultiVoiceModel`: the history
states (:meth:`~MultiVoiceModel.history`), the duration logits of the current step, the note logit
at one pitch given the predicted voice's lower onsets, and a per-pitch fast path that does the
work independent of those onsets once per voice.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from voicecomp import vocab

Array = jax.Array

ARCHITECTURES = ("hierarchical", "distributed", "independent")
HISTORY_MODES = ("window", "full")
PER_EXAMPLE_KEYS = ("e", "t", "f", "y", "yt", "yf", "loc")
FRAME_SHARED_KEYS = ("e", "t", "f", "loc", "frame", "voice", "y", "yt", "yf")
# Full-history chunks: frames ``e, t, f, loc, reset`` per lane and step ([L, T, ...]); examples
# ``frame`` (index into the L*T flattened frames), ``voice`` (its channel in that frame), and the
# voice's own ``own_notes`` [B, M] / ``own_duration`` [B] (vocabulary index), which the notes net
# sees causally.  The rest of the current frame is the frame itself.
STREAM_KEYS = ("e", "t", "f", "loc", "reset", "frame", "voice", "own_notes", "own_duration")
# Optional, where channels are left out (hierarchical models): the idle channels' duration token
# and self-flow per frame and step (see MultiVoiceModel).
IDLE_KEYS = ("idle_t", "idle_f")


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
    num_voices: int = vocab.MAX_VOICES
    pitch_range: int = vocab.PITCH_RANGE
    num_durations: int = vocab.NUM_DURATIONS
    num_locations: int = vocab.NUM_LOCATIONS
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
        if self.num_durations <= vocab.NUM_SPECIAL:
            raise ValueError(f"num_durations must exceed {vocab.NUM_SPECIAL}")

    @property
    def num_note_values(self) -> int:
        """Number of duration classes predicted (the vocabulary less CONT/EMPTY/START)."""
        return self.num_durations - vocab.NUM_SPECIAL

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
    return ((durations == vocab.CONT) | (durations == vocab.EMPTY)).astype(jnp.float32)


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

    def relative_at(self, onsets: Array, position: Array) -> Array:
        """:meth:`relative` at one pitch: ``[..., M]`` onset bits -> ``[..., channels]``."""
        m = self.pitch_range
        # rows src = 0..M-1 of the toeplitz column `position`: kernel[src - position + M]
        taps = jax.lax.dynamic_slice_in_dim(self.kernel, m - position, m, axis=0)
        return _matmul(onsets, taps, self.compute_dtype)

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

    def setup(self) -> None:
        self.kernel = self.param("kernel", _normal(self.init_std), (self.pitch_range - 1, self.features))

    def __call__(self, onsets: Array) -> Array:
        """``[..., M]`` onset bits -> ``[..., M, features]`` (position n sees the onsets below n)."""
        m = self.pitch_range
        source = np.arange(m)[:, None]
        target = np.arange(m)[None, :]
        taps = np.clip(source - target + m - 1, 0, m - 2)
        strictly_lower = jnp.asarray((source < target)[..., None], jnp.float32)
        toeplitz = jnp.take(self.kernel, taps, axis=0) * strictly_lower
        out = _matmul(onsets, toeplitz.reshape(m, m * self.features), self.compute_dtype)
        return out.reshape(*onsets.shape[:-1], m, self.features)

    def at(self, onsets: Array, position: Array) -> Array:
        """The embedding at one pitch: ``[..., M]`` onset bits -> ``[..., features]``."""
        m = self.pitch_range
        # rows src = 0..M-1 of the toeplitz column `position`: kernel[src - position + M - 1]
        # below the position, zero from it on
        padded = jnp.concatenate([self.kernel, jnp.zeros((m, self.features), self.kernel.dtype)], axis=0)
        taps = jax.lax.dynamic_slice_in_dim(padded, m - 1 - position, m, axis=0)
        return _matmul(onsets, taps, self.compute_dtype)


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
        :class:`IdleChannels`)."""
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
    def __call__(self, this_voice: Array, pooled: Optional[Array] = None, position: Optional[Array] = None) -> Array:
        """Logits ``[..., out_features]`` (``[...]`` where ``out_features == 1``); ``position``: the
        states are those of one pitch, which takes its own entry of the bias."""
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
        if position is not None:
            bias = jax.lax.dynamic_index_in_dim(bias, position, axis=0, keepdims=False)
        return logits + bias


class IdleChannels(NamedTuple):
    """Channels left out of a batch (hierarchical models): ``n`` alike channels summed into one.

    Alike: at every step the same duration token, no notes, no flow to or from the given
    channels and a common self-flow.  Their states are then equal, and since a voice update
    ``relu(f * W h + drive)`` is positively homogeneous, their sum is the state of ONE channel
    driven by ``n * drive``: the sum is what the global state sees.

    ``drive_at(k)``: their summed drive at step ``k`` (``[B, ..., H]`` or broadcastable);
    ``flow [B, K]``: their self-flow at every step (None: none, the state is ``relu(drive)``).
    """

    drive_at: Callable[[int], Array]
    flow: Optional[Array]


def _split_states(states: Sequence[Any]) -> tuple[Optional[Array], Optional[Array], Optional[Array]]:
    """``(voice_state, global_state[, idle_state])`` -> the three (idle None where absent)."""
    voice_state, global_state, *idle = states
    return voice_state, global_state, (idle[0] if idle else None)


def _join_states(voice_state: Array, global_state: Optional[Array], idle_state: Optional[Array]) -> tuple:
    return (voice_state, global_state) if idle_state is None else (voice_state, global_state, idle_state)


class CoupledRecurrence(nn.Module):
    """Voice + global (hierarchical) or pooled (distributed) recurrence and readout.

    State layout: ``voice_state [B, V, ..., H]``, ``global_state [B, ..., H]``; the ``...`` axes
    (pitch, in the notes net) are independent positions sharing the weights.  Where channels are
    left out (:class:`IdleChannels`) the states carry a third entry, their summed ``idle_state
    [B, ..., H]``: ``states = (voice_state, global_state[, idle_state])``.
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

    def idle_step(self, idle_state: Optional[Array], drive: Array, flow: Optional[Array]) -> Array:
        """The idle channels' summed state after one step: ``relu(flow * idle_state @ W + drive)``.

        ``drive`` already counts every idle channel; ``flow [B]`` (None: no flow).  Where no
        example has flow into them (every window clear of the START padding) the recurrent
        matmul is skipped (a real branch outside ``vmap``)."""
        if idle_state is None or flow is None:
            return jax.nn.relu(drive)
        shape = jnp.broadcast_shapes(idle_state.shape, drive.shape)
        flow = flow.astype(jnp.float32).reshape(flow.shape + (1,) * (idle_state.ndim - 1))
        # Read the kernel here: flax must not create parameters inside JAX control flow.
        kernel = self.voice_cell.recurrent

        def carried(state: Array) -> Array:
            return jax.nn.relu(flow * _matmul(state, kernel, self.config.compute_dtype) + drive)

        def fresh(state: Array) -> Array:
            return jnp.broadcast_to(jax.nn.relu(drive), shape)

        return jax.lax.cond(jnp.any(flow != 0), carried, fresh, idle_state)

    def history(
        self,
        drive_at: Callable[[int], tuple[Array, Optional[Array]]],
        flows: Array,
        num_steps: int,
        input_kernel: Optional[Array] = None,
        idle: Optional[IdleChannels] = None,
    ) -> tuple:
        """Runs the history steps ``0..num_steps-1`` from zero states.

        ``drive_at(k)`` gives step ``k``'s input as ``(drive [B, V, ..., H], features)``: the
        drive is added as is, ``features [B, V, ..., F]`` (or None) go through ``input_kernel
        [F, H]`` fused with the recurrent matmul.  ``flows [B, C, V, V]``.  ``idle``: channels
        left out (:class:`IdleChannels`, ``num_steps + 1`` steps: the last is the current frame).
        Returns ``(voice_state, global_state)`` (``global_state`` None while never updated), plus
        with ``idle`` the idle channels' summed state at the current frame (it does not depend on
        the example: idle channels are never predicted), ``[B, ..., H]`` or, where it is the same
        for every frame, ``[..., H]``.
        A python loop over the static steps: under jit on CPU it was as fast as ``lax.scan``
        forward and faster forward+backward (bench notes in experiments/bench_model.py).
        """
        voice_state: Optional[Array] = None
        global_state: Optional[Array] = None
        idle_state: Optional[Array] = None
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
            if idle is not None:
                flow = None if idle.flow is None else idle.flow[:, k]
                idle_state = self.idle_step(idle_state, idle.drive_at(k), flow)
            if self._hierarchical and k >= self.config.global_start:
                global_state = self.global_cell.step(global_state, voice_state, idle_state)
        assert voice_state is not None
        if idle is None:
            return voice_state, global_state
        current = self.idle_step(idle_state, idle.drive_at(num_steps),
                                 None if idle.flow is None else idle.flow[:, num_steps])
        return voice_state, global_state, current

    def stream(
        self,
        initial: tuple,
        inputs: Any,
        drive_of: Callable[[Any], tuple[Array, Optional[Array], Array, Array]],
        flows: Array,
        reset: Array,
        input_kernel: Optional[Array] = None,
        idle: Optional[tuple[Array, Array]] = None,
    ) -> tuple[tuple, tuple[Array, Array, Optional[Array]]]:
        """Full-history recurrence (SPEC §3.1): one step per frame, states carried from ``initial``.

        ``inputs`` is a pytree whose leaves are ``[B, T, ...]``; ``drive_of(inputs_at_step)`` gives
        ``(drive, features, masked_drive, determined)``: the frame's drive and fused features as in
        :meth:`history`, the drive of a channel whose row is hidden from an example (``[..., H]``,
        broadcast over channels) and ``determined [B, V]``, channels every example of the frame sees
        (CONT, EMPTY).  ``flows [B, T, V, V]``; ``reset [B, T]`` zeroes the states entering a step
        (a new score's stream begins there).  ``initial`` = ``(voice_state [B, V, ..., H],
        global_state [B, ..., H] or None[, idle_state [B, ..., H]])``; ``idle`` = ``(drive [B, T,
        ..., H], flow [B, T])`` of the channels left out (:class:`IdleChannels`; hierarchical).

        Returns the states after the last step and, per step, what :meth:`stream_readout` needs,
        all ``[B, T, ...]``.  The example of voice ``v`` at a frame sees channels below ``v``
        complete, channel ``v`` only through its own drive, and later channels complete only where
        determined: every channel but ``v`` has the new state of the frame's own step or the state
        of a hidden row, and those do not depend on the example.  So the step returns
        ``others [B, V, ..., H]`` (for each ``v``, the sum of the other channels' new states as
        the example of ``v`` sees them, idle channels included), ``base [B, V, ..., H]`` (each
        channel's pre-activation without its drive) and the projected global state: the
        per-example work is one channel.
        """
        hierarchical = self._hierarchical
        raw_needed = self.config.architecture == "distributed"
        to_time_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        xs = jax.tree.map(to_time_major, (inputs, flows, reset, idle))

        def body(carry, x):
            voice_state, global_state, idle_state = _split_states(carry)
            step_inputs, flow, step_reset, step_idle = x
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
            others = below + above
            new_idle_state = None
            if step_idle is not None:
                idle_state = idle_state * keep.reshape((-1,) + (1,) * (idle_state.ndim - 1))
                new_idle_state = self.idle_step(idle_state, *step_idle)
                others = others + new_idle_state[:, None]
            global_projected = None
            new_global_state = global_state
            if hierarchical:
                global_state = global_state * keep.reshape((-1,) + (1,) * (global_state.ndim - 1))
                global_projected = self.global_cell.project(global_state)
                new_global_state = self.global_cell(global_projected, new_voice_state, new_idle_state)
            new_carry = _join_states(new_voice_state, new_global_state, new_idle_state)
            return new_carry, (others, base, global_projected)

        final, entering = jax.lax.scan(body, tuple(initial), xs)
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
        states: Sequence[Any],
        frame: Array,
        voice: Array,
        current_flow: Array,
        drive: Array,
        position: Optional[Array] = None,
    ) -> Array:
        """The current step per example, from per-frame history states, then the readout.

        ``states`` (:meth:`history`'s) are per frame and unswapped (a None voice or global state:
        all zeros); example ``b`` reads frame ``frame[b]`` with channels 0 and ``voice[b]``
        exchanged.  ``current_flow [B, V, V]`` and ``drive [B, V, ..., H]`` are per example
        (swapped).  ``position``: the states are sliced at this one pitch (its bias).
        """
        voice_state, global_state, idle_state = _split_states(states)
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
            idle_sum = idle_state
            if idle_state is not None and idle_state.ndim == drive.ndim - 1:  # per frame
                idle_sum = jnp.take(idle_state, frame, axis=0)
            new_global_state = self.global_cell(projected_global, new_voice_state, idle_sum)
            return self.readout(new_voice_state[:, 0], new_global_state, position)
        return self.readout(new_voice_state[:, 0], new_voice_state.sum(axis=1), position)

    # -- decoding: one example per frame row, channels in the frame's own (unswapped) order

    def current_base(self, states: Sequence[Any], current_flow: Array) -> tuple:
        """What the current step adds to every channel's drive, per frame: ``(base [B, V, ..., H],
        projected_global [B, ..., H] or None, idle_state)``.  ``base`` is the flow-mixed projected
        state (plus the distributed pooled term), ``current_flow [B, V, V]`` unswapped: swapping
        channels 0 and the predicted voice commutes with the step, so decoding stays unswapped."""
        voice_state, global_state, idle_state = _split_states(states)
        mixed_projected = _mix_voices(current_flow, self.voice_cell.project(voice_state))
        mixed_state = _mix_voices(current_flow, voice_state)  # DCE'd unless the pooling reads it
        base = self.voice_cell.base(mixed_projected, mixed_state)
        projected_global = None if global_state is None else self.global_cell.project(global_state)
        return base, projected_global, idle_state

    def pitch_readout(
        self, own_pre_activation: Array, others: Array, projected_global: Optional[Array], position: Array
    ) -> Array:
        """The logit ``[B]`` at pitch ``position`` from the predicted voice's pre-activation there
        (``[B, H]``), the other channels' summed new states (``[B, H]``, idle ones included) and
        the projected global state at that pitch (``[B, H]`` or None: zero)."""
        this_voice = jax.nn.relu(own_pre_activation)
        voice_sum = others + this_voice
        if self._hierarchical:
            return self.readout(this_voice, self.global_cell.from_sum(projected_global, voice_sum), position)
        return self.readout(this_voice, voice_sum, position)


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

    def _idle_drive(self, count: int, token: Optional[Array], location: Array) -> Array:
        """Summed drive of ``count`` idle channels: no notes, duration ``token`` (None: EMPTY)."""
        if token is None:
            token = jnp.full((1,), vocab.EMPTY, jnp.int32)
        return count * (self.duration_embed(token) + location)

    def history(self, e: Array, t: Array, f: Array, loc: Array, step_loc: Optional[Array] = None,
                idle_t: Optional[Array] = None, idle_f: Optional[Array] = None) -> tuple:
        """Per-frame history: ``e [Bf,C,W,M]``, ``t [Bf,C,W]``, ``f [Bf,C,W,W]``; ``loc [Bf]`` the
        current frame's location class, also every history step's (as the paper) unless
        ``step_loc [Bf, C]`` gives each step its own.  ``W < V``: the channels left out are idle
        (:class:`IdleChannels`), with tokens ``idle_t`` and self-flows ``idle_f`` ``[Bf, C+1]``
        (history steps, then the current frame; None: EMPTY, no flow)."""
        location = self.location_embed(loc)
        step_location = location[:, None] if step_loc is None else self.location_embed(step_loc)
        drive = self.duration_embed(t) + self.pitch_class_embed(e) + step_location[:, :, None]
        num_steps, count = e.shape[1], self.config.num_voices - e.shape[2]
        idle = None
        if count:
            def idle_drive_at(k: int) -> Array:  # k == num_steps: the current frame
                token = None if idle_t is None else idle_t[:, k]
                here = location if k == num_steps or step_loc is None else step_location[:, k]
                return self._idle_drive(count, token, here)

            idle = IdleChannels(idle_drive_at, idle_f)
        return self.recurrence.history(lambda k: (drive[:, k], None), f, num_steps, idle=idle)

    def stream(self, carry: tuple, e: Array, t: Array, f: Array, loc: Array, reset: Array,
               idle_t: Optional[Array] = None, idle_f: Optional[Array] = None):
        """Full history (:meth:`CoupledRecurrence.stream`): ``e [B,T,W,M]``, ``t [B,T,W]``,
        ``f [B,T,W,W]``, ``loc [B,T]`` (each frame's own location class), ``reset [B,T]``;
        ``W < V``: idle channels with tokens ``idle_t`` and self-flows ``idle_f`` ``[B, T]``."""
        location = self.location_embed(loc)[:, :, None]
        drive = self.duration_embed(t) + self.pitch_class_embed(e) + location
        # A hidden row (and the predicted voice's own row) carries only the location.
        inputs = (drive, location, _determined(t))
        count = self.config.num_voices - e.shape[2]
        idle = (self._idle_drive(count, idle_t, location[:, :, 0]), idle_f) if count else None
        return self.recurrence.stream(carry, inputs, lambda x: (x[0], None, x[1], x[2]), f, reset, idle=idle)

    def stream_readout(self, entering, frame: Array, voice: Array, loc: Array) -> Array:
        """Per-example logits ``[B, 52]`` from :meth:`stream`'s outputs (``loc [B]``)."""
        return self.recurrence.stream_readout(entering, frame, voice, self.location_embed(loc))

    def _current_drive(self, y: Array, yt: Array, loc: Array) -> Array:
        drive = self.duration_embed(yt) + self.pitch_class_embed(y)
        # Channel 0's duration and notes are what is being predicted.
        return drive.at[:, 0].set(0.0) + self.location_embed(loc)[:, None]

    def __call__(self, states: tuple, frame: Array, voice: Array, y: Array, yt: Array, yf: Array, loc: Array) -> Array:
        """Current step per example (``y, yt, yf`` swapped; ``loc [B]``). Returns ``[B, 52]`` logits."""
        return self.recurrence.last_step(states, frame, voice, yf, self._current_drive(y, yt, loc))


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

    def _idle_drive(self, count: int, token: Optional[Array]) -> Array:
        """Summed drive ``[..., M, H]`` of ``count`` idle channels: no notes, duration ``token``
        (``[...]``; None: EMPTY)."""
        if token is None:
            return count * (self.duration_embed(jnp.asarray(vocab.EMPTY, jnp.int32)) + self.absolute_pitch())
        return count * (self.duration_embed(token)[..., None, :] + self.absolute_pitch())

    def history(self, e: Array, t: Array, f: Array, idle_t: Optional[Array] = None,
                idle_f: Optional[Array] = None) -> tuple:
        """Per-frame history: ``e [Bf,C,W,M]``, ``t [Bf,C,W]``, ``f [Bf,C,W,W]``; idle channels as
        in :meth:`CoupledDurationNet.history`."""
        relative = self.pitch_embedding.relative(e)  # [Bf, C, W, M, knote]: 8x smaller than H
        duration = self.duration_embed(t)
        absolute = self.absolute_pitch()

        def drive_at(k: int) -> tuple[Array, Array]:
            return duration[:, k, :, None] + absolute, relative[:, k]

        count = self.config.num_voices - e.shape[2]
        idle = None
        if count:
            idle = IdleChannels(lambda k: self._idle_drive(count, None if idle_t is None else idle_t[:, k]), idle_f)
        return self.recurrence.history(drive_at, f, e.shape[1], self.pitch_embedding.projection, idle)

    def stream(self, carry: tuple, e: Array, t: Array, f: Array, reset: Array,
               idle_t: Optional[Array] = None, idle_f: Optional[Array] = None):
        """Full history (:meth:`CoupledRecurrence.stream`): ``e [B,T,W,M]``, ``t [B,T,W]``,
        ``f [B,T,W,W]``, ``reset [B,T]``; idle channels as in :meth:`CoupledDurationNet.stream`."""
        absolute = self.absolute_pitch()
        inputs = (self.duration_embed(t), self.pitch_embedding.relative(e), _determined(t))
        count = self.config.num_voices - e.shape[2]
        idle = None
        if count:
            token = jnp.full(reset.shape, vocab.EMPTY, jnp.int32) if idle_t is None else idle_t
            idle = (self._idle_drive(count, token), idle_f)
        return self.recurrence.stream(
            carry, inputs, lambda x: (x[0][:, :, None] + absolute, x[1], absolute, x[2]), f, reset,
            self.pitch_embedding.projection, idle,
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

    def __call__(self, states: tuple, frame: Array, voice: Array, y: Array, yt: Array, yf: Array) -> Array:
        """Current step per example (``y, yt, yf`` swapped). Returns ``[B, 78]`` logits."""
        return self.recurrence.last_step(states, frame, voice, yf, self._current_drive(y, yt))

    # -- decoding (one example per frame row; see MultiVoiceModel's decoding methods)

    def logit_at(self, states: tuple, y: Array, yt: Array, yf: Array, voice: Array, onsets: Array,
                 position: Array) -> Array:
        """The current step at one pitch: ``[B]`` logits of pitch ``position`` (swapped rows; the
        predicted voice's ``onsets [B, M]`` below ``position`` are what it sees of itself)."""
        own = self.causal_pitch_embedding.at(onsets, position)[:, None]
        others = self.pitch_embedding.project(self.pitch_embedding.relative_at(y[:, 1:], position))
        absolute = jax.lax.dynamic_index_in_dim(self.absolute_pitch(), position, axis=0, keepdims=False)
        drive = jnp.concatenate([own, others], axis=1) + self.duration_embed(yt) + absolute
        at_pitch = [None if s is None else jax.lax.dynamic_slice_in_dim(s, position, 1, axis=s.ndim - 2)
                    for s in states]
        frame = jnp.arange(y.shape[0])
        return self.recurrence.last_step(at_pitch, frame, voice, yf, drive[:, :, None], position)[:, 0]

    def voice_context(self, frame_context: tuple, embedded: Array, yt: Array, voice: Array) -> tuple:
        """Everything of the current step but the predicted voice's own onsets, per pitch:
        ``(own [B, M, H], others [B, M, H], projected_global [B, M, H] or None)`` -- the voice's
        pre-activation without its onsets, the other channels' summed new states (idle included)."""
        base, projected_global, idle_state = frame_context
        duration = self.duration_embed(yt)  # [B, W, H]; a masked row (-1) embeds to zero
        absolute = self.absolute_pitch()
        new_states = jax.nn.relu(base + (embedded + duration[:, :, None] + absolute))
        voice = jnp.broadcast_to(voice, base.shape[:1])
        is_voice = (jnp.arange(base.shape[1])[None, :] == voice[:, None])[:, :, None, None]
        others = jnp.where(is_voice, 0.0, new_states).sum(axis=1)
        if idle_state is not None:
            others = others + idle_state
        pick = lambda x: jnp.take_along_axis(x, voice.reshape((-1,) + (1,) * (x.ndim - 1)), axis=1)[:, 0]  # noqa: E731
        own = pick(base) + pick(duration)[:, None] + absolute
        return own, others, projected_global

    def fast_logit(self, voice_context: tuple, onsets: Array, position: Array) -> Array:
        """``[B]`` logits of pitch ``position`` from :meth:`voice_context` and the predicted voice's
        onsets below it (``onsets [B, M]``): one pitch of the step, no other channel recomputed."""
        own, others, projected_global = voice_context
        at = lambda x: jax.lax.dynamic_index_in_dim(x, position, axis=1, keepdims=False)  # noqa: E731
        pre_activation = at(own) + self.causal_pitch_embedding.at(onsets, position)
        return self.recurrence.pitch_readout(pre_activation, at(others),
                                             None if projected_global is None else at(projected_global), position)


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


def _check_channels(width: int, inputs: Mapping[str, Array], cfg: MultiVoiceConfig, steps: Sequence[int]) -> None:
    """``width`` channels given: fewer than ``num_voices`` only for hierarchical models, with the
    optional idle inputs ``idle_t``/``idle_f`` shaped ``steps``."""
    if width > cfg.num_voices:
        raise ValueError(f"inputs have {width} channels, the model {cfg.num_voices}")
    given = [k for k in IDLE_KEYS if k in inputs]
    if width == cfg.num_voices and given:
        raise ValueError(f"{given}: idle-channel inputs with every channel given")
    if width < cfg.num_voices and cfg.architecture != "hierarchical":
        raise ValueError("only hierarchical models accept inputs with idle channels left out")
    for key in given:
        chex.assert_shape(inputs[key], tuple(steps))


def _check_per_example(inputs: Mapping[str, Array], cfg: MultiVoiceConfig) -> None:
    missing = [k for k in PER_EXAMPLE_KEYS if k not in inputs]
    if missing:
        raise KeyError(f"per-example inputs lack {missing}; expected keys {PER_EXAMPLE_KEYS}")
    m = cfg.pitch_range
    b, c, v = inputs["e"].shape[:3]
    _check_channels(v, inputs, cfg, (b, c + 1))
    chex.assert_shape(inputs["e"], (b, c, v, m))
    chex.assert_shape(inputs["t"], (b, c, v))
    chex.assert_shape(inputs["f"], (b, c, v, v))
    chex.assert_shape(inputs["y"], (b, v, m))
    chex.assert_shape(inputs["yt"], (b, v))
    chex.assert_shape(inputs["yf"], (b, v, v))
    chex.assert_shape(inputs["loc"], (b,))


def _check_history(frames: Mapping[str, Array], cfg: MultiVoiceConfig) -> None:
    if cfg.architecture == "independent":
        raise ValueError("the independent architecture has no coupled history states")
    m = cfg.pitch_range
    bf, c, v = frames["e"].shape[:3]
    _check_channels(v, frames, cfg, (bf, c + 1))
    chex.assert_shape(frames["e"], (bf, c, v, m))
    chex.assert_shape(frames["t"], (bf, c, v))
    chex.assert_shape(frames["f"], (bf, c, v, v))
    chex.assert_shape(frames["loc"], (bf,))
    if "step_loc" in frames:
        chex.assert_shape(frames["step_loc"], (bf, c))


def _check_frame_shared(inputs: Mapping[str, Array], cfg: MultiVoiceConfig) -> None:
    missing = [k for k in FRAME_SHARED_KEYS if k not in inputs]
    if missing:
        raise KeyError(f"frame-shared inputs lack {missing}; expected keys {FRAME_SHARED_KEYS}")
    m = cfg.pitch_range
    bf, c, v = inputs["e"].shape[:3]
    b = inputs["frame"].shape[0]
    _check_channels(v, inputs, cfg, (bf, c + 1))
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
    m = cfg.pitch_range
    lanes, steps, v = inputs["e"].shape[:3]
    b = inputs["frame"].shape[0]
    _check_channels(v, inputs, cfg, (lanes, steps))
    chex.assert_shape(inputs["e"], (lanes, steps, v, m))
    chex.assert_shape([inputs["t"]], (lanes, steps, v))
    chex.assert_shape(inputs["f"], (lanes, steps, v, v))
    chex.assert_shape([inputs["loc"], inputs["reset"]], (lanes, steps))
    chex.assert_shape([inputs["frame"], inputs["voice"], inputs["own_duration"]], (b,))
    chex.assert_shape(inputs["own_notes"], (b, m))


def _check_rows(y: Array, yt: Array, yf: Array, cfg: MultiVoiceConfig) -> tuple[int, int]:
    """A decoding step's current frame, one example per frame row: ``y [B, W, M]``, ``yt [B, W]``,
    ``yf [B, W, W]``.  Returns ``(B, W)``."""
    b, w = yt.shape
    chex.assert_shape(y, (b, w, cfg.pitch_range))
    chex.assert_shape(yf, (b, w, w))
    return b, w


def _swap_rows(voice: Array, y: Array, yt: Array, yf: Array) -> tuple[Array, Array, Array]:
    """Rows ``[B, W, ...]`` of the frame with channels 0 and ``voice [B]`` exchanged (flows on
    both axes): the per-example convention of the training examples (SPEC §1.4)."""
    perm = _swap_permutation(voice, yt.shape[1])
    ys = jnp.take_along_axis(y, perm[:, :, None], axis=1)
    yts = jnp.take_along_axis(yt, perm, axis=1)
    yfs = jnp.take_along_axis(jnp.take_along_axis(yf, perm[:, :, None], axis=1), perm[:, None, :], axis=2)
    return ys, yts, yfs


def zero_carry(config: MultiVoiceConfig, lanes: int, channels: Optional[int] = None) -> dict[str, Any]:
    """States entering the first chunk of :meth:`MultiVoiceModel.stream` (all zero), for streams
    of ``channels`` given channels (default all; fewer: the idle channels' summed state too)."""
    v, m = config.num_voices, config.pitch_range
    width = v if channels is None else channels
    hierarchical = config.architecture == "hierarchical"

    def states(*shape: int) -> tuple:
        global_state = jnp.zeros((lanes,) + shape, jnp.float32) if hierarchical else None
        idle_state = jnp.zeros((lanes,) + shape, jnp.float32) if width < v else None
        return _join_states(jnp.zeros((lanes, width) + shape, jnp.float32), global_state, idle_state)

    return {"duration": states(config.duration_hidden), "notes": states(m, config.notes_hidden)}


class MultiVoiceModel(nn.Module):
    """Coupled (or independent) multi-voice model: ``(duration_logits [B,52], note_logits [B,78])``.

    Inputs are dicts of integer arrays (see :data:`PER_EXAMPLE_KEYS`/:data:`FRAME_SHARED_KEYS`):
    ``e`` onset bits, ``t`` duration vocabulary indices (0..54), ``f`` flows ``f[src, dst]``,
    ``y``/``yt``/``yf`` the current frame (``yt == -1``: masked row), ``loc`` location class.

    Idle channels (hierarchical models, every entry point): inputs may give ``W < num_voices``
    channels; the channels ``W..V-1`` left out must be alike (:class:`IdleChannels`: same token,
    no notes, no flow to or from the given channels, a common self-flow) and are carried as one
    summed state.  Their tokens and self-flows are the optional :data:`IDLE_KEYS`, per frame and
    step (windows: ``[Bf, C+1]``, the history steps then the current frame; streams: ``[L, T]``);
    without them they are EMPTY and receive no flow, which holds in every window clear of the
    START padding (their state is then ``relu(n * drive_EMPTY)``, no recurrence runs).

    Decoding methods (the sampler's, through ``apply(..., method=...)``) take the current frame
    as the frame has it, one example per frame row (row ``b`` of the states is example ``b``),
    channels unswapped, and the predicted channel ``voice`` (``[B]`` or a scalar).
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
        convention) instead of the current frame's; idle channels as in the class docstring."""
        _check_frame_shared(inputs, self.config)
        return self._forward(inputs)

    def history(self, frames: Mapping[str, Array]) -> dict[str, tuple]:
        """Per-frame history states of both nets, ``{"duration": states, "notes": states}`` with
        ``states = (voice_state [Bf, W, ..., H], global_state [Bf, ..., H] or None[, idle_state])``
        (the notes net's ``...`` is the pitch axis).  ``frames``: ``e [Bf,C,W,M]``, ``t [Bf,C,W]``,
        ``f [Bf,C,W,W]``, ``loc [Bf]`` (the current frame's location class, also every history
        step's unless ``step_loc [Bf, C]``), optional :data:`IDLE_KEYS` ``[Bf, C+1]``."""
        _check_history(frames, self.config)
        e = frames["e"].astype(jnp.float32)
        t = frames["t"].astype(jnp.int32)
        f = frames["f"].astype(jnp.float32)
        loc = frames["loc"].astype(jnp.int32)
        step_loc = frames.get("step_loc")
        step_loc = None if step_loc is None else step_loc.astype(jnp.int32)
        idle_t, idle_f = _idle_inputs(frames)
        return {"duration": self.duration.history(e, t, f, loc, step_loc, idle_t, idle_f),
                "notes": self.notes.history(e, t, f, idle_t, idle_f)}

    def stream(self, inputs: Mapping[str, Array], carry: Mapping[str, Any]) -> tuple[tuple[Array, Array], dict[str, Any]]:
        """Full-history entry point (SPEC §3.1): one chunk of ``T`` consecutive frames per lane.

        ``inputs`` (:data:`STREAM_KEYS`): ``e [L,T,V,M]``, ``t [L,T,V]``, ``f [L,T,V,V]``, ``loc
        [L,T]`` (each frame's own location class), ``reset [L,T]`` (1 where a stream starts: the
        states entering that frame are zero); per example ``frame [B]`` (``lane * T + step``),
        ``voice``, ``own_notes``, ``own_duration``; idle channels (``W < V``, optional
        :data:`IDLE_KEYS` ``[L, T]``) as in the class docstring.  ``carry``: the states after the
        previous chunk of every lane (:func:`zero_carry` at the start).  Returns the logits and
        the states after this chunk.
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
        idle_t, idle_f = _idle_inputs(inputs)
        loc = jnp.take(frame_loc.reshape(-1), frame, axis=0)
        flat = lambda x: None if x is None else x.reshape((-1,) + x.shape[2:])  # noqa: E731 - [L, T] -> [L*T]

        duration_carry, duration_entering = self.duration.stream(carry["duration"], e, t, f, frame_loc, reset,
                                                                 idle_t, idle_f)
        duration_logits = self.duration.stream_readout(tuple(map(flat, duration_entering)), frame, voice, loc)
        notes_carry, notes_entering = self.notes.stream(carry["notes"], e, t, f, reset, idle_t, idle_f)
        note_logits = self.notes.stream_readout(tuple(map(flat, notes_entering)), frame, voice, own_notes, own_duration)
        batch = frame.shape[0]
        chex.assert_shape(duration_logits, (batch, cfg.num_note_values))
        chex.assert_shape(note_logits, (batch, cfg.pitch_range))
        new_carry = {"duration": duration_carry, "notes": notes_carry}
        return (duration_logits.astype(jnp.float32), note_logits.astype(jnp.float32)), new_carry

    def advance(self, carry: Mapping[str, Any], frames: Mapping[str, Array]) -> dict[str, Any]:
        """The carried states after ``frames`` (``e [L,T,W,M]``, ``t``, ``f``, ``loc``, ``reset``
        and the optional idle inputs as in :meth:`stream`) without any readout: what a sampler
        needs to move past a frame."""
        e, t, f = (frames[k].astype(jnp.float32 if k != "t" else jnp.int32) for k in ("e", "t", "f"))
        loc, reset = frames["loc"].astype(jnp.int32), frames["reset"].astype(jnp.float32)
        idle_t, idle_f = _idle_inputs(frames)
        duration_carry, _ = self.duration.stream(carry["duration"], e, t, f, loc, reset, idle_t, idle_f)
        notes_carry, _ = self.notes.stream(carry["notes"], e, t, f, reset, idle_t, idle_f)
        return {"duration": duration_carry, "notes": notes_carry}

    # -- decoding (one example per frame row, channels unswapped; see the class docstring)

    def duration_logits(self, states: Mapping[str, tuple], y: Array, yt: Array, yf: Array, voice: Array,
                        loc: Array) -> Array:
        """``[B, 52]`` note-value logits of channel ``voice`` at the current frame ``y [B, W, M]``,
        ``yt [B, W]``, ``yf [B, W, W]`` (the voice's row masked: ``yt`` -1); ``loc [B]``;
        ``states``: :meth:`history`'s (or :meth:`stream`'s carry)."""
        b, _ = _check_rows(y, yt, yf, self.config)
        chex.assert_shape(loc, (b,))
        voice = jnp.broadcast_to(jnp.asarray(voice, jnp.int32), (b,))
        ys, yts, yfs = _swap_rows(voice, y.astype(jnp.float32), yt.astype(jnp.int32), yf.astype(jnp.float32))
        logits = self.duration(states["duration"], jnp.arange(b), voice, ys, yts, yfs, loc.astype(jnp.int32))
        chex.assert_shape(logits, (b, self.config.num_note_values))
        return logits.astype(jnp.float32)

    def note_logit_at(self, states: Mapping[str, tuple], y: Array, yt: Array, yf: Array, voice: Array,
                      onsets: Array, position: Array) -> Array:
        """``[B]`` logits of pitch ``position`` for channel ``voice``, which has the duration in
        ``yt`` and the ``onsets [B, M]`` below ``position`` (its row of ``y`` is not read): the
        current step at one pitch, any coupled model.  :meth:`note_logit_fast` is the same number
        with the work that does not depend on the voice's own onsets done once per voice."""
        b, _ = _check_rows(y, yt, yf, self.config)
        chex.assert_shape(onsets, (b, self.config.pitch_range))
        voice = jnp.broadcast_to(jnp.asarray(voice, jnp.int32), (b,))
        ys, yts, yfs = _swap_rows(voice, y.astype(jnp.float32), yt.astype(jnp.int32), yf.astype(jnp.float32))
        logits = self.notes.logit_at(states["notes"], ys, yts, yfs, voice, onsets.astype(jnp.float32), position)
        chex.assert_shape(logits, (b,))
        return logits

    def notes_frame_context(self, states: Mapping[str, tuple], yf: Array) -> tuple:
        """Per frame, the notes net's current step before any drive: ``(base [B, W, M, H],
        projected_global [B, M, H] or None, idle_state [B, M, H] or None)`` for the current flow
        ``yf [B, W, W]`` (unswapped).  Input of :meth:`notes_voice_context`."""
        b, w = yf.shape[:2]
        chex.assert_shape(yf, (b, w, w))
        context = self.notes.recurrence.current_base(states["notes"], yf.astype(jnp.float32))
        chex.assert_shape(context[0], (b, w, self.config.pitch_range, self.config.notes_hidden))
        return context

    def notes_row_embedding(self, rows: Array) -> Array:
        """Relative-pitch embedding ``[B, K, M, H]`` of frame rows ``[B, K, M]`` (a zero row
        embeds to zero): the notes net's drive from the current frame's notes."""
        chex.assert_rank(rows, 3)
        return self.notes.pitch_embedding(rows.astype(jnp.float32))

    def notes_voice_context(self, frame_context: tuple, embedded: Array, yt: Array, voice: Array) -> tuple:
        """Per voice: ``(own [B, M, H], others [B, M, H], projected_global)`` -- everything of the
        current step at every pitch but channel ``voice``'s own onsets.  ``embedded [B, W, M, H]``:
        :meth:`notes_row_embedding` of the frame's rows as the voice sees them (later onsets
        zero), ``yt [B, W]`` with the voice's duration.  Input of :meth:`note_logit_fast`."""
        b, w = yt.shape
        chex.assert_shape(embedded, (b, w, self.config.pitch_range, self.config.notes_hidden))
        chex.assert_equal_shape([embedded, frame_context[0]])
        return self.notes.voice_context(frame_context, embedded, yt.astype(jnp.int32), voice)

    def note_logit_fast(self, voice_context: tuple, onsets: Array, position: Array) -> Array:
        """``[B]`` logits of pitch ``position`` from :meth:`notes_voice_context` and the voice's
        ``onsets [B, M]`` below it: what :meth:`note_logit_at` gives, one pitch of one channel's
        work (the sampler's pitch loop)."""
        chex.assert_shape(onsets, (voice_context[0].shape[0], self.config.pitch_range))
        return self.notes.fast_logit(voice_context, onsets.astype(jnp.float32), position)

    def _forward(self, inputs: Mapping[str, Array]) -> tuple[Array, Array]:
        cfg = self.config
        frame = inputs["frame"].astype(jnp.int32)
        voice = inputs["voice"].astype(jnp.int32)
        y = inputs["y"].astype(jnp.float32)
        yt = inputs["yt"].astype(jnp.int32)
        yf = inputs["yf"].astype(jnp.float32)
        loc = jnp.take(inputs["loc"].astype(jnp.int32), frame, axis=0)

        if cfg.architecture == "independent":
            e = inputs["e"].astype(jnp.float32)
            t = inputs["t"].astype(jnp.int32)
            # Channel 0 after the swap is channel `voice` of the frame.
            e0 = jnp.take_along_axis(jnp.take(e, frame, axis=0), voice[:, None, None, None], axis=2)[:, :, 0]
            t0 = jnp.take_along_axis(jnp.take(t, frame, axis=0), voice[:, None, None], axis=2)[:, :, 0]
            duration_logits = self.duration(e0, t0, loc)
            note_logits = self.notes(e0, t0, y[:, 0], yt[:, 0])
        else:
            states = self.history(inputs)
            duration_logits = self.duration(states["duration"], frame, voice, y, yt, yf, loc)
            note_logits = self.notes(states["notes"], frame, voice, y, yt, yf)

        batch = y.shape[0]
        chex.assert_shape(duration_logits, (batch, cfg.num_note_values))
        chex.assert_shape(note_logits, (batch, cfg.pitch_range))
        return duration_logits.astype(jnp.float32), note_logits.astype(jnp.float32)


def _idle_inputs(inputs: Mapping[str, Array]) -> tuple[Optional[Array], Optional[Array]]:
    """The optional idle-channel tokens (int32) and self-flows (float32) of a batch."""
    idle_t, idle_f = (inputs.get(k) for k in IDLE_KEYS)
    return (None if idle_t is None else idle_t.astype(jnp.int32),
            None if idle_f is None else idle_f.astype(jnp.float32))
