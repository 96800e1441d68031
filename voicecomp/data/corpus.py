"""Corpus discovery, parallel parsing and a persistent parse cache (SPEC §1.1).

Two sources:
  * ``kernscores``: the KernScores collection laid out as the public Humdrum
    repositories (``--kernscores_dir``, default ``$VOICECOMP_KERNSCORES``).
  * ``palestrina``: the 1,318 Palestrina mass movements shipped inside music21's
    wheel, so a fresh install trains with no download.

A :class:`Corpus` maps score ids to parsed :class:`KernScore` objects, with the
files that failed to parse listed (id, line, reason) rather than aborting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from voicecomp.data import tables
from voicecomp.data.humdrum import KernParseError, KernScore, parse_kern

# Bump whenever KernScore or the parser's output changes: old caches are ignored.
CACHE_FORMAT_VERSION = 6
KERNSCORES_ENV = "VOICECOMP_KERNSCORES"
CACHE_ENV = "VOICECOMP_CACHE"
CORPUS_NAMES = ("kernscores", "palestrina")
# music21's Palestrina files name their voices with these *I tokens.
PALESTRINA_INSTRUMENTS = frozenset({"cant", "calto", "tenor", "barit", "bass"})


@dataclasses.dataclass(frozen=True)
class ScoreSource:
    """One file to parse and how."""

    score_id: str
    corpus: str
    path: str
    mensural: bool
    default_instrument: Optional[str]


@dataclasses.dataclass(frozen=True)
class ParseFailure:
    score_id: str
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.score_id} ({self.path}:{self.line}): {self.reason}"


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Parsed scores of one source, in sorted score-id order."""

    name: str
    scores: dict[str, KernScore]
    corpus_of: dict[str, str]
    failures: tuple[ParseFailure, ...]
    rejected: tuple[str, ...]
    test_ids: frozenset[str]
    piano_corpora: tuple[str, ...]

    def split_ids(self, split: str) -> list[str]:
        """Score ids of ``train``, ``test``, ``test_nonpiano`` or ``all``."""
        ids = sorted(self.scores)
        if split == "all":
            return ids
        if split == "train":
            return [s for s in ids if s not in self.test_ids]
        if split == "test":
            return [s for s in ids if s in self.test_ids]
        if split == "test_nonpiano":
            return [s for s in ids if s in self.test_ids and not self.is_piano(s)]
        raise ValueError(f"unknown split {split!r}; expected train, test, test_nonpiano or all")

    def is_piano(self, score_id: str) -> bool:
        return self.corpus_of[score_id] in self.piano_corpora


def default_kernscores_dir() -> Optional[str]:
    return os.environ.get(KERNSCORES_ENV) or None


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "voicecomp"


def discover_kernscores(root: str) -> list[ScoreSource]:
    """Every non-symlink ``.krn`` file under each corpus folder, minus rejected ids."""
    table = tables.kernscores()
    rejected = set(table["rejected"])
    defaults = table["default_instruments"]
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"KernScores directory {root!r} not found; pass --kernscores_dir or set ${KERNSCORES_ENV}"
        )
    sources = {}
    for corpus, folder in table["corpora"].items():
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, folder)):
            dirnames.sort()
            for filename in sorted(filenames):
                path = os.path.join(dirpath, filename)
                if not filename.endswith(".krn") or os.path.islink(path):
                    continue
                score_id = f"{corpus}.{filename[:-4]}"
                if score_id in rejected:
                    continue
                sources[score_id] = ScoreSource(
                    score_id, corpus, path, folder.startswith("jrp/"), defaults.get(corpus)
                )
    return [sources[k] for k in sorted(sources)]


def palestrina_dir() -> str:
    try:
        import music21  # noqa: F401  (only its data folder is used)
    except ImportError as err:
        raise ImportError(
            "the palestrina corpus ships with music21: pip install 'voicecomp[corpus]'"
        ) from err
    return os.path.join(os.path.dirname(music21.__file__), "corpus", "palestrina")


def discover_palestrina(root: Optional[str] = None) -> list[ScoreSource]:
    """The Palestrina mass movements of music21's corpus (mensural durations /4)."""
    root = root or palestrina_dir()
    names = sorted(f for f in os.listdir(root) if f.endswith(".krn"))
    return [ScoreSource(f"palestrina.{f[:-4]}", "palestrina", os.path.join(root, f), True, "voice") for f in names]


def palestrina_test_ids(score_ids: Iterable[str], fraction: float = 0.1) -> frozenset[str]:
    """Deterministic held-out split: a score is test when its id hashes below ``fraction``."""
    out = set()
    for score_id in score_ids:
        digest = hashlib.sha256(score_id.encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 < fraction:
            out.add(score_id)
    return frozenset(out)


def _parse_source(source: ScoreSource, extra_instruments: frozenset[str]):
    try:
        with open(source.path, encoding="latin-1", newline="") as handle:
            text = handle.read()
        instruments = tables.instrument_names() | extra_instruments
        score = parse_kern(
            text,
            source.path,
            mensural=source.mensural,
            default_instrument=source.default_instrument,
            instruments=instruments,
        )
        return source.score_id, score
    except KernParseError as err:
        return source.score_id, ParseFailure(source.score_id, source.path, err.line, err.reason)
    except OSError as err:
        return source.score_id, ParseFailure(source.score_id, source.path, 0, f"cannot read: {err}")


def _parse_task(args):
    return _parse_source(*args)


def parse_sources(
    sources: Sequence[ScoreSource],
    *,
    extra_instruments: frozenset[str] = frozenset(),
    workers: Optional[int] = None,
    progress: bool = True,
) -> tuple[dict[str, KernScore], list[ParseFailure]]:
    """Parse files in parallel; failures are collected, never raised."""
    workers = workers or os.cpu_count() or 1
    tasks = [(s, extra_instruments) for s in sources]
    results = []
    bar = _progress(len(tasks), "parsing", progress)
    if workers > 1 and len(tasks) > 8:
        # forkserver: forking a process that already runs JAX's threads can deadlock.
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["voicecomp.data.humdrum"])
        with context.Pool(workers) as pool:
            for item in pool.imap_unordered(_parse_task, tasks, chunksize=8):
                results.append(item)
                bar(1)
    else:
        for task in tasks:
            results.append(_parse_task(task))
            bar(1)
    bar(None)
    scores, failures = {}, []
    for score_id, result in results:
        if isinstance(result, ParseFailure):
            failures.append(result)
        else:
            scores[score_id] = result
    failures.sort(key=lambda f: f.score_id)
    return {k: scores[k] for k in sorted(scores)}, failures


def _progress(total: int, label: str, enabled: bool) -> Callable[[Optional[int]], None]:
    if not enabled:
        return lambda n: None
    try:
        from tqdm import tqdm
    except ImportError:
        return lambda n: None
    bar = tqdm(total=total, desc=label, unit="file", file=sys.stderr, leave=False, mininterval=0.5)

    def update(n: Optional[int]) -> None:
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return update


def _sources_digest(sources: Sequence[ScoreSource], extra: str) -> str:
    digest = hashlib.sha256(f"v{CACHE_FORMAT_VERSION}|{extra}".encode())
    for source in sources:
        digest.update(f"{source.score_id}|{source.mensural}|{source.default_instrument}|".encode())
        try:
            with open(source.path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
        except OSError as err:  # reported as a failure by the parse; keyed so a fix invalidates it
            digest.update(f"unreadable: {err}".encode())
    return digest.hexdigest()


def _atomic_pickle(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_corpus(
    name: str = "kernscores",
    *,
    kernscores_dir: Optional[str] = None,
    cache_dir: Optional[str | os.PathLike] = None,
    use_cache: bool = True,
    workers: Optional[int] = None,
    progress: bool = True,
    sources: Optional[Sequence[ScoreSource]] = None,
) -> Corpus:
    """Discover, parse (or reload from cache) and return a corpus.

    Args:
      name: ``kernscores`` or ``palestrina``.
      kernscores_dir: root of the KernScores collection (default
        ``$VOICECOMP_KERNSCORES``).
      cache_dir: where parsed corpora are kept (default ``$VOICECOMP_CACHE`` or
        ``~/.cache/voicecomp``); the cache key is a content hash of every source
        file and the parser version, so edits and upgrades never serve stale data.
      sources: parse exactly these files instead of discovering (tests, tools).
    """
    if name == "kernscores":
        table = tables.kernscores()
        if sources is None:
            root = kernscores_dir or default_kernscores_dir()
            if not root:
                raise ValueError(f"the kernscores corpus needs --kernscores_dir or ${KERNSCORES_ENV}")
            sources = discover_kernscores(root)
        extra_instruments: frozenset[str] = frozenset()
        piano = tuple(table["piano_corpora"])
        test_ids = frozenset(table["test"])
        rejected = tuple(table["rejected"])
    elif name == "palestrina":
        sources = discover_palestrina() if sources is None else sources
        extra_instruments = PALESTRINA_INSTRUMENTS
        piano = ()
        rejected = ()
        test_ids = palestrina_test_ids(s.score_id for s in sources)
    else:
        raise ValueError(f"unknown corpus {name!r}; expected one of {CORPUS_NAMES}")

    cache_path = None
    if use_cache:
        key = _sources_digest(sources, f"{name}|{sorted(extra_instruments)}")
        cache_path = Path(cache_dir or default_cache_dir()) / f"{name}-{key[:24]}.pkl"
        if cache_path.is_file():
            try:
                with open(cache_path, "rb") as handle:
                    scores, failures = pickle.load(handle)
            except Exception as err:  # a damaged cache is rebuilt, never trusted
                print(f"voicecomp: ignoring unreadable cache {cache_path}: {err}", file=sys.stderr)
            else:
                return _make_corpus(name, sources, scores, failures, rejected, test_ids, piano)

    scores, failures = parse_sources(sources, extra_instruments=extra_instruments, workers=workers, progress=progress)
    if cache_path is not None:
        _atomic_pickle((scores, failures), cache_path)
    return _make_corpus(name, sources, scores, failures, rejected, test_ids, piano)


def _make_corpus(name, sources, scores, failures, rejected, test_ids, piano) -> Corpus:
    return Corpus(
        name=name,
        scores=scores,
        corpus_of={s.score_id: s.corpus for s in sources},
        failures=tuple(failures),
        rejected=tuple(rejected),
        test_ids=test_ids,
        piano_corpora=piano,
    )
