"""Data command line.

  python -m voicecomp.data stats --corpus=kernscores --kernscores_dir=DIR [--json]
  python -m voicecomp.data download --dest=DIR

``stats`` parses (or reloads from the cache) a corpus and prints its figures; with
``--json`` the last line of output is one JSON object with the same figures.
``download`` clones the KernScores repositories (see voicecomp/data/sources.json).
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from voicecomp.data import corpus as corpus_lib
from voicecomp.data import download as download_lib
from voicecomp.data.stats import corpus_statistics, format_statistics

_CORPUS = flags.DEFINE_enum("corpus", "kernscores", corpus_lib.CORPUS_NAMES, "Corpus to read.")
_KERNSCORES_DIR = flags.DEFINE_string(
    "kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES)."
)
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Parse cache (default: $VOICECOMP_CACHE or ~/.cache/voicecomp).")
_NO_CACHE = flags.DEFINE_bool("no_cache", False, "Parse from scratch and do not write the cache.")
_JSON = flags.DEFINE_bool("json", False, "End the output with one JSON line of the figures.")
_DEST = flags.DEFINE_string("dest", None, "download: destination folder.")
_SOURCES = flags.DEFINE_string("sources", None, "download: JSON table folder -> git URL overriding the built-in one.")

COMMANDS = ("stats", "download")


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"expected one command: {' | '.join(COMMANDS)}")
    if argv[1] == "download":
        if not _DEST.value:
            raise app.UsageError("download needs --dest=DIR")
        status = download_lib.download(_DEST.value, sources=download_lib.repositories(_SOURCES.value))
        failed = {k: v for k, v in status.items() if v.startswith("failed")}
        print(f"{len(status) - len(failed)} of {len(status)} corpus folders ready in {_DEST.value}")
        return 1 if failed else 0
    corpus = corpus_lib.load_corpus(
        _CORPUS.value,
        kernscores_dir=_KERNSCORES_DIR.value,
        cache_dir=_CACHE_DIR.value,
        use_cache=not _NO_CACHE.value,
    )
    figures = corpus_statistics(corpus)
    print(format_statistics(figures))
    if _JSON.value:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    app.run(main)
