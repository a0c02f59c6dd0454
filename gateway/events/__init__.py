"""Business events: raised into each store's outbox with the change, relayed into the
control store's numbered event log, delivered from there."""
