"""Project plumbing that users rely on: pins agree, CI runs the README's test command, documented files exist."""
import os
import re


def read(root, name):
    with open(os.path.join(root, name)) as handle:
        return handle.read()


def test_conda_file_pins_match_pyproject(project_root):
    pyproject = read(project_root, "pyproject.toml")
    deps_block = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    pip_pins = set(re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', deps_block))
    conda = read(project_root, "requirement.yaml")
    conda_pins = set(re.findall(r"^\s*-\s+([A-Za-z0-9_.-]+==\S+)\s*$", conda, flags=re.M))
    assert pip_pins and pip_pins == conda_pins
    assert "numpy==1." in deps_block  # jittor 1.3.11 returns garbage with numpy 2


def test_ci_runs_the_readme_test_command(project_root):
    readme = read(project_root, "README.md")
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    commands = [line.strip() for block in blocks for line in block.splitlines()]
    ci = read(project_root, ".ci/run")
    assert "bash run_tests.sh" in commands and "bash demo.sh" in commands
    assert "bash run_tests.sh" in ci.splitlines()


def test_documented_benchmark_and_experiment_files_exist(project_root):
    """Every benchmarks/ or experiments/ path the docs and scripts name is there (files moved between them stay found)."""
    docs = ["README.md", "benchmarks/demo_regime.md", "experiments/README.md", "train_1.sh", "tests/test_stage_quality.py"]
    named = set()
    for name in docs:
        named |= set(re.findall(r"\b((?:benchmarks|experiments)/[\w./-]*\w)", read(project_root, name)))
    assert {"benchmarks/demo_regime.md", "experiments/README.md", "benchmarks/attention_quality.py"} <= named
    missing = sorted(p for p in named if not os.path.exists(os.path.join(project_root, p)))
    assert not missing, missing
    strays = [f for f in os.listdir(os.path.join(project_root, "benchmarks")) if f.endswith(".jsonl") or "sweep" in f]
    assert not strays, f"investigation files in benchmarks/: {strays}"
