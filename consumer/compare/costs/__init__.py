"""Monthly cost of consuming a DynamoDB table's changes: this project's Kinesis designs
against DynamoDB Streams + Lambda.

`compare.compare(Scenario(...), prices.load_region(...))` costs every design, ranks them and
finds the crossovers; `render` prints the result. Pure functions of (scenario, prices): no I/O
but loading the price file and writing a plot. Every formula is in docs/costs.md.
"""
