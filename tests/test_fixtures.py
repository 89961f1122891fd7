"""The vendored copy of the real fixture files is byte-for-byte what their README publishes."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.conftest import SHARED_FIXTURES, VENDORED_FIXTURES


def published_hashes(readme):
    """{relative path: sha256} from the README's `- path sha256` list."""
    return dict(re.findall(r"^- (\S+) ([0-9a-f]{64})$", readme.read_text(), re.M))


def test_vendored_fixtures_match_published_sha256():
    hashes = published_hashes(VENDORED_FIXTURES / "README.md")
    assert len(hashes) == 7
    for name, digest in hashes.items():
        assert hashlib.sha256((VENDORED_FIXTURES / name).read_bytes()).hexdigest() == digest, name


def test_vendored_fixtures_equal_the_shared_ones():
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"{SHARED_FIXTURES} is not beside this checkout")
    assert published_hashes(SHARED_FIXTURES / "README.md") == published_hashes(VENDORED_FIXTURES / "README.md")
