"""Deployment checks: the Docker image, the Helm chart, the alerts and the dashboard."""
