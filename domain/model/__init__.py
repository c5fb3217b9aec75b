"""Pure model: aggregates, events, values, rules and errors. Imports nothing outward."""
