"""The HTTP face: app factory, routing, schema and views."""
