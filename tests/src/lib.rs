//! Real-OVS sandbox harness shared by the integration tests, benchmarks and the quickstart.
