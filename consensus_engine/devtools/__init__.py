"""What the demo, the benchmarks and the tests start around the service.

Child processes (workers, the API, Google's Pub/Sub emulator), scratch databases,
free ports, the offline LLM server and the helpers the benchmarks report with. The
service itself never imports this package.
"""
