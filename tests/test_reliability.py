"""Nothing lost: a damaged newest checkpoint is set aside and training resumes exactly; a rejected
command leaves the work directory untouched; no checkpoint ever holds a non-finite value."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from voicecomp import train as train_lib
from test_train import TINY, chorale_data  # noqa: F401 - the fixture is used by name


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.ema_params, state.opt_state))]


def test_damaged_newest_checkpoint_is_set_aside_and_resume_is_exact(tmp_path, chorale_data, capsys):  # noqa: F811
    straight, damaged = tmp_path / "straight", tmp_path / "damaged"
    train_lib.train(TINY.replace(num_steps=40), str(straight), data=chorale_data, progress=False)
    train_lib.train(TINY.replace(num_steps=30), str(damaged), data=chorale_data, progress=False)
    for path in (damaged / "checkpoints" / "30").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    train_lib.train(TINY.replace(num_steps=40), str(damaged), data=chorale_data, progress=False)
    out = capsys.readouterr().out
    assert "step 30 is unreadable" in out and "set aside" in out and "resumed from step 20" in out
    assert (damaged / "checkpoints" / "30.damaged").is_dir()  # kept, renamed: never deleted
    _, _, a, step_a = train_lib.load_checkpoint(str(straight))
    _, _, b, step_b = train_lib.load_checkpoint(str(damaged))
    assert step_a == step_b == 40
    for x, y in zip(_leaves(a), _leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_rejected_command_leaves_the_work_directory_as_it_was(tmp_path, chorale_data):  # noqa: F811
    fresh = tmp_path / "fresh"
    with pytest.raises(ValueError, match="schedule"):
        train_lib.train(TINY.replace(lr_schedule="0.01"), str(fresh), data=chorale_data, progress=False)
    assert not fresh.exists()
    train_lib.train(TINY.replace(num_steps=10), str(fresh), data=chorale_data, progress=False)  # corrected: starts
    config = (fresh / "config.json").read_bytes()
    with pytest.raises(ValueError, match="shards"):
        train_lib.train(TINY.replace(num_steps=10, batch_size=33, batch_shards=2), str(fresh), data=chorale_data,
                        progress=False)
    assert (fresh / "config.json").read_bytes() == config


def test_nonfinite_parameters_stop_before_any_checkpoint_holds_them(tmp_path, chorale_data):  # noqa: F811
    # steps 1-5 are sane; the learning rate of step 6 overflows the parameters themselves
    config = TINY.replace(lr_schedule="0.01@0,1e38@5", num_steps=20, checkpoint_every=1)
    with pytest.raises(train_lib.NonFiniteLoss, match=r"at step 6.*last finite checkpoint \(5\) is intact") as err:
        train_lib.train(config, str(tmp_path), data=chorale_data, progress=False)
    assert str(err.value).startswith("params[") and "became non-finite" in str(err.value)
    _, _, state, step = train_lib.load_checkpoint(str(tmp_path))
    assert step == 5
    assert all(np.isfinite(x).all() for x in _leaves(state))
