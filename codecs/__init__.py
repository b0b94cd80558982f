"""Built-in codecs, registered through the mesh.codecs entry points like any plugin."""
