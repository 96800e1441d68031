"""Harmonization: channel orders of a score (voicecomp.encoding.permute_channels)."""

from __future__ import annotations

import numpy as np
import pytest

from voicecomp import encoding
from voicecomp.data.humdrum import parse_kern

# Two spines; the second splits into two (a flow from channel 1 into channels 1 and 2) and merges back.
SPLIT = """**kern\t**kern
4c\t4g
*\t*^
4d\t4a\t4b
*\t*v\t*v
4e\t4cc
*-\t*-
"""


def test_permute_channels_moves_notes_durations_and_both_flow_axes():
    score = encoding.encode_score(parse_kern(SPLIT, default_instrument="voice"))
    order = [2, 0, 1, 3, 4, 5]  # new channel c holds old channel order[c]
    notes, durations, flows = encoding.permute_channels(score.notes, score.durations, score.flows, order)
    for c, old in enumerate(order):
        assert (notes[:, c] == score.notes[:, old]).all() and (durations[:, c] == score.durations[:, old]).all()
    # frame 1: old channel 1 flowed into old channels 1 and 2, i.e. new channel 2 into new channels 2 and 0
    assert score.flows[1, 1, 1] == score.flows[1, 1, 2] == 1
    assert flows[1, 2, 2] == flows[1, 2, 0] == 1 and flows[1].sum() == score.flows[1].sum()
    back = encoding.permute_channels(notes, durations, flows, np.argsort(order))
    for got, want in zip(back, (score.notes, score.durations, score.flows)):
        assert (got == want).all()


def test_permute_channels_keeps_leading_axes_and_rejects_non_permutations():
    score = encoding.encode_score(parse_kern(SPLIT, default_instrument="voice"))
    batch = [np.stack([x, x]) for x in (score.notes, score.durations, score.flows)]
    notes, durations, flows = encoding.permute_channels(*batch, [1, 0, 2, 3, 4, 5])
    assert notes.shape == batch[0].shape and (durations[1, :, 0] == score.durations[:, 1]).all()
    with pytest.raises(ValueError, match="not a permutation"):
        encoding.permute_channels(score.notes, score.durations, score.flows, [0, 0, 1, 2, 3, 4])
