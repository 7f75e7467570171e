import json
import subprocess
import sys

from aifactory.spec import json_schema


def test_schema_describes_the_keys_other_tools_use():
    schema = json_schema()
    assert set(schema["required"]) == {"name", "sites", "pools"}
    pool = schema["$defs"]["Pool"]
    assert {"name", "site", "provider", "system", "nodes"} <= set(pool["required"])
    assert pool["additionalProperties"] is False
    assert "onprem" in pool["properties"]["provider"]["examples"]  # plugins add more: no closed enum


def test_schema_command_prints_json():
    out = subprocess.run([sys.executable, "-m", "aifactory", "schema"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["title"] == "aifactory factory spec"
