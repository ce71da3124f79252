"""The public surface is explicit: __all__ is exactly what the package exports."""

from __future__ import annotations

import mistral_magic
import mistral_magic.offline


def public(module) -> set[str]:
    return {
        name for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", module.__name__).startswith(
            module.__name__) and not isinstance(value, type(mistral_magic))
    }


def test_package_exports_match_all():
    assert set(mistral_magic.__all__) - {"__version__"} == public(mistral_magic)
    for name in mistral_magic.__all__:
        assert hasattr(mistral_magic, name)


def test_offline_exports_match_all():
    assert set(mistral_magic.offline.__all__) == {"FaultPlan", "OfflineServer"}
    for name in mistral_magic.offline.__all__:
        assert hasattr(mistral_magic.offline, name)


def test_session_is_a_function_even_after_its_module_loads():
    import mistral_magic.core  # noqa: F401

    assert callable(mistral_magic.session) and not isinstance(mistral_magic.session, type(mistral_magic))
