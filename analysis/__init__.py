"""After-the-fact analyses of prerl runs: behaviours, solved dynamics, gradient alignment."""
