"""One module per outside system; each is imported only when a policy or setting needs it."""
