"""The ``sovereign`` command line: thin commands that parse files into the library's objects."""
