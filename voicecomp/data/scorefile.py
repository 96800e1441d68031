"""Read one score file of any supported kind into voicecomp's score type.

:func:`read_score` dispatches on the file extension:

=====================  ===============================================================
``.krn``               :func:`voicecomp.data.humdrum.parse_kern` (Latin-1 text)
``.musicxml`` ``.mxl``  :func:`voicecomp.data.musicxml.read_musicxml` (music21)
``.xml``
``.mid`` ``.midi``     :func:`voicecomp.data.midi.read_midi` (music21)
=====================  ===============================================================

Every reader returns a :class:`~voicecomp.data.humdrum.KernScore`, so encoding,
training, sampling and export treat all of them alike.  Bad input raises
:class:`ScoreReadError` (or :class:`~voicecomp.data.humdrum.KernParseError` for
kern, with the line): its message is one line, ``file: reason``.
"""

from __future__ import annotations

import os
from typing import Optional, Union

from voicecomp.data.errors import ScoreReadError
from voicecomp.data.humdrum import STRICT, KernParseError, KernScore, parse_kern

KERN_EXTENSIONS = (".krn",)
MUSICXML_EXTENSIONS = (".musicxml", ".mxl", ".xml")
MIDI_EXTENSIONS = (".mid", ".midi")
SCORE_EXTENSIONS = KERN_EXTENSIONS + MUSICXML_EXTENSIONS + MIDI_EXTENSIONS


def score_kind(path: Union[str, os.PathLike]) -> Optional[str]:
    """``"kern"``, ``"musicxml"``, ``"midi"`` or None from the file extension (any case)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in KERN_EXTENSIONS:
        return "kern"
    if ext in MUSICXML_EXTENSIONS:
        return "musicxml"
    if ext in MIDI_EXTENSIONS:
        return "midi"
    return None


def read_score(
    path: Union[str, os.PathLike],
    *,
    policy: str = STRICT,
    default_instrument: Optional[str] = "voice",
    mensural: bool = False,
    warnings: Optional[list[str]] = None,
    name: Optional[str] = None,
) -> KernScore:
    """The score in ``path`` (kern, MusicXML or MIDI, chosen by extension).

    Args:
      policy: Humdrum policy of kern files (``strict`` or ``lenient``, see
        :func:`~voicecomp.data.humdrum.parse_kern`); other formats ignore it.
      default_instrument: instrument of kern spines that declare none.
      mensural: divide kern durations by 4 (mensural sources such as ``jrp/``).
      warnings: readers append one-line ``file: reason`` notes here (grace notes
        dropped, barlines out of alignment under the lenient policy, ...).
      name: the score's name and the file named in messages (default: ``path``).
    Raises:
      KernParseError: a kern file breaks the policy (file:line: reason).
      ScoreReadError: any other unreadable file or unsupported content.
    """
    path = os.fspath(path)
    name = name or path
    kind = score_kind(path)
    if kind is None:
        raise ScoreReadError(name, f"unknown score file type (expected one of {' '.join(SCORE_EXTENSIONS)})")
    if not os.path.isfile(path):
        raise ScoreReadError(name, "no such file")
    if kind == "kern":
        try:
            with open(path, encoding="latin-1", newline="") as handle:
                text = handle.read()
        except OSError as err:
            raise ScoreReadError(name, f"cannot read: {err.strerror or err}") from None
        return parse_kern(text, name, mensural=mensural, default_instrument=default_instrument,
                          policy=policy, warnings=warnings)
    if kind == "musicxml":
        from voicecomp.data.musicxml import read_musicxml

        return read_musicxml(path, warnings=warnings, name=name)
    from voicecomp.data.midi import read_midi

    return read_midi(path, warnings=warnings, name=name)


__all__ = ["ScoreReadError", "KernParseError", "SCORE_EXTENSIONS", "read_score", "score_kind"]
