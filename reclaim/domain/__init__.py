"""The pure domain: no I/O, no SDK imports, `now` is always passed in."""
