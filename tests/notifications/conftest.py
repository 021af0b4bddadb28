from tests.triggers._support import sandbox  # noqa: F401  (fixture)
