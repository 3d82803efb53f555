"""The local sandbox: real BIND9 and HAProxy, and protocol-level fakes of Nova, Chef and Slack,
on loopback. Used by the tests and the demo; never imported by the pack itself."""
