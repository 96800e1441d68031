"""Corpus discovery, parallel parsing and a persistent parse cache (SPEC §1.1).

Three sources, one loader each in :data:`CORPUS_LOADERS` (``--corpus`` name -> loader):
  * ``kernscores``: the KernScores collection laid out as the public Humdrum
    repositories (``--kernscores_dir``, default ``$VOICECOMP_KERNSCORES``).
  * ``palestrina``: the 1,318 Palestrina mass movements shipped inside music21's
    wheel, so a fresh install trains with no download.
  * ``dir:PATH``: every kern, MusicXML and MIDI file under a folder (see
    :func:`discover_folder`), split into train and test by content hash, parsed
    file by file into a per-file cache, with a JSON report of skipped files.

A :class:`Corpus` maps score ids to parsed :class:`KernScore` objects, with the
files that failed to parse listed (id, line, reason) rather than aborting.

The Humdrum policy (:data:`voicecomp.data.humdrum.POLICIES`) defaults to
``strict`` for the named corpora (the paper's numbers depend on it) and to
``lenient`` for folders; it is part of every cache key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from voicecomp.data import tables
from voicecomp.data.humdrum import LENIENT, POLICIES, STRICT, KernParseError, KernScore, parse_kern
from voicecomp.data.scorefile import SCORE_EXTENSIONS, ScoreReadError, read_score, score_kind

# Bump whenever KernScore or the parser's output changes: old caches are ignored.
CACHE_FORMAT_VERSION = 6
KERNSCORES_ENV = "VOICECOMP_KERNSCORES"
CACHE_ENV = "VOICECOMP_CACHE"
DIR_PREFIX = "dir:"  # --corpus=dir:PATH: a folder of score files
DIR_TEST_FRACTION = 0.1
# ``--holdout_validation``: training scores whose id hashes into this fraction are held out of
# training; the non-piano ones are the ``valid`` split (it mirrors ``test_nonpiano``).
HOLDOUT_FRACTION = 0.05
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
    warnings: tuple[str, ...] = ()  # "file[:line]: reason" of tolerated irregularities
    report: Optional[str] = None  # dir: corpora: path of the JSON report of skipped files

    def split_ids(self, split: str) -> list[str]:
        """Score ids of a split: ``train``, ``test``, ``test_nonpiano``, ``all``, or for runs that
        hold out a validation set ``train_fit`` (training scores outside the held-out bucket,
        :func:`held_out`) and ``valid`` (the non-piano held-out training scores)."""
        ids = sorted(self.scores)
        if split == "all":
            return ids
        if split == "train":
            return [s for s in ids if s not in self.test_ids]
        if split == "train_fit":
            return [s for s in ids if s not in self.test_ids and not held_out(s)]
        if split == "valid":
            return [s for s in ids if s not in self.test_ids and held_out(s) and not self.is_piano(s)]
        if split == "test":
            return [s for s in ids if s in self.test_ids]
        if split == "test_nonpiano":
            return [s for s in ids if s in self.test_ids and not self.is_piano(s)]
        raise ValueError(f"unknown split {split!r}; expected train, test, test_nonpiano, all, train_fit or valid")

    def is_piano(self, score_id: str) -> bool:
        return self.corpus_of[score_id] in self.piano_corpora


def held_out(score_id: str) -> bool:
    """Whether a training score is in the validation bucket: a fixed :data:`HOLDOUT_FRACTION` of
    score ids by hash, so the bucket never depends on the corpus around it."""
    digest = int(hashlib.sha256(score_id.encode("utf-8")).hexdigest()[:8], 16)
    return digest < HOLDOUT_FRACTION * 16**8


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


def _parse_source(source: ScoreSource, extra_instruments: frozenset[str], policy: str = STRICT):
    """(score id, KernScore or ParseFailure, warnings) of one file; never raises for bad data."""
    warnings: list[str] = []
    try:
        if score_kind(source.path) in (None, "kern"):
            with open(source.path, encoding="latin-1", newline="") as handle:
                text = handle.read()
            instruments = tables.instrument_names() | extra_instruments
            score = parse_kern(
                text,
                source.path,
                mensural=source.mensural,
                default_instrument=source.default_instrument,
                instruments=instruments,
                policy=policy,
                warnings=warnings,
            )
        else:
            score = read_score(source.path, policy=policy, default_instrument=source.default_instrument,
                               mensural=source.mensural, warnings=warnings)
        return source.score_id, score, warnings
    except KernParseError as err:
        return source.score_id, ParseFailure(source.score_id, source.path, err.line, err.reason), warnings
    except ScoreReadError as err:
        return source.score_id, ParseFailure(source.score_id, source.path, 0, err.reason), warnings
    except OSError as err:
        return source.score_id, ParseFailure(source.score_id, source.path, 0, f"cannot read: {err}"), warnings


def _parse_task(args):
    return _parse_source(*args)


def parse_sources(
    sources: Sequence[ScoreSource],
    *,
    extra_instruments: frozenset[str] = frozenset(),
    workers: Optional[int] = None,
    progress: bool = True,
    policy: str = STRICT,
    warnings: Optional[list[str]] = None,
) -> tuple[dict[str, KernScore], list[ParseFailure]]:
    """Parse files in parallel; failures are collected, never raised.

    ``policy`` is the Humdrum policy of kern files; tolerated irregularities
    (``file[:line]: reason``) are appended to ``warnings`` if given."""
    if policy not in POLICIES:
        raise ValueError(f"unknown Humdrum policy {policy!r}; expected one of {POLICIES}")
    workers = workers or _usable_cpus()
    tasks = [(s, extra_instruments, policy) for s in sources]
    results = []
    bar = _progress(len(tasks), "parsing", progress)
    if workers > 1 and len(tasks) > 8:
        # forkserver: forking a process that already runs JAX's threads can deadlock.
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["voicecomp.data.humdrum"])
        # Slow readers (music21) are worth small chunks; kern files parse in microseconds.
        chunksize = 8 if all(score_kind(s.path) in (None, "kern") for s in sources) else 1
        with context.Pool(workers) as pool:
            for item in pool.imap_unordered(_parse_task, tasks, chunksize=chunksize):
                results.append(item)
                bar(1)
    else:
        for task in tasks:
            results.append(_parse_task(task))
            bar(1)
    bar(None)
    scores, failures, notes = {}, [], {}
    for score_id, result, score_warnings in results:
        notes[score_id] = score_warnings
        if isinstance(result, ParseFailure):
            failures.append(result)
        else:
            scores[score_id] = result
    failures.sort(key=lambda f: f.score_id)
    if warnings is not None:
        for score_id in sorted(notes):
            warnings.extend(notes[score_id])
    return {k: scores[k] for k in sorted(scores)}, failures


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    policy: Optional[str] = None,
) -> Corpus:
    """Discover, parse (or reload from cache) and return a corpus.

    Args:
      name: ``kernscores``, ``palestrina`` or ``dir:PATH`` (any folder of kern,
        MusicXML and MIDI files, see :func:`load_folder`).
      kernscores_dir: root of the KernScores collection (default
        ``$VOICECOMP_KERNSCORES``).
      cache_dir: where parsed corpora are kept (default ``$VOICECOMP_CACHE`` or
        ``~/.cache/voicecomp``); the cache key is a content hash of every source
        file, the Humdrum policy and the parser version, so edits and upgrades
        never serve stale data.
      sources: parse exactly these files instead of discovering (tests, tools).
      policy: Humdrum policy, ``strict`` or ``lenient`` (default: strict for the
        named corpora, lenient for folders).
    """
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"unknown Humdrum policy {policy!r}; expected one of {POLICIES}")
    loader, argument = _corpus_loader(name)
    if loader is None:
        raise ValueError(f"unknown corpus {name!r}; expected one of {CORPUS_NAMES} or {DIR_PREFIX}PATH")
    return loader(argument, kernscores_dir=kernscores_dir, sources=sources, policy=policy, cache_dir=cache_dir,
                  use_cache=use_cache, workers=workers, progress=progress)


def _load_kernscores(_: str, *, kernscores_dir: Optional[str], sources: Optional[Sequence[ScoreSource]],
                     policy: Optional[str], **parse_options) -> Corpus:
    """The ``kernscores`` corpus: the published split and piano corpora of the corpus table."""
    table = tables.kernscores()
    if sources is None:
        root = kernscores_dir or default_kernscores_dir()
        if not root:
            raise ValueError(f"the kernscores corpus needs --kernscores_dir or ${KERNSCORES_ENV}")
        sources = discover_kernscores(root)
    return _load_parsed("kernscores", sources, extra_instruments=frozenset(), piano=tuple(table["piano_corpora"]),
                        test_ids=frozenset(table["test"]), rejected=tuple(table["rejected"]),
                        policy=policy or STRICT, **parse_options)


def _load_palestrina(_: str, *, kernscores_dir: Optional[str], sources: Optional[Sequence[ScoreSource]],
                     policy: Optional[str], **parse_options) -> Corpus:
    """The ``palestrina`` corpus of music21's wheel: a deterministic 10% test split, no piano."""
    sources = discover_palestrina() if sources is None else sources
    return _load_parsed("palestrina", sources, extra_instruments=PALESTRINA_INSTRUMENTS, piano=(),
                        test_ids=palestrina_test_ids(s.score_id for s in sources), rejected=(),
                        policy=policy or STRICT, **parse_options)


def _load_dir(root: str, *, kernscores_dir: Optional[str], sources: Optional[Sequence[ScoreSource]],
              policy: Optional[str], **parse_options) -> Corpus:
    """The ``dir:PATH`` corpus (:func:`load_folder`)."""
    return load_folder(root, policy=policy or LENIENT, sources=sources, **parse_options)


def _corpus_loader(name: str) -> tuple[Optional[Callable[..., Corpus]], str]:
    """The loader of a ``--corpus`` value and its argument (the folder of ``dir:PATH``)."""
    if name in CORPUS_LOADERS and not name.endswith(":"):
        return CORPUS_LOADERS[name], ""
    prefix, colon, argument = name.partition(":")
    if colon and prefix + colon in CORPUS_LOADERS:
        return CORPUS_LOADERS[prefix + colon], argument
    return None, ""


def _load_parsed(name: str, sources: Sequence[ScoreSource], *, extra_instruments: frozenset[str],
                 piano: tuple[str, ...], test_ids: frozenset[str], rejected: tuple[str, ...], policy: str,
                 cache_dir: Optional[str | os.PathLike], use_cache: bool, workers: Optional[int],
                 progress: bool) -> Corpus:
    """A named corpus parsed as a whole, through one cache file keyed by every source's content."""
    cache_path = None
    if use_cache:
        key = _sources_digest(sources, f"{name}|{sorted(extra_instruments)}|{policy}")
        cache_path = Path(cache_dir or default_cache_dir()) / f"{name}-{key[:24]}.pkl"
        if cache_path.is_file():
            try:
                with open(cache_path, "rb") as handle:
                    cached = pickle.load(handle)
                # (scores, failures), plus the warnings when there are any (lenient policy)
                if not (isinstance(cached, tuple) and len(cached) in (2, 3) and isinstance(cached[0], dict)
                        and isinstance(cached[1], (list, tuple))):
                    raise ValueError("not a parsed corpus")
                scores, failures = cached[:2]
                warnings = list(cached[2]) if len(cached) == 3 else []
            except Exception as err:  # a damaged cache is rebuilt, never trusted
                print(f"voicecomp: ignoring unreadable cache {cache_path}: {err}", file=sys.stderr)
            else:
                return _make_corpus(name, sources, scores, failures, rejected, test_ids, piano, warnings)

    warnings: list[str] = []
    scores, failures = parse_sources(sources, extra_instruments=extra_instruments, workers=workers,
                                     progress=progress, policy=policy, warnings=warnings)
    if cache_path is not None:
        _atomic_pickle((scores, failures, warnings) if warnings else (scores, failures), cache_path)
    return _make_corpus(name, sources, scores, failures, rejected, test_ids, piano, warnings)


# The corpus loaders: a ``--corpus`` name, or a prefix ending in ":" whose argument follows it.
CORPUS_LOADERS: dict[str, Callable[..., Corpus]] = {
    "kernscores": _load_kernscores,
    "palestrina": _load_palestrina,
    DIR_PREFIX: _load_dir,
}
CORPUS_NAMES = tuple(name for name in CORPUS_LOADERS if not name.endswith(":"))


# ---------------------------------------------------------------------------
# Folders of score files (--corpus=dir:PATH)


class CorpusError(ValueError):
    """A corpus cannot be used at all (a folder without music, or none of it readable);
    the message is one line naming the folder and the reason."""


def corpus_spec_error(name: str) -> Optional[str]:
    """Why ``name`` cannot name a corpus (None if it can): for flag validation.  Only the
    spelling is checked; a folder that is missing or holds no music is a :class:`CorpusError`
    of :func:`load_corpus` (bad data, not bad usage)."""
    loader, argument = _corpus_loader(name)
    if loader is None:
        return f"unknown corpus {name!r}; expected {', '.join(CORPUS_NAMES)} or {DIR_PREFIX}PATH"
    if loader is _load_dir and not argument:
        return f"{DIR_PREFIX} needs a folder, e.g. --corpus={DIR_PREFIX}~/music"
    return None


def discover_folder(root: str) -> list[ScoreSource]:
    """Every score file under ``root`` (kern, MusicXML, MIDI by extension, any case;
    hidden files and folders skipped), with its path relative to ``root`` as score id
    and its folder (relative, ``.`` at the top) as corpus name.

    Raises FileNotFoundError for a missing folder, ValueError for one without music."""
    folder = os.path.expanduser(root)
    if not root:
        raise ValueError(f"{DIR_PREFIX} needs a folder, e.g. --corpus={DIR_PREFIX}~/music")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder")
    sources = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.startswith(".") or score_kind(filename) is None:
                continue
            path = os.path.join(dirpath, filename)
            score_id = os.path.relpath(path, folder).replace(os.sep, "/")
            parent = os.path.dirname(score_id) or "."
            sources.append(ScoreSource(score_id, parent, path, False, "voice"))
    if not sources:
        raise ValueError(f"{folder}: no music (no {', '.join(SCORE_EXTENSIONS)} files)")
    return sources


def _file_digest(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def folder_test_ids(digests: dict[str, Optional[str]], fraction: float = DIR_TEST_FRACTION) -> frozenset[str]:
    """Deterministic test split of a folder by content: a file is test when the hash of its
    bytes falls below ``fraction`` (copies of a file land together); with at least two
    files and none below, the one with the lowest hash, so a small folder still evaluates."""
    ranked = sorted((int(d[:16], 16) / 2**64, k) for k, d in digests.items() if d is not None)
    test = {k for value, k in ranked if value < fraction}
    if not test and len(ranked) >= 2:
        test = {ranked[0][1]}
    return frozenset(test)


def load_folder(
    root: str,
    *,
    cache_dir: Optional[str | os.PathLike] = None,
    use_cache: bool = True,
    workers: Optional[int] = None,
    progress: bool = True,
    policy: str = LENIENT,
    sources: Optional[Sequence[ScoreSource]] = None,
    report: bool = True,
) -> Corpus:
    """The ``dir:PATH`` corpus: every score file under ``root`` (:func:`discover_folder`).

    Files are parsed in parallel with a progress bar; each parse is cached on its own
    (key: the file's bytes, its kind, the policy and the reader versions), so adding a
    file to a large folder parses only that file.  The test split is by content hash
    (:func:`folder_test_ids`).  With ``report`` a JSON report (files, split, skipped files
    with their reasons, warnings, scores whose note values the model cannot encode) is
    written to the cache folder and its path printed to stderr when files were skipped.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown Humdrum policy {policy!r}; expected one of {POLICIES}")
    if sources is None:
        try:
            sources = discover_folder(root)
        except (FileNotFoundError, ValueError) as err:
            raise CorpusError(str(err)) from None
    name = DIR_PREFIX + root
    cache = Path(cache_dir or default_cache_dir())
    digests = {s.score_id: _file_digest(s.path) for s in sources}
    results: dict[str, tuple[object, list[str]]] = {}
    keys = {}
    for source in sources:
        digest = digests[source.score_id]
        if digest is None or not use_cache:
            continue
        keys[source.score_id] = key = _file_cache_key(source, digest, policy)
        path = cache / "files" / f"{key}.pkl"
        if path.is_file():
            try:
                with open(path, "rb") as handle:
                    result, notes = pickle.load(handle)
                if not isinstance(result, (KernScore, ParseFailure)):
                    raise ValueError("not a parsed score")
            except Exception:  # damaged: parse again
                continue
            # A file with the same bytes elsewhere shares the entry: name it after this one.
            if isinstance(result, ParseFailure):
                result = dataclasses.replace(result, score_id=source.score_id, path=source.path)
            elif result.name != source.path:
                result = dataclasses.replace(result, name=source.path)
            results[source.score_id] = (result, list(notes))
    missing = [s for s in sources if s.score_id not in results]
    if missing:
        new_warnings: list[str] = []
        scores, failures = parse_sources(missing, workers=workers, progress=progress, policy=policy,
                                         warnings=new_warnings)
        by_file: dict[str, list[str]] = {}
        for note in new_warnings:
            for source in missing:
                if note.startswith(source.path + ":"):
                    by_file.setdefault(source.score_id, []).append(note)
                    break
        for source in missing:
            result = scores.get(source.score_id) or next(f for f in failures if f.score_id == source.score_id)
            results[source.score_id] = (result, by_file.get(source.score_id, []))
            if source.score_id in keys:
                _atomic_pickle(results[source.score_id], cache / "files" / f"{keys[source.score_id]}.pkl")
    scores = {k: r for k, (r, _) in sorted(results.items()) if isinstance(r, KernScore)}
    failures = [r for _, (r, _) in sorted(results.items()) if isinstance(r, ParseFailure)]
    warnings = [note for _, (_, notes) in sorted(results.items()) for note in notes]
    if not scores:
        where = root if not failures else f"{root} ({failures[0]})"
        raise CorpusError(f"{where}: none of the {len(sources)} score files could be read")
    test_ids = folder_test_ids({k: digests[k] for k in scores})
    corpus = Corpus(
        name=name,
        scores=scores,
        corpus_of={s.score_id: s.corpus for s in sources},
        failures=tuple(failures),
        rejected=(),
        test_ids=test_ids,
        piano_corpora=(),
        warnings=tuple(warnings),
    )
    if report:
        path = cache / "reports" / f"{_folder_label(root)}.json"
        _atomic_json(folder_report(corpus, root, policy), path)
        corpus = dataclasses.replace(corpus, report=os.fspath(path))
        if failures:
            print(f"voicecomp: {len(failures)} of {len(sources)} files in {root} skipped; reasons in {path}",
                  file=sys.stderr)
    return corpus


def _file_cache_key(source: ScoreSource, digest: str, policy: str) -> str:
    from voicecomp.data.musicxml import READER_VERSION

    kind = score_kind(source.path)
    text = (f"v{CACHE_FORMAT_VERSION}|reader{READER_VERSION}|{kind}|{policy}|{source.mensural}|"
            f"{source.default_instrument}|{digest}")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _folder_label(root: str) -> str:
    absolute = os.path.abspath(os.path.expanduser(root))
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in os.path.basename(absolute.rstrip(os.sep)))
    return f"{stem or 'folder'}-{hashlib.sha256(absolute.encode()).hexdigest()[:12]}"


def folder_report(corpus: Corpus, root: str, policy: str) -> dict:
    """JSON-ready report of a folder corpus: sizes, split, skipped files with reasons,
    warnings, and scores the model cannot encode (note values outside its vocabulary)."""
    from voicecomp.encoding import EncodingError, duration_indices

    not_encodable = {}
    for score_id, score in corpus.scores.items():
        try:
            duration_indices(score.durations)
        except EncodingError as err:
            not_encodable[score_id] = str(err)
    return {
        "folder": os.path.abspath(os.path.expanduser(root)),
        "policy": policy,
        "files": len(corpus.corpus_of),
        "scores": len(corpus.scores),
        "train": len(corpus.split_ids("train")),
        "test": len(corpus.split_ids("test")),
        "skipped": [{"file": f.score_id, "line": f.line, "reason": f.reason} for f in corpus.failures],
        "not_encodable": [{"file": k, "reason": v} for k, v in sorted(not_encodable.items())],
        "warnings": list(corpus.warnings),
    }


def _atomic_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(obj, handle, indent=1)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _make_corpus(name, sources, scores, failures, rejected, test_ids, piano, warnings=()) -> Corpus:
    return Corpus(
        name=name,
        scores=scores,
        corpus_of={s.score_id: s.corpus for s in sources},
        failures=tuple(failures),
        rejected=tuple(rejected),
        test_ids=test_ids,
        piano_corpora=piano,
        warnings=tuple(warnings),
    )
