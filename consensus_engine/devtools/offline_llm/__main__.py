"""``python -m consensus_engine.devtools.offline_llm``: serve until interrupted."""

from consensus_engine.devtools.offline_llm.server import main

main()
