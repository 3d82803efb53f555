"""The pack's domain: groups, nodes, alert and scaling state, capacity and the governor's
policy. Pure: no I/O, no datastore, no StackStorm, no vendor (see docs/architecture.md)."""
