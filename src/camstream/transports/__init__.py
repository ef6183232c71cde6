"""Ways frames leave the server: the native protocol (tcp) and HTTP/MJPEG (web)."""
