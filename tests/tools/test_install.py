"""A regular (non-editable) install finds the embedded zoo from any directory."""

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_install_loads_the_zoo_from_another_directory(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("mi_roadmap-*.whl")
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies (torch, transformer-lens, ...) come from this environment's site-packages,
    # added as a plain path so that its editable-install hook for mi_helpers is NOT loaded
    (Path(site) / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--target", site, str(wheel)], check=True)
    code = ("import mi_helpers, mi_helpers.core.paths as p; "
            "assert 'fresh' in mi_helpers.__file__, mi_helpers.__file__; "
            "from mi_helpers import load_model; m = load_model('zoo-2l', device='cpu'); "
            "print(p.data_dir(), m.cfg.n_layers)")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    data, n_layers = out.stdout.split()
    assert "fresh" in data and n_layers == "2"
