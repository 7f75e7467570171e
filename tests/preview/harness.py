"""Build a throwaway stack folder from factory YAML and run it through the offline preview.

The stack is a real Pulumi project (Pulumi.yaml, Pulumi.<stack>.yaml, factory.yaml and the
same two-line __main__.py as the example stacks), so component tests exercise exactly the path
`pulumi up` and `aifactory preview` take.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Optional

import yaml

MAIN = "from aifactory.components.program import run\n\nrun(__file__)\n"


def make_stack(root: Path, factory_yaml: str, config: Optional[dict] = None, name: str = "t") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "factory.yaml").write_text(textwrap.dedent(factory_yaml))
    (root / "__main__.py").write_text(MAIN)
    (root / "Pulumi.yaml").write_text(yaml.safe_dump({"name": name, "runtime": "python"}))
    (root / "Pulumi.test.yaml").write_text(yaml.safe_dump({"config": config or {}}))
    return root


def run(root: Path, factory_yaml: str, config: Optional[dict] = None):
    from aifactory.preview import preview

    return preview(make_stack(root, factory_yaml, config))


def inputs(result, type_suffix: str) -> list[dict]:
    """Inputs of every resource whose type ends with ``type_suffix``."""
    return [r.inputs for r in result.records if r.type.endswith(type_suffix)]


def only(result, type_suffix: str) -> dict:
    found = inputs(result, type_suffix)
    assert len(found) == 1, (type_suffix, len(found))
    return found[0]


def dump(result) -> str:
    return json.dumps([r.to_dict() for r in result.records], indent=1, default=str)


def factory(provider: str, system: str, nodes: int = 4, zones=("z",), fabric: Optional[str] = None,
            admin=("10.20.0.0/16",), os: str = "ubuntu-24.04", region: str = "r", **pool_fields) -> str:
    """A one-pool factory for ``provider``/``system`` as YAML text."""
    pool = {"name": "gpu", "site": "s1", "provider": provider, "system": system, "nodes": nodes,
            "zones": list(zones), **pool_fields}
    doc = {
        "name": "test",
        "software": {"driver_branch": "580", "cuda": "13.0", "os": os},
        "access": {"admin_cidrs": list(admin)},
        "tags": {"team": "ml"},
        "sites": [{"name": "s1", "provider": provider, "region": region}],
        "fabrics": [{"name": "fab", "type": fabric}] if fabric else [],
        "pools": [pool],
    }
    if fabric:
        pool["fabric"] = "fab"
    return yaml.safe_dump(doc, sort_keys=False)
