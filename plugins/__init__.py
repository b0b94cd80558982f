"""Built-in filters and extensions, registered through mesh.filters entry points."""
