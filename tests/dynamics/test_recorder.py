"""The recorder: probes every N steps, plain JSON records, series over steps."""

import pytest
import torch

from mi_helpers.dynamics import Recorder


class Scale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))


def _probes():
    return {"norm": lambda m: m.w.norm(),
            "both": lambda m: {"first": m.w[0].item(), "weights": m.w.detach()},
            "mode": lambda m: float(m.training)}


def test_records_every_n_steps_with_values_and_probes():
    model, recorder = Scale().train(), Recorder(_probes(), every=3)
    for step in range(8):
        with torch.no_grad():
            model.w.mul_(2)
        recorder.maybe_record(step, model, loss=1 / (step + 1))
    assert recorder.steps.tolist() == [0, 3, 6]
    assert recorder.records[1] == {"step": 3, "loss": 0.25, "norm": round(16 * 5 ** 0.5, 4),
                                   "first": 16.0, "weights": [16.0, 32.0], "mode": 0.0}
    assert model.training  # probes ran in eval mode, and the mode came back
    assert torch.equal(recorder.series("weights"), torch.tensor([[2.0, 4.0], [16.0, 32.0],
                                                                 [128.0, 256.0]]))


def test_rounding_and_json_round_trip(tmp_path):
    model, recorder = Scale(), Recorder({"third": lambda m: torch.tensor([1 / 3, 2 / 3])},
                                        every=1, digits=3)
    recorder.record(0, model)
    assert recorder.records[0]["third"] == [0.333, 0.667]  # not 0.33329999446868896
    recorder.save(tmp_path / "r.json", config={"lr": 0.1})
    loaded = Recorder.load(tmp_path / "r.json")
    assert loaded.records == recorder.records and loaded.metadata == {"config": {"lr": 0.1}}
    with pytest.raises(RuntimeError, match="loaded without probes"):
        loaded.record(1, model)


def test_misuse_fails_loudly():
    model = Scale()
    with pytest.raises(ValueError, match="at least one probe"):
        Recorder({}, every=1)
    with pytest.raises(ValueError, match="every must be"):
        Recorder(_probes(), every=0)
    recorder = Recorder({"bad": lambda m: "high"}, every=1)
    with pytest.raises(TypeError, match="returned str"):
        recorder.record(0, model)
    recorder = Recorder(_probes(), every=1)
    recorder.record(5, model)
    with pytest.raises(ValueError, match="step 5 was recorded already"):
        recorder.record(5, model)
    with pytest.raises(KeyError, match="recorded names"):
        recorder.series("nothing")
