"""Train one zoo model from scratch: seeded data, AdamW, warm-up then cosine decay.

``train_model(spec, out_dir)`` runs the loop with a tqdm bar, checks the induction
and previous-token scores every ``eval_every`` steps (a falling loss is no evidence of
induction heads), saves the model in the Hugging Face format and returns the training
record that goes into the model card. It can save resumable checkpoints every few steps
(``checkpoint_every``), continue from one (``resume_from``) and feed a
:class:`~mi_helpers.dynamics.Recorder` that measures the model while it trains
(``python -m mi_helpers.dynamics`` and notebook 13 use these).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

from ..core.training import TrainingGuard
from ..datasets.repeats import repeat_block
from ..dynamics.checkpoints import checkpoint_dir, load_checkpoint, save_checkpoint
from ..dynamics.induction import repeat_head_scores
from ..dynamics.recorder import Recorder
from .data import SequenceSampler, phase_at
from .specs import ZooSpec
from .tokenizer import build_tokenizer


def gpt2_config(spec: ZooSpec, vocab_size: int, bos_id: int) -> GPT2Config:
    """A dropout-free GPT-2 config of the spec's shape."""
    return GPT2Config(
        vocab_size=vocab_size, n_positions=spec.n_ctx, n_embd=spec.d_model,
        n_layer=spec.n_layer, n_head=spec.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=bos_id, eos_token_id=bos_id, pad_token_id=bos_id,
        tie_word_embeddings=True,
    )


def neox_config(spec: ZooSpec, vocab_size: int, bos_id: int) -> GPTNeoXConfig:
    """A dropout-free Pythia-style config: rotary on every head dimension, tied
    embeddings, sequential residual (``h + attn(ln1 h)``, then ``+ mlp(ln2 .)``)."""
    return GPTNeoXConfig(
        vocab_size=vocab_size, hidden_size=spec.d_model, num_hidden_layers=spec.n_layer,
        num_attention_heads=spec.n_head, intermediate_size=4 * spec.d_model,
        max_position_embeddings=spec.n_ctx, rotary_pct=1.0, use_parallel_residual=False,
        hidden_dropout=0.0, attention_dropout=0.0, tie_word_embeddings=True,
        bos_token_id=bos_id, eos_token_id=bos_id, pad_token_id=bos_id,
    )


def build_model(spec: ZooSpec, vocab_size: int, bos_id: int):
    """A freshly initialised model of the spec's architecture."""
    if spec.architecture == "gpt_neox":
        return GPTNeoXForCausalLM(neox_config(spec, vocab_size, bos_id))
    return GPT2LMHeadModel(gpt2_config(spec, vocab_size, bos_id))


def lr_factor(step: int, spec: ZooSpec) -> float:
    """Linear warm-up to 1, then cosine decay to 0.1 at the last step."""
    if step < spec.warmup:
        return (step + 1) / spec.warmup
    progress = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def quick_head_scores(model, sampler: SequenceSampler,
                      rep_len: int, n_seqs: int = 16) -> tuple[float, float]:
    """Best induction and previous-token score of any head on ``BOS + r + r``."""
    tokens = repeat_block(torch.tensor(sampler.content_ids), sampler.bos_id, rep_len,
                          n_seqs, seed=1234)
    scores = repeat_head_scores(model, tokens, rep_len)
    return scores["induction"].max().item(), scores["previous_token"].max().item()


def _setup(spec: ZooSpec):
    """Tokenizer, data sampler, fresh model, AdamW and its schedule, seeded by the spec."""
    torch.manual_seed(spec.seed)
    tokenizer = build_tokenizer()
    sampler = SequenceSampler(spec.n_ctx, spec.seed)
    model = build_model(spec, len(tokenizer), tokenizer.bos_token_id)
    model.config.loss_type = "ForCausalLM"
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.98), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, spec))
    return tokenizer, sampler, model, opt, sched


def _resume(folder: Path, steps: int, model, opt, sched, sampler, recorder) -> tuple[int, list]:
    """Restore a checkpoint of this run; the step to continue from and the log so far."""
    saved = load_checkpoint(folder, model, opt, scheduler=sched, rng=sampler.rng)
    if saved["extra"].get("steps") != steps:
        raise ValueError(f"{folder} belongs to a run of {saved['extra'].get('steps')} steps, "
                         f"not {steps}: the learning-rate schedule would differ")
    if recorder is not None:
        recorder.records = saved["extra"]["records"]
    return saved["step"], saved["extra"]["log"]


def _train_step(model, opt, sched, batch, step: int, guard: TrainingGuard) -> torch.Tensor:
    """One AdamW step on ``batch`` (gradients clipped to norm 1); the batch's loss.

    ``guard`` raises (with the last good parameters restored) when the loss is not finite
    or diverges; nothing is saved then.
    """
    loss = model(batch, attention_mask=torch.ones_like(batch), labels=batch).loss
    guard.check(loss, step)
    guard.keep(step)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
    return loss


def train_model(spec: ZooSpec, out_dir: Path, steps: int | None = None,
                eval_every: int = 250, progress: bool = True, *,
                checkpoint_every: int | None = None, checkpoints: Path | None = None,
                resume_from: Path | None = None, recorder: Recorder | None = None) -> dict:
    """Train ``spec`` from scratch (or resume it) and save it (model + tokenizer) to ``out_dir``.

    Args:
        spec: the zoo model to train.
        out_dir: folder for ``config.json``, ``model.safetensors`` and tokenizer files.
        steps: override ``spec.steps`` (the smoke test trains a few steps).
        eval_every: steps between head-score checks (logged in the record).
        progress: show a tqdm bar.
        checkpoint_every: save a resumable checkpoint every this many steps (and at the
            end) under ``checkpoints`` (default ``out_dir/checkpoints``), one folder per step.
        resume_from: a checkpoint folder of this run to continue from; the steps after
            it are those of an uninterrupted run.
        recorder: a :class:`~mi_helpers.dynamics.Recorder` that measures the model at
            step 0, every ``recorder.every`` steps and at the end, with ``train_loss`` of
            the step's batch.

    Returns:
        The training record: seed, steps, tokens seen, wall and CPU time of this call (the
        CPU time does not grow when other programs share the machine) and the loss/score log.
    """
    steps = steps or spec.steps
    spec = spec if steps == spec.steps else ZooSpec(**{**spec.__dict__, "steps": steps})
    tokenizer, sampler, model, opt, sched = _setup(spec)
    checkpoints = Path(checkpoints) if checkpoints else Path(out_dir) / "checkpoints"
    first, log = 0, []
    if resume_from is not None:
        first, log = _resume(Path(resume_from), steps, model, opt, sched, sampler, recorder)
    elif recorder is not None:
        recorder.record(0, model)
    start, cpu_start = time.perf_counter(), time.process_time()
    guard = TrainingGuard(model.parameters(), f"{spec.name} (not saved)", result=model)
    bar = tqdm(range(first, steps), desc=f"train {spec.name}", disable=not progress)
    for step in bar:
        batch = sampler.batch(spec.batch_size, phase_at(spec.phases, step / steps))
        loss = _train_step(model, opt, sched, batch, step, guard)
        done = step + 1
        if recorder is not None and (recorder.due(done) or done == steps):
            recorder.record(done, model, train_loss=loss.item())
        if done % eval_every == 0 or done == steps:
            induction, previous = quick_head_scores(model.eval(), sampler, rep_len=20)
            model.train()
            log.append({"step": done, "loss": round(loss.item(), 4),
                        "induction": round(induction, 3), "previous_token": round(previous, 3)})
            bar.set_postfix(loss=f"{loss.item():.3f}", ind=f"{induction:.2f}", prev=f"{previous:.2f}")
        if checkpoint_every and (done % checkpoint_every == 0 or done == steps):
            save_checkpoint(checkpoint_dir(checkpoints, done), model, opt, done, scheduler=sched,
                            rng=sampler.rng, tokenizer=tokenizer,
                            extra={"steps": steps, "log": log,
                                   "records": recorder.records if recorder else []})
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"seed": spec.seed, "steps": steps, "batch_size": spec.batch_size,
            "tokens_seen": steps * spec.batch_size * spec.n_ctx,
            "wall_time_s": round(wall, 1), "cpu_time_s": round(cpu, 1),
            "threads": torch.get_num_threads(), "log": log}
