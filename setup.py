"""Build script for the codec's optional C speedups; the rest of the build is pyproject.toml.

``optional=True``: where no C compiler or Python headers are found, the build goes on and
katcpx runs on its pure-Python codec (see ``katcpx.codec.SPEEDUPS``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("katcpx.codec._speedups", ["katcpx/codec/_speedups.c"], optional=True),
    ]
)
