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
    """Every benchmarks/ or experiments/ path the docs and scripts name is there (files moved between them stay
    found)."""
    docs = ["README.md", "benchmarks/demo_regime.md", "experiments/README.md", "train_1.sh",
            "tests/stages/test_quality_on_true_inputs.py"]
    named = set()
    for name in docs:
        named |= set(re.findall(r"\b((?:benchmarks|experiments)/[\w./-]*\w)", read(project_root, name)))
    assert {"benchmarks/demo_regime.md", "experiments/README.md", "benchmarks/attention_quality.py"} <= named
    missing = sorted(p for p in named if not os.path.exists(os.path.join(project_root, p)))
    assert not missing, missing
    strays = [f for f in os.listdir(os.path.join(project_root, "benchmarks")) if f.endswith(".jsonl") or "sweep" in f]
    assert not strays, f"investigation files in benchmarks/: {strays}"


def test_readme_is_a_short_guide_whose_links_resolve(project_root):
    """The README stays a user guide (at most 15 KB, a table of contents); every relative link in it and in docs/
    names a file that exists, and every #anchor a heading of that file."""
    readme = read(project_root, "README.md")
    assert len(readme.encode()) <= 15_000
    assert "## Contents" in readme

    def anchors(text):
        return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}

    pages = ["README.md"] + ["docs/" + f for f in os.listdir(os.path.join(project_root, "docs")) if f.endswith(".md")]
    for page in pages:
        text = read(project_root, page)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if "://" in target:
                continue
            path, _, anchor = target.partition("#")
            linked = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            assert os.path.exists(os.path.join(project_root, linked)), f"{page}: broken link {target}"
            if anchor:
                assert anchor in anchors(read(project_root, linked)), f"{page}: no heading for {target}"
