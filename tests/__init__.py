"""The test suite, a package: test modules and shared helpers import each other as
`tests.<folder>.<module>` (e.g. `from tests.helpers.engine import TINY`), so pytest run from
the repository root needs no sys.path edits."""
