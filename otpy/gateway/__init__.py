"""The outbound gateway (in progress): see docs/gateway.md."""
