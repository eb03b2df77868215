"""What ``mutation_score.py`` mutates and how it judges survivors.

``MODULES``: each numerical module and the unit tests that mirror it (run in this order,
stopping at the first failure). ``EQUIVALENT``: survivors judged equivalent by reading
the code, mutant id -> why no test can tell them apart. Add to it only with a reason a
reader can check; a survivor that could change a result needs a test instead.
"""

# Each module and the unit tests that mirror it (run in this order, stopping at the first
# failure). ``-k`` expressions deselect the slow training tests that pin no formula.
SAE_TESTS = ["tests/features/test_sae_numerics.py", "tests/features/test_sae.py",
             "-k", "not recover_planted_features"]
MODULES: dict[str, list[str]] = {
    "mi_helpers/core/metrics.py": ["tests/core/test_metrics.py", "tests/core/test_core.py"],
    "mi_helpers/core/results.py": ["tests/core/test_metrics.py", "tests/core/test_core.py"],
    "mi_helpers/core/heads.py": ["tests/core/test_metrics.py", "tests/core/test_core.py"],
    "mi_helpers/core/graph.py": ["tests/core/test_graph_edges.py", "tests/core/test_core.py"],
    "mi_helpers/circuits/patching.py": ["tests/circuits/test_patch_sweeps.py",
                                        "tests/circuits/test_patching.py",
                                        "tests/circuits/test_replay.py"],
    "mi_helpers/circuits/ablation.py": ["tests/circuits/test_ablation.py",
                                        "tests/circuits/test_patch_sweeps.py",
                                        "tests/circuits/test_patching.py",
                                        "tests/circuits/test_evaluation.py"],
    "mi_helpers/circuits/tracing.py": ["tests/circuits/test_ablation.py",
                                       "tests/circuits/test_patch_sweeps.py",
                                       "tests/circuits/test_patching.py"],
    "mi_helpers/circuits/replay.py": ["tests/circuits/test_replay.py",
                                      "tests/circuits/test_path_patching_by_hand.py",
                                      "tests/circuits/test_patch_sweeps.py",
                                      "tests/circuits/test_patching.py",
                                      "tests/circuits/test_path_patching.py"],
    "mi_helpers/circuits/path_patching.py": ["tests/circuits/test_path_patching_by_hand.py",
                                             "tests/circuits/test_path_patching.py",
                                             "tests/circuits/test_replay.py"],
    "mi_helpers/circuits/evaluation.py": ["tests/circuits/test_completeness_minimality.py",
                                          "tests/circuits/test_evaluation.py"],
    "mi_helpers/circuits/composition.py": ["tests/circuits/test_composition.py",
                                           "tests/circuits/test_evaluation.py"],
    "mi_helpers/circuits/head_scores.py": ["tests/circuits/test_head_scores.py"],
    "mi_helpers/circuits/ioi.py": ["tests/circuits/test_ioi.py"],
    "mi_helpers/features/lens.py": [
        "tests/features/test_lens_numerics.py", "tests/features/test_lens.py",
        "tests/core/test_training_guard.py::test_tuned_lens_stops_when_its_loss_is_not_finite"],
    "mi_helpers/features/attribution.py": [
        "tests/features/test_lens_numerics.py", "tests/features/test_lens.py",
        "tests/features/test_tl_agreement.py::test_head_direct_logit_attribution_agrees",
        "tests/features/test_tl_agreement.py::test_logit_difference_attribution_is_exact_and_agrees"],
    "mi_helpers/features/probing.py": ["tests/features/test_probing_numerics.py",
                                       "tests/features/test_probing.py"],
    "mi_helpers/features/sae/base.py": SAE_TESTS,
    "mi_helpers/features/sae/relu.py": SAE_TESTS,
    "mi_helpers/features/sae/topk.py": SAE_TESTS,
    "mi_helpers/features/sae/jumprelu.py": SAE_TESTS,
    "mi_helpers/features/sae/gated.py": SAE_TESTS,
    "mi_helpers/features/sae/matryoshka.py": SAE_TESTS,
    "mi_helpers/features/sae/metrics.py": SAE_TESTS,
    "mi_helpers/universality/matching.py": ["tests/universality/test_alignment.py",
                                            "tests/universality/test_matching.py"],
    "mi_helpers/universality/alignment.py": ["tests/universality/test_alignment.py",
                                             "tests/universality/test_matching.py"],
    "mi_helpers/features/autointerp/scoring.py": ["tests/features/test_autointerp_scoring.py",
                                                  "tests/features/test_autointerp.py"],
}

# Survivors judged equivalent by reading the code: id -> why no test can tell them apart.
IN_PLACE = "editing the hook's input in place and returning it gives the same run (no_grad)"
SITE_CHECK = "the call only validates the site; any layer number does that"
BATCHING = "patches per pass only changes how the sweep is batched; results are equal (tested)"
LAST_TOKEN = ("names are never among a prompt's last tokens (templates end `... to {IO} .`) "
              "nor padding, so the search may stop one early or run one into the padding")
POOLED_SCALE = ("scales every dimension's pooled std by the same constant, which leaves the "
                "ranking (all that best_dims returns) unchanged")
SYMMETRIC = "the function is symmetric in the two swapped arguments"
SAME_DRAW = ("each head still joins K with probability 1/2, as documented (a draw of "
             "exactly 0.5 has probability 0); equivalent in distribution, though a given seed "
             "then draws other subsets")
EMPTY_CHUNK = "the extra chunk starts at the end: it is empty and adds nothing"
F1_SCALE = "scales every cut's F1 by the same constant: the best cut is the same"
EQUIVALENT: dict[str, str] = {
    "circuits/composition:_scores:range off by one:range(n_layers) -> range(n_layers - 1)#0":
        "the last layer has no later layer, so its inner loop is empty either way",
    "circuits/evaluation:CircuitEvaluator.without:delete statement:removed = set(removed) -> "
    "pass#0": "the set only speeds up `h not in removed`; a list gives the same answer",
    "circuits/path_patching:_record:drop call:act.detach().clone() -> act.detach()#0":
        "nothing edits a recorded q/k/v in place later in the run (checked on GPT-2 and "
        "GPT-NeoX), so the copy is not needed",
    "circuits/path_patching:_set_heads:delete statement:act = act.clone() -> pass#0": IN_PLACE,
    "circuits/path_patching:_set_heads:drop call:act.clone() -> act#0": IN_PLACE,
    "circuits/patching:_patch_hook:delete statement:act = act.clone() -> pass#0": IN_PLACE,
    "circuits/patching:_patch_hook:drop call:act.clone() -> act#0": IN_PLACE,
    "circuits/ablation:_ablate:delete statement:z = z.clone() -> pass#0": IN_PLACE,
    "circuits/ablation:_ablate:drop call:z.clone() -> z#0": IN_PLACE,
    "circuits/tracing:_add_noise:delete statement:act = act.clone() -> pass#0": IN_PLACE,
    "circuits/tracing:_add_noise:drop call:act.clone() -> act#0": IN_PLACE,
    "circuits/patching:PatchTarget.__post_init__:off by one:0 -> 1#0": SITE_CHECK,
    "circuits/patching:PatchTarget.__post_init__:off by one:0 -> -1#0": SITE_CHECK,
    "circuits/patching:_sweep_coords:off by one:0 -> -1#0":
        "every swept layer's activation has the same shape, so any layer gives the sizes",
    "circuits/patching:run_with_patches:off by one:0 -> -1#0":
        "with a single copy of the batch, copy -1 is copy 0",
    "circuits/ablation:ablation_patching:argument ignored:patches_per_pass -> None#0": BATCHING,
    "circuits/ablation:template_means:flip bool:True -> False#0":
        "the group mean broadcasts over the group's rows with or without keepdim",
    **{f"circuits/ioi:_build_dataset:{m}#{i}": LAST_TOKEN for i in (0, 1) for m in (
        "slice off by one:end + 1 -> end + 1 - 1", "slice off by one:end + 1 -> end + 1 + 1",
        "swap operator:end + 1 -> end - 1", "off by one:1 -> 2", "off by one:1 -> 0")},
    "circuits/ioi:_build_dataset:off by one:0 -> -1#0":
        "IO occurs exactly once (checked just above), so its first and last positions agree",
    **{f"features/probing:best_dims:{m}": POOLED_SCALE for m in (
        "swap operator:squares / max(len(acts) - 2, 1) -> squares * max(len(acts) - 2, 1)#0",
        "drop right operand:squares / max(len(acts) - 2, 1) -> squares#0",
        "swap function:max(len(acts) - 2, 1) -> min(len(acts) - 2, 1)#0",
        "swap operator:len(acts) - 2 -> len(acts) + 2#0",
        "drop right operand:len(acts) - 2 -> len(acts)#0", "off by one:2 -> 3#2",
        "off by one:2 -> 1#2", "off by one:1 -> 2#1", "off by one:1 -> 0#1")},
    "features/probing:tune_threshold:off by one:0 -> -1#0":
        "cumsum over dim -1 of a 1-D tensor is cumsum over dim 0",
    "features/probing:tune_threshold:off by one:2 -> 3#0": F1_SCALE,
    "features/probing:tune_threshold:off by one:2 -> 1#0": F1_SCALE,
    "features/probing:tune_threshold:change constant:1.0 -> 0.0#0":
        "calling every example positive always has F1 > 0, so a cut marked 0 never wins",
    "features/sae/topk:topk_activation:flip bool:False -> True#0":
        "the kept values are scattered back to their own indices, in whatever order",
    "features/sae/jumprelu:_JumpReLU.backward:swap arguments:_in_window(pre, threshold, eps) "
    "-> _in_window(threshold, pre, eps)#0": SYMMETRIC,
    "features/sae/jumprelu:_Step.backward:swap arguments:_in_window(pre, threshold, eps) -> "
    "_in_window(threshold, pre, eps)#0": SYMMETRIC,
    "features/sae/jumprelu:JumpReLUSAE.latent_axes:off by one:0 -> -1#0":
        "the threshold is 1-D: axis -1 is axis 0",
    "features/sae/gated:GatedSAE.sparsity_losses:swap arguments:squared_error(via_gate, x) -> "
    "squared_error(x, via_gate)#0": SYMMETRIC,
    "features/sae/matryoshka:MatryoshkaSAE.sparsity_losses:swap arguments:squared_error("
    "partial, x) -> squared_error(x, partial)#0": SYMMETRIC,
    "features/sae/metrics:sae_metrics:range off by one:range(0, n, chunk_size) -> "
    "range(0, n + 1, chunk_size)#0": EMPTY_CHUNK,
    "features/sae/metrics:ce_loss_recovered:range off by one:range(0, len(tokens), batch_size) "
    "-> range(0, len(tokens) + 1, batch_size)#0": EMPTY_CHUNK,
    "features/sae/metrics:ce_loss_recovered.splice:drop call:act.clone() -> act#0": IN_PLACE,
    "features/sae/metrics:ce_loss_recovered.zero:drop call:act.clone() -> act#0": IN_PLACE,
    **{f"features/sae/base:SAE.reset_parameters:{m}#0": (
        "kaiming_uniform_'s `a` only scales the draw, and every row is normalised next")
       for m in ("drop call:math.sqrt(5) -> 5", "off by one:5 -> 6", "off by one:5 -> 4")},
    "features/sae/base:SAE.forward:swap arguments:squared_error(reconstruction, x) -> "
    "squared_error(x, reconstruction)#0": SYMMETRIC,
    "features/sae/base:SAE.latent_axes:off by one:0 -> -1#1": "biases are 1-D: axis -1 is 0",
    "universality/matching:shared_activations:argument ignored:batch_size -> None#0": BATCHING,
    "universality/alignment:mapped_direction_similarity:swap arguments:torch.nn.functional."
    "cosine_similarity(mapped, dirs_b[pairs], dim=-1) -> torch.nn.functional.cosine_similarity"
    "(dirs_b[pairs], mapped, dim=-1)#0": SYMMETRIC,
    "features/autointerp/scoring:pearson:off by one:2 -> 1#0":
        "a single value is constant, which already returns 0",
    "features/autointerp/scoring:simulation_score:swap arguments:pearson(predicted, true) -> "
    "pearson(true, predicted)#0": SYMMETRIC,
    "circuits/composition:_scores:range off by one:range(n_layers) -> range(n_layers + 1)#0":
        "an extra layer after the last has no later layer: its inner loop is empty",
    "features/lens:_training_data:range off by one:range(0, len(tokens), batch_size) -> "
    "range(0, len(tokens) + 1, batch_size)#0": EMPTY_CHUNK,
    **{f"circuits/evaluation:{fn}:compare:rng.random() < 0.5 -> rng.random() {op} 0.5#0":
       SAME_DRAW for fn in ("completeness", "minimality") for op in ("<=", ">")},
    "circuits/patching:_replay_patched:off by one:0 -> -1#0":
        "a replayed chunk keeps to one layer (grouped by layer in _sweep), so its last patch's "
        "layer is its first's",
    "circuits/patching:_source_run:range off by one:range(model.cfg.n_layers) -> "
    "range(model.cfg.n_layers + 1)#0":
        "the extra entry (a layer past the last) is never looked up: names holds swept layers",
    "circuits/ablation:ablation_patching:argument ignored:replay -> None#0":
        "replay only chooses how the passes run; replayed and hooked sweeps agree (tested)",
    **{f"circuits/replay:_fingerprint:off by one:16 -> {n}#0": (
        "the digest is only compared with digests of the same size; any size tells changed "
        "weights apart") for n in (15, 17)},
    "circuits/replay:Replay.pattern:off by one:-1 -> -2#1":
        "the scores are square (dest_pos = src_pos): either axis gives the positions",
    **{f"features/probing:group_splits:{m}": (
        "validation is split_indices' validation and test parts joined (all but the train "
        "part, which only the first fraction sets), so the other two fractions never change it")
       for m in [f"{op}#{i}" for i in (0, 1) for op in (
           "swap operator:val_fraction / 2 -> val_fraction * 2",
           "drop right operand:val_fraction / 2 -> val_fraction",
           "off by one:2 -> 3", "off by one:2 -> 1")]},
    "features/probing:group_splits:delete statement:held_out = set(held_out) -> pass#0":
        "held_out is only tested with `in`; a set, list or tuple of groups gives the same rows",
    "circuits/path_patching:_replayed:off by one:1 -> 2#3":
        "the one extra stage runs after the last receiver's input is recorded, and the "
        "residual it returns is discarded",
    **{f"universality/alignment:residual_map:{m}#0": (
        "scaling A or B by a positive number scales A^T B and leaves its SVD's U V^T, the "
        "Procrustes map, unchanged") for m in (
        "swap operator:a / a.norm() -> a * a.norm()", "drop right operand:a / a.norm() -> a",
        "swap operator:b / b.norm() -> b * b.norm()", "drop right operand:b / b.norm() -> b")},
    "circuits/replay:Replay.forward:delete statement:stop = len(self.stages) if stop is None "
    "else stop -> pass#0": "slicing the stages up to None runs to the end, as len(stages) does",
    "circuits/replay:Replay.forward:slice off by one:stop -> stop + 1#0":
        "past the end the slice is the same; the one caller that stops early (path patching's "
        "receiver run) discards the residual, and the extra stage is after its last record",
    **{f"features/attribution:logit_difference_attribution:off by one:0 -> {n}#0": (
        "every head's output has the same shape, so any head gives the shape b_O expands to")
       for n in (1, -1)},
    "core/graph:CircuitGraph.edges:off by one:1 -> 0#0":
        "the embeddings read nothing, so adding them as a receiver adds no edge",
    "features/probing:binary_metrics:off by one:1 -> 2#0":
        "the floor only applies when 2 tp + fp + fn = 0, where the numerator is 0 anyway",
}
