"""`consumer compare`: this service against the DynamoDB Streams + Lambda design it replaces,
in money (`costs/`, from the price tables) and in time (`latency/`, measured end to end)."""
