"""Copy templates/ and playbooks/ into the package when building a wheel, so an installed
aifactory finds them outside the repository (see aifactory.resources)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithData(build_py):
    def run(self):
        super().run()
        root = Path(__file__).resolve().parent
        for name in ("templates", "playbooks"):
            src = root / name
            if src.is_dir():
                dst = Path(self.build_lib) / "aifactory" / "_data" / name
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.retry"))


setup(cmdclass={"build_py": BuildWithData})
