"""Optional reference libraries (PyTorch, transformers) of the parity tests.

    torch = references.optional("torch")

    @references.needs("torch")
    def test_matches_torch(): ...

A missing library skips only the tests marked as needing it, with the install
command as the reason; `test_vit.test_ci_has_the_reference_libraries` fails
under CI when one is missing, so the parity tests never silently stop running.
"""

import importlib

import pytest

REFERENCE_LIBRARIES = ("torch", "transformers")


def optional(name: str):
  """The module `name`, or None if it is not installed."""
  try:
    return importlib.import_module(name)
  except ImportError:
    return None


def needs(*names: str):
  """Skip mark for a test that needs the reference libraries `names`."""
  missing = [name for name in names if optional(name) is None]
  return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed "
                            "(pip install -r requirements-test.txt)")
