"""cdcflow: PostgreSQL row changes (Debezium) into Avro domain events on Kafka."""

__version__ = "0.1.0"
