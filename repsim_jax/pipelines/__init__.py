"""Drivers: `run(config, workdir)` functions made of named steps sharing one `Run` context."""
