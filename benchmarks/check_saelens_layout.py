"""Check that SAELens loads our SAE folders and computes what we compute.

SAELens pins ``transformer-lens<4``, so it cannot live in this project's environment.
The check runs in two steps, in two environments:

1. here (``mi_helpers`` installed): ``python benchmarks/check_saelens_layout.py write DIR``
   saves one randomly perturbed SAE per architecture with :func:`mi_helpers.sae.save_sae`
   and a file of reference inputs with our latents and reconstructions;
2. in a separate venv with SAELens (``make saelens-env`` makes ``.venv-saelens``, or by hand:
   ``python3 -m venv /tmp/saelens-venv &&
   /tmp/saelens-venv/bin/pip install torch==2.13.0 sae-lens``):
   ``/tmp/saelens-venv/bin/python benchmarks/check_saelens_layout.py check DIR
   [--write-readme]`` loads each folder with ``sae_lens.SAE.load_from_disk`` and prints
   the class SAELens chose and the largest difference from our outputs.
   ``--write-readme`` puts the table into README.md (``saelens-check`` markers).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"relu": {}, "topk": {"k": 5}, "jumprelu": {}, "gated": {},
            "matryoshka": {"k": 5, "matryoshka_widths": [8, 32, 64]}}


def write(folder: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from mi_helpers.sae import build_sae, save_sae

    torch.manual_seed(0)
    x = torch.randn(50, 16)
    reference = {"x": x}
    for arch, extra in SETTINGS.items():
        sae = build_sae(d_in=16, d_sae=64, architecture=arch, hook_name="blocks.0.hook_resid_post",
                        model_name="zoo-2l", **extra)
        with torch.no_grad():
            for p in sae.parameters():  # move off the initialisation, so the check means something
                p.add_(0.1 * torch.randn_like(p))
            if arch == "jumprelu":
                sae.threshold.copy_(torch.rand(64) * 0.3)
            reference[f"{arch}.latents"] = sae.encode(x)
            reference[f"{arch}.recon"] = sae.reconstruct(x)
        save_sae(sae, folder / arch)
    save_file(reference, folder / "reference.safetensors")
    print(f"wrote {len(SETTINGS)} SAEs and reference outputs to {folder}")


def check(folder: Path, write_readme: bool) -> None:
    import sae_lens
    from sae_lens import SAE

    reference = load_file(folder / "reference.safetensors")
    x = reference["x"]
    rows = ["| our architecture | loaded by SAELens as | max abs diff, latents | max abs diff, reconstruction |",
            "|---|---|---|---|"]
    for arch in SETTINGS:
        sae = SAE.load_from_disk(str(folder / arch))
        with torch.no_grad():
            latents = sae.encode(x)
            recon = sae.decode(latents)
        d_lat = (latents - reference[f"{arch}.latents"]).abs().max().item()
        d_rec = (recon - reference[f"{arch}.recon"]).abs().max().item()
        rows.append(f"| {arch} | `{type(sae).__name__}` | {d_lat:.1e} | {d_rec:.1e} |")
    body = "\n".join(rows) + (f"\n\nChecked with sae-lens {sae_lens.__version__} "
                              f"(torch {torch.__version__}) by `benchmarks/check_saelens_layout.py`.")
    print(body)
    if write_readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        start, end = "<!-- saelens-check:start -->", "<!-- saelens-check:end -->"
        head, rest = text.split(start)
        _, tail = rest.split(end)
        readme.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["write", "check"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    write(args.folder) if args.step == "write" else check(args.folder, args.write_readme)


if __name__ == "__main__":
    main()
