"""The real-time path's pyspark-free side: the stream contract (topics, roles, events), Kafka clients, replay."""
