import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_environment_variable_of_the_settings_is_in_the_readme():
    settings_source = (ROOT / "config" / "settings.py").read_text()
    variables = set(re.findall(r'env(?:str|bool|int|float|list)\("([A-Z0-9_]+)"', settings_source))
    readme = (ROOT / "README.md").read_text()
    assert variables, "no variables found: the pattern no longer matches settings.py"
    missing = sorted(name for name in variables if f"`{name}`" not in readme)
    assert missing == []
