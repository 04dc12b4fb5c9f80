"""Build hook: compiles ``pysweep._native`` with cffi; metadata is in pyproject.toml."""

from setuptools import setup

setup(packages=["pysweep"], cffi_modules=["pysweep/_build_ffi.py:ffibuilder"])
