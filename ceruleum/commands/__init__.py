"""Control-plane commands of the CLI (projects, keys, deployments), straight on the database."""
