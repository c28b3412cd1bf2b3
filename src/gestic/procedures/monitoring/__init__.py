"""The infrastructure service indicator: Prometheus data into availability, outages and
incidents."""
