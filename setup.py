"""Which packages the wheel holds: the one setting pyproject.toml cannot express.

The Triton models' templates (`config*.pbtxt.template`, `1/model.py`) are tracked in the top-level
`model_repository/` (one folder per Triton model, config next to code) and ship inside the wheel as
package data of `w2v_triton.serving.model_repository`, so that `build_repository` works from an
installed wheel (w2v_triton.build.repository.template_root). pyproject's `packages.find` cannot add a
package mapped from another folder, hence this list; everything else is in pyproject.toml.
"""
from setuptools import find_packages, setup

TEMPLATES = "w2v_triton.serving.model_repository"

setup(
    packages=[*find_packages(include=["w2v_triton*", "client*", "builders*", "benchmarks*", "gateway*"]), TEMPLATES],
    package_dir={TEMPLATES: "model_repository"},
    package_data={TEMPLATES: ["*/config*.pbtxt.template", "*/1/model.py"], "gateway": ["static/*.html"]},
)
