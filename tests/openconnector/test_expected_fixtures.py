"""The fixtures in expected/ are what OpenConnector makes of the fakes as they are: regenerated with real Twig
(php-cli, php-twig), they come out the same. Skipped where php or Twig is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.openconnector.regenerate_expected import folder_expected
from tests.openconnector.shipped import FOLDERS, expected_of

TWIG_AUTOLOAD = Path(os.environ.get("TWIG_AUTOLOAD") or "/usr/share/php/Twig/autoload.php")

pytestmark = [
    pytest.mark.twig_oracle,
    pytest.mark.skipif(
        shutil.which("php") is None or not TWIG_AUTOLOAD.exists(),
        reason=f"needs php-cli and php-twig ({TWIG_AUTOLOAD}): apt-get install -y php-cli php-twig",
    ),
]


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_committed_fixture_is_what_openconnector_makes_of_the_fake(folder):
    assert folder_expected(folder) == expected_of(folder)
