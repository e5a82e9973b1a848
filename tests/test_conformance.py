"""The conformance suites (`interp.testing`) on every built-in family and analysis; each check
is its own test, named after the contract it checks."""

import pytest

import interp  # noqa: F401  (registers the built-ins)
from interp.testing import built_in_subjects, parametrize_with_checks

pytestmark = pytest.mark.xdist_group("conformance")  # the checks share their tiny runs and results


@parametrize_with_checks(built_in_subjects())
def test_built_in_conforms(subject, check):
    check(subject)
