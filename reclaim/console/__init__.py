"""The administrators' console: read-only HTML pages rendered on the server (no script, no
external asset), served by reclaim.functions.console. Each module renders one kind of page from a
use case's typed result (reclaim.usecases.console_*, explain, report, what_if)."""
