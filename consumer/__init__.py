"""A Kinesis Data Streams consumer service for DynamoDB change data capture."""

__version__ = "0.1.0"
