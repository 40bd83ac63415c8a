"""DDP under torchrun on the CPU: gloo on 127.0.0.1, one thread per rank, every subprocess bounded in time.

The reference for everything is one process training on the same global batches: two ranks, two "nodes",
gradient accumulation and a resume after a crash must all give its weights.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import pixelrnn
from pixelrnn import distributed
from pixelrnn.checkpoint import load_checkpoint, load_trainer_state, save_checkpoint
from pixelrnn.cli import main as cli_main
from pixelrnn.config import TrainConfig
from pixelrnn.presets import preset
from pixelrnn.errors import ConfigError
from pixelrnn.train import train
import faults

SRC = str(Path(pixelrnn.__file__).resolve().parents[1])
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
FAULTS = str(Path(__file__).resolve().parent / "faults.py")
TIMEOUT = 180  # seconds for any one job; the process group times out well before
STEPS = 20
# fp32, not auto: the weights of different process layouts agree to 1e-5 only where no product rounds to bf16
TRAIN_FLAGS = ["train", "--preset", "tiny", "--steps", str(STEPS), "--checkpoint-every", "5", "--eval-every", "10",
               "--precision", "fp32", "--quiet", "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "PIXELRNN_DIST_TIMEOUT": "60"}


def torchrun_command(*args, nproc=2, extra_env=None, node_flags=None) -> list[str]:
    """The command line of ``pixelrnn ARGS`` under torchrun on 127.0.0.1 with ``nproc`` processes (through
    tests/faults.py when ``extra_env`` injects a fault)."""
    launch = node_flags or ["--nnodes", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{free_port()}"]
    injected = {faults.FAIL_ENV, faults.SLOW_ENV} & set(extra_env or {})
    program = [FAULTS] if injected else ["-m", "pixelrnn"]
    return [*TORCHRUN, *launch, "--nproc_per_node", str(nproc), "--max_restarts", "0", *program, *args]


def torchrun(*args, nproc=2, extra_env=None, check=True, node_flags=None) -> subprocess.CompletedProcess:
    """Run ``pixelrnn ARGS`` under torchrun (see :func:`torchrun_command`)."""
    command = torchrun_command(*args, nproc=nproc, extra_env=extra_env, node_flags=node_flags)
    result = subprocess.run(command, env={**env(), **(extra_env or {})}, capture_output=True, text=True,
                            timeout=TIMEOUT)
    if check and result.returncode != 0:
        raise AssertionError(f"torchrun failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def tiny_config(**changes) -> TrainConfig:
    return TrainConfig.from_dict({**preset("tiny"), "steps": STEPS, "checkpoint_every": 5, "eval_every": 10,
                                  "precision": "fp32", **changes})


def weights(run) -> dict:
    return load_checkpoint(run).state_dict()


def assert_close(a: dict, b: dict, tol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=tol, atol=tol, msg=k)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process, global batch 16, 20 steps: the reference."""
    run = tmp_path_factory.mktemp("single")
    train(tiny_config(), run, progress=False, device="cpu")
    return run


def docs_two_process_command() -> tuple[list[str], list[str]]:
    """The two-process torchrun line of docs/training.md: its launcher flags, and the arguments after -m pixelrnn."""
    page = Path(__file__).resolve().parent.parent / "docs" / "training.md"
    for line in page.read_text().splitlines():
        words = line.split("#")[0].split()
        if words[:1] == ["torchrun"] and "--nproc_per_node=2" in words:
            m = words.index("-m")
            return words[1:m], words[m + 2:]
    raise AssertionError(f"{page} has no `torchrun ... --nproc_per_node=2 -m pixelrnn train ...` line")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The docs' two-process command (docs/training.md) on the tiny preset: global batch 16 (8 per rank), 20 steps.
    The test's flags come after the page's, so they win."""
    run = tmp_path_factory.mktemp("two") / "run"
    launcher, args = docs_two_process_command()
    assert args[:1] == ["train"], args
    command = [*TORCHRUN, *launcher, "-m", "pixelrnn", *args, *TRAIN_FLAGS[1:], "--out", str(run)]
    result = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def test_two_ranks_train_like_one_process(single, two_ranks):
    """2 ranks x 8 images = 1 process x 16 images, to 1e-5; the ranks' weights are checked bitwise equal at the end
    of training (distributed.check_replicas), and rank 0 alone wrote the run."""
    assert load_trainer_state(two_ranks)["step"] == STEPS
    assert_close(weights(two_ranks), weights(single), 1e-5)
    rows = (two_ranks / "metrics.csv").read_text().splitlines()
    assert len([r for r in rows if ",train," in r]) == 1  # log_every 20: one row, from one writer
    valid = [r.split(",") for r in rows if ",valid," in r]  # at step 10 (200 images split over the ranks) and 20
    assert [int(r[0]) for r in valid] == [10, 20]
    single_valid = [r.split(",") for r in (single / "metrics.csv").read_text().splitlines() if ",valid," in r]
    for a, b in zip(valid, single_valid):
        assert float(a[2]) == pytest.approx(float(b[2]), rel=1e-5)


def test_a_failing_rank_ends_the_job_and_the_run_resumes_exactly(tmp_path, two_ranks, single):
    """Rank 1 raises at step 12: the job ends within the timeout with one line from that rank. The checkpoint of
    step 10 resumes under torchrun to the weights of the uninterrupted run, and in one process (another number of
    ranks, the global batch still divides) to the same weights to 1e-5; where it does not divide, one clear line."""
    run = tmp_path / "run"
    start = time.perf_counter()
    result = torchrun(*TRAIN_FLAGS, "--out", str(run), extra_env={faults.FAIL_ENV: "1:12"}, check=False)
    assert result.returncode != 0
    assert time.perf_counter() - start < 90
    lines = [line for line in result.stderr.splitlines() if line.startswith("pixelrnn train: failed")]
    assert lines == ["pixelrnn train: failed (rank 1 of 2): RuntimeError: test failure injected at step 12 "
                     f"({faults.FAIL_ENV}=1:12)"]
    assert load_trainer_state(run)["step"] == 10
    shutil.copytree(run, tmp_path / "copy")

    torchrun(*TRAIN_FLAGS, "--out", str(run), "--resume")
    a, b = weights(run), weights(two_ranks)
    assert all(torch.equal(a[k], b[k]) for k in a)

    train(tiny_config(), tmp_path / "copy", resume=True, progress=False, device="cpu")
    assert_close(weights(tmp_path / "copy"), weights(single), 1e-5)
    with pytest.raises(ConfigError, match="does not split into 1 rank"):
        train(tiny_config(steps=25, grad_accum=3), tmp_path / "copy", resume=True, progress=False, device="cpu")


def test_grad_accumulation_matches_one_big_step(tmp_path):
    config = tiny_config(steps=6)
    train(config, tmp_path / "one", progress=False, device="cpu")
    train(config.replace(grad_accum=2), tmp_path / "two", progress=False, device="cpu")
    assert_close(weights(tmp_path / "two"), weights(tmp_path / "one"), 1e-5)


def test_evaluate_on_two_ranks_matches_one_process(tmp_path, two_ranks):
    """101 test images split 50 + 51 over the ranks: the same figures as one process, from the JSON written, for a
    float64 model (to 1e-9) and a float32 one (to 1e-6). One torchrun job runs both commands in one process group."""
    jobs = []
    for dtype, rel in ((torch.float64, 1e-9), (torch.float32, 1e-6)):
        name = str(dtype).split(".")[-1]
        checkpoint = save_checkpoint(tmp_path / name, load_checkpoint(two_ranks).to(dtype),
                                     extra_config={"train": {"data": "digits"}})
        flags = ["evaluate", str(checkpoint), "--limit", "101", "--batch-size", "16", "--quiet", "--device", "cpu"]
        assert cli_main([*flags, "--json", str(tmp_path / f"{name}-one.json")]) == 0
        jobs.append([*flags, "--json", str(tmp_path / f"{name}-two.json")])
    script = tmp_path / "evaluate_both.py"
    script.write_text("import sys\nfrom pixelrnn import distributed\nfrom pixelrnn.cli import main\n"
                      "with distributed.session('cpu'):  # the commands join this process group\n"
                      f"    sys.exit(max(main(flags) for flags in {jobs!r}))\n")
    launch = ["--nnodes", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{free_port()}"]
    result = subprocess.run([*TORCHRUN, *launch, "--nproc_per_node", "2", "--max_restarts", "0", str(script)],
                            env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    for dtype, rel in (("float64", 1e-9), ("float32", 1e-6)):
        one, two = (json.loads((tmp_path / f"{dtype}-{n}.json").read_text()) for n in ("one", "two"))
        assert one["images"] == two["images"] == 101
        assert two["bits_per_dim"] == pytest.approx(one["bits_per_dim"], rel=rel)
        assert two["nats_per_image"] == pytest.approx(one["nats_per_image"], rel=rel)


def test_two_nodes_train_like_one_process(tmp_path, single):
    """Two torchrun "nodes" of one process each on 127.0.0.1 meet at a c10d rendezvous and train like one process."""
    run = tmp_path / "run"
    port = free_port()
    jobs = []
    for node in range(2):
        node_flags = ["--nnodes", "2", "--node_rank", str(node), "--rdzv_backend", "c10d",
                      "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "pixelrnn-test"]
        command = [*TORCHRUN, *node_flags, "--nproc_per_node", "1", "--max_restarts", "0", "-m", "pixelrnn",
                   *TRAIN_FLAGS, "--out", str(run)]
        jobs.append(subprocess.Popen(command, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [job.communicate(timeout=TIMEOUT) for job in jobs]
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
    assert [job.returncode for job in jobs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    assert_close(weights(run), weights(single), 1e-5)


def test_a_session_ended_by_sys_exit_0_leaves_the_process_group(monkeypatch):
    """A one-process gloo group: sys.exit(0) in the block leaves the group (gloo's threads left alive into interpreter
    shutdown can abort a finished process); a failure, or a non-zero exit, leaves without a goodbye."""
    monkeypatch.setattr(distributed, "launched", lambda: True)
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
                        "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    try:
        with pytest.raises(SystemExit):
            with distributed.session("cpu"):
                assert distributed.active()
                sys.exit(0)
        assert not distributed.active()
        monkeypatch.setenv("MASTER_PORT", str(free_port()))
        with pytest.raises(SystemExit):
            with distributed.session("cpu"):
                sys.exit(3)
        assert distributed.active()
    finally:
        if distributed.active():
            torch.distributed.destroy_process_group()


def test_micro_batches_and_shards_cover_everything_once():
    index = torch.arange(16)
    assert [m.tolist() for m in distributed.micro_batches(index, 2)] == [list(range(8)), list(range(8, 16))]
    assert distributed.shard(7) == slice(0, 7)
    with pytest.raises(ConfigError, match="does not split"):
        distributed.check_split(16, 3, 2)


def signal_mid_run(command: list[str], marker: Path, extra_env: dict) -> subprocess.CompletedProcess:
    """Start ``command`` with slowed steps, send SIGTERM once it is past step 2, and wait for it to end."""
    child = subprocess.Popen(command, env={**env(), **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + TIMEOUT
    while not (marker.exists() and marker.read_text().strip() and int(marker.read_text()) >= 2):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the run never reached step 2"
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(command, child.returncode, out, err)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1"])
def test_a_termination_signal_saves_and_the_run_resumes_exactly(tmp_path, single, sig):
    """SIGTERM (or SIGUSR1), as a cluster scheduler sends it, to a real training process: it stops after the step
    it is in with a checkpoint, says how to resume, exits with 143; --resume then gives the uninterrupted weights."""
    run, marker = tmp_path / "run", tmp_path / "step"
    command = [sys.executable, FAULTS, *TRAIN_FLAGS, "--out", str(run)]
    child = subprocess.Popen(command, env={**env(), faults.SLOW_ENV: f"0.1:{marker}"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    while not (marker.exists() and marker.read_text().strip() and int(marker.read_text()) >= 2):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the run never reached step 2"
        time.sleep(0.02)
    child.send_signal(getattr(signal, sig))
    out, err = child.communicate(timeout=TIMEOUT)
    assert child.returncode == 143, err
    step = load_trainer_state(run)["step"]
    assert 2 <= step < STEPS
    assert f"stopped on a termination signal (SIGTERM or SIGUSR1) at step {step} of {STEPS}" in out
    assert f"to continue: pixelrnn train --resume --out {run}" in out
    assert cli_main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    a, b = weights(run), weights(single)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_to_torchrun_stops_every_rank_at_one_step(tmp_path, two_ranks):
    """SIGTERM to the torchrun agent: it passes the signal to its workers, every rank stops at the same step (one
    all-reduce of the stop flag per step), rank 0 writes the checkpoint, and each worker exits with 143; a resume
    under torchrun then gives the weights of the uninterrupted two-rank run."""
    run, marker = tmp_path / "run", tmp_path / "step"
    extra = {faults.SLOW_ENV: f"0.1:{marker}"}
    result = signal_mid_run(torchrun_command(*TRAIN_FLAGS, "--out", str(run), extra_env=extra), marker, extra)
    assert result.returncode != 0  # torchrun's agent itself ends with an error after its workers
    step = load_trainer_state(run)["step"]
    assert 2 <= step < STEPS
    assert f"at step {step} of {STEPS}" in result.stdout and "exitcode" not in result.stderr.split("Traceback")[0]
    torchrun(*TRAIN_FLAGS, "--out", str(run), "--resume")
    a, b = weights(run), weights(two_ranks)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_second_training_in_one_run_folder_is_refused_and_a_dead_holder_is_taken_over(tmp_path, capsys):
    """Two trainings on one folder: the second is refused in one line that names the first's PID, and writes
    nothing; once the first is killed (SIGKILL: no goodbye) its lock goes with it and a resume goes on."""
    run, marker = tmp_path / "run", tmp_path / "step"
    child = subprocess.Popen([sys.executable, FAULTS, *TRAIN_FLAGS, "--out", str(run)],
                             env={**env(), faults.SLOW_ENV: f"0.2:{marker}"}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (marker.exists() and marker.read_text().strip() and int(marker.read_text()) >= 6):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the run never reached step 6"
            time.sleep(0.02)
        metrics = (run / "metrics.csv").read_bytes()
        assert cli_main(["train", "--out", str(run), "--resume", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"is being trained by another process (PID {child.pid})" in err and len(err.splitlines()) == 1
        assert (run / "metrics.csv").read_bytes()[:len(metrics)] == metrics  # the first one's file, untouched
    finally:
        child.kill()
        child.wait()
    assert cli_main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    assert load_trainer_state(run)["step"] == STEPS


def children(parent: int) -> list[int]:
    """The live processes whose parent is ``parent``, from /proc (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]  # the name, in brackets, may hold spaces
        except (OSError, ValueError):  # the process ended while we read
            continue
        if int(ppid) == parent and state not in "ZX":
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"  # a zombie has ended
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not torch.distributed.is_gloo_available(),
                    reason="reads /proc and sets a parent-death signal (Linux), and needs gloo")
def test_workers_end_when_their_launcher_is_killed_and_the_run_resumes(tmp_path, two_ranks):
    """SIGKILL to the torchrun launcher (no signal passed on to its workers): each worker ends within a few seconds
    (the kernel sends it SIGTERM when its parent dies), with a checkpoint of the step they stop at together, long
    before the end of the run; a resume under torchrun then gives the weights of the uninterrupted two-rank run."""
    run, marker, log = tmp_path / "run", tmp_path / "step", tmp_path / "stderr"
    extra = {faults.SLOW_ENV: f"0.5:{marker}"}  # 20 steps of 0.5 s: the run would go on for 10 s more
    with open(log, "w") as err:
        launcher = subprocess.Popen(torchrun_command(*TRAIN_FLAGS, "--out", str(run), extra_env=extra),
                                    env={**env(), **extra}, stdout=subprocess.DEVNULL, stderr=err)
    workers = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (marker.exists() and marker.read_text().strip() and int(marker.read_text()) >= 2):
            assert launcher.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the run never reached step 2"
            time.sleep(0.02)
        workers = children(launcher.pid)
        assert len(workers) == 2, workers
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 30
        while any(running(pid) for pid in workers):
            assert time.monotonic() < deadline, f"the workers outlived their launcher:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
    finally:
        for pid in workers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        launcher.kill()
        launcher.wait()
    assert (run / "checkpoints" / "latest").is_file(), log.read_text()[-3000:]
    step = load_trainer_state(run)["step"]
    assert 2 <= step < STEPS, log.read_text()[-3000:]
    torchrun(*TRAIN_FLAGS, "--out", str(run), "--resume")
    a, b = weights(run), weights(two_ranks)
    assert all(torch.equal(a[k], b[k]) for k in a)
