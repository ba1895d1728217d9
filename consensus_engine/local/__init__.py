"""Starting what a laptop lacks (the Pub/Sub emulator, a database) for the demo and benchmarks."""
