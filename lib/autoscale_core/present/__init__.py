"""How the pack speaks: chat lines, status and list text, and the hints that tell an operator
what to run next. Pure wording over the domain's data; no I/O."""
