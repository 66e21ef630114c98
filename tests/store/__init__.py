"""Store tests (a package, so this conftest and these helpers never shadow another folder's)."""
