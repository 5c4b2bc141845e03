"""The optional compiled UDP hot path (rbl/dnsserver/_hotpath.c); the rest is pyproject.toml.

``optional=True``: without a compiler the install still succeeds and rbl
answers in Python (``rbl serve`` says which path runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rbl.dnsserver._hotpath",
            ["rbl/dnsserver/_hotpath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
