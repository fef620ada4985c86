"""The tests' factories make configurations the service itself accepts, of every kind."""
from __future__ import annotations

import pytest

from syncapp.configuration import bundle_export, bundle_validate
from tests.factories import SYNCHRONIZATION_KINDS, make_synchronization

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("source_type", "target_type"), SYNCHRONIZATION_KINDS)
def test_a_synchronization_of_each_kind_is_one_an_import_accepts(source_type, target_type):
    sync = make_synchronization(source_type=source_type, target_type=target_type)

    bundle = bundle_export()

    assert [(item["sourceType"], item["targetType"]) for item in bundle["synchronizations"]] == [
        (sync.source_type, sync.target_type)
    ] == [(source_type, target_type)]
    bundle_validate(bundle)  # raises ConfigurationInvalid naming every problem
