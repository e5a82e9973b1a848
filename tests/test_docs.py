import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_session_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## In Python\n\n```python\n(.*?)```", text, re.S).group(1)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, capture_output=True)
    assert (tmp_path / "runs" / "small" / "checkpoints" / "step_100" / "model.safetensors").exists()
