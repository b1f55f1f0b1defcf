"""Recognisers of protocols shared by the listener and capture (HTTP, TLS, SSH, DNS): bytes
in, facts out, no sockets."""
