"""Threads that fit the machine (``pixelrnn train --threads``): fewer while other processes hold cores, all again
once they are gone; the caller's setting restored after training; bad values refused in one line."""

import pytest
import torch

from pixelrnn import threads as threads_module
from pixelrnn.cli import main
from pixelrnn.config import TrainConfig
from pixelrnn.errors import ConfigError
from pixelrnn.threads import ThreadFitter, machine_busy_seconds
from pixelrnn.train import train

TINY_RUN = dict(model="pixelcnn", model_options=dict(layers=1, hidden=4, head=8), data="digits", steps=4,
                batch_size=8, eval_every=0, eval_limit=16, checkpoint_every=4, log_every=2, warmup_steps=1)


class FakeMachine:
    """A machine of ``cores`` cores whose other processes take ``others`` cores while this one takes ``own``."""

    def __init__(self, cores=2):
        self.cores, self.now, self.machine, self.mine = cores, 0.0, 0.0, 0.0
        self.others, self.own = 0.0, 1.0

    def run(self, seconds):
        self.now += seconds
        self.machine += (self.others + self.own) * seconds
        self.mine += self.own * seconds

    def fitter(self, most):
        return ThreadFitter(most, machine=lambda: self.machine, own=lambda: self.mine, clock=lambda: self.now,
                            cores=lambda: self.cores, every_s=2.0)


@pytest.fixture
def set_threads(monkeypatch):
    """Record the thread counts the fitter sets instead of changing this process's."""
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    return calls


def test_a_busy_core_takes_a_thread_away_and_gives_it_back(set_threads):
    box = FakeMachine(cores=2)
    fitter = box.fitter(2)
    box.run(3)
    assert fitter.between_steps() is None and fitter.threads == 2  # quiet: all threads
    box.others = 1.0  # a process spins on one core
    box.run(1)
    assert fitter.between_steps() is None  # not yet time to look again
    box.run(2)
    assert fitter.between_steps() == 1 and set_threads == [1]
    box.run(3)
    assert fitter.between_steps() is None  # still busy: stays on one
    box.others = 0.0
    box.run(3)
    assert fitter.between_steps() == 2 and set_threads == [1, 2]


def test_short_bursts_of_other_work_leave_the_threads_alone(set_threads):
    box = FakeMachine(cores=4)
    fitter = box.fitter(4)
    box.others = 0.5  # half a core: a shell, a logger
    box.run(3)
    assert fitter.between_steps() is None and set_threads == []
    box.others = 2.7  # nearly three cores held: one thread left
    box.run(3)
    assert fitter.between_steps() == 1


def test_one_thread_or_an_unreadable_machine_changes_nothing(set_threads):
    box = FakeMachine(cores=2)
    box.others = 1.0
    single = box.fitter(1)
    blind = ThreadFitter(2, machine=lambda: None, own=lambda: box.mine, clock=lambda: box.now, every_s=2.0)
    box.run(5)
    assert single.between_steps() is None and blind.between_steps() is None and set_threads == []


def test_the_machines_busy_time_is_read_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n")
    ticks = threads_module.os.sysconf("SC_CLK_TCK")
    assert machine_busy_seconds(stat) == pytest.approx((100 + 5 + 50 + 3 + 2) / ticks)  # idle and iowait left out
    stat.write_text("garbage")
    assert machine_busy_seconds(stat) is None
    assert machine_busy_seconds(tmp_path / "missing") is None


def test_training_restores_the_callers_threads(tmp_path):
    before = torch.get_num_threads()
    train(TrainConfig(**TINY_RUN), tmp_path / "one", progress=False, threads=1)
    assert torch.get_num_threads() == before
    train(TrainConfig(**TINY_RUN), tmp_path / "fit", progress=False, threads="fit")
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="threads must be"):
        train(TrainConfig(**TINY_RUN), tmp_path / "bad", progress=False, threads=0)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5"])
def test_a_bad_thread_count_is_refused_in_one_line(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--threads", value, "--out", str(tmp_path / "run")])
    assert stop.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "run").exists()
