"""The README's set-up: the command CI runs is the one it shows, and the CPU-only PyTorch
install it offers for machines without a GPU keeps the versions CI pins (issue 21)."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SETUP = ".venv/bin/pip install -q -c .ci/constraints.txt -e '.[test]'"


def test_ci_runs_the_set_up_the_readme_shows():
    assert SETUP in (ROOT / ".ci" / "run").read_text()
    two = (ROOT / "README.md").read_text().split("## Two commands")[1].split("\n## ")[0]
    assert two.count(SETUP) >= 2  # both commands set up the same way


def test_the_readme_says_the_size_and_a_cpu_only_install_within_the_pins():
    readme = (ROOT / "README.md").read_text()
    size = readme.split("**Size of the set-up.**")[1].split("\n\n")[0]
    assert re.search(r"\d+\.\d GB virtual environment", size)
    assert "NVIDIA libraries" in size and "Triton" in size
    (cpu,) = [line for line in readme.splitlines()
              if "--index-url https://download.pytorch.org/whl/cpu" in line]
    assert "-c .ci/constraints.txt torch torchvision" in cpu
    pins = {Requirement(line).name: Requirement(line) for line in
            (ROOT / ".ci" / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    for name in ("torch", "torchvision"):
        (pinned,) = re.findall(r"==([\w.]+)", str(pins[name].specifier))
        # PyTorch's CPU wheels carry a local version label, which the pin accepts (PEP 440)
        assert pins[name].specifier.contains(f"{pinned}+cpu")
    assert SETUP in readme.split("**Size of the set-up.**")[1].split("```")[1]
