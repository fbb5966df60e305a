"""Which packages the wheel holds; everything else is in pyproject.toml.

Every package under vedcli/ is found, and the top-level configs/ folder ships as `vedcli.presets_data` (mapped in
pyproject.toml's package-dir). This is the one thing pyproject.toml cannot say: `packages.find` does not apply a
package-dir mapping to the packages it finds.
"""

from setuptools import find_namespace_packages, find_packages, setup

PRESETS = "vedcli.presets_data"


def packages() -> list[str]:
    code = find_packages(include=["vedcli", "vedcli.*"])
    return code + [PRESETS] + [f"{PRESETS}.{name}" for name in find_namespace_packages("configs")]


if __name__ == "__main__":
    setup(packages=packages())
