"""The application layer: the one service every face calls, and the ports it needs."""
