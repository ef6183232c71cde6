"""The wire protocol: messages, the sans-IO session state machine, auth and TLS contexts.

Standard library only; no sockets, threads or clocks outside ``tls``."""
