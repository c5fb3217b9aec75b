"""Read models that follow the event log, and the queries over them."""
