"""What runs next to each Dramatiq worker process: its HTTP endpoint for health
probes and Pub/Sub push delivery, and the check of Pub/Sub's push tokens."""
