#!/bin/sh
# The image's entry point: the first argument picks the role; the rest goes to it.
#   api [--host H --port P]   the HTTP API (API_HOST, API_PORT)
#   worker [dramatiq args]    the pipeline worker: WORKER_PROCESSES processes of
#                             WORKER_MAX_CONCURRENCY threads; e.g. worker -Q consensus-engine-jobs-high
#   migrate                   upgrade the database schema to the latest
#   pubsub-setup | pubsub setup   create the Pub/Sub topics and subscriptions
#   anything else             run as given, e.g. consensus-engine sweep
# Every branch execs, so the process receives the container's signals (SIGTERM) directly.
set -eu

if [ "$#" -eq 0 ]; then
    set -- api
fi

role=$1
case "$role" in
    api)
        shift
        exec consensus-engine api "$@"
        ;;
    worker)
        shift
        exec python -m consensus_engine.workers.pipeline_worker "$@"
        ;;
    migrate)
        shift
        exec consensus-engine migrate "$@"
        ;;
    pubsub-setup)
        shift
        exec consensus-engine pubsub setup "$@"
        ;;
    pubsub)
        shift
        exec consensus-engine pubsub "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
