"""The README's tour runs as written and prints what its comments promise."""

import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs_and_prints_its_comments():
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    promised = [m.group(1).strip() for m in re.finditer(r"print\(.*\)\s+#\s*(\S[^\n]*)", block)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {})
    printed = out.getvalue().splitlines()
    assert len(promised) == len(printed) >= 4
    assert printed == promised


def test_readme_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    fence = lines.index("```bash")
    commands = lines[fence + 1 : lines.index("```", fence + 1)]
    assert len(commands) == 2
    assert "pip install" in commands[0] and commands[0].endswith("kerasnets train")
    assert commands[1].endswith("python -m pytest tests")
    assert "pip install -e \".[test,oracle,backends,export]\"" in commands[1]  # the tests install their own packages
    assert "pip install -e . &&" in commands[0]  # the main job: no test, oracle or torch packages
    ci = (README.parent / ".ci" / "run").read_text()
    assert "README.md" in ci and 'bash -c "$test_command"' in ci  # CI runs the README's line itself
