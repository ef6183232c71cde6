"""The ``camstream`` command: argument parsing, commands and the viewer."""
