"""The README's quickstart runs exactly as written and prints what it says."""
import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_quickstart():
    assert python_blocks(), "README.md lost its ```python quickstart block"


def test_readme_python_blocks_run_as_written():
    for block in python_blocks():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
        printed = out.getvalue().splitlines()
        # every "print(...)  # expected" comment with a literal value must match the output
        expectations = [c.strip() for c in re.findall(r"^print\(.*?\)\s*#\s*(.+)$", block, flags=re.M)]
        assert len(printed) >= len(expectations)
        for line, expected in zip(printed, expectations):
            if expected.startswith("~"):
                continue
            assert line.strip() == expected, (line, expected)
