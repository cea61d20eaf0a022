"""The long-running consumer: leases jobs from the queue and runs them through the pipeline."""
