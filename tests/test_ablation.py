"""benchmarks/ablation.py: the paper's three orderings at equal steps, end to end on digits with tiny models."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ablation.py"
spec = importlib.util.spec_from_file_location("ablation", SCRIPT)
ablation = importlib.util.module_from_spec(spec)
sys.modules["ablation"] = ablation  # dataclasses look their module up there
spec.loader.exec_module(ablation)

TINY = ["--data", "digits", "--layers", "3", "--depths", "1", "2", "--hidden", "4", "--head", "8", "--steps", "3",
        "--eval-images", "40", "--device", "cpu", "--quiet"]


@pytest.mark.parametrize("margin, spread, expected", [
    (0.05, 0.01, "holds"), (0.05, None, "holds"), (-0.05, 0.01, "does not hold"), (-0.05, None, "does not hold"),
    (0.005, 0.01, "within noise"), (-0.005, 0.01, "within noise"), (0.0, None, "does not hold")])
def test_verdict(margin, spread, expected):
    assert ablation.verdict(margin, spread) == expected


def test_judge_on_hand_made_numbers():
    """The closest pair sets the spread; one reversed claim beyond it, and the finding does not hold."""
    _, findings = ablation.contenders_and_findings(7, 64, 64, [2, 4])
    depth = next(f for f in findings if f.key == "depth")
    bits = {"row-lstm-2-layers": 3.20, "row-lstm-4-layers": 3.10, "row-lstm": 3.09}
    assert ablation.judge(depth, bits)["verdict"] == "holds (one seed)"
    assert ablation.judge(depth, bits)["closest"] == ["row-lstm-4-layers", "row-lstm"]
    seeds = {"row-lstm-4-layers-seed1": 3.105, "row-lstm-seed1": 3.092}  # spread 0.005 < margin 0.01
    assert ablation.judge(depth, {**bits, **seeds})["verdict"] == "holds"
    assert ablation.judge(depth, {**bits, **seeds})["seed1_margin"] == pytest.approx(0.013)
    assert ablation.judge(depth, bits)["seed1_margin"] is None
    noisy = {"row-lstm-4-layers-seed1": 3.13, "row-lstm-seed1": 3.09}  # spread 0.03 > margin 0.01
    judged = ablation.judge(depth, {**bits, **noisy})
    assert judged["verdict"] == "within noise" and judged["spread"] == pytest.approx(0.03)
    assert [c["verdict"] for c in judged["claims"]] == ["holds", "within noise"]
    reversed_ = {**bits, "row-lstm-2-layers": 3.00, **seeds}
    assert ablation.judge(depth, reversed_)["verdict"] == "does not hold"
    assert ablation.judge(depth, {"row-lstm": 3.0})["verdict"] == "pending"


def test_end_to_end_and_resume(tmp_path, monkeypatch):
    out = tmp_path / "ablation"
    report = ablation.run(ablation.parse(["--out", str(out), *TINY]), log=lambda line: None)
    table = (out / "ablation.md").read_text()
    assert json.loads((out / "ablation.json").read_text())["table"] == report["table"]
    assert [f["key"] for f in report["findings"]] == ["family", "connections", "depth"]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| finding")]
    assert len(rows) == 3
    for row, finding in zip(rows, report["findings"]):
        assert finding["verdict"] in ablation.VERDICTS  # every second-seed run is in: no "(one seed)", no "pending"
        assert row.rstrip(" |").endswith(finding["verdict"]) and finding["spread"] is not None
        assert f"{finding['seed1_margin']:+.4f} (" in row.split(" | ")[2]  # seed 0's margin / seed 1's
    for name in ("pixelcnn", "row-lstm", "diagonal-bilstm", "row-lstm-neither", "row-lstm-residual-only",
                 "row-lstm-skip-only", "row-lstm-1-layers", "row-lstm-2-layers"):
        assert (out / name / "checkpoints" / "step-000000003").is_dir()
    repeats = {name for name in report["results"] if name.endswith("-seed1")}
    assert repeats == {name + "-seed1" for f in report["findings"] for name in f["closest"]}

    # A second invocation finds every contender at step 3: nothing is trained, and the table is the same.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished contender was trained again")

    monkeypatch.setattr(ablation, "train", no_training)
    again = ablation.run(ablation.parse(["--out", str(out), *TINY]), log=lambda line: None)
    assert again["table"] == report["table"]


def test_from_runs_reads_the_checkpoint_of_the_step(tmp_path):
    """--from-runs scores an existing run's checkpoint of step N; a run without it is an error naming its steps."""
    out = tmp_path / "ablation"
    args = ablation.parse(["--out", str(out), *TINY, "--only", "pixelcnn"])
    ablation.run(args, log=lambda line: None)
    ran = ablation.parse(["--out", str(tmp_path / "other"), *TINY, "--only", "pixelcnn",
                          "--from-runs", f"pixelcnn={out / 'pixelcnn'}"])
    report = ablation.run(ran, log=lambda line: None)
    assert report["results"]["pixelcnn"]["bits_per_dim"] == pytest.approx(
        json.loads((out / "results" / "pixelcnn.json").read_text())["bits_per_dim"])
    assert not (tmp_path / "other" / "pixelcnn").exists()  # read, not trained
    late = ablation.parse(["--out", str(tmp_path / "late"), *TINY, "--steps", "2", "--only", "pixelcnn",
                           "--from-runs", f"pixelcnn={out / 'pixelcnn'}"])
    with pytest.raises(ablation.ConfigError, match="no checkpoint of step 2; it keeps step-000000003"):
        ablation.run(late, log=lambda line: None)


def test_a_stored_result_is_reused_without_its_run_folder(tmp_path):
    out = tmp_path / "out"
    args = ablation.parse(["--out", str(out), *TINY, "--only", "row-lstm-1-layers"])
    first = ablation.run(args, log=lambda line: None)["results"]["row-lstm-1-layers"]["bits_per_dim"]
    shutil.rmtree(out / "row-lstm-1-layers")  # as on a new machine, with only the results kept
    args = ablation.parse(["--out", str(out), *TINY, "--only", "row-lstm-1-layers"])
    assert ablation.run(args, log=lambda line: None)["results"]["row-lstm-1-layers"]["bits_per_dim"] == first
    assert not (out / "row-lstm-1-layers").exists()  # not trained again
