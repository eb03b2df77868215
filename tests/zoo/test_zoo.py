"""The zoo: a training smoke test, and the behaviours every committed model must have,
recomputed from its loaded weights and compared with its model card."""

import json

import pytest

from mi_helpers.core.models import ZOO_DIR, load_model, zoo_names
from mi_helpers.zoo.behaviours import THRESHOLDS, best_heads, ioi_behaviour
from mi_helpers.zoo.specs import ZOO_SPECS, ZooSpec
from mi_helpers.zoo.train import train_model


def test_training_smoke(tmp_path):
    spec = ZooSpec(name="smoke", purpose="test", n_layer=1, d_model=16, n_head=2,
                   n_ctx=32, batch_size=4, warmup=2)
    record = train_model(spec, tmp_path, steps=6, eval_every=3, progress=False)
    assert record["tokens_seen"] == 6 * 4 * 32 and len(record["log"]) == 2
    model = load_model(str(tmp_path), device="cpu")
    assert model.cfg.n_layers == 1 and model.cfg.d_vocab == len(model.tokenizer)


def test_every_spec_is_committed():
    assert set(zoo_names()) == set(ZOO_SPECS)
    total = sum(f.stat().st_size for f in ZOO_DIR.rglob("*") if f.is_file())
    assert total < 30e6


@pytest.fixture(scope="module", params=sorted(ZOO_SPECS))
def zoo_model(request):
    return request.param, load_model(request.param, device="cpu")


def test_zoo_behaviours(zoo_model):
    name, model = zoo_model
    card = json.loads((ZOO_DIR / name / "model_card.json").read_text())
    heads = best_heads(model)
    for kind in ZOO_SPECS[name].expects:
        if kind == "ioi":
            heldout = ioi_behaviour(model)["heldout"]
            assert heldout["logit_diff"] > THRESHOLDS["ioi_logit_diff"]
            assert heldout["top1_accuracy"] > THRESHOLDS["ioi_top1_accuracy"]
            assert heldout == card["behaviours"]["ioi"]["heldout"]
        else:
            assert heads[kind]["score"] > THRESHOLDS[kind], (name, kind, heads[kind])
    assert heads == card["behaviours"]["heads"]


def test_readme_zoo_table_is_generated_from_the_cards():
    from mi_helpers.zoo.card import zoo_table
    readme = (ZOO_DIR.parent.parent / "README.md").read_text()
    assert zoo_table(ZOO_DIR) in readme
