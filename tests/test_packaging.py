"""Project plumbing that users rely on: pins agree, and CI runs the README's test command."""
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
