"""What the demo, the benchmarks and the tests start around the service.

Child processes (workers, the API, Google's Pub/Sub emulator), the embedded Pub/Sub
server, scratch databases, free ports, loopback HTTP, the pipeline stack the benchmarks
and tests drive, and the offline LLM server. The service itself never imports this package.
"""
