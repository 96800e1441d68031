"""What every score reader raises (below the readers and their dispatcher, so neither imports the other back)."""

from __future__ import annotations

MUSIC21_HINT = "pip install 'voicecomp[corpus]'"


class ScoreReadError(ValueError):
    """A score file cannot be read; ``str()`` is ``"file: reason"`` on one line."""

    def __init__(self, filename: str, reason: str):
        reason = " ".join(str(reason).split())  # one line, whatever the library said
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason
