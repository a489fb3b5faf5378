//! Kafka source (feature `kafka`, crate `rdkafka`): broadway_kafka for weir.
