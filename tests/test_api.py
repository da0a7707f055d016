"""The public API: every name in rehabstats.__all__ resolves."""

import rehabstats


def test_every_public_name_resolves():
    for name in rehabstats.__all__:
        assert getattr(rehabstats, name) is not None, name


def test_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rehabstats.nope  # noqa: B018
