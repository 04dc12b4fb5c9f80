"""Build hook: compiles ``pysweep._native`` and ``pysweep._mainline`` with cffi; metadata is in pyproject.toml."""

from setuptools import setup

setup(
    packages=["pysweep"],
    cffi_modules=["pysweep/_build_ffi.py:ffibuilder", "pysweep/_build_mainline.py:ffibuilder"],
    # The extensions use the stable ABI (abi3.so), so one wheel serves every CPython from 3.11 on.
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
