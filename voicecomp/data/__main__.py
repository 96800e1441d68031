"""Data command line.

  python -m voicecomp.data stats --corpus=kernscores --kernscores_dir=DIR [--json]
  python -m voicecomp.data stats --corpus=dir:PATH [--humdrum_policy=strict|lenient] [--json]
  python -m voicecomp.data download --dest=DIR

``stats`` parses (or reloads from the cache) a corpus and prints its figures; with
``--json`` the last line of output is one JSON object with the same figures.
``download`` clones the KernScores repositories (see voicecomp/data/sources.json).
"""

from __future__ import annotations

import json
import os

from absl import flags

from voicecomp import cli
from voicecomp.data import corpus as corpus_lib
from voicecomp.data import download as download_lib
from voicecomp.data.stats import corpus_statistics, format_statistics

_CORPUS = flags.DEFINE_string("corpus", "kernscores", "Corpus to read: kernscores, palestrina or dir:PATH (every "
                              "kern, MusicXML and MIDI file under a folder).")
_POLICY = flags.DEFINE_enum("humdrum_policy", None, ["strict", "lenient"], "Humdrum rules for kern files (default: "
                            "strict for kernscores and palestrina, lenient for dir:PATH).")
_KERNSCORES_DIR = flags.DEFINE_string(
    "kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES)."
)
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Parse cache (default: $VOICECOMP_CACHE or ~/.cache/voicecomp).")
_NO_CACHE = flags.DEFINE_bool("no_cache", False, "Parse from scratch and do not write the cache.")
_JSON = flags.DEFINE_bool("json", False, "End the output with one JSON line of the figures.")
_DEST = flags.DEFINE_string("dest", None, "download: destination folder.")
_SOURCES = flags.DEFINE_string("sources", None, "download: JSON table folder -> git URL overriding the built-in one.")

COMMANDS = ("stats", "download")


@flags.validator("corpus")
def _check_corpus(value: str) -> bool:
    error = corpus_lib.corpus_spec_error(value)
    if error:
        raise flags.ValidationError(error)
    return True


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        got = f" (got {' '.join(argv[1:])})" if len(argv) > 1 else ""
        raise cli.UsageError(f"expected one command: {' | '.join(COMMANDS)}{got}")
    if argv[1] == "download":
        if not _DEST.value:
            raise cli.UsageError("download needs --dest=DIR")
        if os.path.exists(_DEST.value) and not os.path.isdir(_DEST.value):
            raise cli.DataError(f"--dest={_DEST.value}: not a directory")
        if _SOURCES.value:
            try:
                sources = download_lib.repositories(_SOURCES.value)
            except OSError as err:
                raise cli.DataError(f"--sources={_SOURCES.value}: {err.strerror}") from None
            except ValueError as err:  # not JSON
                raise cli.DataError(f"--sources={_SOURCES.value}: not JSON ({err})") from None
            except (KeyError, TypeError, AttributeError):
                raise cli.DataError(f"--sources={_SOURCES.value}: no 'repositories' table of folder -> git URL") from None
        else:
            sources = download_lib.repositories()
        try:
            status = download_lib.download(_DEST.value, sources=sources)
        except ValueError as err:  # a corpus folder the sources table lacks
            raise cli.DataError(f"--sources={_SOURCES.value or 'voicecomp/data/sources.json'}: {err}") from None
        failed = {k: v for k, v in status.items() if v.startswith("failed")}
        print(f"{len(status) - len(failed)} of {len(status)} corpus folders ready in {_DEST.value}")
        return 1 if failed else 0
    if _CORPUS.value == "kernscores":
        cli.check_kernscores_dir(_KERNSCORES_DIR.value)
    if _CACHE_DIR.value and os.path.exists(_CACHE_DIR.value) and not os.path.isdir(_CACHE_DIR.value):
        raise cli.DataError(f"--cache_dir={_CACHE_DIR.value}: not a directory")
    corpus = corpus_lib.load_corpus(
        _CORPUS.value,
        kernscores_dir=_KERNSCORES_DIR.value,
        cache_dir=_CACHE_DIR.value,
        use_cache=not _NO_CACHE.value,
        policy=_POLICY.value,
    )
    figures = corpus_statistics(corpus)
    print(format_statistics(figures))
    if _JSON.value:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    cli.run(main)
