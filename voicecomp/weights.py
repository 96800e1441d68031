"""Import/export of reference (PyTorch notebook) weights as flax parameter pytrees.

The mapping is an explicit table: reference array name -> flax path, reference shape, layout
transform.  Convolution kernels are stored by the reference as ``(out, 1, taps)`` (or
``(out, 1, 1, taps)`` in exp. 8); flax keeps them as ``(taps, out)``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import numpy as np

from voicecomp.models.multivoice import MultiVoiceConfig

# Arrays a reference file may carry besides weights (vocabulary and window metadata).
METADATA_KEYS = frozenset(
    {"duration_numerator", "duration_denominator", "pitch_offset", "pitch_range", "history"}
)

_TRANSFORMS = ("matrix", "conv1d", "conv2d")


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One reference array and where it lives in the flax tree."""

    name: str
    path: tuple[str, ...]
    reference_shape: tuple[int, ...]
    transform: str = "matrix"  # matrix: same layout; conv1d: (out,1,taps); conv2d: (out,1,1,taps)

    @property
    def flax_shape(self) -> tuple[int, ...]:
        if self.transform == "matrix":
            return self.reference_shape
        return (self.reference_shape[-1], self.reference_shape[0])


def reference_layout(config: MultiVoiceConfig = MultiVoiceConfig()) -> list[ParamSpec]:
    """The reference arrays of ``config``'s architecture, in notebook order."""
    kt, kn, knote = config.duration_hidden, config.notes_hidden, config.pitch_embedding
    m, nd, nl, nv = config.pitch_range, config.num_durations, config.num_locations, config.num_note_values
    if config.architecture == "independent":
        d, n = ("duration",), ("notes",)
        return [
            ParamSpec("rhythm_wt", d + ("duration_embed", "embedding"), (nd, kt)),
            ParamSpec("rhythm_wn", d + ("pitch_class_embed", "embedding"), (12, kt)),
            ParamSpec("rhythm_wh", d + ("cell", "recurrent"), (kt, kt)),
            ParamSpec("rhythm_wloc", d + ("location_embed", "embedding"), (nl, kt)),
            ParamSpec("rhythm_wtop", d + ("readout", "output"), (kt, nv)),
            ParamSpec("rhythm_bias", d + ("readout", "bias"), (nv,)),
            ParamSpec("notes_wnote", n + ("pitch_embedding", "kernel"), (knote, 1, 1, 2 * m), "conv2d"),
            ParamSpec("notes_wn", n + ("pitch_embedding", "projection"), (knote, kn)),
            ParamSpec("notes_wyn", n + ("causal_pitch_embedding", "kernel"), (kn, 1, m - 1), "conv1d"),
            ParamSpec("notes_wt", n + ("duration_embed", "embedding"), (nd, kn)),
            ParamSpec("notes_wref", n + ("absolute_pitch", "kernel"), (kn, 1, m), "conv1d"),
            ParamSpec("notes_wh", n + ("cell", "recurrent"), (kn, kn)),
            ParamSpec("notes_wtop", n + ("readout", "output"), (kn, 1)),
            ParamSpec("notes_bias", n + ("readout", "bias"), (m,)),
        ]

    distributed = config.architecture == "distributed"
    d, n = ("duration",), ("notes",)
    dr, nr = d + ("recurrence",), n + ("recurrence",)
    specs = [
        ParamSpec("rhythmpart_wt", d + ("duration_embed", "embedding"), (nd, kt)),
        ParamSpec("rhythmpart_wn", d + ("pitch_class_embed", "embedding"), (12, kt)),
        ParamSpec("rhythmpart_wh", dr + ("voice_cell", "recurrent"), (kt, kt)),
    ]
    if distributed:
        specs.append(ParamSpec("rhythmpart_who", dr + ("voice_cell", "pooled"), (kt, kt)))
    else:
        specs += [
            ParamSpec("rhythm_wpart", dr + ("global_cell", "from_voices"), (kt, kt)),
            ParamSpec("rhythm_wh", dr + ("global_cell", "recurrent"), (kt, kt)),
        ]
    specs += [
        ParamSpec("rhythm_wloc", d + ("location_embed", "embedding"), (nl, kt)),
        ParamSpec("rhythm_wthis", dr + ("readout", "this_voice"), (kt, kt)),
        ParamSpec("rhythm_wall", dr + ("readout", "pooled"), (kt, kt)),
        ParamSpec("rhythm_wtop", dr + ("readout", "output"), (kt, nv)),
        ParamSpec("rhythm_bias", dr + ("readout", "bias"), (nv,)),
        ParamSpec("notespart_wnote", n + ("pitch_embedding", "kernel"), (knote, 1, 2 * m), "conv1d"),
        ParamSpec("notespart_wt", n + ("duration_embed", "embedding"), (nd, kn)),
        ParamSpec("notespart_wn", n + ("pitch_embedding", "projection"), (knote, kn)),
        ParamSpec("notespart_wyn", n + ("causal_pitch_embedding", "kernel"), (kn, 1, m - 1), "conv1d"),
        ParamSpec("notespart_wh", nr + ("voice_cell", "recurrent"), (kn, kn)),
    ]
    if distributed:
        specs.append(ParamSpec("notespart_who", nr + ("voice_cell", "pooled"), (kn, kn)))
    else:
        specs += [
            ParamSpec("notes_wpart", nr + ("global_cell", "from_voices"), (kn, kn)),
            ParamSpec("notes_wh", nr + ("global_cell", "recurrent"), (kn, kn)),
        ]
    specs += [
        ParamSpec("notes_wref", n + ("absolute_pitch", "kernel"), (kn, 1, m), "conv1d"),
        ParamSpec("notes_wthis", nr + ("readout", "this_voice"), (kn, kn)),
        ParamSpec("notes_wall", nr + ("readout", "pooled"), (kn, kn)),
        ParamSpec("notes_wtop", nr + ("readout", "output"), (kn, 1)),
        ParamSpec("notes_bias", nr + ("readout", "bias"), (m,)),
    ]
    return specs


def _to_flax(array: np.ndarray, spec: ParamSpec) -> np.ndarray:
    if spec.transform == "matrix":
        return array
    if spec.transform == "conv1d":
        return array[:, 0, :].T
    return array[:, 0, 0, :].T


def _to_reference(array: np.ndarray, spec: ParamSpec) -> np.ndarray:
    if spec.transform == "matrix":
        return array
    taps_out = array.T
    if spec.transform == "conv1d":
        return taps_out[:, None, :]
    return taps_out[:, None, None, :]


def params_from_reference(
    arrays: Mapping[str, Any],
    config: MultiVoiceConfig = MultiVoiceConfig(),
    *,
    allow_extra: bool = False,
) -> dict[str, Any]:
    """Reference arrays (name -> array) -> flax variables ``{'params': {...}}`` (float32).

    Raises ``KeyError`` on a missing array, ``ValueError`` on a mis-shaped one, and on an
    unexpected one unless ``allow_extra`` (metadata keys such as ``pitch_range`` are always
    accepted; ``pitch_range``, when present, must match the config).
    """
    specs = reference_layout(config)
    expected = {spec.name for spec in specs}
    missing = [spec.name for spec in specs if spec.name not in arrays]
    if missing:
        raise KeyError(
            f"reference weights lack {missing} needed by the {config.architecture!r} architecture"
        )
    extra = sorted(set(arrays) - expected - METADATA_KEYS)
    if extra and not allow_extra:
        raise ValueError(
            f"unexpected reference arrays {extra} for the {config.architecture!r} architecture"
        )
    if "pitch_range" in arrays and int(np.asarray(arrays["pitch_range"])) != config.pitch_range:
        raise ValueError(
            f"reference key 'pitch_range' = {int(np.asarray(arrays['pitch_range']))} "
            f"but config.pitch_range = {config.pitch_range}"
        )
    tree: dict[str, Any] = {}
    for spec in specs:
        array = np.asarray(arrays[spec.name])
        if array.shape != spec.reference_shape:
            raise ValueError(
                f"reference array {spec.name!r} has shape {array.shape}, expected {spec.reference_shape}"
            )
        node = tree
        for key in spec.path[:-1]:
            node = node.setdefault(key, {})
        node[spec.path[-1]] = np.ascontiguousarray(_to_flax(array, spec), dtype=np.float32)
    return {"params": tree}


def params_to_reference(
    variables: Mapping[str, Any], config: MultiVoiceConfig = MultiVoiceConfig()
) -> dict[str, np.ndarray]:
    """Flax variables (or a gradient pytree of the same structure) -> reference arrays.

    Accepts ``{'params': tree}`` or the bare ``tree``.  Raises ``KeyError`` naming the flax path
    of a missing leaf, ``ValueError`` on a mis-shaped leaf or an unmapped one.
    """
    tree = variables["params"] if "params" in variables else variables
    specs = reference_layout(config)
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        node: Any = tree
        for depth, key in enumerate(spec.path):
            if not isinstance(node, Mapping) or key not in node:
                raise KeyError(
                    f"flax params lack {'/'.join(spec.path[: depth + 1])} (reference {spec.name!r})"
                )
            node = node[key]
        array = np.asarray(node)
        if array.shape != spec.flax_shape:
            raise ValueError(
                f"flax param {'/'.join(spec.path)} has shape {array.shape}, expected {spec.flax_shape} "
                f"(reference {spec.name!r})"
            )
        out[spec.name] = np.ascontiguousarray(_to_reference(array, spec))
    mapped = {spec.path for spec in specs}
    unmapped = sorted("/".join(path) for path in _leaf_paths(tree) if path not in mapped)
    if unmapped:
        raise ValueError(f"flax params {unmapped} have no reference name")
    return out


def _leaf_paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            paths += _leaf_paths(value, prefix + (key,))
        else:
            paths.append(prefix + (key,))
    return paths


def load_reference_weights(
    path: str | os.PathLike[str], config: MultiVoiceConfig = MultiVoiceConfig()
) -> dict[str, Any]:
    """Loads an ``.npz`` of reference weights (e.g. ``multipart6_weights.npz``) as flax variables."""
    with np.load(path) as data:
        return params_from_reference({key: data[key] for key in data.files}, config)


def save_reference_weights(
    path: str | os.PathLike[str], variables: Mapping[str, Any], config: MultiVoiceConfig = MultiVoiceConfig()
) -> None:
    """Writes flax variables as an ``.npz`` in the reference layout."""
    np.savez(path, **params_to_reference(variables, config))
