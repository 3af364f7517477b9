"""Per-layer recipe stages: one module per method or entropy coder (docs/architecture.md).

:mod:`.base` is the contract every stage implements; :mod:`.registry` lists them.
"""
