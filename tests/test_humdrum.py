"""Unit tests of the ``**kern`` parser on hand-written snippets, one rule of SPEC §1.2 at a time."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from voicecomp.data.humdrum import (
    CONT_TICKS,
    EMPTY_TICKS,
    MAX_VOICES,
    TICKS_PER_QUARTER,
    KernParseError,
    KernScore,
    parse_kern,
)

Q = TICKS_PER_QUARTER


def ticks(quarters) -> int:
    """Quarter notes (int, str or Fraction) -> exact ticks."""
    value = Fraction(quarters) * Q
    assert value.denominator == 1
    return int(value)


def kern(*rows) -> str:
    """Rows are strings or token lists (joined with TABs); one record per line."""
    return "".join(("\t".join(r) if isinstance(r, (list, tuple)) else r) + "\n" for r in rows)


def parse(*rows, **kwargs) -> KernScore:
    return parse_kern(kern(*rows), "test.krn", **kwargs)


def parse_error(*rows, **kwargs) -> KernParseError:
    with pytest.raises(KernParseError) as info:
        parse(*rows, **kwargs)
    err = info.value
    assert err.filename == "test.krn"
    assert "test.krn" in str(err)
    assert str(err).startswith(f"test.krn:{err.line}:")
    return err


def flow_pairs(score: KernScore, frame: int) -> set[tuple[int, int]]:
    return {(int(s), int(d)) for s, d in zip(*np.nonzero(score.flows[frame]))}


def identity_pairs(channels: int) -> set[tuple[int, int]]:
    return {(c, c) for c in range(channels)}


def onsets(score: KernScore) -> list[tuple[int, int, int]]:
    """(frame, channel, midi) triples of the onset bits, sorted."""
    return sorted(zip(score.note_frame.tolist(), score.note_channel.tolist(), score.note_pitch.tolist()))


def durations(score: KernScore) -> list[list[int]]:
    return score.durations.tolist()


def row(*values) -> list[int]:
    """A durations row: given channels, the rest unused."""
    return list(values) + [EMPTY_TICKS] * (MAX_VOICES - len(values))


SOP = '*I"Soprano'
ALTO = '*I"Alto'


# --------------------------------------------------------------------------- basic shape


def test_minimal_score_values():
    score = parse("**kern", SOP, "4c", "8d", "8e", "2f")
    assert isinstance(score, KernScore)
    assert score.name == "test.krn"
    assert score.num_frames == 4
    assert durations(score) == [row(ticks(1)), row(ticks("1/2")), row(ticks("1/2")), row(ticks(2))]
    assert onsets(score) == [(0, 0, 60), (1, 0, 62), (2, 0, 64), (3, 0, 65)]
    assert score.durations.dtype == np.int64 and score.durations.shape == (4, MAX_VOICES)
    assert score.flows.shape == (4, MAX_VOICES, MAX_VOICES)
    bits = score.onset_bits()
    assert bits.shape == (4, MAX_VOICES, 128)
    assert bits.sum() == 4 and bits[0, 0, 60] and bits[3, 0, 65]
    assert score.part_names == ("Soprano",)
    assert score.event_onset.tolist() == [0, ticks(1), ticks("3/2"), ticks(2)]
    assert score.event_duration.tolist() == [ticks(1), ticks("1/2"), ticks("1/2"), ticks(2)]
    assert score.pickup == 0
    np.testing.assert_allclose(score.reference_durations[:, 0], [1.0, 0.5, 0.5, 2.0])


def test_empty_text_gives_empty_score():
    score = parse_kern("", "empty.krn")
    assert score.num_frames == 0
    assert score.durations.shape == (0, MAX_VOICES)
    assert score.flows.shape == (0, MAX_VOICES, MAX_VOICES)
    assert score.part_names == ()


# --------------------------------------------------------------------------- line kinds


def test_comments_and_reference_records_are_ignored():
    plain = parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["=1", "=1"], ["2d", "2f"], ["*-", "*-"])
    commented = parse(
        "!!!COM: Bach, Johann Sebastian",
        "!!!OTL: Test",
        ["**kern", "**kern"],
        "!! a global comment with\tany\tnumber\tof tabs",
        [SOP, ALTO],
        ["!", "! local comment"],
        ["4c", "4e"],
        "!",
        ["=1", "=1"],
        ["2d", "2f"],
        ["*-", "*-"],
        "!!!ENC: someone",
    )
    assert durations(commented) == durations(plain) == [row(ticks(1), ticks(1)), row(ticks(2), ticks(2))]
    assert onsets(commented) == onsets(plain) == [(0, 0, 60), (0, 1, 64), (1, 0, 62), (1, 1, 65)]
    np.testing.assert_array_equal(commented.flows, plain.flows)
    assert commented.pickup == plain.pickup == ticks(1)


def test_blank_line_is_an_error_at_its_line():
    err = parse_error("**kern", SOP, "4c", "", "4d")
    assert err.line == 4
    assert "blank" in err.reason


def test_blank_line_inside_comments_is_still_an_error():
    err = parse_error("!!!COM: x", "", "**kern", SOP, "4c")
    assert err.line == 2


def test_crlf_line_endings_parse_like_lf():
    text = kern(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["4d", "4f"])
    a = parse_kern(text, "a.krn")
    b = parse_kern(text.replace("\n", "\r\n"), "a.krn")
    assert durations(a) == durations(b)
    assert onsets(a) == onsets(b)


def test_missing_final_newline_is_fine():
    score = parse_kern("**kern\n*I\"Soprano\n4c\n4d", "x.krn")
    assert score.num_frames == 2


def test_token_count_must_match_spine_count():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], "4d")
    assert err.line == 4


def test_interpretation_record_cannot_mix_token_types():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["*", "4e"])
    assert err.line == 3


def test_barline_record_cannot_mix_token_types():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["=1", "4f"])
    assert err.line == 4


# --------------------------------------------------------------------------- exclusive interpretations


@pytest.mark.parametrize("name,token", [("dynam", "p"), ("text", "Ky-"), ("silbe", "ri")])
def test_accepted_exclusive_interpretations(name, token):
    score = parse(["**kern", f"**{name}"], [SOP, "*"], ["4c", token], ["4d", "."])
    assert durations(score) == [row(ticks(1)), row(ticks(1))]
    assert onsets(score) == [(0, 0, 60), (1, 0, 62)]


def test_accepted_kern_exclusive_interpretation():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4g"])
    assert durations(score) == [row(ticks(1), ticks(1))]
    assert onsets(score) == [(0, 0, 60), (0, 1, 67)]


@pytest.mark.parametrize("name", ["mens", "recip", "Bnum", "harm", "KERN", "kern2", "fb"])
def test_other_exclusive_interpretations_are_errors(name):
    err = parse_error("!! header", ["**kern", f"**{name}"], [SOP, "*"], ["4c", "x"])
    assert err.line == 2
    assert "exclusive" in err.reason


def test_exclusive_interpretation_cannot_be_redefined():
    err = parse_error("**kern", SOP, "4c", "**kern", "4d")
    assert err.line == 4


def test_exclusive_and_tandem_cannot_mix():
    err = parse_error(["**kern", "*clefG2"])
    assert err.line == 1
    # a null "*" is fine beside an exclusive interpretation
    assert parse(["**kern", "*"], [SOP, "*"], ["4c", "x"]).num_frames == 1
    err = parse_error(["**kern", "**kern"], [SOP, "**kern"])
    assert err.line == 2


def test_only_kern_spines_carry_notes():
    # Non-kern spines hold anything (even note-like tokens) and take no channel.
    score = parse(
        ["**dynam", "**kern", "**text", "**kern"],
        ["*", SOP, "*", ALTO],
        ["4c", "4ee", "8G", "4g"],
        ["garbage", "8dd", "ly", "4f"],
        [".", "8cc", "ric", "."],
    )
    assert durations(score) == [
        row(ticks(1), ticks(1)),
        row(ticks("1/2"), ticks(1)),
        row(ticks("1/2"), CONT_TICKS),
    ]
    assert onsets(score) == [(0, 0, 76), (0, 1, 67), (1, 0, 74), (1, 1, 65), (2, 0, 72)]
    assert score.part_names == ("Soprano", "Alto")


def test_non_kern_spines_need_no_instrument():
    score = parse(["**kern", "**dynam"], [SOP, "*"], ["4c", "f"])
    assert score.num_frames == 1


def test_six_kern_spines_are_accepted():
    score = parse(["**kern"] * 6, ["*"] * 6, ["4c"] * 6, default_instrument="voice")
    assert durations(score) == [[ticks(1)] * 6]
    assert score.flows[0].tolist() == np.eye(6, dtype=int).tolist()


def test_more_than_six_kern_spines_is_an_error():
    # Reference-compatible: the count is checked at the start of every record, so the
    # error is reported at the first record after the one that makes the 7th kern spine.
    err = parse_error(["**kern"] * 7, ["*"] * 7, ["4c"] * 7, default_instrument="voice")
    assert err.line == 2
    assert "7" in err.reason


def test_more_than_six_kern_spines_by_a_split_is_an_error():
    err = parse_error(
        ["**kern"] * 6, ["*"] * 6, ["4c"] * 6, ["*^"] + ["*"] * 5, ["4c"] * 7, default_instrument="voice"
    )
    assert err.line == 5


def test_seven_spines_with_six_kern_are_accepted():
    score = parse(["**kern"] * 6 + ["**dynam"], ["*"] * 7, ["4c"] * 6 + ["p"], default_instrument="voice")
    assert durations(score) == [[ticks(1)] * 6]


# --------------------------------------------------------------------------- spine manipulators


def test_split_both_spines_inherit_state():
    # The split happens inside a sounding half note: both halves inherit the
    # frontier (2 quarters), instrument and staff.
    score = parse(
        "**kern",
        '*I"Violino',
        "*staff1",
        "2c",
        "*^",
        ["4d", "4f"],
        ["=1", "=1"],
        ["*v", "*v"],
        "4g",
    )
    assert durations(score) == [row(ticks(2)), row(ticks(1), ticks(1)), row(ticks(1))]
    assert score.event_onset.tolist() == [0, ticks(2), ticks(2), ticks(3)]
    assert score.part_names == ("Violino1",)
    assert score.event_part.tolist() == [0, 0, 0, 0]
    assert score.pickup == ticks(3)


def test_split_flow_goes_from_source_to_both_destinations():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["*^", "*"], ["4d", "4f", "4g"], ["4d", "4f", "4g"])
    assert durations(score)[1] == row(ticks(1), ticks(1), ticks(1))
    assert flow_pairs(score, 1) == {(0, 0), (0, 1), (1, 2)}
    # once the layout is stable the flow is the identity over the active channels
    assert flow_pairs(score, 2) == identity_pairs(3)


def test_split_of_second_spine_flow():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["*", "*^"], ["4d", "4f", "4g"])
    assert flow_pairs(score, 1) == {(0, 0), (1, 1), (1, 2)}


def test_merge_flow_goes_from_both_sources_to_destination():
    score = parse(
        ["**kern", "**kern", "**kern"],
        [SOP, ALTO, '*I"Tenor'],
        ["4c", "4e", "4g"],
        ["*", "*v", "*v"],
        ["4d", "4f"],
    )
    assert durations(score) == [row(ticks(1), ticks(1), ticks(1)), row(ticks(1), ticks(1))]
    assert flow_pairs(score, 1) == {(0, 0), (1, 1), (2, 1)}
    # the merged spine keeps the first spine's instrument
    assert score.part_names == ("Soprano", "Alto", "Tenor")
    assert score.event_part.tolist() == [0, 1, 2, 0, 1]


def test_merge_of_first_two_spines_flow():
    score = parse(["**kern", "**kern", "**kern"], [SOP, ALTO, ALTO], ["4c", "4e", "4g"], ["*v", "*v", "*"], ["4d", "4f"])
    assert flow_pairs(score, 1) == {(0, 0), (1, 0), (2, 1)}


def test_merge_with_inconsistent_frontiers_is_an_error():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["2c", "4e"], "!! x", ["*v", "*v"])
    assert err.line == 5
    assert "frontier" in err.reason


def test_merge_requires_an_adjacent_merge():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["*v", "*"])
    assert err.line == 4
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["*", "*v"])
    assert err.line == 4


def test_merge_of_kern_with_other_interpretation_is_an_error():
    err = parse_error(["**kern", "**dynam"], [SOP, "*"], ["4c", "p"], ["*v", "*v"])
    assert err.line == 4


def test_end_spine():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["*", "*-"], "4d")
    assert durations(score) == [row(ticks(1), ticks(1)), row(ticks(1))]
    assert flow_pairs(score, 1) == {(0, 0)}


def test_end_first_spine_moves_the_other_to_channel_zero():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["*-", "*"], "4f")
    assert flow_pairs(score, 1) == {(1, 0)}
    assert onsets(score) == [(0, 0, 60), (0, 1, 64), (1, 0, 65)]
    assert score.event_part.tolist() == [0, 1, 1]


def test_all_spines_ended_then_more_data_is_an_error():
    err = parse_error("**kern", SOP, "4c", "*-", "4d")
    assert err.line == 5


def test_add_spine():
    score = parse(
        "**kern",
        SOP,
        "4c",
        "*+",
        ["*", "**kern"],
        ["*", ALTO],
        ["4d", "4f"],
    )
    assert durations(score) == [row(ticks(1)), row(ticks(1), ticks(1))]
    # the new spine has no source; it starts at its parent's frontier
    assert flow_pairs(score, 1) == {(0, 0)}
    assert score.event_onset.tolist() == [0, ticks(1), ticks(1)]
    assert score.part_names == ("Soprano", "Alto")


def test_exchange_is_unsupported():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["*x", "*x"])
    assert err.line == 4
    assert "x" in err.reason


def test_manipulator_cannot_share_a_record_with_other_interpretations():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["*^", "*clefG2"])
    assert err.line == 3


def test_layout_change_then_barline_reports_flow_against_the_barline():
    # Reference-compatible: the flow is computed from the previous data or barline
    # record, so a barline between a merge and the next frame absorbs the merge.
    score = parse(
        ["**kern", "**kern", "**kern"],
        [SOP, ALTO, '*I"Tenor'],
        ["4c", "4e", "4g"],
        ["*v", "*v", "*"],
        ["=2", "="],
        ["4d", "4f"],
    )
    assert flow_pairs(score, 1) == identity_pairs(2)


# --------------------------------------------------------------------------- instruments


@pytest.mark.parametrize("token", ['*I"Soprano', "*I:Soprano", "*ISoprano", '*I":Soprano'])
def test_instrument_syntaxes(token):
    score = parse("**kern", token, "4c")
    assert score.part_names == ("Soprano",)


@pytest.mark.parametrize(
    "token,name",
    [('*I"Violino1', "Violino1"), ("*ITenor 2", "Tenor 2"), ("*I:Tenor II", "Tenor II"), ('*I"12Bass3', "12Bass3")],
)
def test_instrument_digits_are_removed_for_recognition_only(token, name):
    score = parse("**kern", token, "4c")
    assert score.part_names == (name,)


@pytest.mark.parametrize("token", ['*I"Flute', "*Iflt", "*ICvox", '*I"soprano', "*I", '*I"'])
def test_unknown_instrument_is_not_an_instrument(token):
    err = parse_error("**kern", token, "4c")
    assert err.line == 3
    assert "instrument" in err.reason


def test_unknown_instrument_token_keeps_an_earlier_instrument():
    score = parse("**kern", "*ICvox", SOP, "*Iflt", "4c")
    assert score.part_names == ("Soprano",)


def test_instruments_argument_replaces_the_table():
    score = parse("**kern", '*I"Flute', "4c", instruments={"Flute"})
    assert score.part_names == ("Flute",)
    with pytest.raises(KernParseError):
        parse("**kern", SOP, "4c", instruments={"Flute"})


def test_default_instrument():
    score = parse(["**kern", "**kern"], ["*", ALTO], ["4c", "4e"], default_instrument="voice")
    assert score.part_names == ("voice", "Alto")
    assert score.event_part.tolist() == [0, 1]


def test_data_token_without_instrument_is_an_error():
    err = parse_error("!! c", ["**kern", "**kern"], ["*", ALTO], ["4c", "4e"])
    assert err.line == 4
    assert "instrument" in err.reason


def test_null_token_without_instrument_is_an_error():
    # Reference-compatible: even a null needs the spine's instrument.
    err = parse_error(["**kern", "**kern"], [SOP, "*"], ["2c", "."])
    assert err.line == 3
    assert "spine 2" in err.reason


def test_same_instrument_in_two_spines_is_one_part():
    score = parse(["**kern", "**kern"], ['*I"Tenor', '*I"Tenor'], ["4c", "4e"], ["4d", "4f"])
    assert score.part_names == ("Tenor",)
    assert score.event_part.tolist() == [0, 0, 0, 0]


def test_staff_distinguishes_parts_of_other_instruments():
    score = parse(["**kern", "**kern"], ['*I"Viola', '*I"Viola'], ["*staff2", "*staff1"], ["4c", "4e"])
    assert score.part_names == ("Viola2", "Viola1")
    assert score.event_part.tolist() == [0, 1]


def test_piano_staves_are_grouped_into_one_part():
    score = parse(
        ["**kern", "**kern", "**kern"],
        ['*I"Violino', "*Ipiano", "*Ipiano"],
        ["*staff1", "*staff3", "*staff2"],
        ["2g", "4C", "4c"],
        [".", "4D", "4d"],
    )
    assert score.part_names == ("Violino1", "piano")
    assert score.event_part.tolist() == [0, 1, 1, 1, 1]
    assert score.event_note_pitch.tolist() == [67, 48, 60, 50, 62]


def test_default_piano_instrument_groups_spines():
    score = parse(["**kern", "**kern"], ["*staff2", "*staff1"], ["4C", "4c"], default_instrument="piano")
    assert score.part_names == ("piano",)


# --------------------------------------------------------------------------- data tokens


def test_null_continues_the_voice():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["2c", "4e"], [".", "4f"], ["4d", "4g"])
    assert durations(score) == [row(ticks(2), ticks(1)), row(CONT_TICKS, ticks(1)), row(ticks(1), ticks(1))]
    assert onsets(score) == [(0, 0, 60), (0, 1, 64), (1, 1, 65), (2, 0, 62), (2, 1, 67)]
    assert score.event_onset.tolist() == [0, 0, ticks(1), ticks(2), ticks(2)]


@pytest.mark.parametrize("grace", ["8cq", "8ccQ", "qq", "16dq 16e"])
def test_grace_notes_are_nulls(grace):
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["2c", "4e"], [grace, "4f"], ["4d", "4g"])
    assert durations(score) == [row(ticks(2), ticks(1)), row(CONT_TICKS, ticks(1)), row(ticks(1), ticks(1))]
    assert onsets(score) == [(0, 0, 60), (0, 1, 64), (1, 1, 65), (2, 0, 62), (2, 1, 67)]
    assert score.event_onset.tolist() == [0, 0, ticks(1), ticks(2), ticks(2)]


def test_grace_only_record_yields_no_frame():
    score = parse("**kern", SOP, "4c", "8dq", "8eq", "4f")
    assert score.num_frames == 2
    assert onsets(score) == [(0, 0, 60), (1, 0, 65)]
    assert score.event_onset.tolist() == [0, ticks(1)]


def test_chord():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["4c 4e 4g", "2C"], ["4.d 4.f", "."])
    assert durations(score) == [row(ticks(1), ticks(2)), row(ticks("3/2"), CONT_TICKS)]
    assert onsets(score) == [(0, 0, 60), (0, 0, 64), (0, 0, 67), (0, 1, 48), (1, 0, 62), (1, 0, 65)]
    # one event per chord
    assert score.event_part.tolist() == [0, 1, 0]
    assert score.event_note_event.tolist() == [0, 0, 0, 1, 2, 2]
    assert score.event_note_pitch.tolist() == [60, 64, 67, 48, 62, 65]


def test_chord_with_inconsistent_durations_is_an_error():
    err = parse_error("**kern", SOP, "4c", "4c 8e")
    assert err.line == 4
    assert "inconsistent durations" in err.reason


def test_chord_with_rest_item():
    score = parse("**kern", SOP, "4c 4r")
    assert onsets(score) == [(0, 0, 60)]
    assert durations(score) == [row(ticks(1))]


@pytest.mark.parametrize(
    "token,quarters",
    [
        ("1c", 4),
        ("2c", 2),
        ("4c", 1),
        ("8c", "1/2"),
        ("16c", "1/4"),
        ("32c", "1/8"),
        ("64c", "1/16"),
        ("3c", "4/3"),
        ("6c", "2/3"),
        ("12c", "1/3"),
        ("20c", "1/5"),
        ("28c", "1/7"),
        ("0c", 8),
        ("00c", 16),
        ("000c", 32),
        ("4.c", "3/2"),
        ("4..c", "7/4"),
        ("2...c", "15/4"),
        ("8.c", "3/4"),
        ("0.c", 12),
        ("3%2c", "8/3"),
        ("1%3c", 12),
        ("2%3c", 6),
        ("3%2.c", 4),
        ("c4", 1),
        ("[4c", 1),
        ("4c]", 1),
        ("4c_", 1),
        ("(8.cc#L", "3/4"),
    ],
)
def test_durations(token, quarters):
    score = parse("**kern", SOP, token)
    assert score.durations[0, 0] == ticks(quarters)
    assert score.event_duration.tolist() == [ticks(quarters)]
    assert score.reference_durations[0, 0] == pytest.approx(float(Fraction(quarters)))


@pytest.mark.parametrize(
    "token,quarters",
    [("1c", 1), ("2c", "1/2"), ("4c", "1/4"), ("0c", 2), ("00c", 4), ("000c", 8), ("1.c", "3/2"), ("3%2c", "2/3"), ("2..c", "7/8")],
)
def test_mensural_durations_are_divided_by_four(token, quarters):
    score = parse("**kern", SOP, token, mensural=True)
    assert score.durations[0, 0] == ticks(quarters)
    assert score.event_duration.tolist() == [ticks(quarters)]


def test_mensural_frontiers_and_pickup():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["1c", "2e"], [".", "2f"], ["=1", "=1"], ["0d", "0g"], mensural=True)
    assert score.pickup == ticks(1)
    assert score.event_onset.tolist() == [0, 0, ticks("1/2"), ticks(1), ticks(1)]
    assert durations(score)[-1] == row(ticks(2), ticks(2))


@pytest.mark.parametrize(
    "token",
    ["c", "r", "cc#", "0%3c", "3%0c", "99999999999999999999c", "1234567c", "4%99999999999c", "29c", "4.........c", ".."],
)
def test_bad_durations_are_errors(token):
    err = parse_error("**kern", SOP, "!", token)
    assert err.line == 4


@pytest.mark.parametrize("token", ["4r", "4ryy", "8.r", "4ddr", "1r;"])
def test_rests(token):
    score = parse(["**kern", "**kern"], [SOP, ALTO], [token, "4c"])
    assert onsets(score) == [(0, 1, 60)]
    assert score.durations[0, 0] > 0
    # a rest is an event with no notes
    assert score.event_part.tolist() == [0, 1]
    assert score.event_note_event.tolist() == [1]


def test_rest_frame_exists_and_advances_time():
    score = parse("**kern", SOP, "2r", "4c")
    assert durations(score) == [row(ticks(2)), row(ticks(1))]
    assert onsets(score) == [(1, 0, 60)]
    assert score.event_onset.tolist() == [0, ticks(2)]


@pytest.mark.parametrize(
    "token,midi",
    [
        ("4c", 60),
        ("4d", 62),
        ("4e", 64),
        ("4f", 65),
        ("4g", 67),
        ("4a", 69),
        ("4b", 71),
        ("4cc", 72),
        ("4ccc", 84),
        ("4cccc", 96),
        ("4C", 48),
        ("4B", 59),
        ("4CC", 36),
        ("4CCC", 24),
        ("4AAA", 33),
        ("4c#", 61),
        ("4c##", 62),
        ("4c###", 63),
        ("4c-", 59),
        ("4c--", 58),
        ("4BB-", 46),
        ("4ee-", 75),
        ("4F#", 54),
        ("4gg#L", 80),
        ("8.b-J", 70),
        ("4cn", 60),
        ("[4e-", 63),
    ],
)
def test_pitch_spelling(token, midi):
    score = parse("**kern", SOP, token)
    assert onsets(score) == [(0, 0, midi)]
    assert score.event_note_pitch.tolist() == [midi]


@pytest.mark.parametrize("token", ["4c#-", "4xyz", "4", "4ccccccc", "4CCCCCC", "4CCCCC-"])
def test_bad_pitches_are_errors(token):
    err = parse_error("**kern", SOP, "4c", token)
    assert err.line == 4


def test_ties_are_not_interpreted():
    score = parse("**kern", SOP, "[4c", "4c_", "4c]", "4d")
    assert durations(score) == [row(ticks(1))] * 4
    assert onsets(score) == [(0, 0, 60), (1, 0, 60), (2, 0, 60), (3, 0, 62)]
    assert score.event_onset.tolist() == [0, ticks(1), ticks(2), ticks(3)]
    assert score.event_duration.tolist() == [ticks(1)] * 4


# --------------------------------------------------------------------------- time and frontiers


def test_tokens_of_a_record_must_start_together():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["2c", "4e"], ["4d", "4f"])
    assert err.line == 4
    assert "frontier" in err.reason


def test_null_after_the_note_ended_is_a_missing_note():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], [".", "4f"])
    assert err.line == 4
    assert "missing a note" in err.reason


def test_null_inside_a_sounding_note_is_fine():
    score = parse(["**kern", "**kern", "**kern"], [SOP, ALTO, ALTO], ["1c", "2e", "4g"], [".", ".", "4a"], [".", "2f", "2b"])
    assert durations(score) == [
        row(ticks(4), ticks(2), ticks(1)),
        row(CONT_TICKS, CONT_TICKS, ticks(1)),
        row(CONT_TICKS, ticks(2), ticks(2)),
    ]


def test_all_null_record_yields_no_frame_and_no_error():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], [".", "."], ["4d", "4f"])
    assert score.num_frames == 2


def test_barline_alignment():
    err = parse_error(["**kern", "**kern"], [SOP, ALTO], ["2c", "4e"], ["=1", "=1"])
    assert err.line == 4
    assert "alignment" in err.reason


def test_barline_alignment_ignores_non_kern_spines():
    score = parse(["**kern", "**dynam"], [SOP, "*"], ["2c", "p"], ["=1", "=1"], ["4c", "."])
    assert score.pickup == ticks(2)


def test_pickup_from_first_barline():
    score = parse(
        ["**kern", "**kern"],
        [SOP, ALTO],
        ["8c", "4e"],
        ["8d", "."],
        ["=1", "=1"],
        ["1e", "1g"],
        ["=2", "=2"],
        ["1e", "1g"],
    )
    assert score.pickup == ticks(1)


def test_pickup_needs_the_tab_after_eq1():
    # "=10", "=1-" and "=1" alone (single spine: no TAB) do not set the pickup.
    assert parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["=10", "=10"], ["4c", "4e"]).pickup == 0
    assert parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["=1-", "=1-"], ["4c", "4e"]).pickup == 0
    assert parse("**kern", SOP, "4c", "=1", "4d").pickup == 0


def test_pickup_is_zero_without_first_barline():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["=", "="], ["=2", "=2"], ["4c", "4e"])
    assert score.pickup == 0


def test_pickup_later_eq1_barline():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["2c", "2e"], ["=", "="], ["4c", "4e"], ["=1", "=1"], ["4c", "4e"])
    assert score.pickup == ticks(3)


def test_frames_only_for_records_with_an_onset():
    score = parse(
        "!! comment",
        ["**kern", "**kern"],
        [SOP, ALTO],
        ["*M4/4", "*M4/4"],
        ["2c", "2e"],
        [".", "."],
        ["=1", "=1"],
        ["2r", "8qq"],
        [".", "2e"],
        ["*", "*"],
        ["4d", "4f"],
    )
    assert durations(score) == [
        row(ticks(2), ticks(2)),
        row(ticks(2), CONT_TICKS),
        row(CONT_TICKS, ticks(2)),
        row(ticks(1), ticks(1)),
    ]


def test_first_frame_flow_is_the_full_identity():
    score = parse(["**kern", "**kern"], [SOP, ALTO], ["4c", "4e"], ["4d", "4f"])
    np.testing.assert_array_equal(score.flows[0], np.eye(MAX_VOICES, dtype=np.int8))
    assert flow_pairs(score, 1) == identity_pairs(2)
    assert score.flows.dtype == np.int8


def test_first_frame_after_split_is_still_identity():
    score = parse("**kern", SOP, "*^", ["4c", "4e"], ["4d", "4f"])
    np.testing.assert_array_equal(score.flows[0], np.eye(MAX_VOICES, dtype=np.int8))
    assert flow_pairs(score, 1) == identity_pairs(2)


def test_flow_through_split_and_merge_sequence():
    score = parse(
        ["**kern", "**kern"],
        [SOP, '*I"Bass'],
        ["4c", "4C"],  # frame 0
        ["*^", "*"],
        ["4d", "4f", "4D"],  # frame 1: split 0 -> {0, 1}; 1 -> 2
        ["4d", "4f", "4D"],  # frame 2: identity over 3
        ["*", "*v", "*v"],
        ["4e", "4E"],  # frame 3: 0 -> 0; {1, 2} -> 1
        ["4e", "4E"],  # frame 4: identity over 2
    )
    assert score.num_frames == 5
    assert flow_pairs(score, 1) == {(0, 0), (0, 1), (1, 2)}
    assert flow_pairs(score, 2) == identity_pairs(3)
    assert flow_pairs(score, 3) == {(0, 0), (1, 1), (2, 1)}
    assert flow_pairs(score, 4) == identity_pairs(2)


# --------------------------------------------------------------------------- part events


def test_part_events_per_instrument():
    score = parse(
        ["**kern", "**kern"],
        ['*I"Bass', SOP],
        ["2C", "4c"],
        [".", "4r"],
        ["4D 4F", "2e"],
        ["4E", "."],
    )
    assert score.part_names == ("Bass", "Soprano")
    assert score.event_part.tolist() == [0, 1, 1, 0, 1, 0]
    assert score.event_onset.tolist() == [0, 0, ticks(1), ticks(2), ticks(2), ticks(3)]
    assert score.event_duration.tolist() == [ticks(2), ticks(1), ticks(1), ticks(1), ticks(2), ticks(1)]
    assert list(zip(score.event_note_event.tolist(), score.event_note_pitch.tolist())) == [
        (0, 48),
        (1, 60),
        (3, 50),
        (3, 53),
        (4, 64),
        (5, 52),
    ]


# --------------------------------------------------------------------------- error reporting


def test_error_line_counts_every_physical_line():
    text = "!!!COM: x\n**kern\n*I\"Soprano\n!! comment\n*M3/4\n4c\n=1\n4d\n4zz\n"
    with pytest.raises(KernParseError) as info:
        parse_kern(text, "some/dir/file name.krn")
    err = info.value
    assert err.line == 9
    assert err.filename == "some/dir/file name.krn"
    assert str(err) == f"some/dir/file name.krn:9: {err.reason}"
    assert isinstance(err, ValueError)


def test_error_line_with_crlf():
    text = "**kern\r\n*I\"Soprano\r\n4c\r\n\r\n4d\r\n"
    with pytest.raises(KernParseError) as info:
        parse_kern(text, "crlf.krn")
    assert info.value.line == 4


# --------------------------------------------------------------------------- late exclusive interpretations


@pytest.mark.parametrize(
    "rows,expected",
    [
        # a barline before the exclusive interpretation
        (("=", "**kern", SOP, "4c"), [row(ticks(1))]),
        # a spine added by *+ gets **kern after a barline; it starts at its parent's frontier
        (
            ("**kern", SOP, "4c", "*+", ["=1", "=1"], ["*", "**kern"], ["*", ALTO], ["4d", "4f"]),
            [row(ticks(1)), row(ticks(1), ticks(1))],
        ),
        # a spine without exclusive interpretation gets **kern later: its frontier is
        # still 0, so the next record is a proper parse error (line 6)
        ((["**kern", "*"], [SOP, "*"], ["4c", "x"], ["*", "**kern"], ["*", ALTO], ["4d", "4f"]), 6),
    ],
    ids=["barline-first", "added-spine", "late-kern-spine"],
)
def test_late_exclusive_interpretation(rows, expected):
    if isinstance(expected, int):
        err = parse_error(*rows)
        assert err.line == expected
        assert "frontier" in err.reason
    else:
        score = parse(*rows)
        assert durations(score) == expected
        if score.num_frames > 1:
            assert flow_pairs(score, 1) == {(0, 0)}
