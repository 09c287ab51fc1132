"""README opens with the two set-up commands, and CI runs the second one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_opens_with_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.index("```bash")
    assert text[:first_block].strip() == "# sceneseg"
    install, test = readme_commands()[:2]
    assert "\n" not in install and "\n" not in test
    assert install.index("pip install torch==2.13.0") < install.index("pip install -e .")
    assert install.endswith("sceneseg train")
    assert test.endswith("python -m pytest -q")


def test_ci_runs_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci_lines


def test_every_builtin_config_is_listed_in_readme():
    from sceneseg.config import BUILTIN_CONFIGS

    text = (ROOT / "README.md").read_text()
    for path in BUILTIN_CONFIGS.glob("*.yaml"):
        assert f"`{path.stem}`" in text, path.stem


def test_every_builtin_study_is_listed_in_readme():
    from sceneseg.study import BUILTIN_STUDIES

    text = (ROOT / "README.md").read_text()
    for path in BUILTIN_STUDIES.glob("*.yaml"):
        assert f"`{path.stem}`" in text, path.stem


def test_your_own_data_examples_work(tmp_path, capsys):
    # The section's YAML loads, and its command lines run on a generated folder dataset.
    import shlex

    from sceneseg.cli import main
    from sceneseg.config import load_config
    from tests.test_builders import write_folder

    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Your own data") :]
    section = section[: section.index("\n## ")]
    (config,) = re.findall(r"```yaml\n(.*?)\n```", section, flags=re.S)
    (tmp_path / "my_data.yaml").write_text(config)
    write_folder(tmp_path / "data", count=10)
    assert load_config(tmp_path / "my_data.yaml", [f"data.root={tmp_path / 'data'}"]).data.options["val_ratio"] == 0.2
    (commands,) = re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)
    lines = commands.replace("data/my_dataset", str(tmp_path / "data")).split("\n")
    check, train = [shlex.split(line) for line in lines]
    assert check[:3] == ["sceneseg", "data", "check"] and main(check[1:]) == 0
    assert "road" in capsys.readouterr().out
    assert train[:2] == ["sceneseg", "train"] and load_config(train[2], train[3:]).model.num_classes == 2
