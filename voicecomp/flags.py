"""absl flags shared by the experiment scripts, and their conversion into a TrainConfig."""

from __future__ import annotations

from absl import flags

from voicecomp.config import TrainConfig, dtype_name
from voicecomp.data.corpus import corpus_spec_error
from voicecomp.data.humdrum import POLICIES
from voicecomp.models.multivoice import ARCHITECTURES, MultiVoiceConfig

_DEFAULT = TrainConfig()
_MODEL = MultiVoiceConfig()


def define_data_flags() -> None:
    flags.DEFINE_string("corpus", _DEFAULT.corpus, "Corpus: kernscores (the paper's), palestrina (ships with music21) "
                        "or dir:PATH (every kern, MusicXML and MIDI file under a folder).")
    flags.register_validator("corpus", _check_corpus)
    flags.DEFINE_enum("humdrum_policy", None, POLICIES, "Humdrum rules for kern files: strict (the paper's) or lenient "
                      "(other collections: non-kern spines ignored, misaligned barlines a warning). Default: strict "
                      "for kernscores and palestrina, lenient for dir:PATH.")
    flags.DEFINE_string("kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES).")


def _check_corpus(value: str) -> bool:
    error = corpus_spec_error(value)
    if error:
        raise flags.ValidationError(error)
    return True


def define_train_flags() -> None:
    """Every field of TrainConfig as a flag; unset flags keep the preset's (or default) value."""
    define_data_flags()
    define_experiment_flags()
    flags.DEFINE_string("workdir", None, "Run directory: config, checkpoints, metrics. Rerun to resume.")
    flags.DEFINE_list("corpora", [], "Train only on these corpus names (e.g. non-piano corpora for exp. 8).")
    flags.DEFINE_bool("holdout_validation", None, "Hold a fixed 5%% of the training scores (by a hash of their ids) "
                      "out of training and evaluate the non-piano ones as the valid split beside train and test.")
    flags.DEFINE_enum("architecture", None, ARCHITECTURES, f"Model family (default {_MODEL.architecture}).")
    flags.DEFINE_integer("voice_history", None, f"History C of voice states (default {_MODEL.voice_history}).")
    flags.DEFINE_integer("global_history", None, f"History steps updating the global state (default {_MODEL.global_history}).")
    flags.DEFINE_integer("duration_hidden", None, f"Duration net width kt (default {_MODEL.duration_hidden}).")
    flags.DEFINE_integer("notes_hidden", None, f"Notes net width kn (default {_MODEL.notes_hidden}).")
    flags.DEFINE_integer("pitch_embedding", None, f"Pitch embedding width knote (default {_MODEL.pitch_embedding}).")
    flags.DEFINE_float("init_std", None, f"Initial weight std (default {_MODEL.init_std}).")
    flags.DEFINE_enum("history", None, ["window", "full"], "window: each frame sees its last --voice_history frames "
                      "(the paper); full: voice and global states carried from the start of the score, after "
                      "--voice_history START frames (SPEC §3.1).")
    flags.DEFINE_integer("lanes", None, f"Full history: scores streamed side by side per batch (default {_DEFAULT.lanes}).")
    flags.DEFINE_integer("chunk_frames", None, "Full history: frames per lane per batch; gradients are truncated at "
                         f"chunk boundaries, states are carried (default {_DEFAULT.chunk_frames}).")
    flags.DEFINE_string("init_from", None, "Warm start: a run directory (its iterate average) or reference weights "
                        "(.npz) whose parameters start the run.")
    flags.DEFINE_enum("compute_dtype", None, ["float32", "bfloat16"], "Matrix-product dtype (parameters stay float32).")
    flags.DEFINE_enum("optimizer", None, ["sgd", "adam"], f"Optimiser (default {_DEFAULT.optimizer}).")
    flags.DEFINE_float("learning_rate", None, f"Initial learning rate (default {_DEFAULT.learning_rate}).")
    flags.DEFINE_string("lr_schedule", None, "Piecewise-constant schedule 'value@step,...' (e.g. 0.003@0,0.001@400000).")
    flags.DEFINE_float("momentum", None, f"SGD momentum (default {_DEFAULT.momentum}).")
    flags.DEFINE_bool("fresh_momentum", None, "Restart the momentum trace (Adam: its moments) at every learning-rate "
                      "stage, as a new optimiser per stage did in the reference (default: on for the Table 4 presets).")
    flags.DEFINE_float("l2", None, f"L2 coefficient added to the gradient (default {_DEFAULT.l2}).")
    flags.DEFINE_float("loss_events_per_beat", None, "Events per beat of the loss and of the reference convention "
                       "(default: measured on the training split; 4.7575, KernScores' training split, keeps a run on "
                       "other corpora in the paper's convention).")
    flags.DEFINE_float("ema_decay", None, f"Iterate-average decay (default {_DEFAULT.ema_decay}).")
    flags.DEFINE_integer("batch_size", None, f"Examples per step (default {_DEFAULT.batch_size}).")
    flags.DEFINE_integer("max_frames", None, "Distinct frames per batch (default: half the batch size); a frame's examples share its history.")
    flags.DEFINE_integer("batch_shards", None, "Packs per batch, one per device (default: the device count).")
    flags.DEFINE_integer("num_steps", None, f"Training steps (default {_DEFAULT.num_steps}).")
    flags.DEFINE_integer("seed", None, f"Seed of initialisation and data order (default {_DEFAULT.seed}).")
    flags.DEFINE_integer("log_every", None, f"Steps between progress lines (default {_DEFAULT.log_every}).")
    flags.DEFINE_integer("eval_every", None, f"Steps between evaluations, 0 = only at the end (default {_DEFAULT.eval_every}).")
    flags.DEFINE_integer("eval_examples", None, f"Size of the fixed train/test evaluation samples (default {_DEFAULT.eval_examples}).")
    flags.DEFINE_integer("checkpoint_every", None, f"Steps between checkpoints (default {_DEFAULT.checkpoint_every}).")
    flags.DEFINE_integer("keep_checkpoints", None, f"Checkpoints kept (default {_DEFAULT.keep_checkpoints}).")


def define_experiment_flags() -> None:
    """``--experiment`` (start from a preset of :mod:`voicecomp.presets`) and ``--list_experiments``."""
    flags.DEFINE_string("experiment", None, "Start from this preset (e.g. multi_6, the published exp. 6); every "
                        "explicitly given flag overrides it. See --list_experiments.")
    flags.DEFINE_bool("list_experiments", False, "Print every preset with a description and the paper's numbers, then exit.")


def experiment_base() -> TrainConfig:
    """The preset named by ``--experiment`` (the defaults when it is not given)."""
    name = flags.FLAGS["experiment"].value if "experiment" in flags.FLAGS else None
    if not name:
        return _DEFAULT
    from voicecomp import presets

    return presets.get_preset(name)


_MODEL_FIELDS = ("architecture", "voice_history", "global_history", "duration_hidden", "notes_hidden",
                 "pitch_embedding", "init_std", "history")
_RUN_FIELDS = ("corpus", "kernscores_dir", "humdrum_policy", "optimizer", "learning_rate", "lr_schedule", "momentum", "fresh_momentum", "l2",
               "ema_decay", "batch_size", "max_frames", "batch_shards", "num_steps", "seed", "log_every", "eval_every",
               "eval_examples", "checkpoint_every", "keep_checkpoints", "lanes", "chunk_frames", "init_from",
               "holdout_validation", "loss_events_per_beat")


def config_from_flags(base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (a preset or the defaults) with every explicitly given flag applied.

    Without ``base``: the ``--experiment`` preset if given, else the defaults."""
    if base is None:
        base = experiment_base()
    values = flags.FLAGS
    model_changes = {name: values[name].value for name in _MODEL_FIELDS if values[name].value is not None}
    if values["compute_dtype"].value is not None:
        model_changes["compute_dtype"] = dtype_name(values["compute_dtype"].value)
    model = base.model
    if model_changes:
        import dataclasses

        fields = {f.name for f in dataclasses.fields(model)}
        foreign = sorted(set(model_changes) - fields)
        if foreign:
            raise ValueError(f"--{', --'.join(foreign)} do(es) not apply to {base.task} models "
                             f"({type(model).__name__}); set them in a preset instead")
        model = dataclasses.replace(model, **model_changes)
    run_changes = {name: values[name].value for name in _RUN_FIELDS if values[name].value is not None}
    if not values["corpus"].present:
        run_changes["corpus"] = base.corpus  # an unset --corpus keeps the preset's corpus
    if values["corpora"].value:
        run_changes["corpora"] = tuple(values["corpora"].value)
    return base.replace(model=model, **run_changes)
