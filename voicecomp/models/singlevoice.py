"""Single-voice models of Table 6 (SPEC §4; factorization (4) of Thickstun et al. 2019).

One Flax module holds two *disjoint* networks: a duration network (``params['duration']``,
52 note-value logits) and a notes network (``params['notes']``, 78 onset logits, the
logit of pitch n conditioned on the current event's onsets below n).  The paper trained
them separately; here they train together, but they share no parameters and their losses
are reported separately, so the result is the same.

Architectures (``duration_arch`` / ``notes_arch``):

* ``bias``: a learned constant.
* ``linear``: a linear classifier.  Notes: ``notes_pitch='absolute'`` (the paper's
  ``linn``: one classifier per pitch, weights over every history/current input) or
  ``'relative'`` (``lin``: one classifier shared across pitches, applied as a convolution
  over pitch to the history frames and as a causal convolution to the current frame's
  lower onsets; the duration inputs and the bias stay per pitch, as in the reference).
* ``fc``: one hidden layer (``hidden`` units, ReLU).  Relative notes: the hidden layer is a
  convolution over pitch (shared weights), the output a shared ``hidden -> 1`` map plus a
  per-pitch bias; absolute notes: shared hidden weights on the masked current frame and a
  per-pitch output layer (reference ``singlepart5``).
* ``cnn`` / ``cnn2``: a width-``conv_width`` convolution over the history steps
  (``cnn2``: followed by a width-``conv2_width`` one), flattened into the output layer.
* ``rnn``: a ReLU recurrence over the history steps (notes: over the history plus the
  current step, one state per pitch, relative weights).

Features (flags):

* ``duration_location`` / ``notes_location``: the 48-class location one-hot (``l``).
* ``notes_pitch_onehot``: the pitch one-hot ``1n`` (a learned per-pitch input; as in the
  reference, pitch 0's one-hot is zero).
* ``notes_current``: the current frame ``r+`` (its duration and the onsets below the
  predicted pitch); ``notes_history``: whether the notes network sees the history at all
  (the reference's absolute linear rows computed but never added the history terms).
* ``notes_embedding``: a learned ``embed_dim``-d relative pitch embedding of each history
  frame (``c``); ``duration_fold``: history onsets folded into 12 pitch classes (``f``).

Initial weights are N(0, init_scale^2) (0.01 in the paper; 0 for its linear rows).
Per-pitch (absolute) parameters of relative notes models are named ``abs_*`` so that
their transposition-equivariant part can be isolated.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from voicecomp.vocab import NUM_DURATIONS, NUM_LOCATIONS, NUM_NOTE_VALUES, PITCH_RANGE

Array = jax.Array

ARCHITECTURES = ("bias", "linear", "fc", "cnn", "cnn2", "rnn")
PITCH_MODES = ("absolute", "relative")
HISTORY_SOURCES = ("part", "frame")


@dataclasses.dataclass(frozen=True)
class SingleVoiceConfig:
    """Architecture and features of a single-voice model (plain types: JSON round trip)."""

    history: int = 10  # m: events (or frames) of history
    history_source: str = "part"  # part: r(m), the part's previous events; frame: r~(m)
    duration_arch: str = "linear"
    notes_arch: str = "linear"
    notes_pitch: str = "relative"  # absolute (linn) | relative (lin)
    duration_location: bool = False  # l
    duration_fold: bool = False  # f
    notes_location: bool = False
    notes_pitch_onehot: bool = False  # 1n
    notes_embedding: bool = False  # c
    notes_current: bool = True  # r+
    notes_history: bool = True
    hidden: int = 300
    embed_dim: int = 16
    conv_width: int = 5
    conv2_width: int = 3
    init_scale: float = 0.01
    pitch_range: int = PITCH_RANGE

    def __post_init__(self):
        for name in ("duration_arch", "notes_arch"):
            if getattr(self, name) not in ARCHITECTURES:
                raise ValueError(f"{name} must be one of {ARCHITECTURES}, got {getattr(self, name)!r}")
        if self.notes_pitch not in PITCH_MODES:
            raise ValueError(f"notes_pitch must be one of {PITCH_MODES}, got {self.notes_pitch!r}")
        if self.history_source not in HISTORY_SOURCES:
            raise ValueError(f"history_source must be one of {HISTORY_SOURCES}, got {self.history_source!r}")
        if self.notes_pitch == "absolute" and self.notes_arch not in ("bias", "linear", "fc"):
            raise ValueError("absolute-pitch notes models are bias, linear or fc")
        if self.history < 1:
            raise ValueError("history must be >= 1")
        for name, width in (("duration_arch", self.conv_width), ("notes_arch", self.conv_width)):
            arch = getattr(self, name)
            need = width + (self.conv2_width - 1 if arch == "cnn2" else 0)
            steps = self.history + (1 if name == "notes_arch" else 0)
            if arch in ("cnn", "cnn2") and steps < need:
                raise ValueError(f"{arch} needs at least {need} steps, history is {self.history}")

    def describe(self) -> str:
        hist = f"r{'~' if self.history_source == 'frame' else ''}({self.history})"
        dur = [self.duration_arch] + [f for f, on in (("l", self.duration_location), ("f", self.duration_fold)) if on]
        pitch = {"absolute": "linn", "relative": "lin"}[self.notes_pitch]
        notes = [self.notes_arch + (f"/{pitch}" if self.notes_arch != "bias" else "")]
        notes += [f for f, on in (("l", self.notes_location), ("1n", self.notes_pitch_onehot),
                                  ("c", self.notes_embedding), ("r+", self.notes_current)) if on]
        if not self.notes_history:
            notes.append("no history")
        return (f"single-voice {hist}: duration {' '.join(dur)}; notes {' '.join(notes)}; "
                f"hidden {self.hidden}")


# ---------------------------------------------------------------------------
# helpers


def _init(scale: float):
    return nn.initializers.normal(stddev=scale) if scale > 0 else nn.initializers.zeros


def pitch_class_fold(pitch_range: int) -> np.ndarray:
    """[M, 12] fixed fold: pitch n -> class n mod 12."""
    fold = np.zeros((pitch_range, 12), np.float32)
    fold[np.arange(pitch_range), np.arange(pitch_range) % 12] = 1
    return fold


def lower_mask(pitch_range: int) -> np.ndarray:
    """[M(n), M(p)]: 1 where p < n (the onsets already decided when predicting n)."""
    return np.tril(np.ones((pitch_range, pitch_range), np.float32), k=-1)


# Below this many Toeplitz entries (M * M * Cin * Cout) the pitch convolutions run as one
# matmul against the expanded Toeplitz matrix: no multiplications by zero padding, and a
# plain matrix product, several times faster on CPU than a wide convolution.
_TOEPLITZ_LIMIT = 1 << 25


def _toeplitz(kernel: Array) -> Array:
    """[M(p), M(n), Cin, Cout] with entry ``kernel[p - n + M - 1]``; kernel [2M-1, Cin, Cout].

    Built from slices and reshapes of a tiled kernel (no gather), so that its gradient is a
    sum of slices rather than a scatter-add, which is slow on CPU.
    """
    length = kernel.shape[0]
    m = (length + 1) // 2
    # With reversed = kernel[::-1], entry (p, n) is reversed[M-1-p+n]: row p of the tiled,
    # rotated copy reshaped to width L-1 starts at reversed[M-1-p] and runs up without wrapping.
    rotated = jnp.roll(kernel[::-1], -(m - 1), axis=0)
    tiled = jnp.concatenate([rotated] * m, axis=0)[: m * (length - 1)]
    return tiled.reshape((m, length - 1) + kernel.shape[1:])[:, :m]


def relative_conv(x: Array, kernel: Array) -> Array:
    """Convolution over pitch with every relative offset: x [B, M, Cin], kernel [2M-1, Cin, Cout].

    ``out[b, n, o] = sum_{d=-(M-1)}^{M-1} sum_c kernel[d + M - 1, c, o] * x[b, n + d, c]``
    (zero outside the window): one classifier shared by every pitch.
    """
    m = x.shape[1]
    if m * m * kernel.shape[1] * kernel.shape[2] <= _TOEPLITZ_LIMIT:
        return jnp.einsum("bpc,pnco->bno", x, _toeplitz(kernel))
    return jax.lax.conv_general_dilated(x, kernel, (1,), [(m - 1, m - 1)], dimension_numbers=("NWC", "WIO", "NWC"))


def causal_conv(y: Array, kernel: Array) -> Array:
    """Strictly-lower relative convolution: y [B, M, Cin], kernel [M-1, Cin, Cout].

    ``out[b, n, o] = sum_{d=1}^{M-1} kernel[M-1-d, c, o] * y[b, n - d, c]``: pitch n only
    sees onsets below it.
    """
    m = y.shape[1]
    if m * m * kernel.shape[1] * kernel.shape[2] <= _TOEPLITZ_LIMIT:
        # the full relative kernel with zero taps at offsets d <= 0
        full = jnp.concatenate([kernel, jnp.zeros((m,) + kernel.shape[1:], kernel.dtype)], axis=0)
        return jnp.einsum("bpc,pnco->bno", y, _toeplitz(full))
    out = jax.lax.conv_general_dilated(y, kernel, (1,), [(m - 1, 0)], dimension_numbers=("NWC", "WIO", "NWC"))
    return out[:, :m]


def time_conv(x: Array, kernel: Array) -> Array:
    """Valid convolution over the step axis: x [..., S, Cin], kernel [W, Cin, Cout]."""
    lead = x.shape[:-2]
    flat = x.reshape((-1,) + x.shape[-2:])
    out = jax.lax.conv_general_dilated(flat, kernel, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"))
    return out.reshape(lead + out.shape[-2:])


# ---------------------------------------------------------------------------
# networks


class DurationNet(nn.Module):
    """52 note-value logits from the history (and the location)."""

    config: SingleVoiceConfig

    def _param(self, name, shape):
        return self.param(name, _init(self.config.init_scale), shape)

    @nn.compact
    def __call__(self, e: Array, t: Array, loc: Array) -> Array:
        c = self.config
        batch = e.shape[0]
        out_bias = self._param("bias", (NUM_NOTE_VALUES,))
        if c.duration_arch == "bias":
            return jnp.broadcast_to(out_bias, (batch, NUM_NOTE_VALUES))
        t1h = jax.nn.one_hot(t, NUM_DURATIONS, dtype=jnp.float32)  # [B, m, 55]
        notes = e @ jnp.asarray(pitch_class_fold(c.pitch_range)) if c.duration_fold else e  # [B, m, 12|78]
        steps = jnp.concatenate([t1h, notes], axis=-1)  # [B, m, F]
        loc1h = jax.nn.one_hot(loc, NUM_LOCATIONS, dtype=jnp.float32) if c.duration_location else None
        width = NUM_NOTE_VALUES if c.duration_arch == "linear" else c.hidden

        def loc_term():
            return 0.0 if loc1h is None else loc1h @ self._param("w_loc", (NUM_LOCATIONS, width))

        if c.duration_arch in ("linear", "fc"):
            flat = steps.reshape(batch, -1)
            a = flat @ self._param("w_in", (flat.shape[-1], width)) + loc_term()
            if c.duration_arch == "linear":
                return a + out_bias
            h = jax.nn.relu(a)
        elif c.duration_arch in ("cnn", "cnn2"):
            z = time_conv(steps, self._param("w_conv", (c.conv_width, steps.shape[-1], c.hidden)))
            z = jax.nn.relu(z + (loc_term()[:, None, :] if loc1h is not None else 0.0))
            if c.duration_arch == "cnn2":
                z = jax.nn.relu(time_conv(z, self._param("w_conv2", (c.conv2_width, c.hidden, c.hidden))))
            h = z.reshape(batch, -1)
        else:  # rnn
            x = steps @ self._param("w_in", (steps.shape[-1], c.hidden)) + (loc_term()[:, None, :] if loc1h is not None else 0.0)
            w_h = self._param("w_h", (c.hidden, c.hidden))
            h = jnp.zeros((batch, c.hidden), x.dtype)
            for k in range(x.shape[1]):
                h = jax.nn.relu(h @ w_h + x[:, k])
        return h @ self._param("w_top", (h.shape[-1], NUM_NOTE_VALUES)) + out_bias


class NotesNet(nn.Module):
    """78 onset logits; the logit of pitch n sees the current onsets below n only."""

    config: SingleVoiceConfig

    def _param(self, name, shape):
        return self.param(name, _init(self.config.init_scale), shape)

    def _pitch_onehot(self, width: int) -> Array:
        # reference-compatible: a learned per-pitch input whose pitch-0 row is zero
        m = self.config.pitch_range
        w = self._param("abs_pitch", (m, width))
        return w * (jnp.arange(m) > 0)[:, None].astype(w.dtype)

    @nn.compact
    def __call__(self, e: Array, t: Array, loc: Array, y: Array, yt: Array) -> Array:
        c = self.config
        batch, m = e.shape[0], c.pitch_range
        bias_name = "bias" if c.notes_pitch == "absolute" else "abs_bias"
        out_bias = self._param(bias_name, (m,))
        if c.notes_arch == "bias":
            return jnp.broadcast_to(out_bias, (batch, m))
        if c.notes_pitch == "absolute":
            return self._absolute(e, t, loc, y, yt) + out_bias
        return self._relative(e, t, loc, y, yt) + out_bias

    # -- linn / fc absolute --------------------------------------------------------
    def _absolute(self, e, t, loc, y, yt):
        c = self.config
        batch, m = e.shape[0], c.pitch_range
        linear = c.notes_arch == "linear"
        width = m if linear else c.hidden  # linear: one output per pitch; fc: shared hidden
        a = jnp.zeros((batch, width), jnp.float32)
        if c.notes_history:
            flat = jnp.concatenate([jax.nn.one_hot(t, NUM_DURATIONS).reshape(batch, -1), e.reshape(batch, -1)], -1)
            a = a + flat @ self._param("w_hist", (flat.shape[-1], width))
        if c.notes_location:
            a = a + jax.nn.one_hot(loc, NUM_LOCATIONS) @ self._param("w_loc", (NUM_LOCATIONS, width))
        if c.notes_current:
            a = a + jax.nn.one_hot(yt, NUM_DURATIONS) @ self._param("w_yt", (NUM_DURATIONS, width))
        mask = jnp.asarray(lower_mask(m))
        if linear:
            if c.notes_current:  # per-pitch weights over the lower onsets: a masked [M, M] matrix
                a = a + y @ (self._param("w_y", (m, m)) * mask.T)
            if c.notes_pitch_onehot:
                a = a + self._pitch_onehot(1)[:, 0]
            return a
        pre = jnp.broadcast_to(a[:, None, :], (batch, m, c.hidden))
        if c.notes_current:  # shared hidden weights on the masked current frame of each pitch
            pre = pre + jnp.einsum("bp,np,pk->bnk", y, mask, self._param("w_y", (m, c.hidden)))
        if c.notes_pitch_onehot:
            pre = pre + self._pitch_onehot(c.hidden)
        return jnp.einsum("bnk,nk->bn", jax.nn.relu(pre), self._param("w_top", (m, c.hidden)))

    # -- relative (lin, fc, cnn, rnn) -------------------------------------------
    def _relative(self, e, t, loc, y, yt):
        c = self.config
        batch, m, hist = e.shape[0], c.pitch_range, e.shape[1]
        arch = c.notes_arch
        k = 1 if arch == "linear" else c.hidden
        t1h = jax.nn.one_hot(t, NUM_DURATIONS, dtype=jnp.float32)
        yt1h = jax.nn.one_hot(yt, NUM_DURATIONS, dtype=jnp.float32)

        if arch in ("linear", "fc"):
            # duration features: per pitch for the linear model (reference), shared for fc
            dur_width = m if arch == "linear" else k
            prefix = "abs_" if arch == "linear" else ""
            dur = jnp.zeros((batch, dur_width), jnp.float32)
            if c.notes_history:
                dur = dur + t1h.reshape(batch, -1) @ self._param(prefix + "w_t", (hist * NUM_DURATIONS, dur_width))
            if c.notes_current:
                dur = dur + yt1h @ self._param(prefix + "w_yt", (NUM_DURATIONS, dur_width))
            if c.notes_location:
                dur = dur + jax.nn.one_hot(loc, NUM_LOCATIONS) @ self._param(prefix + "w_loc", (NUM_LOCATIONS, dur_width))
            pre = dur[:, :, None] if arch == "linear" else jnp.broadcast_to(dur[:, None, :], (batch, m, k))
            if c.notes_history:
                pre = pre + self._history_pitch(e, k)
            if c.notes_current:
                pre = pre + causal_conv(y[:, :, None], self._param("w_y", (m - 1, 1, k)))
            if c.notes_pitch_onehot:
                pre = pre + self._pitch_onehot(k)
            if arch == "linear":
                return pre[..., 0]
            return (jax.nn.relu(pre) @ self._param("w_top", (k, 1)))[..., 0]

        # cnn / rnn: steps = history + current, each a [B, M, ch] pitch map
        steps_t = jnp.concatenate([t1h, yt1h[:, None]], axis=1)  # [B, S, 55]
        if not c.notes_current:
            steps_t = steps_t.at[:, -1].set(0.0)
        yc = y if c.notes_current else jnp.zeros_like(y)
        if arch in ("cnn", "cnn2"):
            ch = c.embed_dim
            emb = self._embed(e, ch)  # [B, m, M, ch]
            cur = causal_conv(yc[:, :, None], self._param("w_y", (m - 1, 1, ch)))[:, None]
            chords = jax.nn.relu(jnp.concatenate([emb, cur], axis=1))  # [B, S, M, ch]
            if not c.notes_history:
                chords = chords.at[:, :-1].set(0.0)
                steps_t = steps_t.at[:, :-1].set(0.0)
            chords = jnp.swapaxes(chords, 1, 2)  # [B, M, S, ch]
            z = time_conv(chords, self._param("w_conv", (c.conv_width, ch, k)))  # [B, M, R, k]
            z = z + time_conv(steps_t, self._param("w_conv_t", (c.conv_width, NUM_DURATIONS, k)))[:, None]
            if c.notes_location:
                z = z + (jax.nn.one_hot(loc, NUM_LOCATIONS) @ self._param("w_loc", (NUM_LOCATIONS, k)))[:, None, None]
            if c.notes_pitch_onehot:
                z = z + self._pitch_onehot(k)[None, :, None, :]
            z = jax.nn.relu(z)
            if arch == "cnn2":
                z = jax.nn.relu(time_conv(z, self._param("w_conv2", (c.conv2_width, k, k))))
            flat = z.reshape(batch, m, -1)
            return (flat @ self._param("w_top", (flat.shape[-1], 1)))[..., 0]

        # rnn: one state per pitch over the history steps and the current step.  Each step's
        # [B, M, k] input is computed from small per-step tensors inside the loop: slicing one
        # big [B, S, M, k] input instead makes every step's gradient a pad to the full size.
        xt = steps_t @ self._param("w_t", (NUM_DURATIONS, k))  # [B, S, k]
        if c.notes_embedding:
            emb = self._embed(e, c.embed_dim)  # [B, m, M, ch]
            w_emb = self._param("w_emb", (c.embed_dim, k))

            def history_input(s):
                return emb[:, s] @ w_emb
        else:
            toeplitz = _toeplitz(self._param("w_n", (2 * m - 1, 1, k)))

            def history_input(s):
                return jnp.einsum("bpc,pnco->bno", e[:, s, :, None], toeplitz)
        current_input = causal_conv(yc[:, :, None], self._param("w_y", (m - 1, 1, k)))  # [B, M, k]
        extra = 0.0
        if c.notes_pitch_onehot:
            extra = extra + self._pitch_onehot(k)[None]
        if c.notes_location:
            extra = extra + (jax.nn.one_hot(loc, NUM_LOCATIONS) @ self._param("w_loc", (NUM_LOCATIONS, k)))[:, None, :]
        w_h = self._param("w_h", (k, k))
        h = jnp.zeros((batch, m, k), jnp.float32)
        for s in range(hist + 1):
            if s < hist:
                x = (history_input(s) + xt[:, s, None, :]) if c.notes_history else 0.0
            else:
                x = current_input + xt[:, s, None, :]
            h = jax.nn.relu(h @ w_h + x + extra)
        return (h @ self._param("w_top", (k, 1)))[..., 0]

    def _history_pitch(self, e: Array, k: int) -> Array:
        """Relative-pitch history term [B, M, k] of the linear / fc models."""
        c = self.config
        m, hist = c.pitch_range, e.shape[1]
        if c.notes_embedding:  # c: embed each frame (embed_dim channels), then mix steps and channels
            emb = self._embed(e, c.embed_dim)  # [B, m, M, ch]
            return jnp.einsum("bsnc,sck->bnk", emb, self._param("w_emb", (hist, c.embed_dim, k)))
        # the history steps are the input channels of one relative convolution
        return relative_conv(jnp.swapaxes(e, 1, 2), self._param("w_n", (2 * m - 1, hist, k)))

    def _embed(self, e: Array, ch: int) -> Array:
        """Learned relative pitch embedding of every history frame: [B, m, M, ch]."""
        m = self.config.pitch_range
        kernel = self._param("w_embed", (2 * m - 1, 1, ch))
        batch, hist = e.shape[:2]
        out = relative_conv(e.reshape(batch * hist, m, 1), kernel)
        return out.reshape(batch, hist, m, ch)


class SingleVoiceModel(nn.Module):
    """Duration and notes networks side by side (disjoint parameter trees)."""

    config: SingleVoiceConfig

    def setup(self):
        self.duration = DurationNet(self.config)
        self.notes = NotesNet(self.config)

    def __call__(self, batch: Mapping[str, Array]) -> tuple[Array, Array]:
        e = jnp.asarray(batch["e"], jnp.float32)
        t = jnp.asarray(batch["t"], jnp.int32)
        loc = jnp.asarray(batch["loc"], jnp.int32)
        y = jnp.asarray(batch["y"], jnp.float32)
        yt = jnp.asarray(batch["yt"], jnp.int32)
        return self.duration(e, t, loc), self.notes(e, t, loc, y, yt)

    def duration_logits(self, batch):
        return self.duration(jnp.asarray(batch["e"], jnp.float32), jnp.asarray(batch["t"], jnp.int32),
                             jnp.asarray(batch["loc"], jnp.int32))

    def notes_logits(self, batch):
        return self.notes(jnp.asarray(batch["e"], jnp.float32), jnp.asarray(batch["t"], jnp.int32),
                          jnp.asarray(batch["loc"], jnp.int32), jnp.asarray(batch["y"], jnp.float32),
                          jnp.asarray(batch["yt"], jnp.int32))


__all__ = (
    "ARCHITECTURES",
    "DurationNet",
    "NotesNet",
    "SingleVoiceConfig",
    "SingleVoiceModel",
    "causal_conv",
    "lower_mask",
    "pitch_class_fold",
    "relative_conv",
)
