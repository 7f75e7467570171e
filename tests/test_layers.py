"""The layering the architecture promises, read from the source with ``ast``:

- only ``spec/``, ``plan/`` and the CLI entry import the spec models: everything downstream
  (components, render, inventory, lab, diff, report, policy, preflight) reads the plan;
- only the catalog package opens a catalog table: there is one loader;
- the planning modules never import a cloud SDK or Pulumi.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "modules" / "aifactory"
SPEC_READERS = {"spec", "plan", "cli.py", "__main__.py"}


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (relative imports resolved against the package)."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
    return out


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, path.relative_to(PACKAGE).parts[0], _imports(path)


def test_only_spec_plan_and_the_cli_import_the_spec():
    offenders = [str(path.relative_to(PACKAGE)) for path, top, imports in _modules()
                 if top not in SPEC_READERS and any(m == "aifactory.spec" or m.startswith("aifactory.spec.")
                                                    for m in imports)]
    assert offenders == [], f"these read the spec instead of the plan: {offenders}"


def test_the_import_reader_sees_spec_imports():
    """The reader above must see a spec import where one is: plan/ has them."""
    assert any(m.startswith("aifactory.spec") for path, top, imports in _modules() if top == "plan" for m in imports)


def test_one_catalog_loader():
    """No module outside the catalog package opens a CSV table or names the catalog's data folder."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "catalog":
            continue
        text = path.read_text(encoding="utf-8")
        if "csv.DictReader" in text or "catalog/data" in text or ".csv\"" in text and "open(" in text:
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []
    templates = Path(__file__).resolve().parents[1] / "templates"
    assert sorted(p.name for p in templates.rglob("*.csv")) == [], "tables belong in the catalog"


def test_planning_imports_no_cloud_sdk():
    heavy = ("pulumi", "pulumi_aws", "pulumi_gcp", "pulumi_azure_native", "pulumi_oci", "boto3", "ansible_runner",
             "google", "azure", "oci")
    for path, top, imports in _modules():
        if top in ("spec", "plan", "catalog", "fields.py", "yamlfile.py", "stackfiles.py", "stackconfig.py", "providers.py"):
            bad = sorted(m for m in imports if m.split(".")[0] in heavy)
            assert bad == [], f"{path.relative_to(PACKAGE)} imports {bad}"
