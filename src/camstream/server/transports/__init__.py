"""How frames leave the server: one listening port, native sessions and HTTP."""
